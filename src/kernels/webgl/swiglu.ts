/**
 * The fused SwiGLU kernels for webgl, under the same names, inputs and attrs as the webgpu ones
 * (src/kernels/webgpu/swiglu.ts: `GtaSwiGLU`, `GtaSwiGLUGradGate`, `GtaSwiGLUGradUp`), so that the
 * `tf.customGrad` wrapper there runs on either backend. Each is one fragment program, one texel per
 * element, over the inputs viewed flat:
 *   forward   h  = g s u                        (s = sigmoid(g))
 *   gradGate  dg = dh u s (1 + g (1 - s))
 *   gradUp    du = dh g s
 */
import * as tf from '@tensorflow/tfjs';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names, shared with the webgpu kernels. */
const NAMES = { forward: 'GtaSwiGLU', gradGate: 'GtaSwiGLUGradGate', gradUp: 'GtaSwiGLUGradUp' } as const;

type Mode = keyof typeof NAMES;

const VALUE: Record<Mode, string> = {
  forward: 'g * s * getU(i)',
  gradGate: 'getDH(i) * getU(i) * s * (1.0 + g * (1.0 - s))',
  gradUp: 'getDH(i) * g * s',
};

function program(mode: Mode, size: number): WebGLProgram {
  const variableNames = mode === 'forward' ? ['G', 'U'] : mode === 'gradGate' ? ['G', 'U', 'DH'] : ['G', 'DH'];
  const userCode = `
void main() {
  int i = getOutputCoords();
  float g = getG(i);
  float s = 1.0 / (1.0 + exp(-g));
  setOutput(${VALUE[mode]});
}
`;
  return { variableNames, outputShape: [size], userCode };
}

function kernel(mode: Mode) {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const { g, u, dh } = args.inputs;
    const inputs = [g!, ...(u ? [u] : []), ...(dh ? [dh] : [])];
    const size = sizeOf(g!.shape);
    return runReshaped(
      backend,
      program(mode, size),
      inputs,
      inputs.map(() => [size]),
      g!.shape,
    );
  };
}

/** Registers the three SwiGLU kernels for the webgl backend (once). */
export function registerWebGLSwiGLUKernels(): void {
  if (tf.getKernel(NAMES.forward, 'webgl') !== undefined) return;
  for (const mode of ['forward', 'gradGate', 'gradUp'] as const)
    tf.registerKernel({ kernelName: NAMES[mode], backendName: 'webgl', kernelFunc: kernel(mode) as tf.KernelFunc });
}
