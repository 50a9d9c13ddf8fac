/**
 * The GPU entry: tfjs-gta on tfjs's webgpu backend in Node through Dawn, for the device machine (an
 * NVIDIA H200 without Node or npm; see ../shared/gpu/README.md). bench/gpu_bundle.ts bundles it into
 * .gpu/gpu.mjs; `.gpu/on-device.sh` unpacks node and Dawn and runs it:
 *
 *   bash .gpu/on-device.sh .gpu/gpu.mjs bench --out DIR [--filter P ...] [--lm-steps N] [--no-lm]
 *       the default LM's training throughput and kernels per step (DIR/lm.json), then the webgpu benchmark
 *       grid (bench/matrix.ts) with kernels per call (DIR/cells.jsonl as it goes, DIR/bench.json, DIR/summary.md)
 *   bash .gpu/on-device.sh .gpu/gpu.mjs conformance FILE... --backend webgpu [--mask causal]
 *   bash .gpu/on-device.sh .gpu/gpu.mjs conformance-models FILE... --backend webgpu
 *   bash .gpu/on-device.sh .gpu/gpu.mjs cli ARGS...          the tfjs-gta command line (train, compare, ...)
 *   bash .gpu/on-device.sh .gpu/gpu.mjs fused-check          fused attention = composed (test/ops/attention_fused_cases.ts)
 *   bash .gpu/on-device.sh .gpu/gpu.mjs fused-bench --out DIR [--runs N] [--filter P] [--tuning JSON] [--decode-tuning JSON]
 *       [--decode-sweep JSON-ARRAY] [--sweep JSON-ARRAY]
 *       fused against composed attention, layer prefill/decode/training at D=1024 (bench/gpu_fused.ts; DIR/fused.json)
 */
// Order matters: the preload provides navigator.gpu before the webgpu backend package is evaluated.
import { webgpuProblem } from './gpu_preload.js';
import '@tensorflow/tfjs-backend-webgpu';
import { appendFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { FUSED_ATTENTION_TUNING } from '../src/kernels/webgpu/fused_attention.js';
import { FLASH_DECODE_TUNING } from '../src/kernels/webgpu/flash_decode.js';
import { setBackendStrict } from '../src/backend.js';
import { maxStorageBufferBytes } from '../src/ops/capabilities.js';
import { backendFlags } from './flags.js';
import { machineInfo, type Versions } from './machine.js';
import { assemble, writeOutputs } from './report.js';
import { runCells } from './worker.js';
import { measureLMTraining } from './gpu_lm.js';
import { fusedBench, fusedCheck } from './gpu_fused.js';

/** Package versions and the commit, fixed when the bundle was built (no node_modules on the device). */
declare const __GPU_BUILD__: { versions: Versions; commit: string; builtAt: string };

async function bench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'gpu-results' },
      filter: { type: 'string', multiple: true, default: [] },
      'lm-steps': { type: 'string', default: '24' },
      'no-lm': { type: 'boolean', default: false },
      // Another backend only to try the entry on a machine without a GPU.
      backend: { type: 'string', default: 'webgpu' },
    },
  });
  const out = resolve(values.out!);
  mkdirSync(out, { recursive: true });
  const startedAt = new Date();
  const t0 = performance.now();
  const lines: Array<Record<string, unknown>> = [];
  // Each record is also appended to cells.jsonl at once, so a run cut short keeps what it measured.
  const raw = join(out, 'cells.jsonl');
  rmSync(raw, { force: true });
  const emit = (o: Record<string, unknown>) => {
    lines.push(o);
    appendFileSync(raw, `${JSON.stringify(o)}\n`);
  };
  const backend = values.backend!;
  try {
    await setBackendStrict(backend);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 1;
  }
  const flags = await backendFlags(backend);
  console.log(`${backend}: ${JSON.stringify(flags)}`);
  emit({ type: 'backend', backend, status: 'ok', flags });
  if (!values['no-lm']) {
    const lm = await measureLMTraining(Number(values['lm-steps']), (line) => console.log(line));
    writeFileSync(join(out, 'lm.json'), JSON.stringify(lm, null, 2));
    console.log(`wrote ${join(out, 'lm.json')}`);
  }
  const info = await runCells(backend, {
    quick: false,
    filters: values.filter as string[],
    onResult: (r) => emit({ type: 'cell', ...r }),
    onProgress: (line) => console.log(line),
  });
  emit({ type: 'done', ...info, wallSeconds: (performance.now() - t0) / 1000 });
  const json = assemble(lines as never[], {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallSeconds: (performance.now() - t0) / 1000,
    command: `node .gpu/gpu.mjs bench ${argv.join(' ')} (bundle of ${__GPU_BUILD__.commit}, built ${__GPU_BUILD__.builtAt})`,
    options: { quick: false, backends: [backend], out: values.out!, filters: values.filter as string[] },
    machine: { ...machineInfo(), loadAverageEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    versions: __GPU_BUILD__.versions,
  });
  writeOutputs(out, json);
  console.log(`wrote ${join(out, 'bench.json')} and ${join(out, 'summary.md')}`);
  return 0;
}

/** `fused-check` (exit 1 on any failure) and `fused-bench` (writes DIR/fused.json) on webgpu. */
async function fusedTool(tool: string, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'gpu-results' },
      runs: { type: 'string', default: '3' },
      filter: { type: 'string' },
      // JSON fields of FUSED_ATTENTION_TUNING to try (e.g. '{"targetWorkgroups":1024}'), recorded in fused.json.
      tuning: { type: 'string' },
      // JSON fields of FLASH_DECODE_TUNING (the decode kernel's key splits), recorded in fused.json.
      'decode-tuning': { type: 'string' },
      // A JSON array of FLASH_DECODE_TUNING variants: each decode cell runs fused once per variant (one process).
      'decode-sweep': { type: 'string' },
      // A JSON array of FUSED_ATTENTION_TUNING variants: prefill and training cells run fused only, once per
      // variant, round by round (one process).
      sweep: { type: 'string' },
    },
  });
  if (values.tuning !== undefined)
    Object.assign(FUSED_ATTENTION_TUNING, JSON.parse(values.tuning) as Partial<typeof FUSED_ATTENTION_TUNING>);
  if (values['decode-tuning'] !== undefined)
    Object.assign(FLASH_DECODE_TUNING, JSON.parse(values['decode-tuning']) as Partial<typeof FLASH_DECODE_TUNING>);
  try {
    await setBackendStrict('webgpu');
  } catch (e) {
    console.error(`${tool}: ${(e as Error).message}`);
    return 1;
  }
  if (tool === 'fused-check') return (await fusedCheck((line) => console.log(line))) === 0 ? 0 : 1;
  const out = resolve(values.out!);
  mkdirSync(out, { recursive: true });
  const flags = await backendFlags('webgpu');
  console.log(`webgpu: ${JSON.stringify(flags)}; maxStorageBufferBindingSize ${maxStorageBufferBytes()} bytes`);
  const sweep =
    values['decode-sweep'] === undefined ? [] : (JSON.parse(values['decode-sweep']) as Array<Partial<typeof FLASH_DECODE_TUNING>>);
  const tuningSweep = values.sweep === undefined ? [] : (JSON.parse(values.sweep) as Array<Partial<typeof FUSED_ATTENTION_TUNING>>);
  const rows = await fusedBench(Number(values.runs), values.filter ?? null, (line) => console.log(line), sweep, tuningSweep);
  const tuning = { ...FUSED_ATTENTION_TUNING, decode: { ...FLASH_DECODE_TUNING } };
  console.log(`fused attention tuning: ${JSON.stringify(tuning)}`);
  writeFileSync(join(out, 'fused.json'), JSON.stringify({ build: __GPU_BUILD__, machine: machineInfo(), flags, tuning, rows }, null, 2));
  console.log(`wrote ${join(out, 'fused.json')}`);
  return 0;
}

/** Runs a script that reads process.argv (the conformance runners, the CLI) with `args` as its arguments. */
function withArgs(args: string[]): void {
  process.argv = [process.argv[0], process.argv[1], ...args];
}

if (webgpuProblem !== null) console.error(`webgpu: ${webgpuProblem}`);
const [tool, ...rest] = process.argv.slice(2);
if (tool === 'bench') {
  process.exitCode = await bench(rest);
} else if (tool === 'conformance') {
  withArgs(rest);
  await import('../scripts/conformance.js');
} else if (tool === 'conformance-models') {
  withArgs(rest);
  await import('../scripts/conformance-models.js');
} else if (tool === 'fused-check' || tool === 'fused-bench') {
  process.exitCode = await fusedTool(tool, rest);
} else if (tool === 'cli') {
  // argv[1] must not name this bundle: src/cli/main.ts runs itself when argv[1] is the file that holds it.
  process.argv = [process.argv[0], 'tfjs-gta', ...rest];
  const { main } = await import('../src/cli/main.js');
  await main(process.argv);
} else {
  console.error('usage: node .gpu/gpu.mjs bench|conformance|conformance-models|cli|fused-check|fused-bench ARGS (see bench/gpu_entry.ts)');
  process.exitCode = 2;
}
