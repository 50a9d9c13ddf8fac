/**
 * The fused score path of attention on webgl: scale, bias, causal mask and softmax of the folded scores in
 * one tfjs kernel (two fragment programs), and its gradient in one more, instead of the composed path's
 * Mul (of q), Add(s) of the biases, the causal bias built per call and tfjs's softmax (max, sub, exp, sum,
 * div). On WebGL each tfjs kernel costs about a millisecond of dispatch (SwiftShader), so these elementwise
 * steps dominated small models.
 *
 * Notation: scores `[B, nK, R, S]` are the UNSCALED folded products `q k^T` (R = rk T rows per key head,
 * ordered (head in group, t), so t = row % T); N = B nK R rows. The bias is any shape attendBlock accepts,
 * `[B|1, 1, T|1, S|1]` or `[T|1, S|1]`, viewed as the canonical `[Bb Tb, Sb]` (a free view) and resolved
 * in the shader by which of its axes broadcast. The masked score of row n, key s:
 *   x = scale * scores[n, s] + bias[b, t, s] + (s > causalOffset + t ? MASK_VALUE : 0)
 * exactly the composed path's sum (a finite MASK_VALUE: a row with every key hidden gets the same uniform
 * weights over its least-masked keys as the composed softmax).
 *   GtaMaskedSoftmax      (scores, bias?) -> probs `[B, nK, R, S]`: a statistics program `[N, 2]` (texel
 *                         (n, 0) the row max m, (n, 1) the sum of exp(x - m); each loops over the S keys),
 *                         then one texel per probability, exp(x - m) / sum (tfjs's softmax arithmetic)
 *   GtaMaskedSoftmaxGrad  (probs, dy) -> dscores: a row program `[N]` with sum_s(dy p), then one texel per
 *                         element, scale * p * (dy - sum_s(dy p))
 * `scale` and `causalOffset` are uniforms (a decode step's offset changes every call; tfjs caches programs
 * by their code). Rows longer than `WEBGL_MASKED_SOFTMAX_MAX_KEYS` are refused by `maskedSoftmaxUnsupported`.
 */
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE } from '../../ops/masks.js';
import { ValueError } from '../../utils/errors.js';
import { reshapeInfo, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names. */
export const MASKED_SOFTMAX_KERNELS = { forward: 'GtaMaskedSoftmax', grad: 'GtaMaskedSoftmaxGrad' } as const;

/** Most keys per row the kernel takes: each statistics texel walks its row (three times S reads per row). */
export const WEBGL_MASKED_SOFTMAX_MAX_KEYS = 4096;

/** Which axes of the canonical bias view `[Bb, Tb, Sb]` are full (not broadcast). */
interface BiasView {
  fullB: boolean;
  fullT: boolean;
  fullS: boolean;
  /** The view's shape `[Bb Tb, Sb]`. */
  shape: [number, number];
}

/** A GLSL float literal. */
const float = (v: number): string => v.toExponential();

/** The canonical view of `biasShape` against scores `[B, nK, R, S]` and T, or why there is none. */
function biasViewOf(scoresShape: number[], biasShape: number[], t: number): BiasView | string {
  const [b, , , s] = scoresShape;
  let dims: [number, number, number];
  if (biasShape.length === 4 && biasShape[1] === 1) dims = [biasShape[0], biasShape[2], biasShape[3]];
  else if (biasShape.length === 2) dims = [1, biasShape[0], biasShape[1]];
  else return `the bias must be [B|1, 1, T|1, S|1] or [T|1, S|1], got [${biasShape}]`;
  const full = [b, t, s];
  for (let i = 0; i < 3; i++) {
    if (dims[i] !== 1 && dims[i] !== full[i]) return `the bias [${biasShape}] does not broadcast to [${b}, ., ${t}, ${s}]`;
  }
  return {
    fullB: dims[0] !== 1,
    fullT: dims[1] !== 1,
    fullS: dims[2] !== 1,
    shape: [dims[0] * dims[1], dims[2]],
  };
}

/**
 * Why the kernel cannot take scores of `scoresShape` `[B, nK, R, S]` with `bias` and T = `t`, or null when
 * it can (the kernel is registered for the active backend, R a multiple of T, S at most
 * `WEBGL_MASKED_SOFTMAX_MAX_KEYS`, a float32 bias of a shape attendBlock accepts).
 */
export function maskedSoftmaxUnsupported(scoresShape: number[], bias: tf.Tensor | null, t: number): string | null {
  registerWebGLMaskedSoftmax();
  if (tf.getKernel(MASKED_SOFTMAX_KERNELS.forward, tf.getBackend()) === undefined) {
    return `no ${MASKED_SOFTMAX_KERNELS.forward} kernel on the ${tf.getBackend()} backend`;
  }
  if (scoresShape.length !== 4) return `the scores must be [B, nK, R, S], got [${scoresShape}]`;
  const [, , r, s] = scoresShape;
  if (!Number.isInteger(t) || t < 1 || r % t !== 0) return `the rows R = ${r} must be a multiple of T = ${t}`;
  if (s > WEBGL_MASKED_SOFTMAX_MAX_KEYS) return `S = ${s} keys exceed ${WEBGL_MASKED_SOFTMAX_MAX_KEYS}`;
  if (sizeOf(scoresShape) === 0) return 'the scores are empty';
  if (bias === null) return null;
  if (bias.dtype !== 'float32') return `the bias must be float32, got ${bias.dtype}`;
  const view = biasViewOf(scoresShape, bias.shape, t);
  return typeof view === 'string' ? view : null;
}

/** GLSL: `maskedScore(row, s)`, the scaled, biased and causally masked score (see the file's notation). */
function maskedScoreCode(scoresShape: number[], t: number, view: BiasView | null): string {
  const [, nK, r] = scoresShape;
  const lines = [`  int t = row - (row / ${t}) * ${t};`, '  float x = getScores(row, s) * gtaScale;'];
  if (view !== null) {
    const bRow = view.fullB ? `(row / ${nK * r}) * ${view.fullT ? t : 1}` : '0';
    const tRow = view.fullT ? 't' : '0';
    lines.push(`  x += getBias(${bRow} + ${tRow}, ${view.fullS ? 's' : '0'});`);
  }
  lines.push(`  if (s > gtaCausalOffset + t) x += ${float(MASK_VALUE)};`, '  return x;');
  return `float maskedScore(int row, int s) {\n${lines.join('\n')}\n}`;
}

const UNIFORMS: WebGLProgram['customUniforms'] = [
  { name: 'gtaScale', type: 'float' },
  { name: 'gtaCausalOffset', type: 'int' },
];

function statsProgram(scoresShape: number[], t: number, view: BiasView | null): WebGLProgram {
  const n = sizeOf(scoresShape.slice(0, 3));
  const s = scoresShape[3];
  const userCode = `
${maskedScoreCode(scoresShape, t, view)}
void main() {
  ivec2 c = getOutputCoords();
  float m = maskedScore(c.x, 0);
  for (int s = 1; s < ${s}; s++) { m = max(m, maskedScore(c.x, s)); }
  if (c.y == 0) {
    setOutput(m);
    return;
  }
  float sum = 0.0;
  for (int s = 0; s < ${s}; s++) { sum += exp(maskedScore(c.x, s) - m); }
  setOutput(sum);
}
`;
  const variableNames = view === null ? ['Scores'] : ['Scores', 'Bias'];
  return { variableNames, outputShape: [n, 2], userCode, customUniforms: UNIFORMS };
}

function probsProgram(scoresShape: number[], t: number, view: BiasView | null): WebGLProgram {
  const n = sizeOf(scoresShape.slice(0, 3));
  const userCode = `
${maskedScoreCode(scoresShape, t, view)}
void main() {
  ivec2 c = getOutputCoords();
  setOutput(exp(maskedScore(c.x, c.y) - getStats(c.x, 0)) / getStats(c.x, 1));
}
`;
  const variableNames = view === null ? ['Scores', 'Stats'] : ['Scores', 'Bias', 'Stats'];
  return { variableNames, outputShape: [n, scoresShape[3]], userCode, customUniforms: UNIFORMS };
}

interface ForwardAttrs {
  scale: number;
  causalOffset: number | null;
  t: number;
}

function forwardKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { scale, causalOffset, t } = args.attrs as unknown as ForwardAttrs;
  const { scores, bias } = args.inputs as { scores: tf.TensorInfo; bias?: tf.TensorInfo };
  const shape = scores.shape;
  const s = shape[3];
  const view = bias ? (biasViewOf(shape, bias.shape, t) as BiasView) : null;
  // Not causal: an offset that hides no key (s <= S - 1 < S + t).
  const uniforms = [[scale], [causalOffset === null ? s : causalOffset]];
  const views = [reshapeInfo(backend, scores, [sizeOf(shape) / s, s]), ...(bias && view ? [reshapeInfo(backend, bias, view.shape)] : [])];
  const stats = backend.runWebGLProgram(statsProgram(shape, t, view), views, 'float32', uniforms);
  const probs = backend.runWebGLProgram(probsProgram(shape, t, view), [...views, stats], 'float32', uniforms);
  [...views, stats].forEach((v) => backend.disposeIntermediateTensorInfo(v));
  const out = reshapeInfo(backend, probs, shape);
  backend.disposeIntermediateTensorInfo(probs);
  return out;
}

function rowDotProgram(n: number, s: number): WebGLProgram {
  const userCode = `
void main() {
  int row = getOutputCoords();
  float acc = 0.0;
  for (int s = 0; s < ${s}; s++) { acc += getP(row, s) * getDy(row, s); }
  setOutput(acc);
}
`;
  return { variableNames: ['P', 'Dy'], outputShape: [n], userCode };
}

function gradProgram(n: number, s: number): WebGLProgram {
  const userCode = `
void main() {
  ivec2 c = getOutputCoords();
  float p = getP(c.x, c.y);
  setOutput(gtaScale * p * (getDy(c.x, c.y) - getRowDot(c.x)));
}
`;
  return { variableNames: ['P', 'Dy', 'RowDot'], outputShape: [n, s], userCode, customUniforms: [{ name: 'gtaScale', type: 'float' }] };
}

function gradKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { scale } = args.attrs as unknown as { scale: number };
  const { probs, dy } = args.inputs as { probs: tf.TensorInfo; dy: tf.TensorInfo };
  const s = probs.shape[probs.shape.length - 1];
  const n = sizeOf(probs.shape) / s;
  const views = [reshapeInfo(backend, probs, [n, s]), reshapeInfo(backend, dy, [n, s])];
  const rowDot = backend.runWebGLProgram(rowDotProgram(n, s), views, 'float32');
  const grad = backend.runWebGLProgram(gradProgram(n, s), [...views, rowDot], 'float32', [[scale]]);
  [...views, rowDot].forEach((v) => backend.disposeIntermediateTensorInfo(v));
  const out = reshapeInfo(backend, grad, probs.shape);
  backend.disposeIntermediateTensorInfo(grad);
  return out;
}

/** Registers both kernels for the webgl backend (once). */
export function registerWebGLMaskedSoftmax(): void {
  if (tf.getKernel(MASKED_SOFTMAX_KERNELS.forward, 'webgl') !== undefined) return;
  tf.registerKernel({ kernelName: MASKED_SOFTMAX_KERNELS.forward, backendName: 'webgl', kernelFunc: forwardKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: MASKED_SOFTMAX_KERNELS.grad, backendName: 'webgl', kernelFunc: gradKernel as tf.KernelFunc });
}

/** `u [B, nK, rk T, S]` summed over the axes along which `biasShape` broadcasts, shaped like the bias. */
function reduceToBias(u: tf.Tensor, biasShape: number[], t: number): tf.Tensor {
  const [b, nK, r, s] = u.shape;
  const canonical = biasShape.length === 4 ? [biasShape[0], biasShape[2], biasShape[3]] : [1, biasShape[0], biasShape[1]];
  const full = tf.reshape(u, [b, nK, r / t, t, s]); // [B, nK, rk, T, S]
  const axes = [1, 2, ...[0, 3, 4].filter((axis, i) => canonical[i] === 1 && [b, t, s][i] !== 1)];
  return tf.reshape(tf.sum(full, axes, true), biasShape); // [Bb, 1, 1, Tb, Sb] -> the bias's shape
}

/** Options of `maskedSoftmax`. */
export interface MaskedSoftmaxOptions {
  /** Multiplies the raw scores. */
  scale: number;
  /** Key s is hidden from query t when s > causalOffset + t (t = row % T); null = not causal. */
  causalOffset: number | null;
  /** T, the query length (rows are (head in group, t)). */
  t: number;
}

/**
 * `softmax(scale * scores + bias + causal)` over the last axis of the unscaled folded scores
 * `[B, nK, rk T, S]`, one kernel forward and one backward (under `tf.customGrad`; the bias, when given,
 * gets its gradient summed over its broadcast axes with tfjs ops). Throws a `ValueError` for inputs
 * `maskedSoftmaxUnsupported` refuses.
 */
export function maskedSoftmax(scores: tf.Tensor4D, bias: tf.Tensor | null, options: MaskedSoftmaxOptions): tf.Tensor4D {
  const why = maskedSoftmaxUnsupported(scores.shape, bias, options.t);
  if (why !== null) throw new ValueError(`maskedSoftmax: ${why}.`);
  const attrs = { scale: options.scale, causalOffset: options.causalOffset, t: options.t } as unknown as tf.NamedAttrMap;
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, b] = args as tf.Tensor[];
    const inputs: tf.NamedTensorMap = b ? { scores: x, bias: b } : { scores: x };
    const probs = tf.engine().runKernel(MASKED_SOFTMAX_KERNELS.forward, inputs, attrs) as tf.Tensor4D;
    save([probs]);
    return {
      value: probs,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grad = (scale: number) =>
          tf.engine().runKernel(MASKED_SOFTMAX_KERNELS.grad, { probs: saved[0], dy }, { scale } as unknown as tf.NamedAttrMap) as tf.Tensor;
        if (!b) return [grad(options.scale)];
        const u = grad(1); // p (dy - sum(dy p)): the bias's gradient before its broadcast sums
        return [options.scale === 1 ? u : tf.mul(u, options.scale), reduceToBias(u, b.shape, options.t)];
      },
    };
  });
  return (bias ? run(scores, bias) : run(scores)) as tf.Tensor4D;
}
