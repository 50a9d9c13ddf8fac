// Mocha reporter: mocha's spec output, then the plain summary line CI reads ("N passed, N failed").
// With RESULTS_FILE set it also writes {"passed": N, "failed": N} there for the combined runner.
'use strict';
const Mocha = require('mocha');
const fs = require('node:fs');

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let passed = 0;
    let failed = 0;
    runner.on(Mocha.Runner.constants.EVENT_TEST_PASS, () => {
      passed += 1;
    });
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, () => {
      failed += 1;
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      if (process.env.RESULTS_FILE) fs.writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
      process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
    });
  }
}
module.exports = SpecWithSummary;
