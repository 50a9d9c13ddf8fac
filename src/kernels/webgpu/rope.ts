/**
 * Fused RoPE for webgpu, forward and backward: `y = x * cos + swapHalves(x) * sinSigned` (the rotation of
 * `applyRotaryFactors` in src/ops/rope.ts, `swapHalves([x1, x2]) = [x2, x1]`, `sinSigned = [-sin, sin]`)
 * as one tfjs kernel (registered for webgpu, and for webgl by src/kernels/webgl/rope.ts, on first use) under
 * `tf.customGrad`.
 *
 * Notation: x `[..., d]` (d even), p(j) the partner of dim j (`j + d/2` below d/2, `j - d/2` above),
 * c = cos and s = sinSigned, both `[..., d]` broadcasting over x (each axis 1 or x's), dy the output gradient.
 *   forward    x, c, s  -> y [..., d]    one dispatch: y_j = x_j c_j + x_p(j) s_j
 *   backward   dy, c, s -> dx [..., d]   one dispatch: dx_k = dy_k c_k + dy_p(k) s_p(k)
 * The backward is the transposed rotation (for RoPE's factors, whose halves repeat, the same rotation with
 * the sine negated); it reads s at the partner index, so it is exact for any factors. The factors are
 * constants of the step: no gradient flows to them.
 *
 * `GtaRopeHeads` (webgpu only) is the same rotation for x `[B, T, H, d]` (the projections' layout) with the
 * output written heads first, `[B, H, T, d]` (the attention's layout), in place of a following Transpose;
 * its backward reads dy `[B, H, T, d]` and writes dx `[B, T, H, d]`. The factors broadcast over x as above.
 * Options for the GPU training step (src/train/gpu_step.ts), which would otherwise reshape and slice around it
 * (`HeadsAttrs`): `rotate: false` only moves the heads (a transpose, no factors); `view` reads a flat x
 * `[B T, H d]` as `[B, T, H, d]`; `columns` reads the backward's dy as `d` columns at an offset of each row of a
 * wider `[B, H, T, W]` (the fused attention's packed outputs); `splits` reads it as the sum of the P slices of a
 * `[P, B, H, T, W]` (the attention backward's partial sums); `flat` writes the backward's dx as `[B T, H d]`.
 *
 * Work split: one invocation per element. The broadcast of the factors is resolved in the shader: x's
 * leading axes are grouped (adjacent axes on which the factors are all broadcast, or all full, merge) into
 * at most MAX_GROUPS groups, passed as uniforms with the factors' row stride of each group (0 = broadcast).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import type { ProgramUniform, WebGPUBackendLike, WebGPUProgram } from './program.js';
import { registerWebGLRopeKernel } from '../webgl/rope.js';

/** Registered kernel name (the forward and, with `transpose`, the backward). */
export const ROPE_KERNEL = 'GtaRope';

/** Registered kernel name of the heads-first variant (webgpu only): x `[B, T, H, d]` -> `[B, H, T, d]`. */
export const ROPE_HEADS_KERNEL = 'GtaRopeHeads';

/**
 * Where the program reads and writes: `same` layout; `toHeads` reads x `[B, T, H, d]` and writes `[B, H, T, d]`
 * (forward); `fromHeads` reads dy `[B, H, T, d]` and writes dx `[B, T, H, d]` (backward).
 */
type Layout = 'same' | 'toHeads' | 'fromHeads';

/** Groups of leading axes the shader resolves; factor layouts needing more fall back to the composed ops. */
const MAX_GROUPS = 4;

const WORKGROUP = 64;

interface RopeAttrs {
  transpose: boolean;
}

/** `GtaRopeHeads`' attrs (see the header): all but `transpose` optional. */
export interface HeadsAttrs extends RopeAttrs {
  /** Rotate (default) or only move the heads; without rotation the kernel takes x alone. */
  rotate?: boolean;
  /** Forward: the `[B, T, H, d]` view of x (of any shape with as many elements). */
  view?: number[];
  /** Backward: read `[offset, width]` of dy's last axis, `[B, H, T, W]` -> `[B, H, T, width]`. */
  columns?: [number, number];
  /** Backward: write dx as `[B T, H d]`. */
  flat?: boolean;
  /** Backward: dy is `[P, B, H, T, W]`, read as the sum over P (P = splits). */
  splits?: number;
}

/** x's leading axes as at most MAX_GROUPS groups: sizes and the factors' row strides (0 = broadcast). */
interface Groups {
  sizes: number[];
  strides: number[];
}

/** Groups x's leading axes by whether the factors (right-aligned) broadcast over them, or null if they cannot. */
function groupAxes(xShape: number[], fShape: number[]): Groups | null {
  const lead = xShape.length - 1;
  const padded = [...new Array<number>(Math.max(0, xShape.length - fShape.length)).fill(1), ...fShape];
  if (padded.length !== xShape.length || padded[lead] !== xShape[lead]) return null;
  const sizes: number[] = [];
  const full: boolean[] = [];
  for (let a = 0; a < lead; a++) {
    const n = xShape[a];
    const f = padded[a];
    if (f !== 1 && f !== n) return null;
    if (n === 1) continue; // contributes nothing
    const isFull = f === n;
    if (sizes.length > 0 && full[full.length - 1] === isFull) sizes[sizes.length - 1] *= n;
    else {
      sizes.push(n);
      full.push(isFull);
    }
  }
  if (sizes.length > MAX_GROUPS) return null;
  while (sizes.length < MAX_GROUPS) {
    sizes.unshift(1);
    full.unshift(false);
  }
  const strides = new Array<number>(MAX_GROUPS).fill(0);
  let rowStride = 1;
  for (let g = MAX_GROUPS - 1; g >= 0; g--) {
    if (!full[g]) continue;
    strides[g] = rowStride;
    rowStride *= sizes[g];
  }
  return { sizes, strides };
}

/** One invocation per element of x. */
class RopeProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;
  uniforms: string;

  /**
   * `xShape`: the shape in x's layout (`[B, T, H, d]` for the heads layouts), which the factors' `groups` describe
   * (null without rotation); `input` the input's row stride and column offset (heads layouts: `[d, 0]` unless
   * `columns` says otherwise); `flat` writes the output as 2-D.
   */
  constructor(
    private readonly xShape: number[],
    private readonly groups: Groups | null,
    private readonly transpose: boolean,
    private readonly layout: Layout = 'same',
    private readonly input: [number, number] = [xShape[xShape.length - 1], 0],
    flat = false,
    private readonly splits = 1,
  ) {
    const [b, t, h, d] = xShape;
    const shape = layout === 'toHeads' ? [b, h, t, d] : xShape;
    this.outputShape = flat ? [b * t, h * d] : shape;
    this.variableNames = groups === null ? ['X'] : ['X', 'C', 'S'];
    this.dispatchLayout = { x: this.outputShape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, x) => a * x, 1) / WORKGROUP), 1, 1];
    const kind = `${transpose}${groups === null ? '_move' : ''}${splits > 1 ? '_splits' : ''}`;
    this.shaderKey = layout === 'same' ? `gtaRope_${kind}` : `gtaRope_${kind}_${layout}`;
    const heads = layout === 'same' ? '' : ' t : i32, h : i32, xStride : i32, xOffset : i32, splits : i32, splitStride : i32,';
    this.uniforms = `d : i32, n1 : i32, n2 : i32, n3 : i32, f0 : i32, f1 : i32, f2 : i32, f3 : i32,${heads}`;
  }

  /** The uniform values of this run. */
  uniformValues(): ProgramUniform[] {
    const d = this.xShape[this.xShape.length - 1];
    const { sizes, strides } = this.groups ?? { sizes: [1, 1, 1, 1], strides: [0, 0, 0, 0] };
    // One split's elements: the [B, H, T] rows of `xStride` values each.
    const splitStride = this.xShape[0] * this.xShape[1] * this.xShape[2] * this.input[0];
    const heads = this.layout === 'same' ? [] : [this.xShape[1], this.xShape[2], ...this.input, this.splits, splitStride];
    return [d, sizes[1], sizes[2], sizes[3], ...strides, ...heads].map((v) => ({ type: 'int32', data: [v] }));
  }

  /** WGSL: `xRow` (the row in x's layout, which picks the factors) and `inRow` (the row of the input X). */
  private rows(): string {
    if (this.layout === 'toHeads') {
      // output row (b, h, t) of [B, H, T] <- x row (b, t, h) of [B, T, H]
      return `let oRow = index / d;
  let tt = oRow % uniforms.t;
  let bh = oRow / uniforms.t;
  let xRow = ((bh / uniforms.h) * uniforms.t + tt) * uniforms.h + bh % uniforms.h;
  let inRow = xRow;`;
    }
    if (this.layout === 'fromHeads') {
      // output row (b, t, h) of [B, T, H] <- dy row (b, h, t) of [B, H, T]
      return `let xRow = index / d;
  let hh = xRow % uniforms.h;
  let bt = xRow / uniforms.h;
  let inRow = ((bt / uniforms.t) * uniforms.h + hh) * uniforms.t + bt % uniforms.t;`;
    }
    return `let xRow = index / d;
  let inRow = xRow;`;
  }

  getUserCode(): string {
    // Where row `inRow` of the input starts: heads layouts read rows of `xStride` at `xOffset`.
    const start = this.layout === 'same' ? 'inRow * d' : 'inRow * uniforms.xStride + uniforms.xOffset';
    // x's element at flat index i: with splits, the sum of the P slices' elements.
    const xAt =
      this.splits > 1
        ? `fn xAt(i : i32) -> f32 {
  var v = 0.0;
  for (var s = 0; s < uniforms.splits; s++) { v = v + X[s * uniforms.splitStride + i]; }
  return v;
}`
        : 'fn xAt(i : i32) -> f32 { return X[i]; }';
    if (this.groups === null) {
      return `
${xAt}
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let d = uniforms.d;
  let j = index % d;
  ${this.rows()}
  result[index] = xAt(${start} + j);
}
`;
    }
    const sine = this.transpose ? 'S[fRow * d + p]' : 'S[fRow * d + j]';
    return `
${xAt}
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let d = uniforms.d;
  let half = d / 2;
  let j = index % d;
  ${this.rows()}
  var row = xRow;
  let i3 = row % uniforms.n3;
  row = row / uniforms.n3;
  let i2 = row % uniforms.n2;
  row = row / uniforms.n2;
  let i1 = row % uniforms.n1;
  let i0 = row / uniforms.n1;
  let fRow = i0 * uniforms.f0 + i1 * uniforms.f1 + i2 * uniforms.f2 + i3 * uniforms.f3;
  let p = select(j - half, j + half, j < half);
  let at = ${start};
  result[index] = xAt(at + j) * C[fRow * d + j] + xAt(at + p) * ${sine};
}
`;
  }
}

function ropeKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { x, cos, sinSigned } = args.inputs;
  const groups = groupAxes(x!.shape, cos!.shape);
  if (groups === null)
    throw new ValueError(`${ROPE_KERNEL}: factors [${cos!.shape}] do not broadcast over x [${x!.shape}] in the fused layout.`);
  const program = new RopeProgram(x!.shape, groups, (args.attrs as unknown as RopeAttrs).transpose);
  return backend.runWebGPUProgram(program, [x!, cos!, sinSigned!], 'float32', program.uniformValues());
}

/**
 * `GtaRopeHeads`: x `[B, T, H, d]` -> `[B, H, T, d]`, or with `transpose` dy `[B, H, T, d]` -> dx `[B, T, H, d]`;
 * `HeadsAttrs` for the other layouts.
 */
function ropeHeadsKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { x, cos, sinSigned } = args.inputs;
  const attrs = args.attrs as unknown as HeadsAttrs;
  const rotate = attrs.rotate !== false;
  const transpose = attrs.transpose;
  const splits = transpose ? (attrs.splits ?? 1) : 1;
  if (splits > 1 && (x!.shape.length !== 5 || x!.shape[0] !== splits))
    throw new ValueError(`${ROPE_HEADS_KERNEL}: with splits ${splits}, dy must be [${splits}, B, H, T, W] (got [${x!.shape}]).`);
  const given = transpose ? (splits > 1 ? x!.shape.slice(1) : x!.shape) : (attrs.view ?? x!.shape);
  const size = given.reduce((a, n) => a * n, 1);
  if (given.length !== 4 || (!transpose && size !== x!.shape.reduce((a, n) => a * n, 1)))
    throw new ValueError(`${ROPE_HEADS_KERNEL}: x [${x!.shape}] is not a [B, T, H, d] (or its view [${attrs.view}]).`);
  const [b, first, second, w] = given;
  const [offset, d] = transpose && attrs.columns ? attrs.columns : [0, w];
  if (offset < 0 || offset + d > w) throw new ValueError(`${ROPE_HEADS_KERNEL}: columns [${attrs.columns}] exceed dy's last axis (${w}).`);
  const xShape = transpose ? [b, second, first, d] : given; // dy is [B, H, T, W]
  const groups = rotate ? groupAxes(xShape, cos!.shape) : null;
  if (rotate && groups === null)
    throw new ValueError(`${ROPE_HEADS_KERNEL}: factors [${cos!.shape}] do not broadcast over x [${xShape}] in the fused layout.`);
  const program = new RopeProgram(
    xShape,
    groups,
    transpose,
    transpose ? 'fromHeads' : 'toHeads',
    [w, offset],
    transpose && attrs.flat === true,
    splits,
  );
  return backend.runWebGPUProgram(program, rotate ? [x!, cos!, sinSigned!] : [x!], 'float32', program.uniformValues());
}

/** Registers the kernels for the webgpu backend and the webgl version of `GtaRope` (src/kernels/webgl/rope.ts), once. */
export function registerRopeKernel(): void {
  registerWebGLRopeKernel();
  if (tf.getKernel(ROPE_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: ROPE_KERNEL, backendName: 'webgpu', kernelFunc: ropeKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: ROPE_HEADS_KERNEL, backendName: 'webgpu', kernelFunc: ropeHeadsKernel as unknown as tf.KernelFunc });
}

/** Why the fused kernel cannot take these inputs, or null when it can. */
export function fusedRopeUnsupported(x: tf.Tensor, cos: tf.Tensor, sinSigned: tf.Tensor): string | null {
  if (x.dtype !== 'float32' || cos.dtype !== 'float32' || sinSigned.dtype !== 'float32')
    return `x and the factors must be float32 (got ${x.dtype}, ${cos.dtype}, ${sinSigned.dtype})`;
  if (x.rank < 1 || x.size === 0) return 'x must have at least one element and one axis';
  const d = x.shape[x.rank - 1];
  if (d % 2 !== 0) return `the last axis of x (${d}) must be even`;
  if (!tf.util.arraysEqual(cos.shape, sinSigned.shape))
    return `cos [${cos.shape}] and sinSigned [${sinSigned.shape}] must have the same shape`;
  if (cos.rank > x.rank || groupAxes(x.shape, cos.shape) === null)
    return `the factors [${cos.shape}] must broadcast over x [${x.shape}] (each axis 1 or x's, the last equal, at most ${MAX_GROUPS} groups of axes)`;
  return null;
}

const run = (kernel: string, inputs: tf.NamedTensorMap, transpose: boolean): tf.Tensor =>
  tf.engine().runKernel(kernel, inputs, { transpose } as unknown as tf.NamedAttrMap) as tf.Tensor;

/**
 * `kernel` (`GtaRope` or `GtaRopeHeads`) on x forward, and with `transpose` on dy as x's gradient, under
 * `tf.customGrad`; the factors get no gradient.
 */
function rotationWithGradient(kernel: string, x: tf.Tensor, cos: tf.Tensor, sinSigned: tf.Tensor): tf.Tensor {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xs, save] = args as [tf.Tensor, tf.GradSaveFunc];
    // Saved (shared, not copied) so that the backward outlives a RotaryStep disposed after the forward.
    save([cos, sinSigned]);
    return {
      value: run(kernel, { x: xs, cos, sinSigned }, false),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => run(kernel, { x: dy, cos: saved[0], sinSigned: saved[1] }, true),
    };
  });
  return f(x);
}

/** Why `fusedRopeToHeads` cannot take these inputs, or null when it can. */
export function fusedRopeToHeadsUnsupported(x: tf.Tensor, cos: tf.Tensor, sinSigned: tf.Tensor): string | null {
  if (x.rank !== 4) return `x must be [B, T, H, d] (got rank ${x.rank})`;
  return fusedRopeUnsupported(x, cos, sinSigned);
}

/**
 * `transpose(x * cos + swapHalves(x) * sinSigned, [0, 2, 1, 3])` for x `[B, T, H, d]`: the rotation written
 * heads first, `[B, H, T, d]`, in one webgpu dispatch, with the transposed rotation written back in x's layout
 * (one dispatch) as its gradient under `tf.customGrad`; the factors get no gradient. Throws a `ValueError`
 * for inputs the kernel does not take (`fusedRopeToHeadsUnsupported`) or on a backend without the kernel
 * (it exists for webgpu only).
 */
export function fusedRopeToHeads(x: tf.Tensor4D, cos: tf.Tensor, sinSigned: tf.Tensor): tf.Tensor4D {
  const why = fusedRopeToHeadsUnsupported(x, cos, sinSigned);
  if (why !== null) throw new ValueError(`fused RoPE (heads first): ${why}.`);
  registerRopeKernel();
  if (tf.getKernel(ROPE_HEADS_KERNEL, tf.getBackend()) === undefined)
    throw new ValueError(`fused RoPE (heads first): the kernel needs the webgpu backend (active backend is ${tf.getBackend()}).`);
  return rotationWithGradient(ROPE_HEADS_KERNEL, x, cos, sinSigned) as tf.Tensor4D; // [B, T, H, d] -> [B, H, T, d]
}

/**
 * `x * cos + swapHalves(x) * sinSigned` through the fused webgpu kernel (one dispatch), with the transposed
 * rotation (one dispatch) as its gradient wrt x under `tf.customGrad`; the factors get no gradient. Runs on
 * webgpu and webgl (one packed fragment program each way, src/kernels/webgl/rope.ts). Throws a `ValueError`
 * for inputs the kernel does not take (`fusedRopeUnsupported`) or on a backend without the kernel; callers
 * check first and fall back to the composed ops.
 */
export function fusedRope(x: tf.Tensor, cos: tf.Tensor, sinSigned: tf.Tensor): tf.Tensor {
  const why = fusedRopeUnsupported(x, cos, sinSigned);
  if (why !== null) throw new ValueError(`fused RoPE: ${why}.`);
  registerRopeKernel();
  if (tf.getKernel(ROPE_KERNEL, tf.getBackend()) === undefined)
    throw new ValueError(`fused RoPE: the fused kernel needs the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  return rotationWithGradient(ROPE_KERNEL, x, cos, sinSigned);
}
