#!/usr/bin/env node
// `npm test`: runs the static checks (types, lint, format), the Node suites (mocha, every available Node
// backend), then the browser suite (the same specs in headless Chromium: webgl, wasm and cpu in one page,
// webgpu in another), the demo page's end-to-end test, the consumer suite (the packed package in fresh
// apps), the Hugging Face export check against PyTorch and the notebook, and ends with the plain line
// `N passed, N failed` summed over all suites.
// Exits non-zero if any suite fails or cannot run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'tfjs-gta-tests-'));
const totals = { passed: 0, failed: 0 };
const notes = [];

function runSuite(name, command, args, env = {}) {
  const resultsFile = join(work, `${name}.json`);
  const started = Date.now();
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env, RESULTS_FILE: resultsFile } });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (!existsSync(resultsFile)) {
    totals.failed += 1;
    notes.push(`${name}: did not report results (exit ${r.status ?? r.signal}) after ${seconds}s - counted as 1 failure`);
    return;
  }
  const { passed, failed } = JSON.parse(readFileSync(resultsFile, 'utf8'));
  totals.passed += passed;
  totals.failed += failed;
  if (r.status !== 0 && failed === 0) {
    totals.failed += 1;
    notes.push(`${name}: exited with ${r.status} although no test failed - counted as 1 failure`);
  }
  notes.push(`${name}: ${passed} passed, ${failed} failed in ${seconds}s`);
}

// Static checks first (seconds): the type check, ESLint and Prettier's format check.
runSuite('lint', process.execPath, [join(root, 'scripts/lint.mjs')]);

runSuite('node', process.execPath, [join(root, 'node_modules/mocha/bin/mocha.js')]);

const browserRunner = join(root, 'scripts/browser-tests.mjs');
// Every spec on webgl, wasm and cpu in Chromium: on 2 cores with SwiftShader this takes minutes, so the
// suite's own whole-run guard gets 30 of CI's 90 minutes (as does the webgpu run below).
if (existsSync(browserRunner))
  runSuite('browser', process.execPath, [browserRunner], { BROWSER_TESTS_TIMEOUT: process.env.BROWSER_TESTS_TIMEOUT ?? '1800' });

// Every spec on webgpu in Chromium (SwiftShader's WebGPU adapter), in a page of its own: a device lost there
// cannot take the other backends' results with it. Loops of many decode steps take fewer steps on webgl and
// webgpu (test/kit/backends.ts: stepsOn), where each step is ~0.5 s in software.
if (existsSync(browserRunner))
  runSuite('browser-webgpu', process.execPath, [browserRunner, '--backends', 'webgpu'], {
    BROWSER_TESTS_TIMEOUT: process.env.BROWSER_TESTS_TIMEOUT ?? '1800',
  });

const demoRunner = join(root, 'scripts/demo-e2e.mjs');
if (existsSync(demoRunner)) runSuite('demo', process.execPath, [demoRunner]);

// What package users get: the packed tarball in fresh apps (ESM, CommonJS, TypeScript, esbuild, vite, the
// oldest tfjs of the peer range) and every ts block of the README run there.
runSuite('consumer', process.execPath, [join(root, 'scripts/consumer-tests.mjs')]);

// The notebook, executed headless with the tslab kernel against the packed package and tfjs-node.
runSuite('notebook', process.execPath, [join(root, 'scripts/notebook-test.mjs')]);

// Hugging Face export against PyTorch: transformers (Llama, DeepSeek-V3) and a float64 GTA, in float64.
runSuite('hf-export', process.execPath, [join(root, 'scripts/check-hf-export.mjs')]);

rmSync(work, { recursive: true, force: true });
console.log('\nsuites:');
for (const n of notes) console.log(`  ${n}`);
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed > 0 ? 1 : 0);
