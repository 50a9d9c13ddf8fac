/**
 * npm run conformance -- <file.json> [more files] [--backend NAME] [--mask attention|causal] [--browser]
 *
 * Runs every case of each reference file (gta-refvec-1 format) on one backend and prints one line per
 * case with the norm-relative errors of the output and of the worst gradient. In Node the backend is
 * cpu, wasm, tensorflow or webgpu (through Dawn, where it finds a GPU); with --browser the cases run in
 * headless Chromium on webgl (default), webgpu, wasm or cpu. Results are read asynchronously, so every
 * backend works. The tolerances are the backend's (src/conformance/tolerances.ts: output 1e-5 and
 * gradients 1e-4 on the CPU backends). Exits 1 if any case fails, 2 on bad usage or an unreadable file.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict, useBestBackend } from '../src/backend.js';
import { parseReferenceFile, runReferenceCaseAsync, type CaseResult, type MaskMode } from '../src/conformance/reference_vectors.js';
import { tolerancesFor } from '../src/conformance/tolerances.js';
import { openBundledPage } from './lib/chromium.js';
import { runCases } from './lib/run_cases.js';

const USAGE =
  'usage: npm run conformance -- <vectors.json> [...] [--backend cpu|wasm|tensorflow|webgpu] [--mask attention|causal]\n' +
  '       npm run conformance -- <vectors.json> [...] --browser [--backend webgl|webgpu|wasm|cpu] [--mask attention|causal]';
const BROWSER_BACKENDS = ['webgl', 'webgpu', 'wasm', 'cpu'];
const PAGE = join(fileURLToPath(new URL('.', import.meta.url)), 'browser', 'conformance_page.ts');

type Outcome = CaseResult | { name: string; mechanism: string; error: string };

/** Runs every case of every file, in this process or in a browser page. */
type Runner = (path: string, text: string, mode: MaskMode) => Promise<Outcome[]>;

async function nodeRunner(backend: string | undefined): Promise<{ run: Runner; backend: string; close(): Promise<void> }> {
  if (backend === 'webgl') throw new UsageError('webgl runs only in a browser: add --browser');
  if (backend) await setBackendStrict(backend);
  else await useBestBackend();
  const run: Runner = async (path, text, mode) => {
    const out: Outcome[] = [];
    for (const c of parseReferenceFile(text, path).cases) {
      try {
        out.push(await runReferenceCaseAsync(c, mode));
      } catch (e) {
        out.push({ name: String(c.name), mechanism: String(c.mechanism), error: (e as Error).message });
      }
    }
    return out;
  };
  return { run, backend: tf.getBackend(), close: async () => undefined };
}

async function browserRunner(
  backend: string,
  paths: string[],
): Promise<{ run: Runner; backend: string; note: string; close(): Promise<void> }> {
  if (!BROWSER_BACKENDS.includes(backend))
    throw new UsageError(`--browser runs ${BROWSER_BACKENDS.join(', ')}, not ${JSON.stringify(backend)}`);
  const files = Object.fromEntries(paths.map((p, i) => [`/file/${i}`, resolve(p)]));
  const page = await openBundledPage({
    entry: PAGE,
    files,
    onLog: (l) => {
      if (!/synchronously reading data/.test(l)) console.log(l);
    },
  });
  try {
    const info = await page.call<Record<string, unknown>>('start', backend);
    const run: Runner = (path, _text, mode) => page.call<Outcome[]>('vectors', `/file/${paths.indexOf(path)}`, path, mode);
    const note =
      `browser ${String(info.userAgent).match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? ''}${info.adapter ? `, adapter ${info.adapter}` : ''}` +
      `${
        Object.keys(info.flags as object).length
          ? `, ${Object.entries(info.flags as object)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`
          : ''
      }`;
    return { run, backend, note, close: () => page.close() };
  } catch (e) {
    await page.close();
    throw e;
  }
}

class UsageError extends Error {}

function report(r: Outcome, tol: { output: number; grad: number }): boolean {
  if ('error' in r) {
    console.log(`FAIL  ${r.name.padEnd(12)} ${r.mechanism}  error: ${r.error}`);
    return false;
  }
  const worst = Object.entries(r.gradErrors).sort((a, b) => b[1] - a[1])[0];
  const ok = r.outputError <= tol.output && r.maxGradError <= tol.grad;
  console.log(
    `${ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(12)} ${r.mechanism}  output ${r.outputError.toExponential(2)}  ` +
      `grads max ${r.maxGradError.toExponential(2)} (${worst ? worst[0] : '-'}, ${Object.keys(r.gradErrors).length} tensors)`,
  );
  return ok;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      backend: { type: 'string' },
      mask: { type: 'string', default: 'attention' },
      browser: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  if (values.mask !== 'attention' && values.mask !== 'causal') {
    console.error(`--mask must be "attention" or "causal", got ${JSON.stringify(values.mask)}`);
    return 2;
  }
  const maskMode: MaskMode = values.mask === 'causal' ? 'causalPadding' : 'attentionMask';
  const texts: string[] = [];
  for (const path of positionals) {
    try {
      texts.push(readFileSync(path, 'utf8'));
    } catch (e) {
      console.error(`cannot read ${path}: ${(e as Error).message}`);
      return 2;
    }
  }
  let runner: { run: Runner; backend: string; note?: string; close(): Promise<void> };
  try {
    runner = values.browser ? await browserRunner(values.backend ?? 'webgl', positionals) : await nodeRunner(values.backend);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`conformance: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  const tol = tolerancesFor(runner.backend);
  console.log(
    `backend: ${runner.backend}${runner.note ? ` (${runner.note})` : ''}  (tolerances: output ${tol.output}, gradients ${tol.grad})`,
  );
  const inputs = positionals.map((path, i) => ({ path, text: texts[i] }));
  return runCases(
    inputs,
    (input) => runner.run(input.path, input.text, maskMode),
    (r) => report(r, tol),
    () => runner.close(),
  );
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`conformance: ${(e as Error).message}`);
    process.exit(2);
  },
);
