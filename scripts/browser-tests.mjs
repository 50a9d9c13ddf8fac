#!/usr/bin/env node
/**
 * The browser suite: the same mocha specs as Node (`test/**\/*.test.ts`), run in headless Chromium on the
 * browser backends (webgl, wasm and cpu unless told otherwise; webgpu with --backends, see below).
 *
 *   node scripts/browser-tests.mjs [--grep <pattern>] [--spec <file>] [--backends webgl,webgpu,wasm,cpu] [--errors]
 *                                  [--webgl-defaults] [--flag NAME=VALUE]
 *
 * Steps: bundle the specs, the test kit and mocha's browser build with esbuild (in memory); serve the
 * bundle, tfjs's .wasm files and test/fixtures/ from a tiny http server on 127.0.0.1 (random port);
 * drive Debian's Chromium (/usr/bin/chromium, `apt-get install chromium`) through playwright-core;
 * stream mocha's events from the page and print them like mocha's spec reporter.
 *
 * WebGL runs on SwiftShader (`--use-angle=swiftshader`): WebGL 2 with float32 render targets, on the CPU.
 * As in tfjs's own WebGL test environments, WEBGL_CPU_FORWARD=false and WEBGL_SIZE_UPLOAD_UNIFORM=0, so
 * the small test tensors really go through the shaders instead of tfjs's CPU hand-off for small inputs;
 * WEBGL_USE_SHAPES_UNIFORMS=true keeps shader compilation (SwiftShader) from dominating the run.
 * `--webgl-defaults` runs with tfjs's default flags instead.
 * A check at the start of the run fails if webgl is not WebGL 2 with float32 render targets, because
 * TOLERANCES.webgl (test/kit/backends.ts) assumes float32 textures.
 *
 * WebGPU is enabled with `--enable-unsafe-webgpu`; without a GPU, Chromium's adapter is SwiftShader (Vulkan
 * on the CPU). `--enable-features=Vulkan --use-vulkan=swiftshader` gives the GPU process a shared-image backing
 * for WebGPU canvases, which tfjs's synchronous read (`dataSync`) on webgpu needs. As for WebGL,
 * WEBGPU_CPU_FORWARD=false makes every op run in a compute shader. The run prints the adapter; with CI=true a
 * webgpu backend without an adapter is a failing test. `npm test` runs every spec on webgpu in a page of its own
 * (--backends webgpu), after the webgl, wasm and cpu page. On SwiftShader every kernel and every synchronous read
 * is slow (~50 ms per read), so loops of many decode steps take fewer steps on webgl and webgpu (test/kit:
 * stepsOn). `--disable-gpu-watchdog` keeps Chromium from resetting the GPU process during long software
 * kernels, and the page reuses tfjs's read canvases (see reuseReadCanvases: Chromium lost the device after
 * ~2,490 reads).
 *
 * The bundle ignores package.json's "sideEffects" list (esbuild's ignoreAnnotations): it names only dist/
 * files, and esbuild would otherwise drop the spec files, which are imported only for the suites they define
 * (then only the kit's "test backends" suite ran, with --spec or without).
 *
 * Ends with `N passed, N failed`; with RESULTS_FILE set, writes {"passed": N, "failed": N} there (for
 * scripts/run-tests.mjs). Exits 1 on any failure. Without Chromium: CI=true fails, otherwise the suite is
 * skipped with a message (passed 0, failed 0, exit 0).
 *
 * Environment:
 *   BROWSER_BACKENDS      same as --backends (default webgl,wasm,cpu; add webgpu to run it too)
 *   CHROMIUM_PATH         browser executable (default /usr/bin/chromium)
 *   BROWSER_TESTS_TIMEOUT whole-run timeout in seconds (default 900)
 *   CI=true, REQUIRE_BACKENDS=1  a browser backend that cannot start is a failing test, as in Node
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { SourceMap, builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADLESS_ARGS, WEBGPU_ARGS } from './lib/chromium_args.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const started = Date.now();

// ---------------------------------------------------------------- arguments
function usage(code) {
  console.log(
    'usage: node scripts/browser-tests.mjs [--grep <pattern>] [--spec <file>] [--backends webgl,webgpu,wasm,cpu] [--errors]\n' +
      '  --grep      run only tests whose full title matches the pattern (as mocha --grep)\n' +
      '  --spec      run only this spec file (repeatable; default: every test/**/*.test.ts)\n' +
      '  --backends  browser backends to run the specs on (default webgl,wasm,cpu; webgpu is opt-in; env BROWSER_BACKENDS)\n' +
      '  --errors    print every numeric error the tests measured (max per suite and backend), not only\n' +
      '              those of the reference-vector cases\n' +
      "  --webgl-defaults  keep tfjs's default WebGL flags (the run sets WEBGL_CPU_FORWARD=false and\n" +
      "              WEBGL_SIZE_UPLOAD_UNIFORM=0 so that every op runs in a shader, as tfjs's own WebGL tests do,\n" +
      '              and WEBGL_USE_SHAPES_UNIFORMS=true so that decode steps reuse compiled shaders; webgpu keeps\n' +
      '              WEBGPU_CPU_FORWARD=false either way)\n' +
      '  --flag NAME=VALUE  set a tfjs environment flag in the page before the backends start (repeatable)',
  );
  process.exit(code);
}
const opts = {
  grep: null,
  backends: process.env.BROWSER_BACKENDS || 'webgl,wasm,cpu',
  errors: false,
  webglDefaults: false,
  flags: {},
  spec: [],
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const value = () => {
    if (i + 1 >= argv.length) {
      console.error(`${a} needs a value`);
      usage(2);
    }
    return argv[++i];
  };
  if (a === '--grep' || a === '-g') opts.grep = value();
  else if (a.startsWith('--grep=')) opts.grep = a.slice(7);
  else if (a === '--backends') opts.backends = value();
  else if (a.startsWith('--backends=')) opts.backends = a.slice(11);
  else if (a === '--errors') opts.errors = true;
  else if (a === '--spec') opts.spec.push(value());
  else if (a === '--webgl-defaults') opts.webglDefaults = true;
  else if (a === '--flag') {
    const [name, v] = value().split('=');
    opts.flags[name] = v === 'true' ? true : v === 'false' ? false : Number.isNaN(Number(v)) ? v : Number(v);
  } else if (a === '--help' || a === '-h') usage(0);
  else {
    console.error(`unknown argument ${a}`);
    usage(2);
  }
}
const backends = opts.backends
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const ci = process.env.CI === 'true';
const required = ci || process.env.REQUIRE_BACKENDS === '1';
const timeoutMs = Number(process.env.BROWSER_TESTS_TIMEOUT || 900) * 1000;

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, s) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const green = (s) => paint(32, s);
const red = (s) => paint(31, s);
const cyan = (s) => paint(36, s);
const gray = (s) => paint(90, s);

function finish(passed, failed, code) {
  if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify({ passed, failed }));
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(code);
}

// ---------------------------------------------------------------- the browser
const chromiumPath = process.env.CHROMIUM_PATH || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!chromiumPath || !existsSync(chromiumPath)) {
  if (ci) {
    console.error('browser suite FAILED: chromium not found (CI=true requires it; install it with apt-get install -y chromium)');
    finish(0, 1, 1);
  }
  console.log('browser suite skipped: chromium not found (apt-get install chromium)');
  finish(0, 0, 0);
}

let esbuild;
let chromium;
try {
  esbuild = await import('esbuild');
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`browser suite FAILED: ${e.message.split('\n')[0]} (run npm install: esbuild and playwright-core are devDependencies)`);
  finish(0, 1, 1);
}

// ---------------------------------------------------------------- the bundle
function specFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...specFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const specs = opts.spec.length > 0 ? opts.spec.map((f) => resolve(f)) : specFiles(join(root, 'test'));
for (const f of specs) {
  if (!existsSync(f)) {
    console.error(`--spec ${f}: no such file`);
    usage(2);
  }
}
const mochaBrowserBuild = join(root, 'node_modules/mocha/mocha.js');

// Page-side modules, evaluated in import order: setup (mocha, wasm paths), env (backends and the WebGL
// check), the specs, run.
const harness = {
  setup: `
import ${JSON.stringify(mochaBrowserBuild)};
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu'; // registers webgpu when the page has navigator.gpu
setWasmPaths('/wasm/');
const cfg = globalThis.__BROWSER_TEST_CONFIG__;
// WebGL and WebGPU flags for the run (WEBGL_TEST_FLAGS, WEBGPU_TEST_FLAGS), set before any backend starts.
for (const [flag, value] of Object.entries(cfg.webglFlags)) tf.env().set(flag, value);
const send = (event) => { globalThis.__mochaEvent(event); };
const C = Mocha.Runner.constants;
function errorOf(err) {
  return { message: String(err && err.message !== undefined ? err.message : err), stack: err && err.stack ? String(err.stack) : '',
    name: err && err.name ? String(err.name) : 'Error' };
}
class Forwarder extends Mocha.reporters.Base {
 constructor(runner) {
  super(runner);
  let depth = 0;
  runner.on(C.EVENT_RUN_BEGIN, () => send({ type: 'begin', total: runner.total }));
  runner.on(C.EVENT_SUITE_BEGIN, (s) => { if (!s.root) send({ type: 'suite', title: s.title, depth: depth++ }); });
  runner.on(C.EVENT_SUITE_END, (s) => { if (!s.root) depth--; });
  runner.on(C.EVENT_TEST_BEGIN, (t) => { globalThis.__currentTest = t.fullTitle(); });
  runner.on(C.EVENT_TEST_PASS, (t) => send({ type: 'pass', title: t.title, fullTitle: t.fullTitle(), depth, duration: t.duration, slow: t.slow() }));
  runner.on(C.EVENT_TEST_FAIL, (t, err) => send({ type: 'fail', title: t.title, fullTitle: t.fullTitle(), depth, error: errorOf(err) }));
  runner.on(C.EVENT_TEST_PENDING, (t) => send({ type: 'pending', title: t.title, fullTitle: t.fullTitle(), depth }));
  runner.once(C.EVENT_RUN_END, () => {
    const webgl = tf.findBackend('webgl');
    send({ type: 'end', stats: this.stats, webglPrograms: webgl ? Object.keys(webgl.binaryCache ?? {}).length : null });
  });
 }
}
mocha.setup({ ui: 'bdd', timeout: cfg.timeout, reporter: Forwarder });
mocha.checkLeaks(false);
if (cfg.grep) mocha.grep(cfg.grep);
globalThis.__TFJS_GTA_ERRORS__ = []; // filled by the kit's recordError (test/kit/tensors.ts)
`,
  env: `
import * as tf from '@tensorflow/tfjs';
import { AVAILABLE, REQUESTED, UNAVAILABLE } from ${JSON.stringify(join(root, 'test/kit/backends.ts'))};
import { setBackendStrict } from ${JSON.stringify(join(root, 'src/backend.ts'))};
const info = { requested: REQUESTED, available: AVAILABLE, unavailable: UNAVAILABLE, platform: tf.env().platformName,
  userAgent: navigator.userAgent, crossOriginIsolated: globalThis.crossOriginIsolated === true };
if (AVAILABLE.includes('webgl')) {
  await setBackendStrict('webgl');
  const gl = tf.backend().gpgpu.gl;
  const dbg = gl.getExtension('WEBGL_debug_renderer_info');
  info.webgl = {
    version: tf.env().getNumber('WEBGL_VERSION'),
    renderFloat32Capable: tf.env().getBool('WEBGL_RENDER_FLOAT32_CAPABLE'),
    renderFloat32Enabled: tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED'),
    packed: tf.env().getBool('WEBGL_PACK'),
    flags: Object.fromEntries(['WEBGL_CPU_FORWARD', 'WEBGL_SIZE_UPLOAD_UNIFORM', 'WEBGL_USE_SHAPES_UNIFORMS',
      ...Object.keys(globalThis.__BROWSER_TEST_CONFIG__.webglFlags)].map((f) => [f, tf.env().get(f)])),
    renderer: dbg ? gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER),
  };
  describe('browser webgl environment', () => {
    it('webgl is WebGL 2 with float32 render targets (TOLERANCES.webgl assumes float32 textures)', async () => {
      await setBackendStrict('webgl');
      if (tf.getBackend() !== 'webgl') throw new Error('active backend is ' + tf.getBackend());
      if (info.webgl.version !== 2) throw new Error('WEBGL_VERSION is ' + info.webgl.version + ', expected 2');
      if (!info.webgl.renderFloat32Capable) throw new Error('WEBGL_RENDER_FLOAT32_CAPABLE is false: tfjs would use float16 textures');
    });
  });
}
// tfjs-backend-webgpu 4.22's synchronous read (dataSync) copies the tensor's buffer through three new
// OffscreenCanvases (two WebGPU contexts and a 2D one) on every call. Chromium loses the GPU device after about
// 2,490 such reads in one page (measured on SwiftShader: the same count with a forced GC every 200 reads, and
// freeing tfjs's pooled GPU buffers after each spec did not help either); the whole suite reads far more, so
// every spec after the ~150th failed. The run gives readSync the same canvases on every call (each read
// reconfigures them): 4,000 reads in a row and a 300,000-element read came back exact and the device lived.
function reuseReadCanvases(backend) {
  const readSync = backend.readSync;
  const Canvas = globalThis.OffscreenCanvas;
  const pool = [];
  backend.readSync = function (dataId) {
    let next = 0;
    globalThis.OffscreenCanvas = function (width, height) {
      const i = next++;
      if (!pool[i] || pool[i].width !== width || pool[i].height !== height) pool[i] = new Canvas(width, height);
      return pool[i];
    };
    try {
      return readSync.call(this, dataId);
    } finally {
      globalThis.OffscreenCanvas = Canvas;
    }
  };
}
if (AVAILABLE.includes('webgpu')) {
  await setBackendStrict('webgpu');
  reuseReadCanvases(tf.backend());
  const a = tf.backend().adapterInfo ?? {};
  info.webgpu = {
    adapter: [a.vendor, a.architecture, a.description].filter(Boolean).join(' ') || 'unknown',
    flags: Object.fromEntries(['WEBGPU_CPU_FORWARD', ...Object.keys(globalThis.__BROWSER_TEST_CONFIG__.webglFlags).filter((f) => f.startsWith('WEBGPU_'))]
      .map((f) => [f, tf.env().get(f)])),
  };
}
if (AVAILABLE.length > 0) await tf.setBackend(AVAILABLE[0]);
globalThis.__mochaEvent({ type: 'env', info });
`,
  run: `
const total = mocha.suite.total();
globalThis.__mochaEvent({ type: 'defined', total });
mocha.run();
`,
};

const harnessPlugin = {
  name: 'browser-harness',
  setup(build) {
    build.onResolve({ filter: /^harness:/ }, (args) => ({ path: args.path.slice(8), namespace: 'harness' }));
    build.onLoad({ filter: /.*/, namespace: 'harness' }, (args) => ({ contents: harness[args.path], loader: 'js', resolveDir: root }));
  },
};

// Node built-ins that the browser build cannot resolve (after packages' "browser" field mappings) and
// native addons (.node files) stay external. Reached only through dynamic imports (IS_NODE branches,
// packages loaded lazily) they are harmless: the page never evaluates them. Reached through static
// imports they would stop the whole bundle from loading, so the spec files that reach one that way are
// left out of the browser run and reported as Node-only.
const nodeBuiltins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const nativeAddons = new Set();
const isNodeOnlyExternal = (path) => nodeBuiltins.has(path) || nativeAddons.has(path);
const nodeOnlyPlugin = {
  name: 'node-only-externals',
  setup(build) {
    build.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.plain || args.namespace !== 'file') return undefined;
      const builtin = nodeBuiltins.has(args.path);
      if (!builtin && /^[./]/.test(args.path) && !args.path.endsWith('.node')) return undefined;
      const r = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { plain: true },
      });
      if (builtin && r.errors.length > 0) return { path: args.path, external: true };
      if (r.errors.length === 0 && r.path.endsWith('.node')) {
        nativeAddons.add(args.path);
        return { path: args.path, external: true };
      }
      return undefined; // resolve as usual
    });
  },
};

async function buildBundle(specList, metafile = false) {
  const entry = [
    "import 'harness:setup';",
    "import 'harness:env';",
    ...specList.map((s) => `import ${JSON.stringify(s)};`),
    "import 'harness:run';",
  ].join('\n');
  return esbuild.build({
    stdin: { contents: entry, resolveDir: root, sourcefile: 'browser-entry.js', loader: 'js' },
    absWorkingDir: root,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    outfile: join(root, 'bundle.js'),
    sourcemap: 'linked',
    sourcesContent: false,
    metafile,
    // package.json's "sideEffects" names dist/ files only, so esbuild would drop every bare
    // `import 'x.test.ts'` of the entry (and any project file imported for its side effects): ignore it.
    ignoreAnnotations: true,
    plugins: [harnessPlugin, nodeOnlyPlugin],
    logLevel: 'silent',
  });
}

/** Spec file (relative) -> why it cannot run in the browser: a marker comment or a static Node built-in import. */
function nodeOnlySpecs(metafile) {
  const out = new Map();
  const inputs = metafile.inputs;
  for (const spec of specs) {
    const rel = relative(root, spec).split(sep).join('/');
    const marker = readFileSync(spec, 'utf8').match(/^\s*\/\/\s*browser-tests:\s*node-only\b[: ]*(.*)$/m);
    if (marker) {
      out.set(rel, `marked node-only${marker[1] ? `: ${marker[1].trim()}` : ''}`);
      continue;
    }
    const seen = new Set();
    const reached = new Map(); // built-in -> importing file
    const stack = [rel];
    while (stack.length > 0) {
      const file = stack.pop();
      if (seen.has(file) || !inputs[file]) continue;
      seen.add(file);
      for (const imp of inputs[file].imports) {
        if (imp.kind === 'dynamic-import') continue;
        if (imp.external && isNodeOnlyExternal(imp.path)) {
          if (!reached.has(imp.path)) reached.set(imp.path, file);
        } else if (!imp.external) stack.push(imp.path);
      }
    }
    if (reached.size > 0) {
      out.set(rel, `Node-only: imports ${[...reached].map(([m, f]) => (f === rel ? m : `${m} (via ${f})`)).join(', ')}`);
    }
  }
  return out;
}

let bundle;
let bundleMap;
let nodeOnly = new Map();
try {
  let result = await buildBundle(specs, true);
  nodeOnly = nodeOnlySpecs(result.metafile);
  if (nodeOnly.size > 0) {
    result = await buildBundle(specs.filter((s) => !nodeOnly.has(relative(root, s).split(sep).join('/'))));
  }
  bundle = result.outputFiles.find((f) => f.path.endsWith('.js')).contents;
  bundleMap = result.outputFiles.find((f) => f.path.endsWith('.js.map')).text;
} catch (e) {
  console.error('browser suite FAILED: the bundle did not build');
  for (const err of e.errors ?? [e]) {
    console.error(`  ${err.location ? `${err.location.file}:${err.location.line}: ` : ''}${err.text ?? err.message}`);
  }
  finish(0, 1, 1);
}

// ---------------------------------------------------------------- the server
const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
const fixturesDir = join(root, 'test/fixtures');
// WEBGL_CPU_FORWARD=false and WEBGL_SIZE_UPLOAD_UNIFORM=0 as in tfjs's own WebGL test environments: every op
// runs in a shader, even on the small, CPU-resident tensors of the tests. WEBGL_USE_SHAPES_UNIFORMS=true
// passes shapes as uniforms, so a program compiled for one cache length serves the next decode step:
// the incremental-decoding specs compile about a third as many programs (one 64-step GQA decode: 904 ->
// 314), and the whole browser run took 126 s instead of 346 s (both passed; 2 cores, shared with other
// jobs). `--webgl-defaults` runs with none of these flags.
const WEBGL_TEST_FLAGS = { WEBGL_CPU_FORWARD: false, WEBGL_SIZE_UPLOAD_UNIFORM: 0, WEBGL_USE_SHAPES_UNIFORMS: true };
// WEBGPU_CPU_FORWARD=false as in tfjs's own WebGPU test environment: the small test tensors run in shaders.
const WEBGPU_TEST_FLAGS = { WEBGPU_CPU_FORWARD: false };
const webglFlags = { ...(opts.webglDefaults ? {} : WEBGL_TEST_FLAGS), ...WEBGPU_TEST_FLAGS, ...opts.flags };
const config = { backends, required, grep: opts.grep, timeout: 120000, webglFlags };
const html = `<!doctype html><html><head><meta charset="utf-8"><title>tfjs-gta browser tests</title></head><body>
<script>
globalThis.__BROWSER_TEST_CONFIG__ = ${JSON.stringify(config)};
globalThis.__TFJS_BACKENDS__ = ${JSON.stringify(backends)};
globalThis.__REQUIRE_BACKENDS__ = ${JSON.stringify(required)};
globalThis.__FIXTURES_URL__ = '/fixtures/';
</script>
<script type="module" src="/bundle.js"></script>
</body></html>`;

/** `dir/name` if it is a file inside `dir` (subfolders allowed, nothing outside). */
function fileIn(dir, name) {
  const p = resolve(dir, name);
  return p.startsWith(dir + sep) && existsSync(p) && statSync(p).isFile() ? p : null;
}

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const send = (status, type, body) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  let file;
  if (path === '/' || path === '/index.html') send(200, 'text/html; charset=utf-8', html);
  else if (path === '/bundle.js') send(200, 'text/javascript; charset=utf-8', bundle);
  else if (path === '/bundle.js.map') send(200, 'application/json; charset=utf-8', bundleMap);
  else if (path.startsWith('/wasm/') && (file = fileIn(wasmDir, path.slice(6))) && file.endsWith('.wasm'))
    send(200, 'application/wasm', readFileSync(file));
  else if (path.startsWith('/fixtures/') && (file = fileIn(fixturesDir, path.slice(10))))
    send(200, file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream', readFileSync(file));
  else if (path === '/favicon.ico') send(204, 'text/plain', '');
  else {
    console.log(red(`  [server] 404 ${path}`));
    send(404, 'text/plain', `not found: ${path}`);
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

// ---------------------------------------------------------------- the run
let sourceMap = null;
/** A stack line with bundle.js:line:col replaced by the source file's path, line and column. */
function sourceLocation(line) {
  return line.replace(/(?:https?:\/\/[^/\s)]+)?\/?bundle\.js:(\d+):(\d+)/g, (all, l, c) => {
    try {
      sourceMap ??= new SourceMap(JSON.parse(bundleMap));
      const e = sourceMap.findEntry(Number(l) - 1, Number(c) - 1);
      if (!e || !e.originalSource) return all;
      const file = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(root, e.originalSource);
      return `${relative(root, file)}:${e.originalLine + 1}:${e.originalColumn + 1}`;
    } catch {
      return all;
    }
  });
}

const profile = mkdtempSync(join(tmpdir(), 'tfjs-gta-chromium-'));
let context;
const counts = { passed: 0, failed: 0, pending: 0 };
const failures = [];
const pendings = [];
let envInfo = null;
let definedTotal = null;
let selectedTotal = null;
let errorsLog = null;
let webglPrograms = null;
let finished;
const done = new Promise((resolve) => {
  finished = resolve;
});

function webglNote() {
  if (!envInfo?.webgl) return '';
  const w = envInfo.webgl;
  return gray(` (WebGL ${w.version}, float32 render targets ${w.renderFloat32Capable ? 'yes' : 'NO'})`);
}

function onEvent(ev) {
  const pad = (d) => '  '.repeat(d + 1);
  switch (ev.type) {
    case 'env': {
      envInfo = ev.info;
      const skipped = Object.entries(envInfo.unavailable)
        .map(([b, why]) => `${b} (${why})`)
        .join(', ');
      console.log(
        `browser: ${envInfo.userAgent.match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? envInfo.userAgent}, tfjs platform ${envInfo.platform}`,
      );
      console.log(`browser backends: running ${envInfo.available.join(', ') || 'none'}${skipped ? `; skipped ${skipped}` : ''}`);
      if (envInfo.webgl) {
        const w = envInfo.webgl;
        console.log(
          `webgl: WEBGL_VERSION=${w.version} WEBGL_RENDER_FLOAT32_CAPABLE=${w.renderFloat32Capable} ` +
            `WEBGL_RENDER_FLOAT32_ENABLED=${w.renderFloat32Enabled} WEBGL_PACK=${w.packed}`,
        );
        console.log(
          `webgl flags: ${Object.entries(w.flags)
            .map(([f, v]) => `${f}=${v}`)
            .join(' ')}` + `${opts.webglDefaults ? ' (tfjs defaults)' : ''}`,
        );
        console.log(`webgl renderer: ${w.renderer}`);
      }
      if (envInfo.webgpu) {
        console.log(
          `webgpu adapter: ${envInfo.webgpu.adapter}; flags: ${Object.entries(envInfo.webgpu.flags)
            .map(([f, v]) => `${f}=${v}`)
            .join(' ')}`,
        );
      }
      break;
    }
    case 'defined':
      definedTotal = ev.total;
      break;
    case 'begin':
      selectedTotal = ev.total;
      break;
    case 'suite':
      console.log(`${ev.depth === 0 ? '\n' : ''}${pad(ev.depth)}${ev.title}${/\[webgl\]$/.test(ev.title) ? webglNote() : ''}`);
      break;
    case 'pass': {
      counts.passed += 1;
      const time = ev.duration > ev.slow / 2 ? (ev.duration > ev.slow ? red : paint.bind(null, 33))(` (${ev.duration}ms)`) : '';
      console.log(`${pad(ev.depth - 1)}  ${green('✔')} ${gray(ev.title)}${time}`);
      break;
    }
    case 'fail':
      counts.failed += 1;
      failures.push(ev);
      console.log(`${pad(ev.depth - 1)}  ${red(`${failures.length}) ${ev.title}`)}`);
      break;
    case 'pending':
      counts.pending += 1;
      pendings.push(ev.fullTitle);
      console.log(`${pad(ev.depth - 1)}  ${cyan(`- ${ev.title}`)}`);
      break;
    case 'end':
      webglPrograms = ev.webglPrograms;
      finished('end');
      break;
    default:
      break;
  }
}

// WebGPU, and Vulkan on SwiftShader for Chromium's own compositing: without it the GPU process has no shared-image
// backing for WebGPU canvases, so tfjs's synchronous webgpu read (dataSync draws a WebGPU canvas into a 2D canvas)
// returns zeros and loses the device ("A valid external Instance reference no longer exists"). No GPU watchdog:
// software kernels can run long enough for it to reset the GPU process, which loses the device the same way.
const WEBGPU_SUITE_ARGS = [...WEBGPU_ARGS, '--disable-gpu-watchdog'];

let outcome;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [...HEADLESS_ARGS, ...WEBGPU_SUITE_ARGS],
  });
  await context.exposeFunction('__mochaEvent', onEvent);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    const text = msg.text();
    console.log(gray(`  [page${msg.type() === 'log' ? '' : ` console.${msg.type()}`}] ${text}`));
  });
  page.on('pageerror', (err) => {
    console.log(red(`  [page error] ${err.message}`));
    if (selectedTotal === null) {
      const where = (err.stack ?? '')
        .split('\n')
        .filter((l) => /^\s+at /.test(l))
        .slice(0, 4)
        .map(sourceLocation);
      finished(
        `page error before mocha started (a spec or the kit failed to load): ${err.message}` +
          where.map((l) => `\n    ${l.trim()}`).join(''),
      );
      return;
    }
    failures.push({ fullTitle: 'page error outside a test', error: { message: err.message, stack: err.stack ?? '' } });
    counts.failed += 1;
  });
  page.on('crash', () => finished('the page crashed'));
  console.log(
    `browser suite: ${specs.length - nodeOnly.size} of ${specs.length} spec files, ${(bundle.length / 1e6).toFixed(1)} MB bundle, ${url}`,
  );
  for (const [spec, why] of nodeOnly) console.log(`  not in the browser run: ${spec} (${why})`);
  await page.goto(url);
  const timer = setTimeout(() => finished(`timed out after ${timeoutMs / 1000}s`), timeoutMs);
  outcome = await done;
  clearTimeout(timer);
  if (outcome === 'end') errorsLog = await page.evaluate(() => globalThis.__TFJS_GTA_ERRORS__ ?? []);
} catch (e) {
  outcome = `could not run Chromium: ${e.message.split('\n')[0]}`;
} finally {
  await context?.close().catch(() => {});
  server.close();
  rmSync(profile, { recursive: true, force: true });
}

// ---------------------------------------------------------------- the summary
if (failures.length > 0) {
  console.log(`\n  ${failures.length} failing`);
  failures.forEach((f, i) => {
    console.log(`\n  ${i + 1}) ${f.fullTitle}:`);
    console.log(red(`     ${f.error.name && f.error.name !== 'Error' ? `${f.error.name}: ` : ''}${f.error.message}`));
    const stack = f.error.stack
      .split('\n')
      .filter((l) => /^\s+at /.test(l))
      .slice(0, 6)
      .map(sourceLocation);
    for (const line of stack) console.log(gray(`    ${line.trim()}`));
  });
}
// Measured errors: the reference-vector conformance cases always, everything with --errors.
const shownErrors = (errorsLog ?? []).filter((e) => opts.errors || /^reference vectors \[/.test(e.test));
if (shownErrors.length > 0) {
  // Max measured error per top-level suite (with its backend) and check name.
  const rows = new Map();
  for (const e of shownErrors) {
    const suite = e.test.match(/^(.*?\[[a-z]+\])/)?.[1] ?? e.test;
    const k = `${suite} | ${e.what.replace(/ \d+$/, '')}`;
    const row = rows.get(k) ?? { max: 0, tol: e.tol, n: 0 };
    row.max = Math.max(row.max, e.err);
    row.n += 1;
    rows.set(k, row);
  }
  console.log(
    `\nmeasured errors${opts.errors ? '' : ' of the reference-vector cases (all checks: --errors)'}` +
      ' (norm-relative; max over the checks of each suite and backend):',
  );
  for (const [k, r] of [...rows].sort()) {
    console.log(`  ${r.max.toExponential(2).padStart(9)}  tol ${String(r.tol).padEnd(6)} ${k} (${r.n} checks)`);
  }
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `\nbrowser suite: ${counts.passed} passing, ${counts.failed} failing, ${counts.pending} pending in ${seconds}s` +
    (envInfo ? ` on ${envInfo.available.join(', ') || 'no backend'}` : '') +
    (webglPrograms !== null && envInfo?.available.includes('webgl') ? ` (webgl compiled ${webglPrograms} shader programs)` : ''),
);
const notRun = [...nodeOnly].map(([spec, why]) => `${spec}: the whole file (${why})`);
if (envInfo) {
  for (const [b, why] of Object.entries(envInfo.unavailable))
    notRun.push(`backend ${b} could not start (${why})${required ? ' - a failing test under CI' : ''}`);
}
if (definedTotal !== null && selectedTotal !== null && selectedTotal < definedTotal) {
  notRun.push(`${definedTotal - selectedTotal} of ${definedTotal} tests not selected by --grep ${JSON.stringify(opts.grep)}`);
}
for (const p of pendings) notRun.push(`pending: ${p}`);
if (notRun.length > 0) {
  console.log('not run in the browser:');
  for (const n of notRun) console.log(`  - ${n}`);
}
if (outcome !== 'end') {
  console.error(red(`browser suite FAILED: ${outcome ?? 'no result'}`));
  counts.failed += 1;
}
finish(counts.passed, counts.failed, counts.failed > 0 ? 1 : 0);
