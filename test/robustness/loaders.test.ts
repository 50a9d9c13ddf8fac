// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: file loaders (safetensors, JSON tensors, tfjs model folders, Hugging Face folders) given
 * truncated, corrupted and hostile files, on cpu and wasm. Parsers of untrusted bytes and cases that
 * open FIFOs run in a child process that is killed if they hang.
 */
import { describeBackends } from '../kit/index.js';
import { loaderCases } from './cases/loaders.js';
import { removeTempDirs } from './cases/common.js';
import { caseTests } from './suite.js';

after(removeTempDirs);

describeBackends(
  'robustness: loaders',
  ({ backend }) => {
    caseTests(loaderCases(), { module: new URL('./cases/loaders.ts', import.meta.url), exportName: 'loaderCases' }, backend);
  },
  { only: ['cpu', 'wasm'] },
);
