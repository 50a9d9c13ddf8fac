#!/usr/bin/env node
/**
 * The static checks, each one test: the type check of everything (`tsc -p tsconfig.json`: src, tests,
 * scripts, bench, examples), ESLint (eslint.config.mjs) and Prettier's format check (.prettierrc.json).
 * `npm run format` fixes what Prettier reports. Ends with `N passed, N failed`; with RESULTS_FILE set writes
 * {"passed", "failed"} there.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const CHECKS = [
  ['type check (tsc -p tsconfig.json)', 'node_modules/typescript/bin/tsc', ['-p', 'tsconfig.json', '--noEmit']],
  ['eslint', 'node_modules/eslint/bin/eslint.js', ['.']],
  ['prettier --check (run `npm run format` to fix)', 'node_modules/prettier/bin/prettier.cjs', ['--check', '.', '--log-level', 'warn']],
];

let passed = 0;
let failed = 0;
for (const [name, script, args] of CHECKS) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) {
    passed += 1;
    console.log(`  ok    ${name} (${seconds} s)`);
  } else {
    failed += 1;
    console.log(`  FAIL  ${name} (exit ${r.status ?? r.signal}, ${seconds} s)`);
    console.log(
      `${r.stdout}${r.stderr}`
        .trim()
        .split('\n')
        .slice(0, 60)
        .map((l) => `        ${l}`)
        .join('\n'),
    );
  }
}
console.log(`${passed} passed, ${failed} failed`);
if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
process.exit(failed > 0 ? 1 : 0);
