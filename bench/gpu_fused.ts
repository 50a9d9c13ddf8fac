/**
 * Fused against composed attention on webgpu (the GPU entry's `fused-bench` and `fused-check` tools):
 *
 * - `fusedBench`: one attention layer (bench/variants.ts, D = 1024, head dim 64) per cell, prefill B=1
 *   T=1024/4096 (and T=4096 with one output element read), training B=4 T=512 (tfjs's Adam, and the package's
 *   AdamW) and decode B=8 S=1024/4096 (one token per step, 32 steps per run), each cell once with
 *   `ATTENTION_DEFAULTS.implementation = 'composed'` and `TRAINING_KERNELS.implementation = 'composed'` (GTA's
 *   gated value decoder) and once with 'fused' and 'auto'; medians of the runs, kernels per
 *   unit (tf.profile: registered kernels; the fused kernel counts once even when it splits the keys into
 *   two dispatches), and the matMul reference [4096]^3 for the FLOP rate.
 * - `fusedCheck`: the equality cases of test/ops/attention_fused_cases.ts (outputs <= 1e-5, gradients <=
 *   1e-4 norm-relative), read asynchronously, as a real GPU finds races and limits that SwiftShader does not.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_DEFAULTS } from '../src/ops/attention_core.js';
import { TRAINING_KERNELS } from '../src/ops/capabilities.js';
import { FLASH_DECODE_TUNING } from '../src/kernels/webgpu/flash_decode.js';
import { FUSED_ATTENTION_TUNING } from '../src/kernels/webgpu/fused_attention.js';
import { compareFusedCase, FUSED_CASES } from '../test/ops/attention_fused_cases.js';
import { type Case, makeCase, type ProfileInfo } from './cases.js';
import type { CellSpec } from './matrix.js';
import { l1Analytic, specFor, type OurImpl } from './variants.js';

/** One measured cell and implementation. */
export interface FusedBenchRow {
  cell: string;
  impl: OurImpl | 'matmul';
  phase: string;
  implementation: 'composed' | 'fused' | '-';
  medianMs: number;
  samples: number;
  kernels: number;
  /** The profiled unit's kernels by name: count, and GPU time in ms where the backend times kernels. */
  kernelNames: Record<string, { count: number; ms: number }>;
  tflops: number;
  /** Decode cells: the median time until a step returned, before its read (`Case.enqueueSamples`). */
  enqueueMs?: number;
  /** The FLASH_DECODE_TUNING fields this row ran with (decode cells of a sweep), or absent. */
  decodeTuning?: Partial<typeof FLASH_DECODE_TUNING>;
  /** The FUSED_ATTENTION_TUNING fields this row ran with (prefill and training cells of a sweep), or absent. */
  tuning?: Partial<typeof FUSED_ATTENTION_TUNING>;
}

const D = 1024;

function cells(): CellSpec[] {
  const out: CellSpec[] = [
    { name: 'matmul 4096^3', group: 'ref', level: 'L1', phase: 'prefill', impl: 'matmul', d: 4096, batch: 1, t: 1, s: 0, m: 4096 },
    // The same product with one element read back: the 64 MiB read above dominated that cell on some VMs.
    {
      name: 'matmul 4096^3 read 1',
      group: 'ref',
      level: 'L1',
      phase: 'prefill',
      impl: 'matmul',
      d: 4096,
      batch: 1,
      t: 1,
      s: 0,
      m: 4096,
      readOne: true,
    },
  ];
  for (const impl of ['gqa', 'gta'] as const) {
    for (const t of [1024, 4096])
      out.push({ name: `${impl} prefill B=1 T=${t}`, group: 'L1', level: 'L1', phase: 'prefill', impl, d: D, batch: 1, t, s: 0 });
    // The same prefill with one element of the output read, as 'matmul 4096^3 read 1' reads its product: the
    // FLOP rates of the two then compare kernels with kernels (the 16 MiB read above costs the transfer's time).
    out.push({
      name: `${impl} prefill B=1 T=4096 read 1`,
      group: 'L1',
      level: 'L1',
      phase: 'prefill',
      impl,
      d: D,
      batch: 1,
      t: 4096,
      s: 0,
      readOne: true,
    });
    for (const s of [1024, 4096])
      out.push({ name: `${impl} decode B=8 S=${s}`, group: 'L1', level: 'L1', phase: 'decode', impl, d: D, batch: 8, t: 1, s, steps: 32 });
    // The largest cell tried: GQA's cache is 2 GiB and its arena (room for half as many positions again) 3 GiB;
    // where that exceeds the device's storage-buffer limit the fused row falls back to the composed step.
    out.push({
      name: `${impl} decode B=64 S=16384`,
      group: 'L1',
      level: 'L1',
      phase: 'decode',
      impl,
      d: D,
      batch: 64,
      t: 1,
      s: 16384,
      steps: 32,
    });
    // Where the cache reads matter: GQA's cache is 1 GiB per layer here (2 KiB per token and sequence).
    out.push({
      name: `${impl} decode B=32 S=16384`,
      group: 'L1',
      level: 'L1',
      phase: 'decode',
      impl,
      d: D,
      batch: 32,
      t: 1,
      s: 16384,
      steps: 32,
    });
  }
  out.push({
    name: 'mla-abs decode B=32 S=16384',
    group: 'L1',
    level: 'L1',
    phase: 'decode',
    impl: 'mla-abs',
    d: D,
    batch: 32,
    t: 1,
    s: 16384,
    steps: 32,
  });
  out.push({
    name: 'mla-abs decode B=8 S=4096',
    group: 'L1',
    level: 'L1',
    phase: 'decode',
    impl: 'mla-abs',
    d: D,
    batch: 8,
    t: 1,
    s: 4096,
    steps: 32,
  });
  for (const impl of ['gqa', 'gta'] as const) {
    const train = { group: 'L1', level: 'L1', phase: 'train', impl, d: D, batch: 4, t: 512, s: 0 } as const;
    out.push({ name: `${impl} train B=4 T=512`, ...train });
    // With the package's AdamW: its update is one of the fused training kernels (composed in the composed row).
    out.push({ name: `${impl} train B=4 T=512 adamw`, ...train, optimizer: 'adamw' });
    // The same with the loss's mean reduced row by row first (CellSpec.lossReduction): tfjs's one-workgroup Sum
    // of all 2M values is a fixed cost of both paths that the layer does not cause.
    out.push({ name: `${impl} train B=4 T=512 adamw, loss by rows`, ...train, optimizer: 'adamw', lossReduction: 'rows' });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function flopsOf(cell: CellSpec): number {
  if (cell.impl === 'matmul') return 2 * (cell.m ?? 0) * cell.d * cell.d;
  const impl = cell.impl as OurImpl;
  return l1Analytic(
    specFor(impl, cell.d),
    cell.d,
    cell.phase as 'prefill' | 'decode' | 'train',
    cell.batch,
    cell.t,
    cell.s,
    impl === 'mla-abs',
  ).flops;
}

async function measure(
  cell: CellSpec,
  runs: number,
): Promise<{
  ms: number;
  samples: number;
  kernels: number;
  kernelNames: Record<string, { count: number; ms: number }>;
  cacheBytes: number | undefined;
  enqueueMs: number | undefined;
}> {
  const c = await makeCase(cell);
  try {
    const info = await c.profile();
    await c.warmup?.();
    const samples: number[] = [];
    const enqueue: number[] = [];
    for (let i = 0; i < runs; i++) {
      samples.push(...(await c.run()));
      enqueue.push(...(c.enqueueSamples?.() ?? []));
    }
    const enqueueMs = enqueue.length > 0 ? median(enqueue) : undefined;
    return {
      ms: median(samples),
      samples: samples.length,
      kernels: info.kernels,
      kernelNames: info.byKernel,
      cacheBytes: c.cacheBytes,
      enqueueMs,
    };
  } finally {
    c.dispose();
  }
}

/**
 * The fused rows of a prefill or training cell under each of `sweep`'s FUSED_ATTENTION_TUNING variants. Each
 * variant gets one case, built, profiled and warmed up under its settings once; the settings are read per call,
 * so each timed run sets its variant's first.
 */
async function sweepCell(
  cell: CellSpec,
  runs: number,
  sweep: Array<Partial<typeof FUSED_ATTENTION_TUNING>>,
  log: (line: string) => void,
  reference: CellSpec | null = null,
) {
  const saved = { ...FUSED_ATTENTION_TUNING };
  const samples: number[][] = sweep.map(() => []);
  const info: ProfileInfo[] = [];
  const cases: Case[] = [];
  // The matMul reference, timed once in every round too, so that the FLOP-rate ratio compares runs of one round.
  const ref = reference === null ? null : await makeCase(reference);
  const refSamples: number[] = [];
  try {
    await ref?.profile();
    await ref?.warmup?.();
    for (const variant of sweep) {
      Object.assign(FUSED_ATTENTION_TUNING, saved, variant);
      const c = await makeCase(cell);
      cases.push(c);
      info.push(await c.profile());
      await c.warmup?.();
    }
    // Round by round, each variant one run in turn, so that a drift of the machine's speed within the process
    // (seen on the H200 VMs) falls on every variant alike.
    for (let round = 0; round < runs; round++) {
      if (ref !== null) refSamples.push(median(await ref.run()));
      for (let v = 0; v < sweep.length; v++) {
        Object.assign(FUSED_ATTENTION_TUNING, saved, sweep[v]);
        samples[v].push(median(await cases[v].run()));
      }
    }
  } finally {
    Object.assign(FUSED_ATTENTION_TUNING, saved);
    for (const c of cases) c.dispose();
    ref?.dispose();
  }
  const refRows: FusedBenchRow[] = [];
  if (reference !== null && refSamples.length > 0) {
    const ms = median(refSamples);
    const tflops = flopsOf(reference) / (ms * 1e-3) / 1e12;
    refRows.push({
      cell: `${reference.name}, in the rounds of ${cell.name}`,
      impl: 'matmul',
      phase: reference.phase,
      implementation: '-',
      medianMs: ms,
      samples: refSamples.length,
      kernels: 0,
      kernelNames: {},
      tflops,
    });
    log(
      `${reference.name}, in the rounds of ${cell.name}: ${ms.toFixed(3)} ms (median of ${refSamples.length}: ` +
        `${refSamples.map((x) => x.toFixed(2)).join(', ')}), ${tflops.toFixed(3)} TFLOP/s`,
    );
  }
  return [
    ...refRows,
    ...sweep.map((variant, v): FusedBenchRow => {
      const ms = median(samples[v]);
      const row: FusedBenchRow = {
        cell: cell.name,
        impl: cell.impl as FusedBenchRow['impl'],
        phase: cell.phase,
        implementation: 'fused',
        medianMs: ms,
        samples: samples[v].length,
        kernels: info[v].kernels,
        kernelNames: info[v].byKernel,
        tflops: flopsOf(cell) / (ms * 1e-3) / 1e12,
        tuning: variant,
      };
      log(
        `${cell.name} [fused ${JSON.stringify(variant)}]: ${ms.toFixed(3)} ms (median of ${samples[v].length}: ${samples[v].map((x) => x.toFixed(2)).join(', ')}), ` +
          `${row.tflops.toFixed(3)} TFLOP/s; ${Object.entries(row.kernelNames)
            .filter(([k]) => k.startsWith('GtaFusedAttention'))
            .map(([k, n]) => `${k} ${n.ms} ms`)
            .join(', ')}`,
      );
      return row;
    }),
  ];
}

/**
 * Runs the cells (names matching `filter`, when given) with both implementations; `log` gets one line per row.
 * `decodeSweep`: FLASH_DECODE_TUNING variants, each run as a fused row of every decode cell (in this process,
 * so that they compare on one VM), the settings restored after each. `sweep`: FUSED_ATTENTION_TUNING variants
 * for the prefill and training cells, fused rows only, run round by round (one run of each variant in turn; the
 * prefill cells that read one element also time the matMul reference that reads one element in each round).
 */
export async function fusedBench(
  runs: number,
  filter: string | null,
  log: (line: string) => void,
  decodeSweep: Array<Partial<typeof FLASH_DECODE_TUNING>> = [],
  sweep: Array<Partial<typeof FUSED_ATTENTION_TUNING>> = [],
): Promise<FusedBenchRow[]> {
  const rows: FusedBenchRow[] = [];
  const saved = ATTENTION_DEFAULTS.implementation;
  const savedTraining = TRAINING_KERNELS.implementation;
  try {
    const all = cells();
    for (const cell of all) {
      if (filter !== null && cell.impl !== 'matmul' && !cell.name.includes(filter)) continue;
      if (sweep.length > 0 && cell.phase !== 'decode' && cell.impl !== 'matmul') {
        ATTENTION_DEFAULTS.implementation = 'fused';
        TRAINING_KERNELS.implementation = 'auto';
        // prefill cells that read one element have the matMul reference that does the same timed in their rounds
        const reference = cell.readOne ? (all.find((c) => c.impl === 'matmul' && c.readOne) ?? null) : null;
        rows.push(...(await sweepCell(cell, runs, sweep, log, reference)));
        continue;
      }
      const modes = cell.impl === 'matmul' ? (['-'] as const) : (['composed', 'fused'] as const);
      const variants: Array<Partial<typeof FLASH_DECODE_TUNING> | null> =
        cell.phase === 'decode' && decodeSweep.length > 0 ? decodeSweep : [null];
      type Run = ['composed' | 'fused' | '-', Partial<typeof FLASH_DECODE_TUNING> | null];
      const runsOf: Run[] = modes.flatMap((mode): Run[] => (mode === 'fused' ? variants.map((v): Run => [mode, v]) : [[mode, null]]));
      for (const [mode, variant] of runsOf) {
        const savedDecode = { ...FLASH_DECODE_TUNING };
        if (variant !== null) Object.assign(FLASH_DECODE_TUNING, variant);
        // Training goes through customGrad (fused forward, composed backward recomputed under the tape).
        ATTENTION_DEFAULTS.implementation = mode === 'fused' ? 'fused' : 'composed';
        // GTA's gated value decoder is one of the fused training kernels (src/ops/gated_decoder.ts).
        TRAINING_KERNELS.implementation = mode === 'fused' ? 'auto' : 'composed';
        try {
          const r = await measure(cell, runs);
          const row: FusedBenchRow = {
            cell: cell.name,
            impl: cell.impl as FusedBenchRow['impl'],
            phase: cell.phase,
            implementation: mode,
            medianMs: r.ms,
            samples: r.samples,
            kernels: r.kernels,
            kernelNames: r.kernelNames,
            tflops: flopsOf(cell) / (r.ms * 1e-3) / 1e12,
          };
          if (variant !== null) row.decodeTuning = variant;
          if (r.enqueueMs !== undefined) row.enqueueMs = r.enqueueMs;
          rows.push(row);
          log(
            `${cell.name} [${mode}${variant !== null ? ` ${JSON.stringify(variant)}` : ''}]: ${r.ms.toFixed(3)} ms (median of ${r.samples}${r.enqueueMs !== undefined ? `; enqueued in ${r.enqueueMs.toFixed(3)}` : ''}), ${r.kernels} kernels, ${row.tflops.toFixed(3)} TFLOP/s` +
              `${r.cacheBytes ? `, cache ${(r.cacheBytes / 2 ** 20).toFixed(1)} MiB` : ''}; ${Object.entries(r.kernelNames)
                .map(([k, n]) => `${k} ${n.count}${n.ms > 0 ? ` (${n.ms} ms)` : ''}`)
                .join(', ')}`,
          );
        } catch (e) {
          log(`${cell.name} [${mode}]: FAILED ${(e as Error).message}`);
        } finally {
          Object.assign(FLASH_DECODE_TUNING, savedDecode);
        }
      }
    }
  } finally {
    ATTENTION_DEFAULTS.implementation = saved;
    TRAINING_KERNELS.implementation = savedTraining;
  }
  return rows;
}

/** Runs every equality case; returns the number of failures (errors above the tolerances, or exceptions). */
export async function fusedCheck(log: (line: string) => void): Promise<number> {
  let failed = 0;
  for (const c of FUSED_CASES) {
    try {
      const e = await compareFusedCase(c);
      const bad = e.output > 1e-5 || Object.values(e.grads).some((g) => g > 1e-4);
      if (bad) failed++;
      const grads = Object.entries(e.grads)
        .map(([k, v]) => `${k} ${v.toExponential(2)}`)
        .join(', ');
      log(`${bad ? 'FAIL' : 'ok  '} ${c.name}: output ${e.output.toExponential(2)}${grads ? `; grads ${grads}` : ''}`);
    } catch (e) {
      failed++;
      log(`FAIL ${c.name}: ${(e as Error).message}`);
    }
  }
  log(`fused-check: ${FUSED_CASES.length - failed} passed, ${failed} failed (tensors alive: ${tf.memory().numTensors})`);
  return failed;
}
