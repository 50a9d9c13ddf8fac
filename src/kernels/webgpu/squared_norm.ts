/**
 * The squared global L2 norm of many tensors (gradient clipping) on webgpu in few dispatches: up to
 * MAX_INPUTS tensors per dispatch instead of a square and a sum per tensor (124 kernels for the default
 * model's 62 gradients; 11 here).
 *
 * Notation: x_1..x_k the tensors of one dispatch (k <= MAX_INPUTS, any shapes, float32), n_j their
 * sizes, W the dispatch's workgroups, G = W * THREADS its invocations.
 *   GtaSquaredNormPartials  (x_1, ..., x_k) -> partial [W]
 *                           invocation i sums x_j[e]^2 over e = i, i + G, i + 2G, ... < n_j for every j;
 *                           each workgroup reduces its THREADS sums into partial[w]
 *   squared norm            sum(concat(partials of every dispatch))     (two tfjs kernels)
 * A dispatch binds its k inputs and its output as storage buffers; WebGPU's default limit is 8 per
 * shader stage, hence MAX_INPUTS = 7. The order of the additions differs from the composed
 * `sum(square(x))` per tensor, so the two agree to float32 rounding, not bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { registerWebGLSquaredNorm } from '../webgl/squared_norm.js';
import { LINEAR_WORKGROUP, type ProgramUniform, type WebGPUBackendLike, type WebGPUProgram } from './program.js';

/** The registered kernel's name. */
export const SQUARED_NORM_KERNEL = 'GtaSquaredNormPartials';

/** Inputs of one dispatch: with the output, WebGPU's default 8 storage buffers per shader stage. */
export const MAX_INPUTS = 7;

const THREADS = 256;
/** Elements each invocation sums at least (on average) before more workgroups are added. */
const PER_INVOCATION = 16;
/** Most workgroups of one dispatch (enough to fill a large GPU; fewer partials to sum afterwards). */
const MAX_WORKGROUPS = 1024;

/** Workgroups for `total` elements. */
function workgroupsFor(total: number): number {
  return Math.max(1, Math.min(MAX_WORKGROUPS, Math.ceil(total / (THREADS * PER_INVOCATION))));
}

class SquaredNormProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [THREADS, 1, 1];
  uniforms: string;
  size = true;

  constructor(
    private readonly k: number,
    workgroups: number,
  ) {
    this.variableNames = Array.from({ length: k }, (_, j) => `X${j}`);
    this.uniforms = this.variableNames.map((_, j) => `n${j} : i32,`).join(' ');
    this.outputShape = [workgroups];
    this.dispatch = [workgroups, 1, 1];
    this.shaderKey = `gtaSquaredNorm_${k}`;
  }

  getUserCode(): string {
    const loops = this.variableNames
      .map((x, j) => `for (var e = gid; e < uniforms.n${j}; e = e + stride) { let v = ${x}[e]; acc = acc + v * v; }`)
      .join('\n  ');
    return `
var<workgroup> sums : array<f32, ${THREADS}>;

fn main(index : i32) {
  let li = i32(localIndex);
  let wg = ${LINEAR_WORKGROUP};
  let stride = uniforms.size * ${THREADS};
  let gid = wg * ${THREADS} + li;
  var acc = 0.0;
  ${loops}
  sums[li] = acc;
  workgroupBarrier();
  for (var s = ${THREADS / 2}; s > 0; s = s >> 1) {
    if (li < s) { sums[li] = sums[li] + sums[li + s]; }
    workgroupBarrier();
  }
  if (li == 0 && wg < uniforms.size) { result[wg] = sums[0]; }
}
`;
  }
}

function kernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const inputs = Object.keys(args.inputs)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((name) => args.inputs[name]!);
  const sizes = inputs.map((x) => tf.util.sizeFromShape(x.shape));
  const program = new SquaredNormProgram(inputs.length, workgroupsFor(sizes.reduce((a, n) => a + n, 0)));
  const uniforms: ProgramUniform[] = sizes.map((n) => ({ type: 'int32', data: [n] }));
  return backend.runWebGPUProgram(program, inputs, 'float32', uniforms);
}

/** Registers the kernel for the webgpu backend and (src/kernels/webgl/squared_norm.ts) for webgl (once). */
export function registerSquaredNorm(): void {
  registerWebGLSquaredNorm();
  if (tf.getKernel(SQUARED_NORM_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: SQUARED_NORM_KERNEL, backendName: 'webgpu', kernelFunc: kernel as tf.KernelFunc });
}

/** Why the fused kernel cannot take these tensors, or null when it can. */
export function fusedSquaredNormUnsupported(xs: tf.Tensor[]): string | null {
  const bad = xs.findIndex((x) => x.dtype !== 'float32');
  if (bad >= 0) return `tensor ${bad} is ${xs[bad].dtype}; the kernel sums float32 tensors`;
  return null;
}

/**
 * The sum of the squares of every element of `xs` as a scalar, through `GtaSquaredNormPartials` (one
 * dispatch per MAX_INPUTS tensors) and one concat and sum: nothing is read back. Call only where the
 * active backend has the kernel (webgpu, webgl) and `fusedSquaredNormUnsupported(xs)` is null.
 */
export function fusedSquaredNorm(xs: tf.Tensor[]): tf.Scalar;
/** With `total` false: the partial sums (1-D tensors whose sums add up to the result), without the concat and sum. */
export function fusedSquaredNorm(xs: tf.Tensor[], total: false): tf.Tensor1D[];
export function fusedSquaredNorm(xs: tf.Tensor[], total = true): tf.Tensor | tf.Tensor1D[] {
  const why = fusedSquaredNormUnsupported(xs);
  if (why !== null) throw new ValueError(`fused squared norm: ${why}.`);
  registerSquaredNorm();
  if (tf.getKernel(SQUARED_NORM_KERNEL, tf.getBackend()) === undefined)
    throw new ValueError(`fused squared norm: the kernel needs the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  const nonEmpty = xs.filter((x) => x.size > 0);
  if (nonEmpty.length === 0) return total ? tf.scalar(0) : [tf.zeros([1])];
  const partials = tf.tidy(() => {
    const out: tf.Tensor1D[] = [];
    for (let i = 0; i < nonEmpty.length; i += MAX_INPUTS) {
      const chunk = nonEmpty.slice(i, i + MAX_INPUTS);
      const inputs: tf.NamedTensorMap = {};
      chunk.forEach((x, j) => (inputs[`x${j}`] = x));
      out.push(tf.engine().runKernel(SQUARED_NORM_KERNEL, inputs) as tf.Tensor1D); // [workgroups]
    }
    return out;
  });
  if (!total) return partials;
  const sum = tf.tidy(() => tf.sum(partials.length === 1 ? partials[0] : tf.concat(partials)) as tf.Scalar);
  tf.dispose(partials);
  return sum;
}
