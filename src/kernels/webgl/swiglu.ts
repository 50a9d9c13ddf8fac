/**
 * The fused SwiGLU kernels for webgl, under the same names, inputs and attrs as the webgpu ones
 * (src/kernels/webgpu/swiglu.ts: `GtaSwiGLU`, `GtaSwiGLUGradGate`, `GtaSwiGLUGradUp`), so that the
 * `tf.customGrad` wrapper there runs on either backend. Each is one packed fragment program over the
 * inputs' own shape, four elements per texel, like tfjs's own elementwise ops (an unpacked program over a
 * flat view made tfjs re-lay out every packed input first: on SwiftShader that was slower than the
 * composed ops):
 *   forward   h  = g s u                        (s = sigmoid(g))
 *   gradGate  dg = dh u s (1 + g (1 - s))
 *   gradUp    du = dh g s
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGLBackendLike, WebGLKernelArgs, WebGLProgram } from './program.js';

/** The kernel names, shared with the webgpu kernels. */
const NAMES = { forward: 'GtaSwiGLU', gradGate: 'GtaSwiGLUGradGate', gradUp: 'GtaSwiGLUGradUp' } as const;

type Mode = keyof typeof NAMES;

const VALUE: Record<Mode, string> = {
  forward: 'g * s * getUAtOutCoords()',
  gradGate: 'getDHAtOutCoords() * getUAtOutCoords() * s * (1.0 + g * (1.0 - s))',
  gradUp: 'getDHAtOutCoords() * g * s',
};

function program(mode: Mode, shape: number[]): WebGLProgram {
  const variableNames = mode === 'forward' ? ['G', 'U'] : mode === 'gradGate' ? ['G', 'U', 'DH'] : ['G', 'DH'];
  const userCode = `
void main() {
  vec4 g = getGAtOutCoords();
  vec4 s = 1.0 / (1.0 + exp(-g));
  setOutput(${VALUE[mode]});
}
`;
  return { variableNames, outputShape: shape, userCode, packedInputs: true, packedOutput: true };
}

function kernel(mode: Mode) {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const { g, u, dh } = args.inputs;
    const inputs = [g!, ...(u ? [u] : []), ...(dh ? [dh] : [])];
    return backend.runWebGLProgram(program(mode, g!.shape), inputs, 'float32');
  };
}

/** Registers the three SwiGLU kernels for the webgl backend (once). */
export function registerWebGLSwiGLUKernels(): void {
  if (tf.getKernel(NAMES.forward, 'webgl') !== undefined) return;
  for (const mode of ['forward', 'gradGate', 'gradUp'] as const)
    tf.registerKernel({ kernelName: NAMES[mode], backendName: 'webgl', kernelFunc: kernel(mode) as tf.KernelFunc });
}
