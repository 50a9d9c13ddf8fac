// browser-tests: node-only: checkpoint folders on disk, FIFOs, child processes
/**
 * Robustness: training checkpoint folders with damaged trainer.json, optimizer.bin or model files,
 * loaded and resumed on cpu and wasm. Cases that open FIFOs run in a child process that is killed if
 * they hang.
 */
import { describeBackends } from '../kit/index.js';
import { checkpointCases } from './cases/checkpoints.js';
import { removeTempDirs } from './cases/common.js';
import { caseTests } from './suite.js';

after(removeTempDirs);

describeBackends(
  'robustness: checkpoint folders',
  ({ backend }) => {
    caseTests(checkpointCases(), { module: new URL('./cases/checkpoints.ts', import.meta.url), exportName: 'checkpointCases' }, backend);
  },
  { only: ['cpu', 'wasm'] },
);
