/**
 * GTA's gated value decoder as fused kernels for webgl, under the same names, inputs and attrs as the
 * webgpu ones (src/kernels/webgpu/gated_decoder.ts has the math and the notation), so that the
 * `tf.customGrad` wrapper there runs on either backend. Each is one unpacked fragment program, one output
 * element per invocation, with the sizes baked into the shader source (tfjs caches programs by source and
 * input shapes):
 *   forward      y  [N, W]           = sigmoid(G) u,  u = o (R + Delta) per group
 *   gradGate     dG [N, W]           = dy u s (1 - s)
 *   gradInput    do [B, Hq, T, Dl]   = sum_c e (Delta + R)^T,  e = dy s
 *   gradDecoder  dDelta [Hq, Dl, C]  = sum_n o e
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGLBackendLike, WebGLKernelArgs, WebGLProgram } from './program.js';

/** The kernel names and inputs, shared with the webgpu kernels. */
const NAMES = {
  forward: 'GtaGatedDecoder',
  gradGate: 'GtaGatedDecoderGradGate',
  gradInput: 'GtaGatedDecoderGradInput',
  gradDecoder: 'GtaGatedDecoderGradDecoder',
} as const;
const INPUTS: Record<Mode, string[]> = {
  forward: ['O', 'G', 'DELTA'],
  gradGate: ['O', 'G', 'DELTA', 'DY'],
  gradInput: ['G', 'DELTA', 'DY'],
  gradDecoder: ['O', 'G', 'DY'],
};

type Mode = keyof typeof NAMES;

interface Dims {
  b: number;
  hq: number;
  t: number;
  dl: number;
  c: number;
}

/** GLSL: `u` of the output element (n, g, c) with b, t, g, c in scope. */
function expanded(d: Dims): string {
  return `
  float u = getO(b, g, t, imod(c, ${d.dl}));
  for (int j = 0; j < ${d.dl}; j++) {
    u += getO(b, g, t, j) * getDELTA(g, j, c);
  }`;
}

function program(mode: Mode, d: Dims): WebGLProgram {
  const rowCoords = `
  ivec2 rc = getOutputCoords();
  int b = rc.x / ${d.t}; int t = rc.x - b * ${d.t};
  int g = rc.y / ${d.c}; int c = rc.y - g * ${d.c};
  float s = 1.0 / (1.0 + exp(-getG(rc.x, rc.y)));`;
  const body: Record<Mode, string> = {
    forward: `${rowCoords}${expanded(d)}
  setOutput(s * u);`,
    gradGate: `${rowCoords}${expanded(d)}
  setOutput(getDY(rc.x, rc.y) * u * s * (1.0 - s));`,
    gradInput: `
  ivec4 rc = getOutputCoords();
  int n = rc.x * ${d.t} + rc.z;
  int g = rc.y; int j = rc.w;
  float acc = 0.0;
  for (int c = 0; c < ${d.c}; c++) {
    int col = g * ${d.c} + c;
    float e = getDY(n, col) / (1.0 + exp(-getG(n, col)));
    acc += e * (getDELTA(g, j, c) + (imod(c, ${d.dl}) == j ? 1.0 : 0.0));
  }
  setOutput(acc);`,
    gradDecoder: `
  ivec3 rc = getOutputCoords();
  int g = rc.x; int j = rc.y; int col = g * ${d.c} + rc.z;
  float acc = 0.0;
  for (int b = 0; b < ${d.b}; b++) {
    for (int t = 0; t < ${d.t}; t++) {
      int n = b * ${d.t} + t;
      float e = getDY(n, col) / (1.0 + exp(-getG(n, col)));
      acc += getO(b, g, t, j) * e;
    }
  }
  setOutput(acc);`,
  };
  const outputShape = mode === 'gradInput' ? [d.b, d.hq, d.t, d.dl] : mode === 'gradDecoder' ? [d.hq, d.dl, d.c] : [d.b * d.t, d.hq * d.c];
  return { variableNames: INPUTS[mode], outputShape, userCode: `void main() {${body[mode]}\n}\n` };
}

function kernel(mode: Mode) {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const inputs = INPUTS[mode].map((name) => args.inputs[name] as tf.TensorInfo);
    return backend.runWebGLProgram(program(mode, args.attrs as unknown as Dims), inputs, 'float32');
  };
}

/** Registers the four gated-decoder kernels for the webgl backend (once). */
export function registerWebGLGatedDecoderKernels(): void {
  if (tf.getKernel(NAMES.forward, 'webgl') !== undefined) return;
  for (const mode of Object.keys(NAMES) as Mode[])
    tf.registerKernel({ kernelName: NAMES[mode], backendName: 'webgl', kernelFunc: kernel(mode) as tf.KernelFunc });
}
