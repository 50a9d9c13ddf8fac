/**
 * GTA's gated value decoder as fused kernels for webgpu, forward and backward (the prefill and training
 * path; the one-token decode step has its own kernel in decode_step.ts). What it computes
 * (docs/ATTENTION_SPEC.md, GTA): each query group's attention output is a latent row, expanded by that
 * group's decoder `R + Delta` (R = [I ... I], r copies of the identity) and gated by `sigmoid(x Wg)`:
 *
 *   u[n, g r Dl + c] = o[b, g, t, c mod Dl] + sum_j o[b, g, t, j] Delta[g, j, c]
 *   y[n, col]        = sigmoid(G[n, col]) u[n, col]
 *
 * Notation: B batch, T query length, N = B T rows (n = b T + t), Hq query groups (one map each), Dl the
 * latent width, r the expansion rate, C = r Dl one group's output width, W = Hq C the layer width (columns
 * group-major: col = g C + c), G the gate logits, dy the output gradient, s = sigmoid(G), e = dy s.
 *   forward      o [B, Hq, T, Dl], G [N, W], Delta [Hq, Dl, C] -> y [N, W]          one dispatch
 *   gradGate     o, G, Delta, dy                               -> dG = dy u s (1 - s) one dispatch
 *   gradInput    G, Delta, dy                                  -> do [B, Hq, T, Dl]  one dispatch
 *                do[b, g, t, j] = sum_c e[n, g C + c] (Delta[g, j, c] + [c mod Dl = j])
 *                (Delta is read transposed in place: its tile loads stride over C, but Delta is small; until
 *                2026-12-03 a Transpose kernel wrote Delta^T first)
 * o may be read from a tensor with wider rows `[B, Hq, T, Do]`, Do >= Dl (the fused attention's packed output,
 * whose last column is the log-sum-exp): the kernels read the first Dl of each row (dims still say Dl).
 *   gradDecoder  o, G, dy                                      -> dDelta [Hq, Dl, C] one dispatch
 *                dDelta[g, j, c] = sum_n o[b, g, t, j] e[n, g C + c]
 * Each kernel is group g's matrix product with its own operands and epilogue (`PRODUCT`): o_g Delta_g
 * (forward, gradGate; the epilogue adds R's copy of o and applies the gate), e_g Delta_g^T (gradInput; the
 * epilogue adds R's part, a sum of r values of e) and o_g^T e_g (gradDecoder, a sum over the N rows, split
 * over workgroups when its few output blocks would leave the GPU idle, then a second dispatch adds the
 * splits' partial products). One workgroup computes a 32 x 32 block of one group's product, staging
 * 32 x 16 tiles of both operands in workgroup memory; each of its 64 invocations keeps 4 x 4 sums in
 * registers. Until 2026-12-03 each output element was one invocation with its own loop over K, which read
 * both operands from memory for every multiply-add: on the H200 at B=4, T=512, W=1024 (GTA's bench layer)
 * the forward took about 1 ms and the three gradients about 6 ms, more than the composed ops' products.
 * The composed ops this replaces (src/ops/gated_decoder.ts) run 10 kernels forward (transposes and reshapes
 * between the [B, Hq, T, Dl] and [N, W] layouts, the tile of R, the batched product, the add, the sigmoid and
 * the gate product) and 32 with the backward (tf.profile).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { CountedProgram, type ProgramUniform, type WebGPUBackendLike, type WebGPUProgram, workgroupCoords } from './program.js';
import { registerWebGLGatedDecoderKernels } from '../webgl/gated_decoder.js';

/** Registered kernel names (webgpu and webgl). */
export const GATED_DECODER_KERNELS = {
  forward: 'GtaGatedDecoder',
  gradGate: 'GtaGatedDecoderGradGate',
  gradInput: 'GtaGatedDecoderGradInput',
  gradDecoder: 'GtaGatedDecoderGradDecoder',
} as const;

export type GatedDecoderMode = keyof typeof GATED_DECODER_KERNELS;

/** Output tile of one workgroup (TILE x TILE), its 8 x 8 invocations (4 x 4 outputs each), and the K step. */
const TILE = 32;
const STEP = 16;
const INVOCATIONS = 64;

/** The inputs each kernel takes, in order (the names the webgl programs use too). */
export const GATED_DECODER_INPUTS: Readonly<Record<GatedDecoderMode, readonly string[]>> = {
  forward: ['O', 'G', 'DELTA'],
  gradGate: ['O', 'G', 'DELTA', 'DY'],
  gradInput: ['G', 'DELTA', 'DY'],
  gradDecoder: ['O', 'G', 'DY'],
};

/** Sizes of one call: from the shapes of o [B, Hq, T, Dl] and Delta [Hq, Dl, C]. */
export interface GatedDecoderDims {
  b: number;
  hq: number;
  t: number;
  dl: number;
  c: number;
}

export function gatedDecoderDims(oShape: number[], deltaShape: number[]): GatedDecoderDims {
  const [b, hq, t, dl] = oShape;
  return { b, hq, t, dl, c: deltaShape[2] };
}

/** The output shape of `mode`. */
export function gatedDecoderOutputShape(mode: GatedDecoderMode, d: GatedDecoderDims): number[] {
  if (mode === 'gradInput') return [d.b, d.hq, d.t, d.dl];
  if (mode === 'gradDecoder') return [d.hq, d.dl, d.c];
  return [d.b * d.t, d.hq * d.c];
}

/** Each kernel as group g's product A_g [M, K] B_g [K, P] (the rows of A and the columns of B per group). */
function productSizes(mode: GatedDecoderMode, d: GatedDecoderDims): { m: number; p: number; k: number } {
  const n = d.b * d.t;
  if (mode === 'gradInput') return { m: n, p: d.dl, k: d.c }; // e_g [N, C] Delta_g^T [C, Dl]
  if (mode === 'gradDecoder') return { m: d.dl, p: d.c, k: n }; // o_g^T [Dl, N] e_g [N, C]
  return { m: n, p: d.c, k: d.dl }; // o_g [N, Dl] Delta_g [Dl, C]
}

/**
 * WGSL per kernel: `a(g, m, k)` and `b(g, k, p)`, the product's operands (0 outside them is the caller's
 * check), whether A's tile is loaded with m (not k) as the fast axis (so that neighbouring invocations read
 * neighbouring addresses), and the epilogue that writes output (m, p) of group g from the sum `acc`.
 * Helpers: oAt(g, n, j) the index of o[b, g, t, j] for row n = b T + t; e(at) = dy s at flat [N, W] index `at`.
 */
const PRODUCT: Record<GatedDecoderMode, { a: string; b: string; aRowsFast: boolean; epilogue: string }> = {
  forward: {
    a: 'O[oIn(g, m, k)]',
    b: 'DELTA[(g * uniforms.dl + k) * uniforms.c + p]',
    aRowsFast: false,
    epilogue: `
      let at = m * W + g * uniforms.c + p;
      result[at] = (acc + O[oIn(g, m, p % uniforms.dl)]) / (1.0 + exp(-G[at]));`,
  },
  gradGate: {
    a: 'O[oIn(g, m, k)]',
    b: 'DELTA[(g * uniforms.dl + k) * uniforms.c + p]',
    aRowsFast: false,
    epilogue: `
      let at = m * W + g * uniforms.c + p;
      let s = 1.0 / (1.0 + exp(-G[at]));
      result[at] = DY[at] * (acc + O[oIn(g, m, p % uniforms.dl)]) * s * (1.0 - s);`,
  },
  gradInput: {
    a: 'e(m * W + g * uniforms.c + k)',
    b: 'DELTA[(g * uniforms.dl + p) * uniforms.c + k]', // Delta_g^T[k, p]
    aRowsFast: false,
    // R's part: the identity blocks add e at columns p, p + Dl, ... of the group.
    epilogue: `
      var sum = acc;
      for (var q = p; q < uniforms.c; q = q + uniforms.dl) { sum = sum + e(m * W + g * uniforms.c + q); }
      result[oAt(g, m, p)] = sum;`,
  },
  gradDecoder: {
    a: 'O[oIn(g, k, m)]',
    b: 'e(k * W + g * uniforms.c + p)',
    aRowsFast: true,
    epilogue: `
      result[(split * uniforms.hq + g) * uniforms.dl * uniforms.c + m * uniforms.c + p] = acc;`,
  },
};

/**
 * One workgroup per (group, TILE x TILE block of the product's output): per STEP of K it stages A's and B's
 * tiles in workgroup memory, and each invocation accumulates 4 x 4 outputs (rows ty + 8 i, columns tx + 8 j).
 * The sizes are uniforms (one pipeline per kernel for every shape).
 */
class GatedDecoderProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [INVOCATIONS, 1, 1];
  uniforms =
    'b : i32, hq : i32, t : i32, dl : i32, c : i32, m : i32, p : i32, k : i32, mTiles : i32, pTiles : i32, ' +
    'splits : i32, chunk : i32, total : i32, os : i32,';
  private readonly values: number[];

  /** `splits` > 1: each workgroup sums one chunk of K and writes its own partial product ([splits, ...output]). */
  constructor(
    private readonly mode: GatedDecoderMode,
    dims: GatedDecoderDims,
    splits = 1,
    oStride = dims.dl,
  ) {
    this.variableNames = [...GATED_DECODER_INPUTS[mode]];
    const shape = gatedDecoderOutputShape(mode, dims);
    this.outputShape = splits > 1 ? [splits, ...shape] : shape;
    const { m, p, k } = productSizes(mode, dims);
    const mTiles = Math.ceil(m / TILE);
    const pTiles = Math.ceil(p / TILE);
    const chunk = Math.ceil(k / splits / STEP) * STEP;
    const total = dims.hq * mTiles * pTiles * splits;
    this.dispatch = [total, 1, 1];
    this.shaderKey = `gtaGatedDecoderTiled_${mode}`;
    this.values = [dims.b, dims.hq, dims.t, dims.dl, dims.c, m, p, k, mTiles, pTiles, splits, chunk, total, oStride];
  }

  uniformValues(): ProgramUniform[] {
    return this.values.map((v) => ({ type: 'int32' as const, data: [v] }));
  }

  getUserCode(): string {
    const prod = PRODUCT[this.mode];
    const uses = GATED_DECODER_INPUTS[this.mode];
    // A's tile element i: (row, k) with k fast, or with the row fast (gradDecoder: o is contiguous in j).
    const aIndex = prod.aRowsFast ? 'let r = i % TILE; let kk = i / TILE;' : 'let kk = i % STEP; let r = i / STEP;';
    // The 4 x 4 sums live in 16 named registers (s0_0 .. s3_3), unrolled here, as are their updates and stores.
    const cells = (line: (i: number, j: number) => string, sep = '\n    ') =>
      [0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => line(i, j))).join(sep);
    return `
const TILE = ${TILE};
const STEP = ${STEP};

var<workgroup> tileA : array<f32, ${TILE * STEP}>;
var<workgroup> tileB : array<f32, ${STEP * TILE}>;

fn oAt(g : i32, n : i32, j : i32) -> i32 {
  let b = n / uniforms.t;
  return ((b * uniforms.hq + g) * uniforms.t + n - b * uniforms.t) * uniforms.dl + j;
}
fn oIn(g : i32, n : i32, j : i32) -> i32 {
  let b = n / uniforms.t;
  return ((b * uniforms.hq + g) * uniforms.t + n - b * uniforms.t) * uniforms.os + j;
}
${uses.includes('DY') ? 'fn e(at : i32) -> f32 { return DY[at] / (1.0 + exp(-G[at])); }' : ''}

fn main(index : i32) {
  let li = i32(localIndex);
  let W = uniforms.hq * uniforms.c;
  ${workgroupCoords(
    [
      ['split', 'uniforms.splits'],
      ['pt', 'uniforms.pTiles'],
      ['mt', 'uniforms.mTiles'],
    ],
    'g',
  )}
  let m0 = mt * TILE;
  let p0 = pt * TILE;
  let tx = li % 8;
  let ty = li / 8;
  ${cells((i, j) => `var s${i}_${j} = 0.0;`, ' ')}
  let kStart = split * uniforms.chunk;
  let kEnd = min(uniforms.k, kStart + uniforms.chunk);
  // A uniform trip count (chunk / STEP, the same in every workgroup) keeps the barriers in uniform control
  // flow; steps past kEnd stage zeros.
  for (var step = 0; step < uniforms.chunk / STEP; step++) {
    let k0 = kStart + step * STEP;
    for (var i = li; i < TILE * STEP; i = i + ${INVOCATIONS}) {
      ${aIndex}
      let m = m0 + r;
      let k = k0 + kk;
      var x = 0.0;
      if (m < uniforms.m && k < kEnd) { x = ${prod.a}; }
      tileA[r * STEP + kk] = x;
    }
    for (var i = li; i < STEP * TILE; i = i + ${INVOCATIONS}) {
      let c = i % TILE;
      let kk = i / TILE;
      let p = p0 + c;
      let k = k0 + kk;
      var x = 0.0;
      if (p < uniforms.p && k < kEnd) { x = ${prod.b}; }
      tileB[kk * TILE + c] = x;
    }
    workgroupBarrier();
    for (var kk = 0; kk < STEP; kk++) {
      ${[0, 1, 2, 3].map((i) => `let a${i} = tileA[(ty + ${8 * i}) * STEP + kk];`).join(' ')}
      ${[0, 1, 2, 3].map((j) => `let b${j} = tileB[kk * TILE + tx + ${8 * j}];`).join(' ')}
      ${cells((i, j) => `s${i}_${j} = s${i}_${j} + a${i} * b${j};`, ' ')}
    }
    workgroupBarrier();
  }
  if (!valid) { return; }
  ${cells(
    (i, j) => `{
    let m = m0 + ty + ${8 * i};
    let p = p0 + tx + ${8 * j};
    if (m < uniforms.m && p < uniforms.p) {
      let acc = s${i}_${j};${prod.epilogue}
    }
  }`,
    '\n  ',
  )}
}
`;
  }
}

/** Sum of `splits` partial results of `count` elements each: `[splits, count]` -> `[count]`. */
class SplitSumProgram extends CountedProgram {
  constructor(outputShape: number[], count: number, splits: number) {
    super(['Partial'], outputShape, 'gtaGatedDecoderSplitSum', count, [['splits', 'i32', splits]]);
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  var acc = 0.0;
  for (var s = 0; s < uniforms.splits; s++) { acc = acc + Partial[s * uniforms.count + index]; }
  result[index] = acc;
}
`;
  }
}

/**
 * Splits of K for the decoder's gradient, whose K is the N rows and whose output is small: enough that
 * about SPLIT_TARGET workgroups run, with at least 8 steps of K each.
 */
const SPLIT_TARGET = 1024;
function gradDecoderSplits(dims: GatedDecoderDims): number {
  const { m, p, k } = productSizes('gradDecoder', dims);
  const blocks = dims.hq * Math.ceil(m / TILE) * Math.ceil(p / TILE);
  return Math.max(1, Math.min(Math.ceil(SPLIT_TARGET / blocks), Math.floor(k / (8 * STEP))));
}

function kernel(mode: GatedDecoderMode) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const backend = args.backend as WebGPUBackendLike;
    const named = args.inputs as Record<string, tf.TensorInfo>;
    const dims = args.attrs as unknown as GatedDecoderDims;
    const splits = mode === 'gradDecoder' ? gradDecoderSplits(dims) : 1;
    // o's rows may be wider than Dl (the fused attention's packed output, its log-sum-exp last): read Dl of each.
    const o = named.O;
    const program = new GatedDecoderProgram(mode, dims, splits, o ? o.shape[o.shape.length - 1] : dims.dl);
    const inputs = GATED_DECODER_INPUTS[mode].map((name) => named[name]);
    const out = backend.runWebGPUProgram(program, inputs, 'float32', program.uniformValues());
    if (splits === 1) return out;
    const shape = gatedDecoderOutputShape(mode, dims);
    const sum = new SplitSumProgram(shape, dims.hq * dims.dl * dims.c, splits);
    const total = backend.runWebGPUProgram(sum, [out], 'float32', sum.uniformValues());
    backend.disposeData(out.dataId);
    return total;
  };
}

/** Registers the four kernels for webgpu and (src/kernels/webgl/gated_decoder.ts) for webgl, once. */
export function registerGatedDecoderKernels(): void {
  registerWebGLGatedDecoderKernels();
  if (tf.getKernel(GATED_DECODER_KERNELS.forward, 'webgpu') !== undefined) return;
  for (const mode of Object.keys(GATED_DECODER_KERNELS) as GatedDecoderMode[])
    tf.registerKernel({ kernelName: GATED_DECODER_KERNELS[mode], backendName: 'webgpu', kernelFunc: kernel(mode) as tf.KernelFunc });
}

/** Why the fused kernels cannot take these inputs, or null when they can. */
export function fusedGatedDecoderUnsupported(o: tf.Tensor, gate: tf.Tensor, delta: tf.Tensor): string | null {
  if ([o, gate, delta].some((x) => x.dtype !== 'float32'))
    return `o, gate and delta must be float32 (got ${o.dtype}, ${gate.dtype}, ${delta.dtype})`;
  if (o.rank !== 4 || gate.rank !== 2 || delta.rank !== 3)
    return `o, gate and delta must have ranks 4, 2 and 3 (got ${o.rank}, ${gate.rank}, ${delta.rank})`;
  const [b, hq, t, dl] = o.shape;
  const [dh, dj, c] = delta.shape;
  if (dh !== hq || dj !== dl || c % dl !== 0) return `delta [${delta.shape}] must be [Hq, Dl, r*Dl] for o [${o.shape}]`;
  if (gate.shape[0] !== b * t || gate.shape[1] !== hq * c) return `gate [${gate.shape}] must be [B*T, Hq*r*Dl] = [${b * t}, ${hq * c}]`;
  if (o.size === 0) return 'o must have at least one element';
  return null;
}

/** Runs kernel `mode` (no gradient of its own); the sizes travel as attrs (gradInput and gradDecoder lack o or Delta). */
export const runGatedDecoder = (mode: GatedDecoderMode, inputs: tf.NamedTensorMap, dims: GatedDecoderDims): tf.Tensor =>
  tf.engine().runKernel(GATED_DECODER_KERNELS[mode], inputs, dims as unknown as tf.NamedAttrMap) as tf.Tensor;

/**
 * `sigmoid(gate) * u` with `u` the latent rows `o` expanded by `R + delta`, [N, W] group-major, through the
 * fused webgpu or webgl kernels, with the fused backward under `tf.customGrad` (three dispatches: the gate,
 * the latent rows and the decoder). Throws a `ValueError` for inputs the kernels do not take
 * (`fusedGatedDecoderUnsupported`); callers check first and fall back to the composed ops.
 */
export function fusedGatedDecoder(o: tf.Tensor4D, gate: tf.Tensor2D, delta: tf.Tensor3D): tf.Tensor2D {
  const why = fusedGatedDecoderUnsupported(o, gate, delta);
  if (why !== null) throw new ValueError(`fused gated decoder: ${why}.`);
  registerGatedDecoderKernels();
  if (tf.getKernel(GATED_DECODER_KERNELS.forward, tf.getBackend()) === undefined)
    throw new ValueError(`fused gated decoder: the fused kernels need the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [O, G, DELTA, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([O, G, DELTA]);
    const dims = gatedDecoderDims(O.shape, DELTA.shape);
    return {
      value: runGatedDecoder('forward', { O, G, DELTA }, dims),
      gradFunc: (DY: tf.Tensor, saved: tf.Tensor[]) => {
        const [so, sg, sd] = saved;
        return [
          runGatedDecoder('gradInput', { G: sg, DELTA: sd, DY }, dims),
          runGatedDecoder('gradGate', { O: so, G: sg, DELTA: sd, DY }, dims),
          runGatedDecoder('gradDecoder', { O: so, G: sg, DY }, dims),
        ];
      },
    };
  });
  return f(o, gate, delta) as tf.Tensor2D;
}
