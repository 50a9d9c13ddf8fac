// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: layer and model configurations (every numeric constructor argument swept over 0, -1,
 * 1.5, NaN, Infinity, '2', null and 1e21; misspelt keys; flags; divisibility; initializers). Built on
 * cpu: constructor checks do not depend on the backend. Huge sizes run in a child process.
 */
import { describeBackends } from '../kit/index.js';
import { layerCases } from './cases/layers.js';
import { caseTests } from './suite.js';

describeBackends(
  'robustness: layer configs',
  ({ backend }) => {
    caseTests(layerCases(), { module: new URL('./cases/layers.ts', import.meta.url), exportName: 'layerCases' }, backend);
  },
  { only: ['cpu'] },
);
