// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: generate() options (numeric options swept, misspelt names, wrong types, bad stop tokens,
 * prompts) and token ids of logits/callWithCache (out of range, fractional, negative, NaN, wrong dtype
 * or rank), on cpu and wasm.
 */
import { describeBackends } from '../kit/index.js';
import { generateCases } from './cases/generate.js';
import { caseTests } from './suite.js';

describeBackends(
  'robustness: generate options and token ids',
  ({ backend }) => {
    caseTests(generateCases(), { module: new URL('./cases/generate.ts', import.meta.url), exportName: 'generateCases' }, backend);
  },
  { only: ['cpu', 'wasm'] },
);
