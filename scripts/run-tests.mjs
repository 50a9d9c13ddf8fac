#!/usr/bin/env node
// `npm test`: runs the static checks (types, lint, format), the Node suites (mocha, every available Node
// backend), the browser suite (the same specs in headless Chromium: webgl, wasm and cpu in one page, webgpu
// in another), the demo page's end-to-end test, the consumer suite (the packed package in fresh apps), the
// Hugging Face export check against PyTorch and the notebook, and ends with the plain line
// `N passed, N failed` summed over all suites.
// Exits non-zero if any suite fails or cannot run.
//
// Two lanes run at once: the webgpu page (the longest suite: every spec on SwiftShader's WebGPU) in one, every
// other suite one after another in the other; the demo runs last, alone, because it reports the WebGL
// training speed. On CI's 2 cores this takes the suite from about 40 to about 28 minutes. Each suite's output
// is written to a log and printed whole when the suite ends, so the two lanes' lines do not interleave.
// TEST_LANES=1 runs everything in one lane, in order, with the output streamed.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'tfjs-gta-tests-'));
const oneLane = process.env.TEST_LANES === '1';
const totals = { passed: 0, failed: 0 };
const notes = [];
const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

/** Runs one suite to its end; returns its `{passed, failed}` (RESULTS_FILE), or null if it wrote none. */
function runSuite(name, command, args, env = {}) {
  const resultsFile = join(work, `${name}.json`);
  const logFile = join(work, `${name}.log`);
  const t0 = Date.now();
  console.log(`== ${name}: started at ${clock()}`);
  return new Promise((resolveSuite) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: ['ignore', oneLane ? 'inherit' : 'pipe', oneLane ? 'inherit' : 'pipe'],
      env: { ...process.env, ...env, RESULTS_FILE: resultsFile },
    });
    const log = oneLane ? null : createWriteStream(logFile);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.on('close', (code, signal) => {
      const finish = () => {
        const seconds = ((Date.now() - t0) / 1000).toFixed(1);
        if (log) {
          console.log(`\n== ${name}: output (ended at ${clock()}) ==`);
          process.stdout.write(readFileSync(logFile, 'utf8'));
        }
        record(name, code ?? signal, seconds, resultsFile);
        resolveSuite();
      };
      if (log) log.end(finish);
      else finish();
    });
  });
}

function record(name, exit, seconds, resultsFile) {
  if (!existsSync(resultsFile)) {
    totals.failed += 1;
    notes.push(`${name}: did not report results (exit ${exit}) after ${seconds}s - counted as 1 failure`);
    return;
  }
  const { passed, failed } = JSON.parse(readFileSync(resultsFile, 'utf8'));
  totals.passed += passed;
  totals.failed += failed;
  if (exit !== 0 && failed === 0) {
    totals.failed += 1;
    notes.push(`${name}: exited with ${exit} although no test failed - counted as 1 failure`);
  }
  notes.push(`${name}: ${passed} passed, ${failed} failed in ${seconds}s`);
}

const node = process.execPath;
const browserRunner = join(root, 'scripts/browser-tests.mjs');
const hasBrowser = existsSync(browserRunner);

// Every spec on webgpu in Chromium (SwiftShader's WebGPU adapter), in a page of its own: a device lost there
// cannot take the other backends' results with it. Loops of many decode steps take fewer steps on webgl and
// webgpu (test/kit/backends.ts: stepsOn), where each step is ~0.5 s in software. Its whole-run guard is 45 of
// CI's 90 minutes: alone it takes about 18, sharing the 2 cores with the other lane about 25.
const webgpuLane = async () => {
  if (hasBrowser)
    await runSuite('browser-webgpu', node, [browserRunner, '--backends', 'webgpu'], {
      BROWSER_TESTS_TIMEOUT: process.env.BROWSER_TESTS_TIMEOUT ?? '2700',
    });
};

const otherLane = async () => {
  // Static checks first: the type check, ESLint and Prettier's format check.
  await runSuite('lint', node, [join(root, 'scripts/lint.mjs')]);
  await runSuite('node', node, [join(root, 'node_modules/mocha/bin/mocha.js')]);
  // Every spec on webgl, wasm and cpu in Chromium: minutes on 2 cores with SwiftShader, so the suite's own
  // whole-run guard gets 30 of CI's 90 minutes.
  if (hasBrowser) await runSuite('browser', node, [browserRunner], { BROWSER_TESTS_TIMEOUT: process.env.BROWSER_TESTS_TIMEOUT ?? '1800' });
  // What package users get: the packed tarball in fresh apps (ESM, CommonJS, TypeScript, esbuild, vite, the
  // oldest tfjs of the peer range) and every ts block of the README run there.
  await runSuite('consumer', node, [join(root, 'scripts/consumer-tests.mjs')]);
  // The notebook, executed headless with the tslab kernel against the packed package and tfjs-node.
  await runSuite('notebook', node, [join(root, 'scripts/notebook-test.mjs')]);
  // Hugging Face export against PyTorch: transformers (Llama, DeepSeek-V3) and a float64 GTA, in float64.
  await runSuite('hf-export', node, [join(root, 'scripts/check-hf-export.mjs')]);
};

if (oneLane) {
  await otherLane();
  await webgpuLane();
} else await Promise.all([webgpuLane(), otherLane()]);

// The demo page end to end, alone (it reports the WebGL training speed of the page).
const demoRunner = join(root, 'scripts/demo-e2e.mjs');
if (existsSync(demoRunner)) await runSuite('demo', node, [demoRunner]);

rmSync(work, { recursive: true, force: true });
console.log(`\nsuites (${clock()} in all):`);
for (const n of notes) console.log(`  ${n}`);
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed > 0 ? 1 : 0);
