/**
 * The squared global norm's partial sums for webgl, under the name, inputs and output of the webgpu
 * kernel (src/kernels/webgpu/squared_norm.ts: `GtaSquaredNormPartials`), so that `fusedSquaredNorm` there
 * runs on either backend.
 *
 * Notation: x_1..x_k the tensors of one call (k <= MAX_INPUTS), each viewed flat as `[n_j]`, W the
 * output's length.
 *   GtaSquaredNormPartials  (x_1, ..., x_k) -> partial [W]: texel i sums x_j[e]^2 over e = i, i + W,
 *                           i + 2W, ... < n_j for every j (one unpacked fragment program)
 * Each texel walks about PER_TEXEL elements; the sizes are baked into the program, which tfjs caches by
 * its code and input shapes, so a training run compiles it once per chunk of variables.
 */
import * as tf from '@tensorflow/tfjs';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel's name, shared with the webgpu kernel. */
const NAME = 'GtaSquaredNormPartials';

/** Elements each texel sums at least (on average) before the output grows. */
const PER_TEXEL = 256;
/** Longest output (partial sums). */
const MAX_TEXELS = 4096;

function program(sizes: number[], texels: number): WebGLProgram {
  const variableNames = sizes.map((_, j) => `X${j}`);
  const loops = sizes.map((n, j) => `for (int e = i; e < ${n}; e += ${texels}) { float v = getX${j}(e); acc += v * v; }`).join('\n  ');
  const userCode = `
void main() {
  int i = getOutputCoords();
  float acc = 0.0;
  ${loops}
  setOutput(acc);
}
`;
  return { variableNames, outputShape: [texels], userCode };
}

function kernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const inputs = Object.keys(args.inputs)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((name) => args.inputs[name]!);
  const sizes = inputs.map((x) => sizeOf(x.shape));
  const total = sizes.reduce((a, n) => a + n, 0);
  const texels = Math.max(1, Math.min(MAX_TEXELS, Math.ceil(total / PER_TEXEL)));
  return runReshaped(
    backend,
    program(sizes, texels),
    inputs,
    sizes.map((n) => [n]),
    [texels],
  );
}

/** Registers the kernel for the webgl backend (once). */
export function registerWebGLSquaredNorm(): void {
  if (tf.getKernel(NAME, 'webgl') !== undefined) return;
  tf.registerKernel({ kernelName: NAME, backendName: 'webgl', kernelFunc: kernel as tf.KernelFunc });
}
