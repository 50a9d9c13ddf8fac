#!/usr/bin/env node
/**
 * npm run setup:tfjs-node [-- --force | --check | --verbose | --help]
 *
 * Makes `@tensorflow/tfjs-node` (backend name `tensorflow`) usable in this project's node_modules
 * on a machine that cannot reach the host that tfjs-node's own install script downloads from
 * (it fetches libtensorflow and a prebuilt addon from Google's storage host).
 *
 * If `require('@tensorflow/tfjs-node')` already works (the ordinary install succeeded), nothing is
 * changed: the script says so and only runs the read-only verification. Otherwise it
 *   1. makes sure @tensorflow/tfjs-node@4.22.0 and its dependencies are in node_modules
 *      (`npm install --no-save --ignore-scripts`, after a dry run proved it adds packages only),
 *   2. gets libtensorflow from the `tensorflow-cpu==2.21.0` wheel (`pip download`), keeping the two
 *      shared libraries and the C API headers in a cache dir, so later runs skip this step,
 *   3. lays them out in tfjs-node's `deps/` the way its binding.gyp expects,
 *   4. builds the native addon from source with node-pre-gyp (node-gyp, make, a C++ compiler),
 *   5. verifies in a child process: require, tf.getBackend() === 'tensorflow', matMul numbers,
 *      a dense layer against a JS reference, and a file:// save/load round trip of a tf.sequential.
 *
 * Plain Node ESM, Node built-ins only. Idempotent: rerun it whenever `npm ci`/`npm install` has
 * reinstalled tfjs-node. See docs/TFJS_NODE.md.
 *
 * Environment:
 *   TFJS_GTA_CACHE       cache base dir (default: $XDG_CACHE_HOME/tfjs-gta or ~/.cache/tfjs-gta);
 *                        libraries and headers go to <base>/libtensorflow-2.21.0/, logs to <base>/logs/
 *   TFJS_GTA_TF_WHEEL    path to an already downloaded tensorflow_cpu-2.21.0-*.whl (skips pip)
 *   PYTHON               python interpreter for pip and wheel extraction (default python3, python)
 *
 * Exit codes: 0 ok, 1 a step failed (the message names the step), 2 bad usage.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TFJS_NODE = '@tensorflow/tfjs-node';
const TFJS_NODE_VERSION = '4.22.0';
const TF_WHEEL_PROJECT = 'tensorflow-cpu';
const TF_VERSION = '2.21.0';
/** tfjs-node's scripts/install.js skips its download when this file exists in deps/lib. */
const INSTALL_JS_MARKER = 'libtensorflow.so.2.9.1';
const LIBS = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];
/** Headers that must exist after extraction (the binding includes these, directly or not). */
const REQUIRED_HEADERS = [
  'tensorflow/c/c_api.h',
  'tensorflow/c/eager/c_api.h',
  'tensorflow/c/tf_tstring.h',
  'tensorflow/core/platform/ctstring.h',
  'tensorflow/core/platform/ctstring_internal.h',
  'tsl/platform/ctstring.h',
  'tsl/platform/ctstring_internal.h',
  'xla/tsl/c/tsl_status.h',
];
const OFFLINE_STAMP = 'TFJS_GTA_OFFLINE_BUILD.json';
const CACHE_FORMAT = 1;

/**
 * The project whose node_modules gets tfjs-node: `--project DIR` (what `npx tfjs-gta setup-tfjs-node`
 * passes: the folder it runs in), else this repository.
 */
const projectFlag = process.argv.indexOf('--project');
const ROOT =
  projectFlag > 0 && process.argv[projectFlag + 1]
    ? path.resolve(process.argv[projectFlag + 1])
    : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STEPS = ['check', 'package', 'libtensorflow', 'deps', 'build', 'verify'];
const t0 = Date.now();

class StepError extends Error {
  constructor(step, message, hint) {
    super(message);
    this.step = step;
    this.hint = hint;
  }
}

const say = (msg) => console.log(`[setup-tfjs-node] ${msg}`);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
let currentStep = 'check';
function step(name, what) {
  currentStep = name;
  say(`step ${STEPS.indexOf(name) + 1}/${STEPS.length} ${name}: ${what}`);
}

function usage() {
  console.log(`Usage: node scripts/setup-tfjs-node.mjs [--project DIR] [--force] [--check] [--verbose]
  (in an app: npx tfjs-gta setup-tfjs-node [--force] [--check] [--verbose])

  --project   the project to set up (default: this repository; npx tfjs-gta passes the current folder)

Makes ${TFJS_NODE}@${TFJS_NODE_VERSION} work offline (libtensorflow from ${TF_WHEEL_PROJECT}==${TF_VERSION}).
  --force     rebuild offline even if require('${TFJS_NODE}') already works
  --check     change nothing: only run the verification of the current install
  --verbose   show the output of npm, pip and the addon build instead of logging it
Environment: TFJS_GTA_CACHE, TFJS_GTA_TF_WHEEL, PYTHON (see docs/TFJS_NODE.md).`);
}

function parseArgs(argv) {
  const opts = { force: false, check: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--project')
      i++; // read with ROOT
    else if (a === '--force') opts.force = true;
    else if (a === '--check') opts.check = true;
    else if (a === '--verbose') opts.verbose = true;
    else if (a === '--help' || a === '-h') {
      usage();
      process.exit(0);
    } else {
      console.error(`[setup-tfjs-node] unknown argument: ${a}`);
      usage();
      process.exit(2);
    }
  }
  if (opts.force && opts.check) {
    console.error('[setup-tfjs-node] --force and --check exclude each other');
    process.exit(2);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// small helpers

function cacheBase() {
  if (process.env.TFJS_GTA_CACHE) return path.resolve(process.env.TFJS_GTA_CACHE);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'tfjs-gta');
}

function which(cmd) {
  if (cmd.includes('/')) return fs.existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

function tail(file, lines = 40) {
  try {
    const all = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    return all.slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Runs a command synchronously. Output goes to `log` (a file, overwritten) unless verbose, in
 * which case it is shown. Returns { status, logFile }.
 */
function run(cmd, args, { cwd = ROOT, env = CHILD_ENV, log, verbose = false, timeoutMs } = {}) {
  let fd = null;
  let stdio = 'inherit';
  if (!verbose && log) {
    fs.mkdirSync(path.dirname(log), { recursive: true });
    fd = fs.openSync(log, 'w');
    fs.writeSync(fd, `$ (cd ${cwd} && ${[cmd, ...args].join(' ')})\n`);
    stdio = ['ignore', fd, fd];
  }
  try {
    const r = spawnSync(cmd, args, { cwd, env, stdio, timeout: timeoutMs });
    if (r.error) return { status: -1, error: r.error, logFile: log };
    return { status: r.status, signal: r.signal, logFile: log };
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

function failDetail(r, what) {
  const why = r.error ? `could not start: ${r.error.message}` : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
  let msg = `${what} failed (${why})`;
  if (r.logFile && fs.existsSync(r.logFile)) {
    // compiler / pip errors first (the tail is mostly the tools' own stack traces)
    const lines = fs.readFileSync(r.logFile, 'utf8').split('\n');
    const errors = lines.filter((l) => /\berror\b/i.test(l) && !/^(gyp|node-pre-gyp) ERR!/.test(l)).slice(0, 12);
    if (errors.length) msg += `\n--- error lines from ${r.logFile} ---\n${errors.join('\n')}`;
    msg += `\n--- last lines of ${r.logFile} ---\n${tail(r.logFile, errors.length ? 15 : 40)}\n--- end of log ---`;
  }
  return msg;
}

/**
 * The environment of the npm, pip and node-gyp children: without npm's log level, which `npm run -s`
 * sets to silent and which would otherwise silence the inner npm whose --json output is read.
 */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.toLowerCase() !== 'npm_config_loglevel'));

function capture(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { cwd: ROOT, env: CHILD_ENV, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
}

function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

function sha256File(file) {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  try {
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function readFileOrNull(p) {
  try {
    return fs.readFileSync(p);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// locating things in node_modules

/**
 * Finds `name` the way Node resolves a bare specifier from `fromDir` (node_modules folders up the
 * tree), straight from the file system: require.resolve caches misses within one process, and
 * this script installs packages between lookups.
 */
function findPackageDir(fromDir, name) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', ...name.split('/'));
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

function tfjsNodeDir() {
  return findPackageDir(ROOT, TFJS_NODE);
}

function nodePreGypBin(pkgDir) {
  const dir = findPackageDir(pkgDir, '@mapbox/node-pre-gyp');
  const bin = dir && path.join(dir, 'bin', 'node-pre-gyp');
  return bin && fs.existsSync(bin) ? bin : null;
}

/** Missing runtime dependencies of the installed tfjs-node (a half-removed install has some). */
function missingDeps(pkgDir) {
  const pj = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  return Object.keys(pj.dependencies || {}).filter((dep) => !findPackageDir(pkgDir, dep));
}

function npmCommand() {
  const execpath = process.env.npm_execpath;
  if (execpath && /npm-cli\.js$/.test(execpath) && fs.existsSync(execpath)) {
    return { cmd: process.execPath, pre: [execpath] };
  }
  const npm = which('npm');
  if (!npm) return null;
  return { cmd: npm, pre: [] };
}

function findPython() {
  const candidates = process.env.PYTHON ? [process.env.PYTHON] : ['python3', 'python'];
  for (const c of candidates) {
    const exe = which(c);
    if (!exe) continue;
    const r = capture(exe, ['-c', 'import sys, zipfile; print(sys.version_info[0])']);
    if (r.status === 0 && r.stdout.trim() === '3') return exe;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// the child-process checks

/**
 * The verification that runs in a child process: CommonJS, given the project root (from which it
 * resolves tfjs-node itself, in a fresh process) and a temp dir. Prints one line `TFJS_GTA_VERIFY <json>` and exits 0 when everything held.
 */
const VERIFY_SOURCE = String.raw`
'use strict';
const fs = require('fs');
const path = require('path');
const [root, tmp, mode] = process.argv.slice(2);
const result = { ok: false, checks: [] };
const check = (name, ok, detail) => { result.checks.push({ name, ok: !!ok, detail }); if (!ok) throw new Error(name + ': ' + detail); };
const close = (a, b, tol) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
async function main() {
  let entry;
  try {
    entry = require('module').createRequire(path.join(root, 'package.json')).resolve('@tensorflow/tfjs-node');
  } catch (e) {
    throw new Error('@tensorflow/tfjs-node is not installed (not resolvable from ' + root + ')');
  }
  const t = Date.now();
  const tf = require(entry);
  check('require', true, 'loaded ' + entry + ' in ' + (Date.now() - t) + ' ms');
  check('backend', tf.getBackend() === 'tensorflow', 'tf.getBackend() = ' + JSON.stringify(tf.getBackend()));
  result.versions = { 'tfjs-node': tf.version['tfjs-node'], 'tfjs-core': tf.version['tfjs-core'] };
  try { result.versions.libtensorflow = tf.backend().binding.TF_Version; } catch (e) { /* optional */ }
  if (mode === 'quick') { result.ok = true; return; }

  // matMul: an exact integer case and a float case against a plain JS product
  const c = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync();
  check('matMul 2x2', JSON.stringify(c) === JSON.stringify([[19, 22], [43, 50]]), 'got ' + JSON.stringify(c));
  const A = [], B = [];
  for (let i = 0; i < 3; i++) { A.push([]); for (let k = 0; k < 5; k++) A[i].push(Math.sin(1 + i * 5 + k)); }
  for (let k = 0; k < 5; k++) { B.push([]); for (let j = 0; j < 4; j++) B[k].push(Math.cos(2 + k * 4 + j)); }
  const got = tf.matMul(tf.tensor2d(A), tf.tensor2d(B)).arraySync();
  let worst = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) {
    let s = 0; for (let k = 0; k < 5; k++) s += Math.fround(A[i][k]) * Math.fround(B[k][j]);
    worst = Math.max(worst, Math.abs(s - got[i][j]));
  }
  check('matMul 3x5 . 5x4', worst < 1e-5, 'max abs error vs JS ' + worst.toExponential(2));
  const tb = tf.matMul(tf.tensor2d(A), tf.tensor2d(A), false, true).arraySync();
  check('matMul transposeB', close(tb[0][1], tb[1][0], 1e-6), 'symmetric A.A^T: ' + tb[0][1] + ' vs ' + tb[1][0]);

  // a tiny tf.sequential: predict vs. a JS reference, then a file:// save/load round trip
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu', kernelInitializer: 'glorotUniform', biasInitializer: 'ones' }));
  model.add(tf.layers.dense({ units: 2 }));
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const x = tf.tensor2d([[0.5, -1, 2, 0.25], [1, 1, -1, -0.5]]);
  const y1 = model.predict(x).arraySync();
  const [w1, b1, w2, b2] = model.getWeights().map((w) => w.arraySync());
  const X = x.arraySync();
  let refErr = 0;
  for (let r = 0; r < 2; r++) {
    const h = [0, 1, 2].map((j) => Math.max(0, b1[j] + [0, 1, 2, 3].reduce((s, i) => s + X[r][i] * w1[i][j], 0)));
    for (let o = 0; o < 2; o++) refErr = Math.max(refErr, Math.abs(b2[o] + h.reduce((s, v, j) => s + v * w2[j][o], 0) - y1[r][o]));
  }
  check('dense layers vs JS', refErr < 1e-5, 'max abs error ' + refErr.toExponential(2));
  const hist = await model.fit(x, tf.tensor2d([[1, 0], [0, 1]]), { epochs: 2, verbose: 0 });
  check('fit', hist.history.loss.every(Number.isFinite), 'losses ' + JSON.stringify(hist.history.loss));
  const y2 = model.predict(x).arraySync();
  const dir = path.join(tmp, 'model');
  const saved = await model.save('file://' + dir);
  const files = fs.readdirSync(dir).sort();
  check('tf.io file:// save', files.includes('model.json') && files.includes('weights.bin') && saved.modelArtifactsInfo.weightDataBytes > 0,
    'wrote ' + files.join(', ') + ' (' + saved.modelArtifactsInfo.weightDataBytes + ' weight bytes)');
  const loaded = await tf.loadLayersModel('file://' + path.join(dir, 'model.json'));
  const y3 = loaded.predict(x).arraySync();
  let rt = 0;
  for (let r = 0; r < 2; r++) for (let o = 0; o < 2; o++) rt = Math.max(rt, Math.abs(y2[r][o] - y3[r][o]));
  check('tf.io file:// load', rt === 0 && loaded.layers.length === 2, 'max abs difference after round trip ' + rt);
  result.ok = true;
}
main().then(
  () => { console.log('TFJS_GTA_VERIFY ' + JSON.stringify(result)); process.exit(0); },
  (e) => { result.error = String(e && e.stack || e); console.log('TFJS_GTA_VERIFY ' + JSON.stringify(result)); process.exit(1); });
`;

/** mode 'quick': require + backend only; 'full': everything. Never throws. */
function childCheck(mode) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-gta-verify-'));
  try {
    const script = path.join(tmp, 'verify.cjs');
    fs.writeFileSync(script, VERIFY_SOURCE);
    const env = { ...process.env };
    if (env.TF_CPP_MIN_LOG_LEVEL === undefined) env.TF_CPP_MIN_LOG_LEVEL = '2';
    const r = capture(process.execPath, [script, ROOT, tmp, mode], { env, timeout: 180_000 });
    const line = (r.stdout || '').split('\n').find((l) => l.startsWith('TFJS_GTA_VERIFY '));
    let res = line ? JSON.parse(line.slice('TFJS_GTA_VERIFY '.length)) : null;
    if (!res) {
      const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
      res = { ok: false, checks: [], error: `verification child produced no result (${why})` };
    }
    if (!res.ok) res.stderr = (r.stderr || '').trim().split('\n').slice(-25).join('\n');
    return res;
  } finally {
    rmrf(tmp);
  }
}

function firstLine(s) {
  return (
    String(s || '')
      .split('\n')
      .find((l) => l.trim()) || ''
  );
}

// ---------------------------------------------------------------------------------------------
// step 2: the package

/** What `npm <args> --dry-run --json` would do: { add, remove, change } lists. */
function npmPlan(npm, args) {
  const dry = capture(npm.cmd, [...npm.pre, ...args, '--dry-run', '--json']);
  if (dry.status !== 0) {
    throw new StepError(
      'package',
      `npm ${args.join(' ')} --dry-run failed (exit ${dry.status}):\n${(dry.stderr || '').trim().split('\n').slice(-15).join('\n')}`,
    );
  }
  const jsonStart = dry.stdout.search(/^\{\s*$/m); // the JSON follows the plain "add ..." lines
  try {
    if (jsonStart < 0) throw new Error('no JSON');
    return JSON.parse(dry.stdout.slice(jsonStart));
  } catch {
    throw new StepError('package', `could not read the plan of npm ${args.join(' ')} --dry-run --json`);
  }
}

function ensurePackage(opts, logs) {
  step('package', `${TFJS_NODE}@${TFJS_NODE_VERSION} in node_modules`);
  let dir = tfjsNodeDir();
  if (dir) {
    const version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
    if (version !== TFJS_NODE_VERSION) {
      throw new StepError(
        'package',
        `${dir} holds version ${version}, this script is for ${TFJS_NODE_VERSION}`,
        `Install ${TFJS_NODE}@${TFJS_NODE_VERSION} (the version package.json pins) or adapt the script.`,
      );
    }
    const missing = missingDeps(dir);
    if (missing.length === 0) {
      say(`  present: ${path.relative(ROOT, dir)} (${version}), its dependencies resolve`);
      return dir;
    }
    say(`  present but its dependencies are missing: ${missing.join(', ')}`);
  } else {
    say('  not installed');
  }

  const npm = npmCommand();
  if (!npm) throw new StepError('package', 'npm not found on PATH');
  const spec = `${TFJS_NODE}@${TFJS_NODE_VERSION}`;
  const args = ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', spec];

  // Dry run first. npm prunes packages that are in node_modules but not in package.json/lockfile
  // (earlier --no-save installs): name such top-level packages in the same install so they stay.
  // Refuse if npm would still remove or change anything (node_modules out of sync with the lock).
  let extra = [];
  let plan = npmPlan(npm, [...args, ...extra]);
  const topLevel = path.join(ROOT, 'node_modules');
  const keepable = (p) => p.path && p.version && path.dirname(p.name.startsWith('@') ? path.dirname(p.path) : p.path) === topLevel;
  if ((plan.remove || []).some(keepable) && !(plan.change || []).length) {
    extra = plan.remove.filter(keepable).map((p) => `${p.name}@${p.version}`);
    say(`  keeping packages npm would otherwise prune: ${extra.join(', ')}`);
    plan = npmPlan(npm, [...args, ...extra]);
  }
  const removes = plan.remove || [];
  const changes = plan.change || [];
  if (removes.length || changes.length) {
    const list = [
      ...removes.map((p) => `remove ${p.name}@${p.version}`),
      ...changes.map((p) => `change ${p.to?.name ?? p.from?.name ?? p.name} ${p.from?.version ?? '?'} -> ${p.to?.version ?? '?'}`),
    ];
    throw new StepError(
      'package',
      `npm would not only add packages but also:\n  ${list.slice(0, 20).join('\n  ')}`,
      'node_modules is out of sync with package-lock.json. Run `npm install` (or `npm ci`) first, then rerun this script.',
    );
  }
  args.push(...extra);
  say(`  npm ${args.join(' ')}  (dry run: adds ${(plan.add || []).length} packages, removes none)`);

  const guarded = ['package.json', 'package-lock.json', 'npm-shrinkwrap.json'].map((f) => [
    path.join(ROOT, f),
    readFileOrNull(path.join(ROOT, f)),
  ]);
  const r = run(npm.cmd, [...npm.pre, ...args], { log: path.join(logs, 'npm-install.log'), verbose: opts.verbose });
  const touched = [];
  for (const [file, before] of guarded) {
    const after = readFileOrNull(file);
    if ((before === null) !== (after === null) || (before && !before.equals(after))) {
      touched.push(path.basename(file));
      if (before === null) fs.rmSync(file, { force: true });
      else fs.writeFileSync(file, before);
    }
  }
  if (touched.length) say(`  WARNING: npm modified ${touched.join(', ')}; restored the previous contents`);
  if (r.status !== 0) throw new StepError('package', failDetail(r, `npm ${args.join(' ')}`));

  dir = tfjsNodeDir();
  if (!dir) throw new StepError('package', `npm finished but ${TFJS_NODE} still does not resolve from ${ROOT}`);
  const missing = missingDeps(dir);
  if (missing.length)
    throw new StepError('package', `npm finished but these dependencies of ${TFJS_NODE} are missing: ${missing.join(', ')}`);
  const pj = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const listed = ['dependencies', 'optionalDependencies', 'devDependencies'].some((k) => pj[k] && pj[k][TFJS_NODE]);
  if (!listed) {
    say(`  note: ${TFJS_NODE} is not listed in package.json, so a later plain \`npm install\` will prune it; rerun this script then`);
  }
  say(`  installed ${path.relative(ROOT, dir)}`);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// step 3: libtensorflow from the wheel, cached

const EXTRACT_SOURCE = String.raw`
import json, os, re, shutil, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
lib = re.compile(r'^tensorflow/(libtensorflow_cc\.so\.2|libtensorflow_framework\.so\.2)$')
inc = re.compile(r'^tensorflow/include/('
                 r'tensorflow/c/[^/]+\.h|tensorflow/c/eager/[^/]+\.h|'
                 r'tensorflow/core/platform/ctstring[^/]*\.h|tsl/platform/ctstring[^/]*\.h|'
                 r'xla/tsl/c/[^/]+\.h)$')
files = []
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        m = lib.match(info.filename)
        rel = 'lib/' + m.group(1) if m else None
        if rel is None:
            m = inc.match(info.filename)
            rel = 'include/' + m.group(1) if m else None
        if rel is None:
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, 'wb') as out:
            shutil.copyfileobj(src, out, 8 << 20)
        files.append({'path': rel, 'size': info.file_size})
print(json.dumps(files))
`;

function cacheIsComplete(dir) {
  const manifest = path.join(dir, 'manifest.json');
  let m;
  try {
    m = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  } catch {
    return null;
  }
  if (m.format !== CACHE_FORMAT || m.tensorflowVersion !== TF_VERSION || !Array.isArray(m.files)) return null;
  for (const f of m.files) {
    let st;
    try {
      st = fs.statSync(path.join(dir, f.path));
    } catch {
      return null;
    }
    if (st.size !== f.size) return null;
  }
  for (const l of LIBS) if (!m.files.some((f) => f.path === `lib/${l}`)) return null;
  for (const h of REQUIRED_HEADERS) if (!m.files.some((f) => f.path === `include/${h}`)) return null;
  return m;
}

function pipCommands(python) {
  const out = [];
  if (python && capture(python, ['-m', 'pip', '--version']).status === 0) out.push({ cmd: python, pre: ['-m', 'pip'] });
  for (const p of ['pip3', 'pip']) {
    const exe = which(p);
    if (exe && capture(exe, ['--version']).status === 0) out.push({ cmd: exe, pre: [] });
  }
  return out;
}

function obtainWheel(python, dlDir, opts, logs) {
  if (process.env.TFJS_GTA_TF_WHEEL) {
    const whl = path.resolve(process.env.TFJS_GTA_TF_WHEEL);
    if (!fs.existsSync(whl)) throw new StepError('libtensorflow', `TFJS_GTA_TF_WHEEL=${whl} does not exist`);
    say(`  using the wheel from TFJS_GTA_TF_WHEEL: ${whl}`);
    return whl;
  }
  const pips = pipCommands(python);
  if (!pips.length) {
    throw new StepError(
      'libtensorflow',
      'pip not found (tried python -m pip, pip3, pip)',
      'Install pip (Debian: apt-get install python3-pip) or download the wheel yourself and set TFJS_GTA_TF_WHEEL.',
    );
  }
  const pip = pips[0];
  const spec = `${TF_WHEEL_PROJECT}==${TF_VERSION}`;
  const base = ['download', '--no-deps', '--only-binary=:all:', spec, '-d', dlDir];
  say(`  ${[path.basename(pip.cmd), ...pip.pre, ...base].join(' ')}`);
  const t = Date.now();
  let r = run(pip.cmd, [...pip.pre, ...base], { log: path.join(logs, 'pip-download.log'), verbose: opts.verbose });
  if (r.status !== 0) {
    // No wheel for this interpreter's Python version: the libraries inside do not depend on it,
    // so ask for the CPython 3.11 manylinux wheel explicitly.
    const pinned = [
      ...base,
      '--python-version',
      '3.11',
      '--implementation',
      'cp',
      '--abi',
      'cp311',
      '--platform',
      'manylinux_2_27_x86_64',
      '--platform',
      'manylinux_2_17_x86_64',
    ];
    say(`  plain pip download failed (exit ${r.status}); retrying for the cp311 manylinux x86_64 wheel`);
    r = run(pip.cmd, [...pip.pre, ...pinned], { log: path.join(logs, 'pip-download-cp311.log'), verbose: opts.verbose });
    if (r.status !== 0) {
      throw new StepError(
        'libtensorflow',
        failDetail(r, `pip download ${spec}`),
        'pip must reach PyPI (or a mirror / local index that has the wheel). Alternatively download the wheel and set TFJS_GTA_TF_WHEEL.',
      );
    }
  }
  const whl = fs.readdirSync(dlDir).find((f) => f.startsWith(`tensorflow_cpu-${TF_VERSION}-`) && f.endsWith('.whl'));
  if (!whl) throw new StepError('libtensorflow', `pip download succeeded but no tensorflow_cpu-${TF_VERSION}-*.whl is in ${dlDir}`);
  say(`  got ${whl} (${(fs.statSync(path.join(dlDir, whl)).size / 2 ** 20).toFixed(0)} MiB) in ${secs(Date.now() - t)}`);
  return path.join(dlDir, whl);
}

function ensureLibtensorflow(opts, base, logs) {
  const dir = path.join(base, `libtensorflow-${TF_VERSION}`);
  step('libtensorflow', `libtensorflow ${TF_VERSION} (from the ${TF_WHEEL_PROJECT} wheel) in ${dir}`);
  const cached = cacheIsComplete(dir);
  if (cached) {
    say(`  cache hit (${cached.files.length} files from ${cached.wheel}, ${cached.createdAt})`);
    return dir;
  }
  if (fs.existsSync(dir)) say('  cache dir exists but is incomplete or from another format: recreating it');
  const python = findPython();
  if (!python) {
    throw new StepError(
      'libtensorflow',
      'no Python 3 interpreter found (tried $PYTHON, python3, python)',
      'Python 3 is needed to download and unpack the wheel and by node-gyp to build the addon (Debian: apt-get install python3 python3-pip).',
    );
  }
  fs.mkdirSync(base, { recursive: true });
  const work = fs.mkdtempSync(path.join(base, `.tmp-libtensorflow-${TF_VERSION}-`));
  try {
    const dlDir = path.join(work, 'download');
    fs.mkdirSync(dlDir);
    const whl = obtainWheel(python, dlDir, opts, logs);
    const t = Date.now();
    const out = path.join(work, 'out');
    const r = capture(python, ['-c', EXTRACT_SOURCE, whl, out]);
    if (r.status !== 0) {
      throw new StepError(
        'libtensorflow',
        `extracting ${path.basename(whl)} failed (exit ${r.status}):\n${(r.stderr || '').trim().split('\n').slice(-15).join('\n')}`,
      );
    }
    const files = JSON.parse(r.stdout.trim().split('\n').pop());
    for (const l of LIBS) {
      if (!files.some((f) => f.path === `lib/${l}`)) throw new StepError('libtensorflow', `${path.basename(whl)} has no tensorflow/${l}`);
      fs.chmodSync(path.join(out, 'lib', l), 0o755);
    }
    const missing = REQUIRED_HEADERS.filter((h) => !files.some((f) => f.path === `include/${h}`));
    if (missing.length) throw new StepError('libtensorflow', `${path.basename(whl)} lacks headers: ${missing.join(', ')}`);
    const manifest = {
      format: CACHE_FORMAT,
      tensorflowVersion: TF_VERSION,
      wheel: path.basename(whl),
      wheelSha256: sha256File(whl),
      createdAt: new Date().toISOString(),
      createdBy: 'tfjs-gta scripts/setup-tfjs-node.mjs',
      files,
    };
    fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    const libMiB = files.filter((f) => f.path.startsWith('lib/')).reduce((s, f) => s + f.size, 0) / 2 ** 20;
    say(`  extracted ${LIBS.join(', ')} (${libMiB.toFixed(0)} MiB) and ${files.length - LIBS.length} headers in ${secs(Date.now() - t)}`);
    rmrf(dir);
    fs.renameSync(out, dir); // atomic on one file system: the cache is either complete or absent
    say(`  cached in ${dir}`);
    return dir;
  } finally {
    rmrf(work);
  }
}

// ---------------------------------------------------------------------------------------------
// step 4: deps/ in the package

function linkOrCopy(src, dest) {
  try {
    fs.linkSync(src, dest); // same file system: no second copy of ~810 MiB
    return 'hard link';
  } catch {
    fs.copyFileSync(src, dest, fs.constants.COPYFILE_FICLONE);
    return 'copy';
  }
}

function populateDeps(pkgDir, libDir) {
  const deps = path.join(pkgDir, 'deps');
  step('deps', `libraries and headers into ${path.relative(ROOT, deps)}/`);
  rmrf(deps); // whatever a failed download or an earlier build left there
  fs.mkdirSync(path.join(deps, 'lib'), { recursive: true });
  const how = new Set();
  for (const l of LIBS) how.add(linkOrCopy(path.join(libDir, 'lib', l), path.join(deps, 'lib', l)));
  // binding.gyp links -ltensorflow -ltensorflow_framework from deps/lib with an rpath to it
  fs.symlinkSync('libtensorflow_cc.so.2', path.join(deps, 'lib', 'libtensorflow.so'));
  fs.symlinkSync('libtensorflow_framework.so.2', path.join(deps, 'lib', 'libtensorflow_framework.so'));
  // tfjs-node's install.js treats this file as "libtensorflow already there": with it, a later
  // `npm rebuild` runs the build instead of deleting deps/ and downloading again.
  fs.symlinkSync('libtensorflow_cc.so.2', path.join(deps, 'lib', INSTALL_JS_MARKER));
  fs.cpSync(path.join(libDir, 'include'), path.join(deps, 'include'), { recursive: true });
  fs.writeFileSync(
    path.join(deps, OFFLINE_STAMP),
    JSON.stringify(
      {
        note: 'libtensorflow for an offline build of the addon, made by tfjs-gta scripts/setup-tfjs-node.mjs',
        source: `${TF_WHEEL_PROJECT}==${TF_VERSION} wheel`,
        cache: libDir,
        createdAt: new Date().toISOString(),
      },
      null,
      2,
    ) + '\n',
  );
  say(
    `  deps/lib: ${LIBS.join(', ')} (${[...how].join(' / ')}), libtensorflow.so, libtensorflow_framework.so, ${INSTALL_JS_MARKER} (symlinks)`,
  );
  say('  deps/include: C API headers');
}

// ---------------------------------------------------------------------------------------------
// step 5: the addon

function buildTools() {
  const missing = [];
  if (!which('make')) missing.push('make');
  const cxx = process.env.CXX ? process.env.CXX.split(' ')[0] : null;
  if (cxx ? !which(cxx) : !(which('g++') || which('c++'))) missing.push(cxx || 'g++');
  return missing;
}

function buildAddon(pkgDir, opts, logs) {
  step('build', 'native addon from source (node-pre-gyp install --build-from-source)');
  const bin = nodePreGypBin(pkgDir);
  if (!bin)
    throw new StepError(
      'build',
      `@mapbox/node-pre-gyp (a dependency of ${TFJS_NODE}) not found`,
      'Rerun this script: step "package" reinstalls it.',
    );
  const env = { ...process.env };
  if (!env.npm_config_nodedir) {
    // node-gyp needs Node's headers; without a nodedir it downloads them. Use the local ones if
    // this Node install ships them (distribution packages and the official tarballs do).
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
      env.npm_config_nodedir = prefix;
      say(`  npm_config_nodedir=${prefix} (local Node headers)`);
    } else {
      say('  no local Node headers: node-gyp will download them for this Node version');
    }
  }
  rmrf(path.join(pkgDir, 'build'));
  rmrf(path.join(pkgDir, 'lib'));
  const log = path.join(logs, 'build-addon.log');
  const t = Date.now();
  const r = run(process.execPath, [bin, 'install', '--build-from-source'], { cwd: pkgDir, env, log, verbose: opts.verbose });
  if (r.status !== 0) {
    throw new StepError(
      'build',
      failDetail(r, 'node-pre-gyp install --build-from-source'),
      'Needs python3, make and a C++ compiler (Debian: apt-get install -y build-essential python3), and Node headers ' +
        '(set npm_config_nodedir to a Node install prefix that has include/node, or let node-gyp download them).',
    );
  }
  const libDir = path.join(pkgDir, 'lib');
  const addon = fs.existsSync(libDir)
    ? fs
        .readdirSync(libDir)
        .map((d) => path.join(libDir, d, 'tfjs_binding.node'))
        .find((p) => fs.existsSync(p))
    : null;
  if (!addon) throw new StepError('build', `the build finished but no lib/napi-v*/tfjs_binding.node exists in ${pkgDir}`);
  say(`  built ${path.relative(ROOT, addon)} in ${secs(Date.now() - t)}${r.logFile ? ` (log: ${r.logFile})` : ''}`);
  return addon;
}

// ---------------------------------------------------------------------------------------------
// step 6 and main

function verify() {
  step('verify', 'child process: require, backend, matMul, dense layers, tf.io file:// save/load');
  const t = Date.now();
  const res = childCheck('full');
  for (const c of res.checks || []) say(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  if (!res.ok) {
    throw new StepError(
      'verify',
      `${res.error ? firstLine(res.error) : 'verification failed'}${res.stderr ? `\n--- child stderr (last lines) ---\n${res.stderr}` : ''}`,
    );
  }
  const v = res.versions || {};
  say(
    `  versions: tfjs-node ${v['tfjs-node']}, tfjs-core ${v['tfjs-core']}, libtensorflow ${v.libtensorflow ?? '?'} (${secs(Date.now() - t)})`,
  );
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const base = cacheBase();
  const logs = path.join(base, 'logs');
  say(`project ${ROOT}; node ${process.version} ${process.platform}-${process.arch}; cache ${base}`);

  if (opts.check) {
    verify();
    say(`OK: ${TFJS_NODE} works (checked only, nothing changed) in ${secs(Date.now() - t0)}`);
    return;
  }

  step('check', `does require('${TFJS_NODE}') already work?`);
  if (!opts.force) {
    const quick = childCheck('quick');
    if (quick.ok) {
      const dir = tfjsNodeDir();
      const offline = dir && fs.existsSync(path.join(dir, 'deps', OFFLINE_STAMP));
      say(
        offline
          ? `  yes: it already works (an earlier offline build of this script, libtensorflow ${quick.versions?.libtensorflow ?? '?'}); nothing to do`
          : `  yes: the ordinary install works (libtensorflow ${quick.versions?.libtensorflow ?? '?'}); nothing to do, leaving it as it is`,
      );
      verify();
      say(`OK: nothing changed; ${TFJS_NODE} works (${secs(Date.now() - t0)})`);
      return;
    }
    say(`  no: ${firstLine(quick.error)}`);
  } else {
    say('  skipped (--force): building offline regardless');
  }

  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new StepError(
      'check',
      `the offline build supports linux-x64 only (this is ${process.platform}-${process.arch})`,
      `Use the ordinary install of ${TFJS_NODE} (it downloads a prebuilt libtensorflow and addon), or the wasm backend.`,
    );
  }
  const tools = buildTools();
  if (!findPython()) tools.push(process.env.PYTHON ? `Python 3 at $PYTHON (${process.env.PYTHON})` : 'python3');
  if (tools.length) {
    throw new StepError(
      'check',
      `missing build tools: ${tools.join(', ')}`,
      'Debian/Ubuntu: apt-get install -y build-essential python3 python3-pip',
    );
  }

  const pkgDir = ensurePackage(opts, logs);
  const libDir = ensureLibtensorflow(opts, base, logs);
  populateDeps(pkgDir, libDir);
  buildAddon(pkgDir, opts, logs);
  verify();
  say(`OK: ${TFJS_NODE} works with the offline-built addon (total ${secs(Date.now() - t0)})`);
}

try {
  main();
} catch (e) {
  const stepName = e instanceof StepError ? e.step : currentStep;
  console.error(`[setup-tfjs-node] FAILED at step "${stepName}": ${e instanceof StepError ? e.message : e?.stack || e}`);
  if (e instanceof StepError && e.hint) console.error(`[setup-tfjs-node] hint: ${e.hint}`);
  console.error('[setup-tfjs-node] see docs/TFJS_NODE.md (Troubleshooting); rerunning is safe.');
  process.exit(1);
}
