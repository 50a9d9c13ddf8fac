#!/usr/bin/env node
/**
 * End-to-end test of the browser demo (demo/, docs/DEMO.md) in a real browser.
 *
 *   node scripts/demo-e2e.mjs
 *
 * Builds the demo (demo/build.mjs) into a temporary folder, serves it on 127.0.0.1 (random port), drives
 * Debian's Chromium (/usr/bin/chromium) with playwright-core, WebGL on SwiftShader, and checks, one line each:
 * the page loads on webgl, the backend switch (wasm, cpu, back to webgl), a short training of three variants
 * (GTA, GQA, MHA) on WebGL (the loss falls, the KV-cache bytes per token match the formula, the loss chart is drawn), the
 * attention maps (one per head group for GTA, one per head for GQA and MHA), text generation, saving to IndexedDB
 * and loading it back (same logits, same greedy text, also after a page reload), downloading the model
 * files, loading those files in Node through the package's file handler (same logits and text as the
 * browser) and in the page again (tf.io.browserFiles), and that the page raised no error, logged no console
 * error and requested nothing from another origin. Prints the WebGL training speed.
 *
 * Screenshots go to test-artifacts/demo/ (with the downloaded model files).
 * Ends with `N passed, N failed`; with RESULTS_FILE set, writes {"passed": N, "failed": N} there (one
 * count per check). Exits 1 on any failed check. Without Chromium: with CI=true that is a failure,
 * otherwise the test is skipped with a message (passed 0, failed 0, exit 0).
 *
 * Environment:
 *   CHROMIUM_PATH        browser executable (default /usr/bin/chromium)
 *   DEMO_E2E_STEPS       training steps (default 30)
 *   DEMO_E2E_VARIANTS    variants to train (default gta,gqa,mha; GTA must be one of them)
 *   DEMO_E2E_TIMEOUT     whole-run timeout in seconds (default 300)
 *   DEMO_E2E_HEADED=1    show the browser window
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADLESS_ARGS } from './lib/chromium_args.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const artifacts = join(root, 'test-artifacts', 'demo');
const started = Date.now();
const ci = process.env.CI === 'true';
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STEPS = Number(process.env.DEMO_E2E_STEPS || 30);
const VARIANTS = (process.env.DEMO_E2E_VARIANTS || 'gta,gqa,mha')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const TIMEOUT_S = Number(process.env.DEMO_E2E_TIMEOUT || 300);
const PROMPT = 'Call me Ishmael.';
const GEN_TOKENS = 40;

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const green = (s) => (color ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s) => (color ? `\x1b[31m${s}\x1b[0m` : s);
const gray = (s) => (color ? `\x1b[90m${s}\x1b[0m` : s);

const results = { passed: 0, failed: 0 };
const cleanups = [];

function writeResults() {
  if (process.env.RESULTS_FILE) writeFileSync(process.env.RESULTS_FILE, JSON.stringify(results));
}

async function finish(code) {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
  writeResults();
  console.log(`demo e2e: ${((Date.now() - started) / 1000).toFixed(0)}s`);
  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(code ?? (results.failed > 0 ? 1 : 0));
}

/** Records one check and prints its pass/fail line. */
function check(name, ok, detail = '') {
  if (ok) results.passed += 1;
  else results.failed += 1;
  console.log(`${ok ? green('PASS') : red('FAIL')}  ${name}${detail ? gray(`  (${detail})`) : ''}`);
  return ok;
}

async function skipOrFail(reason) {
  if (ci) {
    check(`demo e2e can run: ${reason}`, false);
    return finish(1);
  }
  console.log(`demo e2e SKIPPED: ${reason} (with CI=true this fails)`);
  return finish(0);
}

// ---------------------------------------------------------------- prerequisites
if (!existsSync(chromiumPath)) {
  await skipOrFail(`no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
let chromium;
let buildDemo;
let serveDir;
try {
  ({ chromium } = await import('playwright-core'));
  ({ buildDemo } = await import('../demo/build.mjs'));
  ({ serveDir } = await import('../demo/serve.mjs'));
} catch (e) {
  check(`demo e2e can start (run npm install: esbuild and playwright-core are devDependencies): ${e.message.split('\n')[0]}`, false);
  await finish(1);
}

const timer = setTimeout(() => {
  check(`the run finished within ${TIMEOUT_S}s`, false, 'timed out');
  void finish(1);
}, TIMEOUT_S * 1000);
timer.unref();

const work = mkdtempSync(join(tmpdir(), 'tfjs-gta-demo-e2e-'));
cleanups.push(() => rmSync(work, { recursive: true, force: true }));
rmSync(artifacts, { recursive: true, force: true });
mkdirSync(artifacts, { recursive: true });

// ---------------------------------------------------------------- build and serve
let built;
try {
  built = await buildDemo({ outdir: join(work, 'dist') });
  check(
    'the demo builds with esbuild (tfjs-gta imported by name)',
    true,
    `${(built.bundleBytes / 1e6).toFixed(2)} MB app.js, ${built.wasmFiles.length} wasm files, ${built.seconds.toFixed(1)}s`,
  );
} catch (e) {
  check('the demo builds with esbuild (tfjs-gta imported by name)', false, e.message.split('\n')[0]);
  await finish(1);
}
const served = await serveDir(built.outdir, { host: '127.0.0.1', port: 0 });
cleanups.push(() => new Promise((r) => served.server.close(r)));
const origin = new URL(served.url).origin;
console.log(gray(`serving ${built.outdir} at ${served.url}`));

// ---------------------------------------------------------------- the browser
let context;
try {
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: chromiumPath,
    headless: process.env.DEMO_E2E_HEADED !== '1',
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: HEADLESS_ARGS,
  });
} catch (e) {
  await skipOrFail(`Chromium did not start: ${e.message.split('\n')[0]}`);
}
cleanups.push(() => context.close());
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
const consoleErrors = [];
const foreignRequests = [];
const downloads = [];
page.on('pageerror', (err) => {
  pageErrors.push(err.message);
  console.log(red(`  [page error] ${err.message}`));
});
page.on('console', (msg) => {
  if (msg.type() === 'error') {
    consoleErrors.push(msg.text());
    console.log(red(`  [console error] ${msg.text()}`));
  }
});
page.on('request', (req) => {
  const url = req.url();
  if (!url.startsWith(`${origin}/`) && !url.startsWith('data:') && !url.startsWith('blob:')) foreignRequests.push(url);
});
page.on('download', (d) => downloads.push(d));

const html = () => page.evaluate(() => ({ ...document.documentElement.dataset }));
async function waitIdle(what, timeoutMs = 120000) {
  const t0 = Date.now();
  await page.waitForFunction(() => ['idle', 'failed'].includes(document.documentElement.dataset.state), null, {
    timeout: timeoutMs,
    polling: 250,
  });
  const state = await html();
  return { seconds: (Date.now() - t0) / 1000, error: state.error ?? '', state };
}
const summary = () => page.evaluate(() => window.tfjsGtaDemo.summary());
const shot = (name, options = {}) => page.screenshot({ path: join(artifacts, name), fullPage: true, ...options });

async function runChecks() {
  // ---- load on WebGL
  await page.goto(served.url);
  let r = await waitIdle('load', 60000);
  check('the page loads without an error', r.state.state === 'idle' && r.error === '', r.error || `${r.seconds.toFixed(1)}s`);
  const info = await page.textContent('#backend-info');
  check('the active backend is webgl (data-backend)', r.state.backend === 'webgl', `${r.state.backend}: ${info}`);
  check(
    'the built-in text is bundled into the page',
    Number(r.state.corpusCharacters) > 5000,
    `${r.state.corpusCharacters} characters of ${built.corpus.title}`,
  );
  await shot('01-loaded.png');

  // ---- the backend switch
  for (const name of ['wasm', 'cpu', 'webgl']) {
    await page.selectOption('#backend', name);
    r = await waitIdle(`switch to ${name}`, 60000);
    const extra = name === 'wasm' ? `, served ${served.requests.filter((p) => p.startsWith('/wasm/')).join(', ')}` : '';
    check(
      `the backend switch activates ${name}`,
      r.state.backend === name && r.error === '',
      r.error || `${await page.textContent('#backend-info')}${extra}`,
    );
  }

  // ---- training on WebGL
  for (const v of ['gta', 'gqa', 'mla', 'mha', 'mqa']) await page.setChecked(`#variants input[value=${v}]`, VARIANTS.includes(v));
  await page.fill('#steps', String(STEPS));
  await page.click('#train');
  r = await waitIdle('training', 200000);
  let s = await summary();
  check(
    `training ${VARIANTS.join(' and ')} for ${STEPS} steps on webgl finishes`,
    r.error === '' && s.models.length === VARIANTS.length && s.models.every((m) => m.steps === STEPS && m.backend === 'webgl'),
    r.error || `${r.seconds.toFixed(0)}s`,
  );
  const speed = [];
  for (const m of s.models) {
    const first = m.losses.slice(0, 3);
    const last = m.losses.slice(-5);
    const mean = (a) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
    check(
      `${m.variant}: the training loss falls`,
      m.losses.length === STEPS && mean(last) < mean(first) - 0.4 && Number.isFinite(m.validationLoss) && m.validationLoss < m.losses[0],
      `first ${mean(first).toFixed(3)}, last 5 ${mean(last).toFixed(3)}, validation ${m.validationLoss?.toFixed(3)} nats/char`,
    );
    check(
      `${m.variant}: KV cache bytes per token from the cache equal the formula`,
      m.kvMeasured === m.kvFormula && m.kvMeasured > 0,
      `${m.kvMeasured} B/token`,
    );
    speed.push(`${m.variant} ${m.tokensPerSecond.toFixed(0)}`);
  }
  const rows = await page.$$eval('#variant-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
  check(
    'the table shows params, KV bytes, loss and tokens/s side by side',
    rows.length === VARIANTS.length && rows.every((cells) => cells.length === 10 && Number(cells[7]) > 0),
    rows.map((c) => `${c[0]}: ${c[2]} B/token, ${c[7]} tok/s`).join('; '),
  );
  const gta = s.models.find((m) => m.variant === 'gta');
  const gqa = s.models.find((m) => m.variant === 'gqa');
  if (gta && gqa)
    check('GTA caches fewer bytes per token than GQA', gta.kvMeasured < gqa.kvMeasured, `${gta.kvMeasured} < ${gqa.kvMeasured}`);
  const chartColors = { gta: [214, 39, 40], gqa: [31, 119, 180], mla: [44, 160, 44], mha: [255, 127, 14], mqa: [148, 103, 189] };
  const chartPixels = await page.evaluate(
    (wanted) => {
      const c = document.getElementById('loss-chart');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const counts = Object.fromEntries(Object.keys(wanted).map((k) => [k, 0]));
      for (let i = 0; i < d.length; i += 4) {
        for (const [k, [r0, g0, b0]] of Object.entries(wanted)) {
          if (Math.abs(d[i] - r0) + Math.abs(d[i + 1] - g0) + Math.abs(d[i + 2] - b0) < 40) counts[k] += 1;
        }
      }
      return counts;
    },
    Object.fromEntries(VARIANTS.map((v) => [v, chartColors[v]])),
  );
  check(
    'the loss chart draws a curve per variant (canvas pixels)',
    VARIANTS.every((v) => chartPixels[v] > 100),
    VARIANTS.map((v) => `${v} ${chartPixels[v]} px`).join(', '),
  );
  await shot('02-trained.png');

  // ---- attention maps
  await page.fill('#maps-text', PROMPT);
  await page.click('#maps-show');
  r = await waitIdle('maps', 60000);
  const maps = await page.$$eval('.maps-variant', (sections) =>
    sections.map((sec) => {
      const canvases = [...sec.querySelectorAll('canvas.attention-map')];
      const nonBlank = canvases.filter((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colors = new Set();
        let colored = 0;
        for (let i = 0; i < d.length; i += 4) {
          const gray = Math.abs(d[i] - d[i + 1]) < 8 && Math.abs(d[i + 1] - d[i + 2]) < 8;
          if (!gray) colored += 1;
          colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        }
        return colored > 100 && colors.size > 10;
      }).length;
      return {
        variant: sec.dataset.variant,
        maps: Number(sec.dataset.maps),
        canvases: canvases.length,
        nonBlank,
        boxes: sec.querySelectorAll('.maps-group').length,
      };
    }),
  );
  s = await summary();
  check('attention maps render without an error', r.error === '' && maps.length === VARIANTS.length, r.error || `${r.seconds.toFixed(1)}s`);
  for (const m of maps) {
    const expected = s.models.find((x) => x.variant === m.variant)?.numAttentionMaps;
    check(
      `${m.variant}: ${expected} attention maps drawn, none blank`,
      m.maps === expected && m.canvases === expected && m.nonBlank === expected,
      `${m.canvases} canvases in ${m.boxes} group box(es), ${m.nonBlank} non-blank`,
    );
  }
  const gtaMaps = maps.find((m) => m.variant === 'gta');
  const gqaMaps = maps.find((m) => m.variant === 'gqa');
  if (gtaMaps && gqaMaps) {
    check(
      "GTA shows one map per head group, fewer than GQA's one per head",
      gtaMaps.maps < gqaMaps.maps,
      `${gtaMaps.maps} vs ${gqaMaps.maps}`,
    );
  }
  const mapsSection = await page.$('#maps');
  await mapsSection.screenshot({ path: join(artifacts, '03-attention-maps.png') });

  // ---- generation
  // Sampling (temperature 0.8, seed 1), as the page does by default: the same weights on the same backend give the
  // same logits bit for bit, so the same seed gives the same text after a reload.
  const generate = async (model) => {
    await page.selectOption('#gen-model', model);
    await page.fill('#gen-prompt', PROMPT);
    await page.fill('#gen-tokens', String(GEN_TOKENS));
    await page.fill('#gen-temp', '0.8');
    await page.fill('#gen-seed', '1');
    await page.click('#gen-run');
    const g = await waitIdle('generate', 120000);
    const out = await page.$eval('#gen-output', (el) => ({ text: el.textContent, ...el.dataset }));
    const tps = Number(await page.$eval('#gen-stats', (el) => el.dataset.decodeTokensPerSecond));
    return { ...g, out, tps };
  };
  const g1 = await generate('gta');
  check(
    `generation streams ${GEN_TOKENS} tokens with the KV cache (temperature 0.8, seed 1)`,
    g1.error === '' &&
      Number(g1.out.tokens) === GEN_TOKENS &&
      g1.out.text === PROMPT + g1.out.generated &&
      [...g1.out.generated].length === GEN_TOKENS &&
      g1.tps > 0,
    g1.error || `${JSON.stringify(g1.out.generated)}, decode ${g1.tps.toFixed(1)} tokens/s, ${g1.seconds.toFixed(1)}s`,
  );

  // ---- IndexedDB
  await page.selectOption('#save-model', 'gta');
  await page.click('#save-idb');
  r = await waitIdle('save', 120000);
  const saved = await page.$eval('#save-status', (el) => ({ ...el.dataset, text: el.textContent }));
  check(
    'save to IndexedDB and load back: same logits and greedy text',
    r.error === '' && Number(saved.maxLogitDiff) <= 1e-6 && saved.greedySame === 'true',
    r.error || `${saved.url}, max |Δ logit| ${saved.maxLogitDiff}`,
  );
  await shot('04-generated-and-saved.png');

  // ---- downloads, then Node
  const browserProbe = await page.evaluate((p) => window.tfjsGtaDemo.probe('gta', p, 20), PROMPT);
  const before = downloads.length;
  await page.click('#save-download');
  r = await waitIdle('download', 60000);
  const deadline = Date.now() + 20000;
  while (downloads.length < before + 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  const files = [];
  for (const d of downloads.slice(before)) {
    const file = join(work, 'downloads', d.suggestedFilename());
    mkdirSync(join(work, 'downloads'), { recursive: true });
    await d.saveAs(file);
    files.push(file);
  }
  const names = files.map((f) => f.split('/').pop()).sort();
  const name = 'tfjs-gta-demo-gta';
  const okNames = names.length === 2 && names[0] === `${name}.json` && names[1] === `${name}.weights.bin`;
  let manifestOk = false;
  let manifestDetail = '';
  if (okNames) {
    const json = JSON.parse(readFileSync(join(work, 'downloads', `${name}.json`), 'utf8'));
    const paths = json.weightsManifest.flatMap((g) => g.paths);
    const specBytes = json.weightsManifest.flatMap((g) => g.weights).reduce((n, w) => n + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
    const binBytes = statSync(join(work, 'downloads', `${name}.weights.bin`)).size;
    manifestOk =
      paths.length === 1 &&
      paths[0] === `./${name}.weights.bin` &&
      specBytes === binBytes &&
      json.userDefinedMetadata?.tfjsGtaDemo?.tokenizer?.kind === 'char';
    manifestDetail = `paths ${JSON.stringify(paths)}, ${binBytes} bytes of weights, tokenizer in metadata: ${manifestOk}`;
    for (const f of files) copyFileSync(f, join(artifacts, f.split('/').pop()));
  }
  check('download gives <name>.json + <name>.weights.bin', r.error === '' && okNames, r.error || names.join(', '));
  check('the downloaded manifest points at the downloaded weights file', manifestOk, manifestDetail);

  const nodeLoad = (target) => {
    const p = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'demo/load-in-node.ts'), target, '--json', '--backend', 'cpu', '--tokens', '20', '--prompt', PROMPT],
      { cwd: root, encoding: 'utf8', timeout: 120000 },
    );
    if (p.status !== 0) return { error: (p.stderr || p.stdout || `exit ${p.status}`).trim().split('\n').slice(-3).join(' | ') };
    try {
      return JSON.parse(p.stdout.trim().split('\n').pop());
    } catch {
      return { error: `unexpected output: ${p.stdout.slice(0, 200)}` };
    }
  };
  const compareToBrowser = (n) => {
    if (n.error) return { ok: false, detail: n.error };
    const diff = Math.max(...browserProbe.lastLogits.map((v, i) => Math.abs(v - n.lastLogits[i])));
    const same = n.greedy.length === browserProbe.greedy.length && n.greedy.every((t, i) => t === browserProbe.greedy[i]);
    return {
      ok: diff < 2e-3 && same && n.weightDiff === 0,
      detail:
        `max |Δ logit| vs webgl ${diff.toExponential(1)}, greedy ${same ? 'same' : 'differs'}` +
        ` (${JSON.stringify(n.text)}), tf.loadLayersModel weights identical: ${n.weightDiff === 0}`,
    };
  };
  if (okNames) {
    const n1 = nodeLoad(join(work, 'downloads', `${name}.json`));
    const c1 = compareToBrowser(n1);
    check(`Node loads ${name}.json through the package's file handler, same logits and text as the browser`, c1.ok, c1.detail);
    const folder = join(work, 'model-folder');
    mkdirSync(folder, { recursive: true });
    copyFileSync(join(work, 'downloads', `${name}.json`), join(folder, 'model.json'));
    copyFileSync(join(work, 'downloads', `${name}.weights.bin`), join(folder, `${name}.weights.bin`));
    const n2 = nodeLoad(folder);
    const c2 = compareToBrowser(n2);
    check("Node loads the folder form (renamed to model.json) with CausalLM.load('file://folder')", c2.ok, c2.detail);
  } else {
    check('Node loads the downloaded files', false, 'no downloaded pair');
  }

  // ---- download for PyTorch: a Hugging Face folder that Node's loadHFCheckpoint reads back
  const beforeHF = downloads.length;
  await page.click('#save-hf');
  r = await waitIdle('download for PyTorch', 60000);
  const hfDeadline = Date.now() + 20000;
  while (downloads.length < beforeHF + 3 && Date.now() < hfDeadline) await new Promise((res) => setTimeout(res, 100));
  const hfDir = join(work, 'hf-download');
  mkdirSync(hfDir, { recursive: true });
  for (const d of downloads.slice(beforeHF)) await d.saveAs(join(hfDir, d.suggestedFilename()));
  const hfNames = downloads
    .slice(beforeHF)
    .map((d) => d.suggestedFilename())
    .sort();
  const hfOk = JSON.stringify(hfNames) === JSON.stringify(['config.json', 'model.safetensors', 'tfjs-gta-tokenizer.json']);
  check(
    'Download for PyTorch gives config.json, model.safetensors and the tokenizer',
    r.error === '' && hfOk,
    r.error || hfNames.join(', '),
  );
  if (hfOk) {
    const c3 = compareToBrowser(nodeLoad(hfDir));
    check('Node reads that Hugging Face folder (loadHFCheckpoint): same logits and text as the browser', c3.ok, c3.detail);
  }

  // ---- reload the page: the IndexedDB model is still there and generates the same text
  await page.reload();
  r = await waitIdle('reload', 60000);
  const savedCount = Number(r.state.savedModels);
  await page.selectOption('#saved-list', `indexeddb://${name}`);
  await page.click('#load-idb');
  r = await waitIdle('load from IndexedDB', 60000);
  s = await summary();
  check(
    'after a page reload the model loads from IndexedDB',
    r.error === '' && savedCount >= 1 && s.models.some((m) => m.key === 'gta (IndexedDB)'),
    r.error || `${savedCount} saved model(s) listed`,
  );
  const g2 = await generate('gta (IndexedDB)');
  check(
    'the reloaded model generates the same text (same seed)',
    g2.error === '' && g2.out.generated === g1.out.generated,
    g2.error || `${JSON.stringify(g2.out.generated)}`,
  );

  // ---- the downloaded files load back in the page (tf.io.browserFiles)
  if (okNames) {
    await page.setInputFiles('#load-files', [join(work, 'downloads', `${name}.json`), join(work, 'downloads', `${name}.weights.bin`)]);
    r = await waitIdle('load files', 60000);
    const fromFiles = r.error === '' ? await page.evaluate((p) => window.tfjsGtaDemo.probe('gta (files)', p, 20), PROMPT) : null;
    check(
      'the downloaded files load in the page and give the same greedy text',
      fromFiles !== null && fromFiles.greedy.every((t, i) => t === browserProbe.greedy[i]),
      r.error || JSON.stringify(fromFiles?.text),
    );
  }
  await shot('05-reloaded.png');

  // ---- a text file dropped onto the page replaces the built-in text
  const dropped = 'It was the best of times, it was the worst of times. '.repeat(60);
  const dataTransfer = await page.evaluateHandle((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'dropped.txt', { type: 'text/plain' }));
    return dt;
  }, dropped);
  await page.dispatchEvent('#drop', 'drop', { dataTransfer });
  r = await waitIdle('drop a file', 30000);
  const corpusInfo = await page.textContent('#corpus-info');
  check(
    'a text file dropped onto the page becomes the training text',
    r.error === '' && Number(r.state.corpusCharacters) === dropped.length && corpusInfo.includes('dropped.txt'),
    r.error || corpusInfo,
  );

  // ---- the page as a whole
  check('no page errors', pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
  check('no console errors', consoleErrors.length === 0, consoleErrors.slice(0, 3).join(' | '));
  check(
    'offline: every request went to the demo server',
    foreignRequests.length === 0,
    foreignRequests.length ? foreignRequests.slice(0, 3).join(', ') : `${served.requests.length} requests, all to ${origin}`,
  );
  console.log(
    `WebGL training speed (${info.split(' · ')[1]}; batch ${await page.inputValue('#batch')} x ${await page.inputValue('#seq')} tokens): ${speed.join(', ')} tokens/s`,
  );
}

try {
  await runChecks();
} catch (e) {
  check('the e2e run completed', false, e.message.split('\n')[0]);
  try {
    await shot('99-failure.png');
  } catch {
    /* page gone */
  }
}
clearTimeout(timer);
await finish();
