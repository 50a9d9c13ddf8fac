// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: cached calls of the attention layers and of CausalLM (caches of another layer, disposed
 * or of another batch size; masks with values other than 0/1; RoPE positions fractional, negative or
 * out of range; misspelt call options), on cpu and wasm.
 */
import { describeBackends } from '../kit/index.js';
import { cacheCases } from './cases/cache.js';
import { caseTests } from './suite.js';

describeBackends(
  'robustness: cache and call inputs',
  ({ backend }) => {
    caseTests(cacheCases(), { module: new URL('./cases/cache.ts', import.meta.url), exportName: 'cacheCases' }, backend);
  },
  { only: ['cpu', 'wasm'] },
);
