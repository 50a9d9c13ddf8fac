/**
 * The squared global norm's partial sums for webgl, under the name, inputs and output of the webgpu
 * kernel (src/kernels/webgpu/squared_norm.ts: `GtaSquaredNormPartials`), so that `fusedSquaredNorm` there
 * runs on either backend.
 *
 * Notation: x_1..x_k the tensors of one call (k <= MAX_INPUTS), each viewed as `[R_j, C_j]` (its last
 * axis against all the others; a vector as `[1, n]`), W the output's length.
 *   GtaSquaredNormPartials  (x_1, ..., x_k) -> partial [W]: texel i sums the squares of the 2x2 blocks
 *                           i, i + W, i + 2W, ... of every x_j (one fragment program)
 * The inputs are read packed, as tfjs's WebGL backend keeps most tensors (four values per texel, a 2x2
 * block of the last two axes): a packed tensor needs no conversion program (an unpacked one is packed by
 * tfjs first), and the view to two axes is free where the next-to-last axis is even. Values of a block
 * that fall outside `[R_j, C_j]` (odd R_j or C_j) are masked, never assumed to be zero. Each texel sums
 * about PER_TEXEL blocks; the shapes are baked into the program, which tfjs caches by its code and input
 * shapes, so a training run compiles it once per chunk of variables.
 */
import * as tf from '@tensorflow/tfjs';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel's name, shared with the webgpu kernel. */
const NAME = 'GtaSquaredNormPartials';

/** 2x2 blocks each texel sums at least (on average) before the output grows. */
const PER_TEXEL = 64;
/** Longest output (partial sums). */
const MAX_TEXELS = 4096;

/** A tensor's two-axis view `[R, C]`. */
function view(shape: number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  const c = shape[shape.length - 1];
  return [sizeOf(shape) / c, c];
}

/** 2x2 blocks of a view. */
const blocks = ([r, c]: [number, number]): number => Math.ceil(r / 2) * Math.ceil(c / 2);

function program(views: Array<[number, number]>, texels: number): WebGLProgram {
  const variableNames = views.map((_, j) => `X${j}`);
  const loops = views.map(([r, c], j) => {
    const cols = Math.ceil(c / 2);
    return `
  for (int t = i; t < ${blocks([r, c])}; t += ${texels}) {
    int br = t / ${cols};
    int row = 2 * br;
    int col = 2 * (t - br * ${cols});
    vec4 v = getX${j}(row, col);
    bool right = col + 1 < ${c};
    bool below = row + 1 < ${r};
    acc += dot(v * v, vec4(1.0, right ? 1.0 : 0.0, below ? 1.0 : 0.0, right && below ? 1.0 : 0.0));
  }`;
  });
  const userCode = `
void main() {
  int i = getOutputCoords();
  float acc = 0.0;
  ${loops.join('')}
  setOutput(acc);
}
`;
  return { variableNames, outputShape: [texels], userCode, packedInputs: true };
}

function kernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const inputs = Object.keys(args.inputs)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((name) => args.inputs[name]!);
  const views = inputs.map((x) => view(x.shape));
  const total = views.reduce((a, v) => a + blocks(v), 0);
  const texels = Math.max(1, Math.min(MAX_TEXELS, Math.ceil(total / PER_TEXEL)));
  return runReshaped(backend, program(views, texels), inputs, views, [texels]);
}

/** Registers the kernel for the webgl backend (once). */
export function registerWebGLSquaredNorm(): void {
  if (tf.getKernel(NAME, 'webgl') !== undefined) return;
  tf.registerKernel({ kernelName: NAME, backendName: 'webgl', kernelFunc: kernel as tf.KernelFunc });
}
