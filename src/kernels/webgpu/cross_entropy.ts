/**
 * Softmax cross-entropy from logits and integer targets on webgpu, without a one-hot: two tfjs kernels
 * of our own, registered for webgpu on first use, wrapped in `tf.customGrad`.
 *
 * Notation: N rows (every axis of the logits but the last), V classes (the last axis).
 *   logits   [..., V]  float32, read flat as [N, V]
 *   targets  [...]     integer ids (int32, or float32 holding integers), read flat as [N]
 *   GtaCrossEntropyRows      (logits, targets) -> loss [...]:  loss_i = log(sum_j exp(x_ij)) - x_i,t_i
 *                            one workgroup per row: the row's max, then the sum of exp(x - max)
 *   GtaCrossEntropyGrad      (logits, targets, loss, dy) -> dlogits [..., V]:
 *                            (softmax(x_i) - onehot(t_i)) * dy_i * dyScale, one invocation per element;
 *                            the row's log-sum-exp is recovered as loss_i + x_i,t_i (no second reduction)
 * A target outside [0, V) gives a NaN loss (and NaN gradients) for its row, never a silent value.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { LINEAR_WORKGROUP, type ProgramUniform, type WebGPUBackendLike, type WebGPUProgram } from './program.js';
import { registerWebGLCrossEntropy } from '../webgl/cross_entropy.js';

/** The registered kernels' names. */
export const CROSS_ENTROPY_KERNELS = { rows: 'GtaCrossEntropyRows', grad: 'GtaCrossEntropyGrad' } as const;

const ROW_THREADS = 256;

/** Per-row losses: one workgroup of `ROW_THREADS` invocations per row. */
class CrossEntropyRowsProgram implements WebGPUProgram {
  variableNames = ['Logits', 'Targets'];
  outputShape: number[];
  shaderKey = 'gtaCrossEntropyRows';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [ROW_THREADS, 1, 1];
  uniforms = 'rows : i32, classes : i32,';

  constructor(
    leadShape: number[],
    private readonly rows: number,
    private readonly classes: number,
  ) {
    this.outputShape = leadShape;
    this.dispatch = [rows, 1, 1];
  }

  uniformValues(): ProgramUniform[] {
    return [
      { type: 'int32', data: [this.rows] },
      { type: 'int32', data: [this.classes] },
    ];
  }

  getUserCode(): string {
    return `
const WG = ${ROW_THREADS};
var<workgroup> partial : array<f32, ${ROW_THREADS}>;

// Reduces partial[] to partial[0] with max (useMax) or sum; called in uniform control flow.
fn reduceWorkgroup(li : i32, useMax : bool) {
  for (var stride = WG / 2; stride > 0; stride = stride / 2) {
    workgroupBarrier();
    if (li < stride) {
      let a = partial[li];
      let b = partial[li + stride];
      partial[li] = select(a + b, max(a, b), useMax);
    }
  }
  workgroupBarrier();
}

fn main(index : i32) {
  let li = i32(localIndex);
  let wg = ${LINEAR_WORKGROUP};
  let valid = wg < uniforms.rows;
  let row = min(wg, uniforms.rows - 1);
  let V = uniforms.classes;
  let base = row * V;

  var m = -3.0e38;
  for (var j = li; j < V; j += WG) { m = max(m, Logits[base + j]); }
  partial[li] = m;
  reduceWorkgroup(li, true);
  let rowMax = partial[0];
  workgroupBarrier();

  var s = 0.0;
  for (var j = li; j < V; j += WG) { s = s + exp(Logits[base + j] - rowMax); }
  partial[li] = s;
  reduceWorkgroup(li, false);

  if (li == 0 && valid) {
    let t = i32(Targets[row]);
    if (t >= 0 && t < V) {
      result[row] = log(partial[0]) + rowMax - Logits[base + t];
    } else {
      result[row] = uniforms.NAN;
    }
  }
}
`;
  }
}

/** The gradient: one invocation per logit. */
class CrossEntropyGradProgram implements WebGPUProgram {
  variableNames = ['Logits', 'Targets', 'Loss', 'Dy'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  size = true;
  uniforms = 'classes : i32, dyScale : f32,';

  constructor(
    logitsShape: number[],
    private readonly classes: number,
    private readonly dyScale: number,
    private readonly dyPerRow: boolean,
  ) {
    this.outputShape = logitsShape;
    const size = logitsShape.reduce((a, x) => a * x, 1);
    this.dispatch = [Math.ceil(size / 256), 1, 1];
    this.shaderKey = `gtaCrossEntropyGrad_${dyPerRow ? 'rows' : 'scalar'}`;
  }

  uniformValues(): ProgramUniform[] {
    return [
      { type: 'int32', data: [this.classes] },
      { type: 'float32', data: [this.dyScale] },
    ];
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let V = uniforms.classes;
  let row = index / V;
  let j = index - row * V;
  let t = i32(Targets[row]);
  let dy = Dy[${this.dyPerRow ? 'row' : '0'}] * uniforms.dyScale;
  if (t < 0 || t >= V) {
    result[index] = uniforms.NAN;
    return;
  }
  let lse = Loss[row] + Logits[row * V + t];
  let p = exp(Logits[index] - lse);
  result[index] = (p - select(0.0, 1.0, j == t)) * dy;
}
`;
  }
}

interface RowsAttrs {
  classes: number;
}
interface GradAttrs {
  classes: number;
  dyScale: number;
}

function rowsKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { classes } = args.attrs as unknown as RowsAttrs;
  const { logits, targets } = args.inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const lead = logits.shape.slice(0, -1);
  const rows = lead.reduce((a, x) => a * x, 1);
  const program = new CrossEntropyRowsProgram(lead, rows, classes);
  return backend.runWebGPUProgram(program, [logits, targets], 'float32', program.uniformValues());
}

function gradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { classes, dyScale } = args.attrs as unknown as GradAttrs;
  const { logits, targets, loss, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const perRow = dy.shape.reduce((a, x) => a * x, 1) > 1;
  const program = new CrossEntropyGradProgram(logits.shape, classes, dyScale, perRow);
  return backend.runWebGPUProgram(program, [logits, targets, loss, dy], 'float32', program.uniformValues());
}

/** Registers both kernels for the webgpu backend and (src/kernels/webgl/cross_entropy.ts) for webgl (once). */
export function registerCrossEntropy(): void {
  registerWebGLCrossEntropy();
  if (tf.getKernel(CROSS_ENTROPY_KERNELS.rows, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: CROSS_ENTROPY_KERNELS.rows, backendName: 'webgpu', kernelFunc: rowsKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: CROSS_ENTROPY_KERNELS.grad, backendName: 'webgpu', kernelFunc: gradKernel as tf.KernelFunc });
}

/** Checks shapes and dtypes: logits `[..., V]` float32, targets `[...]` (the logits' leading axes). */
function checkInputs(owner: string, targets: tf.Tensor, logits: tf.Tensor): number {
  if (logits.dtype !== 'float32') throw new ValueError(`${owner}: logits must be float32, got ${logits.dtype}.`);
  if (logits.rank < 2) throw new ValueError(`${owner}: logits must have rank >= 2 ([N, V]), got shape [${logits.shape}].`);
  const lead = logits.shape.slice(0, -1);
  const sameLead = targets.rank === lead.length && targets.shape.every((d, i) => d === lead[i]);
  if (!sameLead)
    throw new ValueError(`${owner}: targets must be integer ids shaped [${lead}] for logits [${logits.shape}], got [${targets.shape}].`);
  if (targets.dtype !== 'int32' && targets.dtype !== 'float32')
    throw new ValueError(`${owner}: targets must be int32 or float32 ids, got ${targets.dtype}.`);
  return logits.shape[logits.rank - 1];
}

/** Per-row losses and the function that maps an upstream gradient to the logits' gradient. */
function rowsWithGrad(targets: tf.Tensor, logits: tf.Tensor, classes: number, dyScale: number) {
  const loss = tf
    .engine()
    .runKernel(CROSS_ENTROPY_KERNELS.rows, { logits, targets }, { classes } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const grad = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor => {
    const [x, t, l] = saved;
    const attrs = { classes, dyScale } as unknown as tf.NamedAttrMap;
    return tf.engine().runKernel(CROSS_ENTROPY_KERNELS.grad, { logits: x, targets: t, loss: l, dy }, attrs) as tf.Tensor;
  };
  return { loss, grad };
}

/**
 * Mean softmax cross-entropy (nats per row) of logits `[..., V]` against integer ids `[...]`, fused on
 * webgpu or webgl: forward is the per-row kernel and a mean (2 kernels), backward one kernel. Differentiable
 * with respect to the logits. Call only where `usesFusedKernel(CROSS_ENTROPY_KERNELS.rows)` (webgpu, webgl).
 */
export function fusedMeanCrossEntropy(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  registerCrossEntropy();
  const classes = checkInputs('fusedMeanCrossEntropy', targets, logits);
  const rows = logits.size / classes;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const { loss, grad } = rowsWithGrad(targets, x, classes, 1 / rows);
    save([x, targets, loss]);
    const value = tf.mean(loss) as tf.Scalar; // the per-row losses are disposed by customGrad's tidy
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => grad(dy, saved) };
  });
  return f(logits) as tf.Scalar;
}

/**
 * Per-row softmax cross-entropy `[...]` of logits `[..., V]` against integer ids `[...]`, fused on webgpu
 * or webgl: one kernel forward, one backward. Differentiable with respect to the logits. Call only where
 * `usesFusedKernel(CROSS_ENTROPY_KERNELS.rows)` (webgpu, webgl).
 */
export function fusedRowCrossEntropy(targets: tf.Tensor, logits: tf.Tensor): tf.Tensor {
  registerCrossEntropy();
  const classes = checkInputs('fusedRowCrossEntropy', targets, logits);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const { loss, grad } = rowsWithGrad(targets, x, classes, 1);
    save([x, targets, loss]);
    return { value: loss, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => grad(dy, saved) };
  });
  return f(logits);
}
