/**
 * The fused RMSNorm kernels for webgl, under the same names, inputs and attrs as the webgpu ones
 * (src/kernels/webgpu/rms_norm.ts), so that the `tf.customGrad` wrapper there runs on either backend.
 * `x [..., D]` is viewed as `[N, D]`; r is a row's reciprocal RMS, g the gain (ones when there is none).
 *   GtaRmsNorm           (x, gain?)     -> y [..., D]: one texel per element, looping over its row for r
 *   GtaRmsNormGradInput  (x, dy, gain?) -> dx [..., D]: one texel per element, looping over its row for r
 *                        and sum_row(dy g x): dx = r g dy - x r^3 / D * sum_row(dy g x)
 *   GtaRmsNormGradGain   (x, dy)        -> dgain [D]: two programs, r per row ([N], one texel per row),
 *                        then one texel per column summing dy x r down the N rows
 * The row loops make forward and dx cost D^2 per row, fine for rows up to `WEBGL_RMS_NORM_MAX_DIM`;
 * `fusedRmsNormUnsupported` refuses longer rows on webgl, and the callers take the composed ops.
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

function rowProgram(mode: 'forward' | 'gradInput', rows: number, d: number, eps: number, hasGain: boolean): WebGLProgram {
  const variableNames = mode === 'forward' ? ['X'] : ['X', 'DY'];
  if (hasGain) variableNames.push('G');
  const g = hasGain ? 'getG(col)' : '1.0';
  const value =
    mode === 'forward'
      ? `getX(row, col) * r * ${g}`
      : `r * ${g} * getDY(row, col) - getX(row, col) * r * r * r * dotAcc / ${d.toExponential()}`;
  const userCode = `
void main() {
  ivec2 c = getOutputCoords();
  int row = c.x;
  int col = c.y;
  ${rowStats(d, eps, mode === 'gradInput', hasGain)}
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
    const program = rowProgram(mode, rows, d, epsilon, gain !== undefined);
    const inputs = [x!, ...(dy ? [dy] : []), ...(gain ? [gain] : [])];
    const shapes = [[rows, d], ...(dy ? [[rows, d]] : []), ...(gain ? [[d]] : [])];
    return runReshaped(backend, program, inputs, shapes, x!.shape);
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
