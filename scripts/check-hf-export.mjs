#!/usr/bin/env node
// `node scripts/check-hf-export.mjs`: checks exportHF against PyTorch in one command.
//   1. Makes sure the Python venv .venv-hf has torch (CPU), transformers and numpy; creates it and installs
//      them from the local pip mirror when it does not (HF_EXPORT_PIP_INDEX / HF_EXPORT_PIP_FIND_LINKS
//      override the mirror; --no-install fails instead of installing).
//   2. Exports tiny models of every mechanism with test/python/export_fixtures.ts (config.json,
//      model.safetensors and our logits) into a temporary folder.
//   3. Runs test/python/check_hf_export.py on it: transformers (Llama, DeepSeek-V3) or the float64 numpy GTA
//      against our logits, after checking both paths on the reference models in test/fixtures/models.
// Prints 'N passed, N failed' per mechanism and in total; exits non-zero on any failure. --keep keeps the
// exported checkpoints (they are kept anyway when something failed).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { devNull, tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = new Set(process.argv.slice(2));
const venv = join(root, '.venv-hf');
const python = join(venv, 'bin', 'python');
const PIP_INDEX = process.env.HF_EXPORT_PIP_INDEX ?? 'file:///opt/pypi/simple';
const PIP_FIND_LINKS = process.env.HF_EXPORT_PIP_FIND_LINKS ?? '/opt/wheels';

/** Writes {passed, failed} where scripts/run-tests.mjs asks for it (RESULTS_FILE). */
function report(passed, failed) {
  if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
}

function fail(message) {
  console.error(`check-hf-export: ${message}`);
  console.log('0 passed, 1 failed');
  report(0, 1);
  process.exit(1);
}

function run(command, argv, options = {}) {
  const r = spawnSync(command, argv, { cwd: root, stdio: 'inherit', ...options });
  if (r.error) fail(`${command} could not start: ${r.error.message}`);
  return r.status ?? 1;
}

function venvReady() {
  if (!existsSync(python)) return false;
  const r = spawnSync(python, ['-c', 'import torch, transformers, numpy, safetensors'], { stdio: 'ignore' });
  return r.status === 0;
}

/** Creates .venv-hf and installs torch (CPU), transformers and numpy from the mirror alone (no pip config files). */
function installVenv() {
  if (args.has('--no-install')) fail(`${venv} lacks torch/transformers (and --no-install was given).`);
  const started = Date.now();
  if (!existsSync(python) && run('python3', ['-m', 'venv', venv]) !== 0) fail('python3 -m venv failed.');
  const pip = [
    join(venv, 'bin', 'pip'),
    'install',
    '--index-url',
    PIP_INDEX,
    '--find-links',
    PIP_FIND_LINKS,
    'torch==2.13.0',
    'transformers==5.17.0',
    'numpy',
  ];
  console.log(`installing: PIP_CONFIG_FILE=${devNull} ${pip.join(' ')}`);
  if (run(pip[0], pip.slice(1), { env: { ...process.env, PIP_CONFIG_FILE: devNull } }) !== 0) fail('pip install failed.');
  console.log(`installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (!venvReady()) fail('torch/transformers still do not import after the install.');
}

if (!venvReady()) installVenv();

const work = mkdtempSync(join(tmpdir(), 'hf-export-'));
let status = run(process.execPath, ['--import', 'tsx/esm', join(root, 'test/python/export_fixtures.ts'), work]);
if (status !== 0) fail(`export_fixtures.ts failed (exit ${status}); files in ${work}`);
const check = spawnSync(python, [join(root, 'test/python/check_hf_export.py'), work, '--reference', join(root, 'test/fixtures/models')], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
  env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' },
});
process.stdout.write(check.stdout ?? '');
status = check.status ?? 1;
const totals = [...(check.stdout ?? '').matchAll(/^(\d+) passed, (\d+) failed$/gm)].at(-1);
report(totals ? Number(totals[1]) : 0, totals ? Number(totals[2]) + (status !== 0 && Number(totals[2]) === 0 ? 1 : 0) : 1);
if (status === 0 && !args.has('--keep')) rmSync(work, { recursive: true, force: true });
else console.log(`exported checkpoints kept in ${work}`);
process.exit(status);
