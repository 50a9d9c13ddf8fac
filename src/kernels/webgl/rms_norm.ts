/**
 * The fused RMSNorm kernels for webgl, under the same names, inputs and attrs as the webgpu ones
 * (src/kernels/webgpu/rms_norm.ts), so that the `tf.customGrad` wrapper there runs on either backend.
 * r is a row's reciprocal RMS, g the gain (ones when there is none).
 *
 * Every program is packed (four elements per texel, like tfjs's matMul and elementwise ops), so that tfjs
 * runs no pack or unpack program for x, dy or the result. A packed texel holds a 2 x 2 block: rows r, r + 1
 * of the second-to-last axis, columns c, c + 1 (c even) of the last, as `.x (r, c)`, `.y (r, c+1)`,
 * `.z (r+1, c)`, `.w (r+1, c+1)`; past the end of an odd axis the texel holds padding (any value).
 *
 * Views, free for packed textures (the last two axes are kept): `x [..., R, D]` and dy as `[B, R, D]` (B the
 * product of the leading axes; R = 1 for a vector), the gain `[D]` as `[1, D]` (texel (0, c) holds g[c],
 * g[c+1] in `.x`, `.y`). (A `[B R, D]` view is not free when R is odd: tfjs re-lays out the texture.)
 * Row statistics S `[B, R, 2]`: texel (b, r, 0) holds `(r_r, dot_r, r_{r+1}, dot_{r+1})` with
 * dot = sum_row(dy g x) (0 in the forward); it loops over the column pairs of rows r and r + 1 at once.
 *   GtaRmsNorm           (x, gain?)     -> y [..., D]: two programs, S (no dot), then one per 2 x 2 block:
 *                                          y = x r g
 *   GtaRmsNormGradInput  (x, dy, gain?) -> dx [..., D]: two programs, S, then one per 2 x 2 block:
 *                                          dx = r g dy - x r^3 / D * dot
 *   GtaRmsNormGradGain   (x, dy)        -> dgain [D]: two programs, S (no dot), then one texel per column
 *                                          pair (output viewed `[1, D]`) summing dy x r over the row pairs
 * Padding is masked wherever it could reach a result: the odd last column and the odd last row are read
 * only from the texel components that hold them. Each statistics texel loops over its rows, so rows are
 * bounded by `WEBGL_RMS_NORM_MAX_DIM`; `fusedRmsNormUnsupported` refuses longer rows on webgl, and the
 * callers take the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names, shared with the webgpu kernels. */
const NAMES = { forward: 'GtaRmsNorm', gradInput: 'GtaRmsNormGradInput', gradGain: 'GtaRmsNormGradGain' } as const;

/** Longest row (last axis) the webgl kernels take: each statistics texel walks its rows. */
export const WEBGL_RMS_NORM_MAX_DIM = 2048;

/** A GLSL float literal. */
const float = (v: number): string => v.toExponential();

/** The `[B, R, D]` view of `x [..., D]` (R the second-to-last axis, 1 for a vector). */
function viewOf(x: tf.TensorInfo): [number, number, number] {
  const n = x.shape.length;
  const d = x.shape[n - 1];
  const rows = n >= 2 ? x.shape[n - 2] : 1;
  return [sizeOf(x.shape) / (rows * d), rows, d];
}

/**
 * GLSL: adds column pair j's contribution (the texel's first `cols` columns, rows r and r + 1) to
 * `sq` (sum of squares of x) and, with `withDot`, to `dotAcc` (sum of dy g x); each vec2 is (row r, row r+1).
 */
function pairTerms(j: string, cols: 1 | 2, withDot: boolean, hasGain: boolean): string {
  const lines = [`vec4 t = getX(b, r, ${j});`, 'sq += t.xz * t.xz;'];
  if (cols === 2) lines.push('sq += t.yw * t.yw;');
  if (withDot) {
    lines.push(`vec4 u = getDY(b, r, ${j})${hasGain ? ` * getG(0, ${j}).xyxy` : ''};`, 'dotAcc += u.xz * t.xz;');
    if (cols === 2) lines.push('dotAcc += u.yw * t.yw;');
  }
  return lines.join('\n    ');
}

/** The row statistics S `[B, R, 2]`; with `withDot` the gradInput's (x, dy, gain?), else r only (x). */
function statsProgram(view: number[], eps: number, withDot: boolean, hasGain: boolean): WebGLProgram {
  const [b, rows, d] = view;
  const fullPairs = Math.floor(d / 2);
  const userCode = `
void main() {
  ivec3 rc = getOutputCoords();
  int b = rc.x;
  int r = rc.y;
  vec2 sq = vec2(0.0);
  vec2 dotAcc = vec2(0.0);
  for (int j = 0; j < ${2 * fullPairs}; j += 2) {
    ${pairTerms('j', 2, withDot, hasGain)}
  }
  ${d % 2 === 1 ? `{\n    ${pairTerms(String(d - 1), 1, withDot, hasGain)}\n  }` : ''}
  vec2 rr = inversesqrt(sq / ${float(d)} + ${float(eps)});
  bool second = r + 1 < ${rows};
  setOutput(vec4(rr.x, dotAcc.x, second ? rr.y : 0.0, second ? dotAcc.y : 0.0));
}
`;
  const variableNames = withDot ? ['X', 'DY', ...(hasGain ? ['G'] : [])] : ['X'];
  return { variableNames, outputShape: [b, rows, 2], userCode, packedInputs: true, packedOutput: true };
}

/** The elementwise step from the row statistics S: y (forward) or dx (gradInput), one 2 x 2 block per texel. */
function elementProgram(mode: 'forward' | 'gradInput', view: number[], hasGain: boolean): WebGLProgram {
  const d = view[2];
  const variableNames = mode === 'forward' ? ['X', 'S'] : ['X', 'DY', 'S'];
  if (hasGain) variableNames.push('G');
  const value = mode === 'forward' ? 'x * rr * g' : `rr * g * getDYAtOutCoords() - x * rr * rr * rr * s.yyww / ${float(d)}`;
  const userCode = `
void main() {
  ivec3 rc = getOutputCoords();
  vec4 x = getXAtOutCoords();
  vec4 s = getS(rc.x, rc.y, 0);
  vec4 rr = s.xxzz;
  vec4 g = ${hasGain ? 'getG(0, rc.z).xyxy' : 'vec4(1.0)'};
  setOutput(${value});
}
`;
  return { variableNames, outputShape: view, userCode, packedInputs: true, packedOutput: true };
}

/** dgain `[1, D]`: each texel sums dy x r for its two columns over all row pairs (the odd last row masked). */
function gainSumProgram(view: number[]): WebGLProgram {
  const [b, rows, d] = view;
  const fullPairs = Math.floor(rows / 2);
  const term = (i: string) => `getDY(bi, ${i}, c) * getX(bi, ${i}, c) * getS(bi, ${i}, 0).xxzz`;
  const userCode = `
void main() {
  int c = getOutputCoords().y;
  vec4 total = vec4(0.0);
  vec2 last = vec2(0.0);
  for (int bi = 0; bi < ${b}; bi++) {
    for (int i = 0; i < ${2 * fullPairs}; i += 2) { total += ${term('i')}; }
    ${rows % 2 === 1 ? `last += (${term(String(rows - 1))}).xy;` : ''}
  }
  setOutput(vec4(total.xy + total.zw + last, 0.0, 0.0));
}
`;
  return { variableNames: ['X', 'DY', 'S'], outputShape: [1, d], userCode, packedInputs: true, packedOutput: true };
}

function rowKernel(mode: 'forward' | 'gradInput') {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const { x, dy, gain } = args.inputs;
    // The residual input of webgpu's gradInput (the GPU training step) has no webgl program: refuse, never ignore it.
    if (args.inputs.residual !== undefined) throw new ValueError(`${NAMES.gradInput}: a residual input is webgpu-only.`);
    const { epsilon } = args.attrs as unknown as { epsilon: number };
    const view = viewOf(x!);
    const d = view[2];
    const hasGain = gain !== undefined;
    const withDot = mode === 'gradInput';
    const statsShape = [view[0], view[1], 2];
    const statsInputs = withDot ? [x!, dy!, ...(gain ? [gain] : [])] : [x!];
    const statsViews = withDot ? [view, view, ...(gain ? [[1, d]] : [])] : [view];
    const stats = runReshaped(backend, statsProgram(view, epsilon, withDot, hasGain), statsInputs, statsViews, statsShape);
    const inputs = [x!, ...(withDot ? [dy!] : []), stats, ...(gain ? [gain] : [])];
    const views = [view, ...(withDot ? [view] : []), statsShape, ...(gain ? [[1, d]] : [])];
    const out = runReshaped(backend, elementProgram(mode, view, hasGain), inputs, views, x!.shape);
    backend.disposeIntermediateTensorInfo(stats);
    return out;
  };
}

function gainGradKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { x, dy } = args.inputs;
  const { epsilon } = args.attrs as unknown as { epsilon: number };
  const view = viewOf(x!);
  const statsShape = [view[0], view[1], 2];
  const stats = runReshaped(backend, statsProgram(view, epsilon, false, false), [x!], [view], statsShape);
  const out = runReshaped(backend, gainSumProgram(view), [x!, dy!, stats], [view, view, statsShape], [view[2]]);
  backend.disposeIntermediateTensorInfo(stats);
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
