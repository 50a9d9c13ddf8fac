/**
 * Fused RMSNorm for webgpu, forward and backward: `y = x * r * gain` with `r = rsqrt(mean(x^2) + eps)`
 * per row, as three tfjs kernels (registered for webgpu on first use) under one `tf.customGrad`.
 *
 * Notation: N rows (the product of every axis but the last), D row length (the last axis), r the row's
 * reciprocal RMS, g the gain (all ones when there is none), dy the output gradient.
 *   forward   x [..., D], gain [D] (optional)              -> y [..., D]        one dispatch
 *   dx        x [..., D], dy [..., D], gain [D] (optional) -> dx [..., D]       one dispatch
 *             dx = r g dy - x r^3 / D * sum_row(dy g x)  (+ residual [..., D], optional on webgpu: the gradient
 *             that reaches x around the norm in a pre-norm block, added in the same pass)
 *   dgain     x [..., D], dy [..., D]                      -> dgain [D]         two dispatches
 *             partial [P, D] = sum over each block of GAIN_ROWS rows of dy x r  (P = ceil(N / GAIN_ROWS))
 *             dgain = sum_blocks(partial)
 *
 * Work split: forward and dx run one workgroup of ROW_THREADS invocations per row; each invocation
 * strides over the row, the partial sums are reduced in workgroup memory, then the row is written.
 * dgain's first dispatch runs one workgroup per block of GAIN_ROWS rows: it recomputes the block's r
 * (GAIN_THREADS / GAIN_ROWS invocations per row), then each invocation sums `dy x r` down the block for
 * its columns; the second dispatch sums the P partials of each column. (A first version in one dispatch,
 * one workgroup per 64 columns walking every row, ran only D / 64 workgroups: forward and backward with gain
 * took 21.5 ms for N = D = 4096 on the H200, 2.6 ms with the two dispatches.)
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { LINEAR_WORKGROUP, type ProgramUniform, type WebGPUBackendLike, type WebGPUProgram } from './program.js';
import { registerWebGLRmsNormKernels, WEBGL_RMS_NORM_MAX_DIM } from '../webgl/rms_norm.js';

/** Registered kernel names: forward, gradient of the input, gradient of the gain. */
export const RMS_NORM_KERNELS = { forward: 'GtaRmsNorm', gradInput: 'GtaRmsNormGradInput', gradGain: 'GtaRmsNormGradGain' } as const;

/**
 * Longest row (last axis) the fused kernels take; longer rows use the composed ops. One workgroup of
 * ROW_THREADS invocations walks a row, so a few very long rows would leave most of the GPU idle, where the
 * composed reductions spread a row over workgroups; 8192 is twice the widest row measured on the H200.
 */
export const RMS_NORM_MAX_DIM = 8192;

const ROW_THREADS = 128;
const GAIN_ROWS = 32;
const GAIN_THREADS = 256;

/** WGSL: reduce `red[0..n)` into `red[0]` (every invocation of the workgroup must call it). */
function reduceSnippet(n: number, arrays: string[]): string {
  const adds = arrays.map((a) => `${a}[li] = ${a}[li] + ${a}[li + s];`).join(' ');
  return `for (var s = ${n / 2}; s > 0; s = s >> 1) {
    if (li < s) { ${adds} }
    workgroupBarrier();
  }`;
}

/** One workgroup per row: the forward (`y`) or the input gradient (`dx`). */
class RmsNormRowProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [ROW_THREADS, 1, 1];
  uniforms = 'rows : i32, D : i32, eps : f32,';

  constructor(
    shape: number[],
    private readonly mode: 'forward' | 'gradInput',
    private readonly hasGain: boolean,
    private readonly eps: number,
    private readonly hasResidual = false,
  ) {
    this.outputShape = shape;
    this.variableNames = mode === 'forward' ? ['X'] : ['X', 'DY'];
    if (hasGain) this.variableNames.push('G');
    if (hasResidual) this.variableNames.push('RES');
    this.dispatch = [this.rows(), 1, 1];
    this.shaderKey = `gtaRmsNorm_${mode}_${hasGain}${hasResidual ? '_residual' : ''}`;
  }

  private rows(): number {
    const d = this.outputShape[this.outputShape.length - 1];
    return this.outputShape.reduce((a, x) => a * x, 1) / d;
  }

  /** The uniform values of this run. */
  uniformValues(): ProgramUniform[] {
    const d = this.outputShape[this.outputShape.length - 1];
    return [
      { type: 'int32', data: [this.rows()] },
      { type: 'int32', data: [d] },
      { type: 'float32', data: [this.eps] },
    ];
  }

  getUserCode(): string {
    const gain = (j: string) => (this.hasGain ? `G[${j}]` : '1.0');
    const forward = this.mode === 'forward';
    const accumulate = forward ? '' : `dotAcc = dotAcc + DY[at + j] * ${gain('j')} * v;`;
    const write = forward
      ? `result[at + j] = X[at + j] * r * ${gain('j')};`
      : `result[at + j] = r * ${gain('j')} * DY[at + j] - X[at + j] * k${this.hasResidual ? ' + RES[at + j]' : ''};`;
    return `
var<workgroup> ssq : array<f32, ${ROW_THREADS}>;
var<workgroup> dots : array<f32, ${ROW_THREADS}>;

fn main(index : i32) {
  let li = i32(localIndex);
  let wg = ${LINEAR_WORKGROUP};
  let valid = wg < uniforms.rows;
  let D = uniforms.D;
  let at = min(wg, uniforms.rows - 1) * D;
  var sq = 0.0;
  var dotAcc = 0.0;
  for (var j = li; j < D; j = j + ${ROW_THREADS}) {
    let v = X[at + j];
    sq = sq + v * v;
    ${accumulate}
  }
  ssq[li] = sq;
  dots[li] = dotAcc;
  workgroupBarrier();
  ${reduceSnippet(ROW_THREADS, forward ? ['ssq'] : ['ssq', 'dots'])}
  let r = 1.0 / sqrt(ssq[0] / f32(D) + uniforms.eps);
  let k = r * r * r * dots[0] / f32(D);
  if (!valid) { return; }
  for (var j = li; j < D; j = j + ${ROW_THREADS}) {
    ${write}
  }
}
`;
  }
}

/** One workgroup per block of GAIN_ROWS rows: that block's partial `dgain`, `sum over its rows of dy x r`. */
class RmsNormGainPartialProgram implements WebGPUProgram {
  variableNames = ['X', 'DY'];
  outputShape: number[];
  shaderKey = 'gtaRmsNorm_gradGainPartial';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [GAIN_THREADS, 1, 1];
  uniforms = 'rows : i32, D : i32, eps : f32, blocks : i32,';

  constructor(
    private readonly rows: number,
    private readonly d: number,
    private readonly eps: number,
  ) {
    const blocks = Math.ceil(rows / GAIN_ROWS);
    this.outputShape = [blocks, d];
    this.dispatch = [blocks, 1, 1];
  }

  /** The uniform values of this run. */
  uniformValues(): ProgramUniform[] {
    return [
      { type: 'int32', data: [this.rows] },
      { type: 'int32', data: [this.d] },
      { type: 'float32', data: [this.eps] },
      { type: 'int32', data: [this.outputShape[0]] },
    ];
  }

  getUserCode(): string {
    const lanes = GAIN_THREADS / GAIN_ROWS;
    return `
var<workgroup> squares : array<f32, ${GAIN_THREADS}>;
var<workgroup> rs : array<f32, ${GAIN_ROWS}>;

fn main(index : i32) {
  let li = i32(localIndex);
  let wg = ${LINEAR_WORKGROUP};
  let valid = wg < uniforms.blocks;
  let N = uniforms.rows;
  let D = uniforms.D;
  let firstRow = min(wg, uniforms.blocks - 1) * ${GAIN_ROWS};
  // r of the block's rows: ${lanes} invocations per row, then one adds their sums.
  let rowInBlock = li / ${lanes};
  let lane = li % ${lanes};
  let row = firstRow + rowInBlock;
  var sq = 0.0;
  if (row < N) {
    for (var j = lane; j < D; j = j + ${lanes}) { let v = X[row * D + j]; sq = sq + v * v; }
  }
  squares[li] = sq;
  workgroupBarrier();
  if (lane == 0) {
    var total = 0.0;
    for (var l = 0; l < ${lanes}; l = l + 1) { total = total + squares[li + l]; }
    rs[rowInBlock] = 1.0 / sqrt(total / f32(D) + uniforms.eps);
  }
  workgroupBarrier();
  if (!valid) { return; }
  let count = min(${GAIN_ROWS}, N - firstRow);
  for (var j = li; j < D; j = j + ${GAIN_THREADS}) {
    var colSum = 0.0;
    for (var i = 0; i < count; i = i + 1) {
      let at = (firstRow + i) * D + j;
      colSum = colSum + DY[at] * X[at] * rs[i];
    }
    result[wg * D + j] = colSum;
  }
}
`;
  }
}

/** One invocation per column: `dgain = sum over blocks of the partials`. */
class RmsNormGainSumProgram implements WebGPUProgram {
  variableNames = ['Part'];
  outputShape: number[];
  shaderKey = 'gtaRmsNorm_gradGainSum';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  uniforms = 'blocks : i32,';

  constructor(
    private readonly blocks: number,
    d: number,
  ) {
    this.outputShape = [d];
    this.dispatch = [Math.ceil(d / 64), 1, 1];
  }

  /** The uniform values of this run. */
  uniformValues(): ProgramUniform[] {
    return [{ type: 'int32', data: [this.blocks] }];
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  var total = 0.0;
  for (var b = 0; b < uniforms.blocks; b = b + 1) { total = total + Part[b * uniforms.size + index]; }
  result[index] = total;
}
`;
  }
}

interface RmsNormAttrs {
  epsilon: number;
}

function rowKernel(mode: 'forward' | 'gradInput') {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const backend = args.backend as WebGPUBackendLike;
    const { x, dy, gain, residual } = args.inputs;
    const eps = (args.attrs as unknown as RmsNormAttrs).epsilon;
    const program = new RmsNormRowProgram(x!.shape, mode, gain !== undefined, eps, residual !== undefined);
    if (residual && !tf.util.arraysEqual(residual.shape, x!.shape))
      throw new ValueError(`${RMS_NORM_KERNELS.gradInput}: residual [${residual.shape}] must have x's shape [${x!.shape}].`);
    const inputs = [x!, ...(dy ? [dy] : []), ...(gain ? [gain] : []), ...(residual ? [residual] : [])];
    return backend.runWebGPUProgram(program, inputs, 'float32', program.uniformValues());
  };
}

function gainGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { x, dy } = args.inputs;
  const d = x!.shape[x!.shape.length - 1];
  const rows = x!.shape.reduce((a, v) => a * v, 1) / d;
  const partialProgram = new RmsNormGainPartialProgram(rows, d, (args.attrs as unknown as RmsNormAttrs).epsilon);
  const partial = backend.runWebGPUProgram(partialProgram, [x!, dy!], 'float32', partialProgram.uniformValues());
  const sumProgram = new RmsNormGainSumProgram(partialProgram.outputShape[0], d);
  const out = backend.runWebGPUProgram(sumProgram, [partial], 'float32', sumProgram.uniformValues());
  backend.disposeData(partial.dataId);
  return out;
}

/** Registers the three kernels for the webgpu backend and (src/kernels/webgl/rms_norm.ts) for webgl (once). */
export function registerRmsNormKernels(): void {
  registerWebGLRmsNormKernels();
  if (tf.getKernel(RMS_NORM_KERNELS.forward, 'webgpu') !== undefined) return;
  const register = (kernelName: string, kernelFunc: unknown) =>
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc });
  register(RMS_NORM_KERNELS.forward, rowKernel('forward'));
  register(RMS_NORM_KERNELS.gradInput, rowKernel('gradInput'));
  register(RMS_NORM_KERNELS.gradGain, gainGradKernel);
}

/** Why the fused kernels cannot take these inputs, or null when they can. */
export function fusedRmsNormUnsupported(x: tf.Tensor, gain: tf.Tensor | null): string | null {
  if (x.dtype !== 'float32') return `x must be float32 (got ${x.dtype})`;
  if (x.rank < 1 || x.size === 0) return 'x must have at least one element and one axis';
  const d = x.shape[x.rank - 1];
  const maxDim = tf.getBackend() === 'webgl' ? WEBGL_RMS_NORM_MAX_DIM : RMS_NORM_MAX_DIM;
  if (d > maxDim) return `the last axis (${d}) must be at most ${maxDim}`;
  if (gain !== null && (gain.dtype !== 'float32' || gain.rank !== 1 || gain.shape[0] !== d))
    return `gain must be float32 of shape [${d}] (got ${gain.dtype} [${gain.shape}])`;
  return null;
}

/** Runs the registered kernel `name` (`RMS_NORM_KERNELS`) on `inputs` with `epsilon` (no gradient of its own). */
export function runRmsNorm(name: string, inputs: tf.NamedTensorMap, epsilon: number): tf.Tensor {
  const attrs: RmsNormAttrs = { epsilon };
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * `x * rsqrt(mean(x^2, -1) + epsilon) * gain` through the fused webgpu or webgl kernels, with the fused backward
 * under `tf.customGrad` (dx: one dispatch; dgain: two more). Throws a `ValueError` for inputs the kernels
 * do not take (`fusedRmsNormUnsupported`); callers check first and fall back to the composed ops.
 */
export function fusedRmsNorm(x: tf.Tensor, gain: tf.Tensor | null, epsilon: number): tf.Tensor {
  const why = fusedRmsNormUnsupported(x, gain);
  if (why !== null) throw new ValueError(`fused rmsNorm: ${why}.`);
  registerRmsNormKernels();
  if (tf.getKernel(RMS_NORM_KERNELS.forward, tf.getBackend()) === undefined)
    throw new ValueError(`fused rmsNorm: the fused kernels need the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  if (gain === null) {
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [xs, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([xs]);
      return {
        value: runRmsNorm(RMS_NORM_KERNELS.forward, { x: xs }, epsilon),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [runRmsNorm(RMS_NORM_KERNELS.gradInput, { x: saved[0], dy }, epsilon)],
      };
    });
    return f(x);
  }
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xs, g, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xs, g]);
    return {
      value: runRmsNorm(RMS_NORM_KERNELS.forward, { x: xs, gain: g }, epsilon),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        runRmsNorm(RMS_NORM_KERNELS.gradInput, { x: saved[0], dy, gain: saved[1] }, epsilon),
        runRmsNorm(RMS_NORM_KERNELS.gradGain, { x: saved[0], dy }, epsilon),
      ],
    };
  });
  return f(x, gain);
}
