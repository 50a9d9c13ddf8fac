/**
 * The benchmark matrix: which cells run on which backend, and which are skipped and why.
 *
 * A cell is one implementation at one shape and phase. Its name is
 * `<level>/<phase>/d<D>/b<B>/<t|s><len>/<impl>` (e.g. `L1/decode/d1024/b8/s4096/gta`) or
 * `ref/matmul/d<D>/m<M>/matmul`, `ref/read/mb<MiB>/read`; its group is the name without the impl, and
 * the cells of a group are timed round-robin. `--filter` matches names.
 *
 * Memory budget: a cell whose naive score tensor B * maps * T * S * 4 bytes exceeds 1 GiB is skipped and
 * reported (maps = query heads, or query groups for GTA), as is a cpu Einsum peer cell whose
 * [B, H, T, S, Dh] intermediate would exceed it.
 */
import { HEAD_DIM, Impl, OurImpl, PeerImpl, heads, numMaps } from './variants.js';

export type Level = 'L1' | 'L2' | 'ref';
export type Phase = 'prefill' | 'decode' | 'train' | 'matmul' | 'read';

export interface CellSpec {
  name: string;
  group: string;
  level: Level;
  phase: Phase;
  impl: Impl;
  /** Model width (0 for the read reference). */
  d: number;
  batch: number;
  /** New tokens per call: T for prefill/train, 1 for decode. */
  t: number;
  /** Cached tokens when a decode run starts (0 otherwise). */
  s: number;
  /** Decode steps per timed run. */
  steps?: number;
  /** matMul reference rows (M of [M, D] x [D, D]) or read reference size in MiB. */
  m?: number;
  /**
   * matMul reference and L1 prefill: read back one element of the result instead of all of it (everything
   * still runs in full, as the queue runs in order), so that the time is the kernels' and not the transfer's.
   */
  readOne?: boolean;
  /**
   * L1 training: the optimizer. 'tfjs-adam' (the default) is `tf.train.adam`; 'adamw' is the package's
   * AdamW (src/train/adamw.ts, weight decay 0), whose update is fused on webgpu and webgl unless
   * `TRAINING_KERNELS` asks for the composed path.
   */
  optimizer?: 'tfjs-adam' | 'adamw';
  /**
   * L1 training: the loss's reduction. 'mean' (the default) is `tf.losses.meanSquaredError`, whose mean is one
   * Sum of all B T D values (on webgpu tfjs reduces into one value with one workgroup: 2 ms and more on the
   * H200 for 2M values). 'rows' computes the same mean in two Sums: over each row's D values, then over the rows.
   */
  lossReduction?: 'mean' | 'rows';
  /** Set when the cell is not run. */
  skip?: string;
}

export const SCORE_BUDGET_BYTES = 2 ** 30;
/** cpu only: the einsum peer's [B, H, T, S, Dh] intermediate (a 32 MiB one took 16 s per call on cpu). */
export const CPU_EINSUM_BUDGET_BYTES = 16 * 2 ** 20;

interface PhaseGrid {
  d: number[];
  /** [len, batch] pairs (len = T for prefill/train, S for decode). */
  shapes: Array<[number, number]>;
  impls: Impl[];
}

export interface Grid {
  matmul: { d: number[]; m: number[] };
  readMiB: number[];
  l1: { prefill: PhaseGrid; decode: PhaseGrid; train: PhaseGrid };
  l2: { prefill: PhaseGrid; decode: PhaseGrid; train: PhaseGrid };
  decodeSteps: number;
  /** What was trimmed relative to the full matrix, printed in the output. */
  trims: string[];
}

const cross = (lens: number[], batches: number[]): Array<[number, number]> =>
  lens.flatMap((l) => batches.map((b) => [l, b] as [number, number]));

const PREFILL_IMPLS: Impl[] = ['gqa', 'mha', 'mha-norope', 'gta', 'mla', 'peer-plain', 'peer-plain-rope', 'peer-tfjs-mha'];
const DECODE_IMPLS: Impl[] = ['gqa', 'mha', 'mha-norope', 'gta', 'mla-naive', 'mla-abs', 'peer-plain', 'peer-plain-rope', 'peer-tfjs-mha'];
const TRAIN_IMPLS: Impl[] = ['gqa', 'mha', 'mha-norope', 'gta', 'mla', 'peer-plain', 'peer-plain-rope', 'peer-tfjs-mha'];
const L2_PREFILL: Impl[] = ['gqa', 'mha', 'gta', 'mla'];
const L2_DECODE: Impl[] = ['gqa', 'mha', 'gta', 'mla-naive', 'mla-abs'];

/**
 * The benchmark's backends: tfjs backend names, run in Node, except `webgl` and `webgpu-browser`, which run
 * in headless Chromium (tfjs's webgl and webgpu backends there). `webgpu` runs in Node through Dawn (the
 * `webgpu` package), where it finds a GPU adapter.
 */
export const BENCH_BACKENDS = ['tensorflow', 'wasm', 'cpu', 'webgl', 'webgpu', 'webgpu-browser'] as const;

/** The tfjs backend a benchmark backend runs on (`webgpu-browser` is tfjs's webgpu in Chromium). */
export function tfjsBackendOf(backend: string): string {
  return backend === 'webgpu-browser' ? 'webgpu' : backend;
}

/** Whether a benchmark backend runs in headless Chromium rather than in Node. */
export function runsInBrowser(backend: string): boolean {
  return backend === 'webgl' || backend === 'webgpu-browser';
}

/**
 * webgpu in Node (Dawn) on a real GPU: the shapes of the GPU baseline (docs/benchmarks/): matMul at
 * [1024]^3 and [4096]^3, one layer at D=1024 (prefill T 1024 and 4096 at B=1, decode at B=8 with S 1024
 * and 4096, a training step at B=4 T=512), and the L2 model at D=512 only in small shapes.
 */
function gpuGrid(): Grid {
  return {
    matmul: { d: [1024, 4096], m: [1024, 4096] },
    readMiB: [64],
    l1: {
      prefill: {
        d: [1024],
        shapes: [
          [1024, 1],
          [4096, 1],
        ],
        impls: PREFILL_IMPLS,
      },
      decode: {
        d: [1024],
        shapes: [
          [1024, 8],
          [4096, 8],
        ],
        impls: DECODE_IMPLS,
      },
      train: { d: [1024], shapes: [[512, 4]], impls: TRAIN_IMPLS },
    },
    l2: {
      prefill: { d: [512], shapes: [[512, 1]], impls: L2_PREFILL },
      decode: { d: [512], shapes: [[1024, 8]], impls: L2_DECODE },
      train: { d: [512], shapes: [[128, 4]], impls: L2_PREFILL },
    },
    decodeSteps: 32,
    trims: [
      'webgpu (GPU, Dawn in Node): matMul [1024]^3..[4096]^3; L1 at D=1024 only (prefill T 1024/4096 B=1, decode S 1024/4096 B=8, ' +
        'training T=512 B=4); L2 at D=512 (prefill T=512, decode S=1024 B=8, training T=128 B=4)',
    ],
  };
}

/** The grid of one backend; `quick` is the smoke subset. */
export function gridFor(backend: string, quick: boolean): Grid {
  if (quick) {
    // Sized so that all four backends finish in under 2 minutes: cpu (pure JavaScript, ~100x slower than
    // tensorflow, with a very slow Einsum for the tfjs-layers peer) takes short sequences, and webgl
    // (a software GL here, shaders compiled per shape) skips the L2 model.
    const len = backend === 'cpu' ? 16 : 128;
    const l2 = !runsInBrowser(backend);
    return {
      matmul: { d: [512], m: [128, 512] },
      readMiB: [16],
      l1: {
        prefill: { d: [512], shapes: [[len, 1]], impls: PREFILL_IMPLS },
        decode: { d: [512], shapes: [[len, 1]], impls: DECODE_IMPLS },
        train: { d: [512], shapes: [[len / 2, 1]], impls: TRAIN_IMPLS },
      },
      l2: {
        prefill: { d: l2 ? [512] : [], shapes: l2 ? [[len / 2, 1]] : [], impls: l2 ? L2_PREFILL : [] },
        decode: { d: l2 ? [512] : [], shapes: l2 ? [[len / 2, 1]] : [], impls: l2 ? L2_DECODE : [] },
        train: { d: [], shapes: [], impls: [] },
      },
      decodeSteps: 8,
      trims: [
        `quick subset: D=512, one small shape per phase (T=S=${len}, ${l2 ? `L2 and ` : ''}training ${len / 2}), ` +
          `8 decode steps per run, ${l2 ? 'no L2 training' : 'no L2 model'}`,
      ],
    };
  }
  if (backend === 'webgpu') return gpuGrid();
  if (backend === 'tensorflow') {
    return {
      matmul: { d: [512, 1024], m: [128, 512, 1024, 2048, 4096, 8192] },
      readMiB: [64],
      l1: {
        prefill: { d: [512, 1024], shapes: cross([128, 512, 1024, 2048, 4096], [1, 2, 4, 8]), impls: PREFILL_IMPLS },
        decode: { d: [512, 1024], shapes: cross([128, 512, 1024, 2048, 4096], [1, 2, 4, 8]), impls: DECODE_IMPLS },
        train: { d: [512, 1024], shapes: cross([128, 256, 512], [4, 8]), impls: TRAIN_IMPLS },
      },
      l2: {
        prefill: { d: [512, 1024], shapes: [...cross([128, 512], [1, 4]), [2048, 1]], impls: L2_PREFILL },
        decode: { d: [512, 1024], shapes: cross([128, 1024, 4096], [1, 8]), impls: L2_DECODE },
        train: {
          d: [512],
          shapes: [
            [128, 4],
            [256, 8],
          ],
          impls: L2_PREFILL,
        },
      },
      decodeSteps: 32,
      trims: [
        'L2 uses a reduced grid (prefill T 128/512 x B 1/4 and T 2048 at B 1, decode S 128/1024/4096 x B 1/8, training at D=512 only)',
      ],
    };
  }
  if (backend === 'wasm') {
    return {
      matmul: { d: [512, 1024], m: [128, 512, 1024, 2048] },
      readMiB: [64],
      l1: {
        prefill: {
          d: [512, 1024],
          shapes: [
            [128, 1],
            [512, 1],
            [1024, 1],
            [512, 4],
          ],
          impls: PREFILL_IMPLS,
        },
        decode: {
          d: [512, 1024],
          shapes: [
            [128, 1],
            [1024, 1],
            [4096, 1],
            [1024, 8],
          ],
          impls: DECODE_IMPLS,
        },
        train: { d: [512], shapes: [[128, 4]], impls: TRAIN_IMPLS },
      },
      l2: {
        prefill: {
          d: [512],
          shapes: [
            [128, 1],
            [512, 1],
          ],
          impls: L2_PREFILL,
        },
        decode: {
          d: [512],
          shapes: [
            [128, 1],
            [1024, 8],
          ],
          impls: L2_DECODE,
        },
        train: { d: [512], shapes: [[64, 2]], impls: L2_PREFILL },
      },
      decodeSteps: 32,
      trims: [
        'wasm (one thread, SIMD) grid trimmed to fit ~6 minutes: prefill T<=1024 at B=1 and T=512 at B=4; decode S 128/1024/4096 at B=1 and S=1024 at B=8; L1 training D=512 B=4 T=128; L2 at D=512 only, training B=2 T=64',
      ],
    };
  }
  if (backend === 'cpu') {
    return {
      matmul: { d: [512], m: [128, 512] },
      readMiB: [16],
      l1: {
        prefill: {
          d: [512],
          shapes: [
            [128, 1],
            [512, 1],
          ],
          impls: PREFILL_IMPLS,
        },
        decode: {
          d: [512],
          shapes: [
            [128, 1],
            [512, 2],
          ],
          impls: DECODE_IMPLS,
        },
        train: { d: [512], shapes: [[128, 1]], impls: TRAIN_IMPLS },
      },
      l2: {
        prefill: { d: [512], shapes: [[128, 1]], impls: L2_PREFILL },
        decode: { d: [512], shapes: [[128, 1]], impls: L2_DECODE },
        train: { d: [], shapes: [], impls: [] },
      },
      decodeSteps: 32,
      trims: [
        'cpu (pure JS, about 1 GFLOP/s) runs only D=512: prefill T 128/512 at B=1, decode S=128 at B=1 and S=512 at B=2, training T=128 B=1, L2 prefill and decode at 128, no L2 training',
      ],
    };
  }
  // webgl and webgpu-browser (headless Chromium, SwiftShader on the CPU) and anything else: small cells only.
  return {
    matmul: { d: [512], m: [128, 512] },
    readMiB: [],
    l1: {
      prefill: { d: [512], shapes: [[128, 1]], impls: PREFILL_IMPLS },
      decode: { d: [512], shapes: [[128, 1]], impls: DECODE_IMPLS },
      train: { d: [512], shapes: [[128, 1]], impls: TRAIN_IMPLS },
    },
    l2: {
      prefill: { d: [512], shapes: [[128, 1]], impls: L2_PREFILL },
      decode: { d: [512], shapes: [[128, 1]], impls: L2_DECODE },
      train: { d: [], shapes: [], impls: [] },
    },
    decodeSteps: 8,
    trims: [`${backend}: small cells only (D=512, T=S=128, B=1; 8 decode steps per run)`],
  };
}

function skipReason(backend: string, phase: Phase, impl: Impl, d: number, b: number, t: number, s: number): string | undefined {
  if (impl === 'peer-tfjs-mha' && phase === 'decode') return 'tfjs-layers MultiHeadAttention has no KV-cache API';
  const keys = phase === 'decode' ? s + 1 : t;
  const queries = phase === 'decode' ? 1 : t;
  const scoreBytes = b * numMaps(impl, d) * queries * keys * 4;
  if (scoreBytes > SCORE_BUDGET_BYTES) {
    return `score tensor B*maps*T*S*4 = ${(scoreBytes / 2 ** 30).toFixed(2)} GiB exceeds the 1 GiB budget`;
  }
  if (impl === 'peer-tfjs-mha' && backend === 'cpu') {
    // The cpu Einsum kernel multiplies by broadcasting and then sums: it materializes [B, H, T, S, Dh].
    const outer = b * heads(d) * queries * keys * HEAD_DIM * 4;
    if (outer > CPU_EINSUM_BUDGET_BYTES) {
      return `cpu Einsum materializes [B, H, T, S, Dh] = ${(outer / 2 ** 20).toFixed(0)} MiB, over the ${CPU_EINSUM_BUDGET_BYTES / 2 ** 20} MiB cpu budget (time grows with it: 16 s per call at 32 MiB here)`;
    }
  }
  return undefined;
}

const lenTag = (phase: Phase, t: number, s: number) => (phase === 'decode' ? `s${s}` : `t${t}`);

/** All cells of a backend's grid, in run order (references first, then L1, then L2). */
export function buildMatrix(backend: string, quick: boolean): { cells: CellSpec[]; grid: Grid } {
  const grid = gridFor(backend, quick);
  const cells: CellSpec[] = [];
  for (const mib of grid.readMiB) {
    const group = `ref/read/mb${mib}`;
    cells.push({ name: `${group}/read`, group, level: 'ref', phase: 'read', impl: 'read', d: 0, batch: 1, t: 0, s: 0, m: mib });
  }
  for (const d of grid.matmul.d) {
    for (const m of grid.matmul.m) {
      const group = `ref/matmul/d${d}/m${m}`;
      cells.push({ name: `${group}/matmul`, group, level: 'ref', phase: 'matmul', impl: 'matmul', d, batch: 1, t: 0, s: 0, m });
    }
  }
  for (const level of ['L1', 'L2'] as const) {
    const phases = level === 'L1' ? grid.l1 : grid.l2;
    for (const phase of ['prefill', 'decode', 'train'] as const) {
      const pg = phases[phase];
      for (const d of pg.d) {
        for (const [len, b] of pg.shapes) {
          const t = phase === 'decode' ? 1 : len;
          const s = phase === 'decode' ? len : 0;
          const group = `${level}/${phase}/d${d}/b${b}/${lenTag(phase, t, s)}`;
          for (const impl of pg.impls) {
            const cell: CellSpec = { name: `${group}/${impl}`, group, level, phase, impl, d, batch: b, t, s };
            if (phase === 'decode') cell.steps = grid.decodeSteps;
            const why = skipReason(backend, phase, impl, d, b, t, s);
            if (why !== undefined) cell.skip = why;
            cells.push(cell);
          }
        }
      }
    }
  }
  return { cells, grid };
}

/** Whether `name` passes the `--filter` patterns (any of them; each a substring or /regex/). */
export function matchesFilter(name: string, filters: string[]): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => {
    if (f.length > 2 && f.startsWith('/') && f.endsWith('/')) return new RegExp(f.slice(1, -1)).test(name);
    return name.includes(f);
  });
}

export type { OurImpl, PeerImpl };
