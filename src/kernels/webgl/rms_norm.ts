/**
 * The fused RMSNorm kernels for webgl, under the same names, inputs and attrs as the webgpu ones
 * (src/kernels/webgpu/rms_norm.ts), so that the `tf.customGrad` wrapper there runs on either backend.
 * `x [..., D]` is viewed as `[N, D]`; r is a row's reciprocal RMS, g the gain (ones when there is none).
 *   GtaRmsNorm           (x, gain?)     -> y [..., D]: two programs, r per row ([N], one texel per row),
 *                        then one texel per element: y = x r g
 *   GtaRmsNormGradInput  (x, dy, gain?) -> dx [..., D]: two programs, r and sum_row(dy g x) per row
 *                        ([N, 2]), then one texel per element: dx = r g dy - x r^3 / D * sum_row(dy g x)
 *   GtaRmsNormGradGain   (x, dy)        -> dgain [D]: two programs, r per row ([N], one texel per row),
 *                        then one texel per column summing dy x r down the N rows
 * (A single program per output, each texel looping over its row, costs D^2 per row: on SwiftShader it was
 * 2.7x slower than the composed ops at [512, 128].) Each row-statistics texel loops over one row, so rows
 * are bounded by `WEBGL_RMS_NORM_MAX_DIM`; `fusedRmsNormUnsupported` refuses longer rows on webgl, and the
 * callers take the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names, shared with the webgpu kernels. */
const NAMES = { forward: 'GtaRmsNorm', gradInput: 'GtaRmsNormGradInput', gradGain: 'GtaRmsNormGradGain' } as const;

/** Longest row (last axis) the webgl kernels take: each output texel walks its row. */
export const WEBGL_RMS_NORM_MAX_DIM = 2048;

/** GLSL: `float r` (and `float dotAcc` for dx), the row's reciprocal RMS, for the row `row` of `X`. */
function rowStats(d: number, eps: number, withDot: boolean, hasGain: boolean): string {
  const gain = hasGain ? 'getG(j)' : '1.0';
  return `
  float sq = 0.0;
  float dotAcc = 0.0;
  for (int j = 0; j < ${d}; j++) {
    float v = getX(row, j);
    sq += v * v;
    ${withDot ? `dotAcc += getDY(row, j) * ${gain} * v;` : ''}
  }
  float r = inversesqrt(sq / ${d.toExponential()} + ${eps.toExponential()});`;
}

/** The row statistics: `[N]` r (forward), or `[N, 2]` r and sum_row(dy g x) (dx); one texel loops over one row. */
function statsProgram(mode: 'forward' | 'gradInput', rows: number, d: number, eps: number, hasGain: boolean): WebGLProgram {
  if (mode === 'forward') return reciprocalRmsProgram(rows, d, eps);
  const userCode = `
void main() {
  ivec2 c = getOutputCoords();
  int row = c.x;
  ${rowStats(d, eps, true, hasGain)}
  setOutput(c.y == 0 ? r : dotAcc);
}
`;
  return { variableNames: hasGain ? ['X', 'DY', 'G'] : ['X', 'DY'], outputShape: [rows, 2], userCode };
}

/** The elementwise step from the row statistics S (`[N]` r, or `[N, 2]` r and the row's dot). */
function elementProgram(mode: 'forward' | 'gradInput', rows: number, d: number, hasGain: boolean): WebGLProgram {
  const variableNames = mode === 'forward' ? ['X', 'S'] : ['X', 'DY', 'S'];
  if (hasGain) variableNames.push('G');
  const g = hasGain ? 'getG(col)' : '1.0';
  const value =
    mode === 'forward'
      ? `getX(row, col) * getS(row) * ${g}`
      : `r * ${g} * getDY(row, col) - getX(row, col) * r * r * r * getS(row, 1) / ${d.toExponential()}`;
  const userCode = `
void main() {
  ivec2 c = getOutputCoords();
  int row = c.x;
  int col = c.y;
  ${mode === 'gradInput' ? 'float r = getS(row, 0);' : ''}
  setOutput(${value});
}
`;
  return { variableNames, outputShape: [rows, d], userCode };
}

function reciprocalRmsProgram(rows: number, d: number, eps: number): WebGLProgram {
  const userCode = `
void main() {
  int row = getOutputCoords();
  ${rowStats(d, eps, false, false)}
  setOutput(r);
}
`;
  return { variableNames: ['X'], outputShape: [rows], userCode };
}

function gainSumProgram(rows: number, d: number): WebGLProgram {
  const userCode = `
void main() {
  int col = getOutputCoords();
  float total = 0.0;
  for (int i = 0; i < ${rows}; i++) { total += getDY(i, col) * getX(i, col) * getR(i); }
  setOutput(total);
}
`;
  return { variableNames: ['X', 'DY', 'R'], outputShape: [d], userCode };
}

/** Rows and row length of `x [..., D]`. */
function rowsOf(x: tf.TensorInfo): [number, number] {
  const d = x.shape[x.shape.length - 1];
  return [sizeOf(x.shape) / d, d];
}

function rowKernel(mode: 'forward' | 'gradInput') {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const { x, dy, gain } = args.inputs;
    const { epsilon } = args.attrs as unknown as { epsilon: number };
    const [rows, d] = rowsOf(x!);
    const hasGain = gain !== undefined;
    const statsShape = mode === 'forward' ? [rows] : [rows, 2];
    const statsInputs = mode === 'forward' ? [x!] : [x!, dy!, ...(gain ? [gain] : [])];
    const statsShapes = mode === 'forward' ? [[rows, d]] : [[rows, d], [rows, d], ...(gain ? [[d]] : [])];
    const stats = runReshaped(backend, statsProgram(mode, rows, d, epsilon, hasGain), statsInputs, statsShapes, statsShape);
    const inputs = [x!, ...(dy ? [dy] : []), stats, ...(gain ? [gain] : [])];
    const shapes = [[rows, d], ...(dy ? [[rows, d]] : []), statsShape, ...(gain ? [[d]] : [])];
    const out = runReshaped(backend, elementProgram(mode, rows, d, hasGain), inputs, shapes, x!.shape);
    backend.disposeIntermediateTensorInfo(stats);
    return out;
  };
}

function gainGradKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { x, dy } = args.inputs;
  const { epsilon } = args.attrs as unknown as { epsilon: number };
  const [rows, d] = rowsOf(x!);
  const r = runReshaped(backend, reciprocalRmsProgram(rows, d, epsilon), [x!], [[rows, d]], [rows]);
  const out = runReshaped(backend, gainSumProgram(rows, d), [x!, dy!, r], [[rows, d], [rows, d], [rows]], [d]);
  backend.disposeIntermediateTensorInfo(r);
  return out;
}

/** Registers the three RMSNorm kernels for the webgl backend (once). */
export function registerWebGLRmsNormKernels(): void {
  if (tf.getKernel(NAMES.forward, 'webgl') !== undefined) return;
  const register = (kernelName: string, kernelFunc: unknown) =>
    tf.registerKernel({ kernelName, backendName: 'webgl', kernelFunc: kernelFunc as tf.KernelFunc });
  register(NAMES.forward, rowKernel('forward'));
  register(NAMES.gradInput, rowKernel('gradInput'));
  register(NAMES.gradGain, gainGradKernel);
}
