// browser-tests: node-only: spawns the command line
/**
 * Robustness: the command line given bad flag values, unknown options and damaged inputs. Every run
 * is a real child process (`node --import tsx/esm src/cli/main.ts ...`); they start together, two at a
 * time, in the `before` hook, and each test checks its own: exit 2 with one `error:` line is a clear
 * error, any other failure a crash.
 */
import { cliCases, startCli } from './cases/cli.js';
import { removeTempDirs } from './cases/common.js';
import { caseTests, included } from './suite.js';

after(removeTempDirs);

describe('robustness: CLI arguments', function () {
  this.timeout(30 * 60_000);
  const cases = included(cliCases());
  before(() => startCli(cases.map((c) => c.name)));
  caseTests(cases, { module: new URL('./cases/cli.ts', import.meta.url), exportName: 'cliCases' });
});
