/**
 * Fused SwiGLU activation for webgpu, forward and backward: `h = silu(g) * u = g s u` with
 * `s = sigmoid(g)`, as tfjs kernels (registered for webgpu on first use) under one `tf.customGrad`.
 *
 * Notation: g the gate projection, u the up projection, dh the output gradient; any shape, g and u equal.
 *   forward   g [..., I], u [..., I]          -> h [..., I]    one dispatch
 *   dg        g, u, dh                        -> dg [..., I]   one dispatch: dg = dh u s (1 + g (1 - s))
 *   du        g, dh                           -> du [..., I]   one dispatch: du = dh g s
 * One invocation per element (tfjs programs have one output, so dg and du are two dispatches of one shader
 * source; writing both into one buffer would cost a slice kernel each to split).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import type { WebGPUBackendLike, WebGPUProgram } from './program.js';
import { registerWebGLSwiGLUKernels } from '../webgl/swiglu.js';

/** Registered kernel names: forward, gradient of the gate, gradient of the up projection. */
export const SWIGLU_KERNELS = { forward: 'GtaSwiGLU', gradGate: 'GtaSwiGLUGradGate', gradUp: 'GtaSwiGLUGradUp' } as const;

type Mode = 'forward' | 'gradGate' | 'gradUp';

const WORKGROUP = 64;

/** One invocation per element. */
class SwiGLUProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;

  constructor(
    shape: number[],
    private readonly mode: Mode,
  ) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.variableNames = mode === 'forward' ? ['G', 'U'] : mode === 'gradGate' ? ['G', 'U', 'DH'] : ['G', 'DH'];
    this.dispatch = [Math.ceil(shape.reduce((a, x) => a * x, 1) / WORKGROUP), 1, 1];
    this.shaderKey = `gtaSwiGLU_${mode}`;
  }

  getUserCode(): string {
    const value = {
      forward: 'g * s * U[index]',
      gradGate: 'DH[index] * U[index] * s * (1.0 + g * (1.0 - s))',
      gradUp: 'DH[index] * g * s',
    }[this.mode];
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let g = G[index];
  let s = 1.0 / (1.0 + exp(-g));
  result[index] = ${value};
}
`;
  }
}

function kernel(mode: Mode) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo => {
    const backend = args.backend as WebGPUBackendLike;
    const { g, u, dh } = args.inputs;
    const program = new SwiGLUProgram(g!.shape, mode);
    const inputs = [g!, ...(u ? [u] : []), ...(dh ? [dh] : [])];
    return backend.runWebGPUProgram(program, inputs, 'float32');
  };
}

/** Registers the three kernels for the webgpu backend and (src/kernels/webgl/swiglu.ts) for webgl (once). */
export function registerSwiGLUKernels(): void {
  registerWebGLSwiGLUKernels();
  if (tf.getKernel(SWIGLU_KERNELS.forward, 'webgpu') !== undefined) return;
  for (const mode of ['forward', 'gradGate', 'gradUp'] as const)
    tf.registerKernel({ kernelName: SWIGLU_KERNELS[mode], backendName: 'webgpu', kernelFunc: kernel(mode) as tf.KernelFunc });
}

/** Why the fused kernels cannot take these inputs, or null when they can. */
export function fusedSwiGLUUnsupported(gate: tf.Tensor, up: tf.Tensor): string | null {
  if (gate.dtype !== 'float32' || up.dtype !== 'float32') return `gate and up must be float32 (got ${gate.dtype}, ${up.dtype})`;
  if (!tf.util.arraysEqual(gate.shape, up.shape)) return `gate [${gate.shape}] and up [${up.shape}] must have the same shape`;
  if (gate.rank === 0 || gate.size === 0) return 'gate and up must have at least one axis and one element';
  return null;
}

/** Runs the registered kernel of `mode` on `inputs` (no gradient of its own). */
export const runSwiGLU = (mode: keyof typeof SWIGLU_KERNELS, inputs: tf.NamedTensorMap): tf.Tensor =>
  tf.engine().runKernel(SWIGLU_KERNELS[mode], inputs) as tf.Tensor;

/**
 * `silu(gate) * up` through the fused webgpu or webgl kernels, with the fused backward under `tf.customGrad` (two
 * dispatches: dgate and dup). Throws a `ValueError` for inputs the kernels do not take
 * (`fusedSwiGLUUnsupported`); callers check first and fall back to the composed ops.
 */
export function fusedSwiGLU(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  const why = fusedSwiGLUUnsupported(gate, up);
  if (why !== null) throw new ValueError(`fused SwiGLU: ${why}.`);
  registerSwiGLUKernels();
  if (tf.getKernel(SWIGLU_KERNELS.forward, tf.getBackend()) === undefined)
    throw new ValueError(`fused SwiGLU: the fused kernels need the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [g, u, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([g, u]);
    return {
      value: runSwiGLU('forward', { g, u }),
      gradFunc: (dh: tf.Tensor, saved: tf.Tensor[]) => [
        runSwiGLU('gradGate', { g: saved[0], u: saved[1], dh }),
        runSwiGLU('gradUp', { g: saved[0], dh }),
      ],
    };
  });
  return f(gate, up);
}
