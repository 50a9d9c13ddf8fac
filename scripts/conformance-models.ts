/**
 * npm run conformance:models -- <models.json> [more files] [--backend NAME] [--browser]
 *
 * Imports each model of a `gta-refmodel-1` file from its safetensors weights (path relative to the
 * JSON), checks its logits (norm-relative error within the backend's `logits` tolerance: 1e-4 on the
 * CPU backends, src/conformance/tolerances.ts) and its greedy continuation through the cached decode
 * path, prints one line per case and exits 1 on any failure (2 on bad usage). In Node the backend is
 * cpu, wasm, tensorflow or webgpu (Dawn); with --browser the models run in headless Chromium on webgl
 * (default), webgpu, wasm or cpu.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict, useBestBackend } from '../src/backend.js';
import { parseSafetensors, parseTensorJSON } from '../src/io/safetensors.js';
import { parseReferenceModelFile, runReferenceModelCase, type ModelCaseResult } from '../src/conformance/reference_models.js';
import { tolerancesFor } from '../src/conformance/tolerances.js';
import { openBundledPage } from './lib/chromium.js';
import { runCases } from './lib/run_cases.js';

const USAGE =
  'usage: npm run conformance:models -- <models.json> [...] [--backend cpu|wasm|tensorflow|webgpu]\n' +
  '       npm run conformance:models -- <models.json> [...] --browser [--backend webgl|webgpu|wasm|cpu]';
const BROWSER_BACKENDS = ['webgl', 'webgpu', 'wasm', 'cpu'];
const PAGE = join(fileURLToPath(new URL('.', import.meta.url)), 'browser', 'conformance_page.ts');

type Outcome = ModelCaseResult | { name: string; mechanism: string; error: string };
type Runner = (path: string) => Promise<Outcome[]>;

async function runInNode(path: string): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const c of parseReferenceModelFile(readFileSync(path, 'utf8'), path).cases) {
    try {
      const weightsPath = resolve(dirname(path), c.weights_file);
      const tensors = weightsPath.endsWith('.json')
        ? parseTensorJSON(readFileSync(weightsPath, 'utf8'), weightsPath)
        : parseSafetensors(readFileSync(weightsPath), weightsPath);
      out.push(await runReferenceModelCase(c, tensors));
    } catch (e) {
      out.push({ name: String(c.name), mechanism: String(c.mechanism), error: (e as Error).message });
    }
  }
  return out;
}

/** Serves each models file and its weights files to a page that runs them. */
async function browserRunner(backend: string, paths: string[]): Promise<{ run: Runner; note: string; close(): Promise<void> }> {
  const files: Record<string, string> = {};
  const weightUrls: Array<Record<string, string>> = [];
  paths.forEach((p, i) => {
    files[`/file/${i}`] = resolve(p);
    const urls: Record<string, string> = {};
    parseReferenceModelFile(readFileSync(p, 'utf8'), p).cases.forEach((c, j) => {
      urls[c.weights_file] = `/file/${i}/${j}`;
      files[urls[c.weights_file]] = resolve(dirname(p), c.weights_file);
    });
    weightUrls.push(urls);
  });
  const page = await openBundledPage({
    entry: PAGE,
    files,
    onLog: (l) => {
      if (!/synchronously reading data/.test(l)) console.log(l);
    },
  });
  try {
    const info = await page.call<Record<string, unknown>>('start', backend);
    const run: Runner = (path) => {
      const i = paths.indexOf(path);
      return page.call<Outcome[]>('models', `/file/${i}`, path, weightUrls[i]);
    };
    const note = `browser ${String(info.userAgent).match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? ''}${info.adapter ? `, adapter ${info.adapter}` : ''}`;
    return { run, note, close: () => page.close() };
  } catch (e) {
    await page.close();
    throw e;
  }
}

function report(r: Outcome, tol: number): boolean {
  if ('error' in r) {
    console.log(`FAIL  ${r.name.padEnd(10)} ${r.mechanism}  error: ${r.error}`);
    return false;
  }
  const ok = r.logitsError <= tol && r.greedyMatches;
  console.log(
    `${ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(10)} ${r.mechanism}  logits ${r.logitsError.toExponential(2)}  greedy ` +
      `${r.greedyMatches ? 'matches' : `differs: got ${JSON.stringify(r.continuation)} expected ${JSON.stringify(r.expected)}`}`,
  );
  return ok;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { backend: { type: 'string' }, browser: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    (values.help ? console.log : console.error)(USAGE);
    return values.help ? 0 : 2;
  }
  let backend: string;
  let runner: { run: Runner; note?: string; close(): Promise<void> };
  if (values.browser) {
    backend = values.backend ?? 'webgl';
    if (!BROWSER_BACKENDS.includes(backend)) {
      console.error(`conformance:models: --browser runs ${BROWSER_BACKENDS.join(', ')}, not ${JSON.stringify(backend)}\n${USAGE}`);
      return 2;
    }
    runner = await browserRunner(backend, positionals);
  } else {
    if (values.backend === 'webgl') {
      console.error(`conformance:models: webgl runs only in a browser: add --browser\n${USAGE}`);
      return 2;
    }
    if (values.backend) await setBackendStrict(values.backend);
    else await useBestBackend();
    backend = tf.getBackend();
    runner = { run: runInNode, close: async () => undefined };
  }
  const tol = tolerancesFor(backend).logits;
  console.log(
    `backend: ${backend}${runner.note ? ` (${runner.note})` : ''}  (logits tolerance ${tol}; greedy continuation must match exactly)`,
  );
  return runCases(
    positionals,
    (path) => runner.run(path),
    (r) => report(r, tol),
    () => runner.close(),
  );
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`conformance:models: ${(e as Error).message}`);
    process.exit(2);
  },
);
