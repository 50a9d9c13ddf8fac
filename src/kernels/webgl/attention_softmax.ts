/**
 * The fused score path of attention on webgl: scale, bias, causal mask and softmax of the folded scores in
 * one tfjs kernel (two fragment programs), and its gradient in one more, instead of the composed path's
 * Mul (of q), Add(s) of the biases, the causal bias built per call and tfjs's softmax (max, sub, exp, sum,
 * div, with the unpack and pack programs between them). On WebGL each program costs about a millisecond
 * (SwiftShader), so these elementwise steps dominated small models.
 *
 * Notation: scores `[B, nK, R, S]` are the UNSCALED folded products `q k^T` (R = rk T rows per key head,
 * ordered (head in group, t), so t = r % T), viewed as `[G, R, S]` (G = B nK). The bias is any shape
 * attendBlock accepts, `[B|1, 1, T|1, S|1]` or `[T|1, S|1]`, viewed as `[Bb, Tb, Sb]` and resolved in the
 * shader by which of its axes broadcast. The masked score of row r of group g (batch g / nK), key s:
 *   x = scale * scores[g, r, s] + bias[b, t, s] + (s > causalOffset + t ? MASK_VALUE : 0)
 * exactly the composed path's sum (a finite MASK_VALUE: a row with every key hidden gets the same uniform
 * weights over its least-masked keys as the composed softmax).
 *   GtaMaskedSoftmax      (scores, bias?) -> probs `[B, nK, R, S]`: a statistics program `[G, R, 2]` (per
 *                         row the max m and the sum of exp(x - m); each texel loops twice over the keys of
 *                         two rows), then exp(x - m) / sum (tfjs's softmax arithmetic)
 *   GtaMaskedSoftmaxGrad  (probs, dy) -> dscores: a row program `[G, R, 2]` with sum_s(dy p), then
 *                         scale * p * (dy - sum_s(dy p))
 *   GtaMaskedSoftmaxValues (scores, value `[B, nV, S, Dv]`, bias?) -> `softmax(x) v`, `[B, nV, R, Dv]`, one
 *                         program, for inference calls of few queries (decode): the scores come folded per
 *                         VALUE head (`[B, nV, rv T, S]`, G = B nV) and each output texel (rows r, r + 1;
 *                         value dims d, d + 1) walks its rows' keys twice: the maxima, then exp(x - m), their
 *                         sums and the weighted values. No probabilities tensor and no value product.
 * Every program is packed like tfjs's matMul (a texel holds rows r, r + 1 and keys c, c + 1 as `.x (r, c)`,
 * `.y (r, c+1)`, `.z (r+1, c)`, `.w (r+1, c+1)`), so the scores from the product and the probabilities for
 * the value product need no pack or unpack program, and the views are free (the last two axes are kept).
 * Padding past an odd R or S is never summed and is written as zeros. `scale` and `causalOffset` are
 * uniforms (a decode step's offset changes every call; tfjs caches programs by their code). Rows longer
 * than `WEBGL_MASKED_SOFTMAX_MAX_KEYS` are refused by `maskedSoftmaxUnsupported`.
 */
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE } from '../../ops/masks.js';
import { ValueError } from '../../utils/errors.js';
import { reshapeInfo, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names. */
export const MASKED_SOFTMAX_KERNELS = {
  forward: 'GtaMaskedSoftmax',
  grad: 'GtaMaskedSoftmaxGrad',
  withValues: 'GtaMaskedSoftmaxValues',
} as const;

/** Most keys per row the kernel takes: each statistics texel walks its row (three times S reads per row). */
export const WEBGL_MASKED_SOFTMAX_MAX_KEYS = 4096;

/**
 * Most query positions T per call for which `GtaMaskedSoftmaxValues` replaces the softmax and the value product
 * (decode steps and short appends): each of its texels recomputes its two rows' weights, Dv / 2 times per
 * row in all, which costs less than two more programs only while the rows are few.
 */
export const WEBGL_SOFTMAX_VALUES_MAX_QUERIES = 8;

/** Which axes of the canonical bias view `[Bb, Tb, Sb]` are full (not broadcast). */
interface BiasView {
  fullB: boolean;
  fullT: boolean;
  fullS: boolean;
  /** The view's shape `[Bb, Tb, Sb]`. */
  shape: [number, number, number];
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
  return { fullB: dims[0] !== 1, fullT: dims[1] !== 1, fullS: dims[2] !== 1, shape: dims };
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

/**
 * GLSL: `maskedScores(g, r, c)`, the masked scores (see the file's notation) of one texel of the packed
 * `[G, R, S]` scores view (G = B nK): rows r, r + 1 (r even) and keys c, c + 1 (c even) as `.x (r, c)`,
 * `.y (r, c+1)`, `.z (r+1, c)`, `.w (r+1, c+1)`. Entries past an odd R or S are padding (any value).
 */
function maskedScoresCode(scoresShape: number[], t: number, view: BiasView | null): string {
  const nK = scoresShape[1];
  const lines = ['  vec4 x = getScores(g, r, c) * gtaScale;', `  int t0 = imod(r, ${t});`, `  int t1 = imod(r + 1, ${t});`];
  let helper = '';
  if (view !== null) {
    // The bias at (row tb of batch bb, keys c, c + 1) is half of a packed texel: .xy on even rows, .zw on odd.
    helper = `
vec2 biasPair(int bb, int tb, int c) {
  vec4 v = getBias(bb, tb, ${view.fullS ? 'c' : '0'});
  vec2 p = imod(tb, 2) == 0 ? v.xy : v.zw;
  return ${view.fullS ? 'p' : 'p.xx'};
}
`;
    const bb = view.fullB ? `g / ${nK}` : '0';
    lines.push(`  x += vec4(biasPair(${bb}, ${view.fullT ? 't0' : '0'}, c), biasPair(${bb}, ${view.fullT ? 't1' : '0'}, c));`);
  }
  lines.push(
    '  ivec4 keys = ivec4(c, c + 1, c, c + 1);',
    '  ivec4 last = ivec4(gtaCausalOffset + t0, gtaCausalOffset + t0, gtaCausalOffset + t1, gtaCausalOffset + t1);',
    `  x += vec4(greaterThan(keys, last)) * ${float(MASK_VALUE)};`,
    '  return x;',
  );
  return `${helper}
vec4 maskedScores(int g, int r, int c) {
${lines.join('\n')}
}`;
}

const UNIFORMS: WebGLProgram['customUniforms'] = [
  { name: 'gtaScale', type: 'float' },
  { name: 'gtaCausalOffset', type: 'int' },
];

/** `[G, R, S]`: the packed view of scores `[B, nK, R, S]` (free: the last two axes are kept). */
const groupedView = (shape: number[]): number[] => [shape[0] * shape[1], shape[2], shape[3]];

/** Row statistics, packed `[G, R, 2]`: texel (g, r, 0) holds `(m_r, sum_r, m_r+1, sum_r+1)`. */
function statsProgram(scoresShape: number[], t: number, view: BiasView | null): WebGLProgram {
  const [g, r] = groupedView(scoresShape);
  const s = scoresShape[3];
  const userCode = `
${maskedScoresCode(scoresShape, t, view)}
void main() {
  ivec3 o = getOutputCoords();
  vec4 x = maskedScores(o.x, o.y, 0);
  vec2 m = x.xz;
  for (int c = 0; c < ${s}; c += 2) {
    x = maskedScores(o.x, o.y, c);
    m = max(m, x.xz);
    if (c + 1 < ${s}) m = max(m, x.yw);
  }
  vec2 sum = vec2(0.0);
  for (int c = 0; c < ${s}; c += 2) {
    vec4 e = exp(maskedScores(o.x, o.y, c) - m.xxyy);
    sum += e.xz;
    if (c + 1 < ${s}) sum += e.yw;
  }
  setOutput(vec4(m.x, sum.x, m.y, sum.y));
}
`;
  const variableNames = view === null ? ['Scores'] : ['Scores', 'Bias'];
  return { variableNames, outputShape: [g, r, 2], userCode, customUniforms: UNIFORMS, packedInputs: true, packedOutput: true };
}

/** GLSL: zeroes the padding of an output texel at (rows o.y, o.y + 1; columns o.z, o.z + 1) of `[G, R, S]`. */
const zeroPadding = (r: number, s: number): string => `
  if (o.z + 1 >= ${s}) v.yw = vec2(0.0);
  if (o.y + 1 >= ${r}) v.zw = vec2(0.0);`;

/** The probabilities, packed `[G, R, S]`: exp(x - m) / sum, four per texel. */
function probsProgram(scoresShape: number[], t: number, view: BiasView | null): WebGLProgram {
  const shape = groupedView(scoresShape);
  const userCode = `
${maskedScoresCode(scoresShape, t, view)}
void main() {
  ivec3 o = getOutputCoords();
  vec4 st = getStats(o.x, o.y, 0);
  vec4 v = exp(maskedScores(o.x, o.y, o.z) - st.xxzz) / st.yyww;${zeroPadding(shape[1], shape[2])}
  setOutput(v);
}
`;
  const variableNames = view === null ? ['Scores', 'Stats'] : ['Scores', 'Bias', 'Stats'];
  return { variableNames, outputShape: shape, userCode, customUniforms: UNIFORMS, packedInputs: true, packedOutput: true };
}

/**
 * The attention output `sum_s exp(x_s - m) v_s / sum_s exp(x_s - m)` per row (m the row's maximum), packed
 * `[G, R, Dv]` (G = B nV): per texel two rows and two value dims. With `flat` (T = 1) the output is `[B, 1, nV R Dv]`
 * (heads side by side, the layout the output projection takes) and a texel holds one row's two dims. The number
 * of keys is the uniform `gtaKeys`, so that a decode step's growing cache reuses one compiled shader.
 */
function valuesProgram(scoresShape: number[], dv: number, t: number, view: BiasView | null, flat: boolean): WebGLProgram {
  const [g, r] = groupedView(scoresShape);
  // Flat: the texel's value group, row pair and dim from its column; `pick` keeps the texel's own row.
  const coords = flat
    ? `
  ivec3 f = getOutputCoords();
  int perGroup = ${r * dv};
  int row = imod(f.z, perGroup) / ${dv};
  ivec3 o = ivec3(f.x * ${scoresShape[1]} + f.z / perGroup, row - imod(row, 2), imod(f.z, ${dv}));
  bool odd = imod(row, 2) == 1;`
    : `
  ivec3 o = getOutputCoords();`;
  const pick = flat ? '\n  x = odd ? x.zwzw : x.xyxy;' : '';
  const result = flat
    ? `
  vec4 v = vec4(acc.xy / sum.x, 0.0, 0.0);`
    : `
  vec4 v = acc / sum.xxyy;${zeroPadding(r, dv)}`;
  const userCode = `
${maskedScoresCode(scoresShape, t, view)}
void main() {${coords}
  vec4 x = maskedScores(o.x, o.y, 0);${pick}
  vec2 m = x.xz;
  for (int c = 0; c < gtaKeys; c += 2) {
    x = maskedScores(o.x, o.y, c);${pick}
    m = max(m, x.xz);
    if (c + 1 < gtaKeys) m = max(m, x.yw);
  }
  vec2 sum = vec2(0.0);
  vec4 acc = vec4(0.0);
  for (int c = 0; c < gtaKeys; c += 2) {
    x = maskedScores(o.x, o.y, c);${pick}
    vec4 e = exp(x - m.xxyy);
    // w: value rows c, c + 1 at dims d, d + 1 (.xy, .zw); past an odd S both the weight and the value are 0.
    vec4 w = getValue(o.x, c, o.z);
    if (c + 1 >= gtaKeys) {
      e.yw = vec2(0.0);
      w.zw = vec2(0.0);
    }
    sum += e.xz + e.yw;
    acc.xy += e.x * w.xy + e.y * w.zw;
    acc.zw += e.z * w.xy + e.w * w.zw;
  }${result}
  setOutput(v);
}
`;
  const variableNames = view === null ? ['Scores', 'Value'] : ['Scores', 'Value', 'Bias'];
  const outputShape = flat ? [scoresShape[0], 1, scoresShape[1] * r * dv] : [g, r, dv];
  const customUniforms = [...UNIFORMS!, { name: 'gtaKeys', type: 'int' as const }];
  return { variableNames, outputShape, userCode, customUniforms, packedInputs: true, packedOutput: true, enableShapeUniforms: true };
}

interface ForwardAttrs {
  scale: number;
  causalOffset: number | null;
  t: number;
}

/**
 * What both forward kernels take from their arguments: the scores' shape, the bias view, the `[G, R, S]` view of
 * the scores and the canonical view of the bias (dispose both), and the uniforms `gtaScale`, `gtaCausalOffset`.
 */
function scoreInputs(args: WebGLKernelArgs) {
  const backend = args.backend as WebGLBackendLike;
  const attrs = args.attrs as unknown as ForwardAttrs;
  const { scores, bias } = args.inputs as { scores: tf.TensorInfo; bias?: tf.TensorInfo };
  const shape = scores.shape;
  const view = bias ? (biasViewOf(shape, bias.shape, attrs.t) as BiasView) : null;
  // Not causal: an offset that hides no key (s <= S - 1 < S + t).
  const uniforms = [[attrs.scale], [attrs.causalOffset === null ? shape[3] : attrs.causalOffset]];
  const scoresView = reshapeInfo(backend, scores, groupedView(shape));
  const biasViews = bias && view ? [reshapeInfo(backend, bias, view.shape)] : [];
  return { backend, t: attrs.t, shape, view, scoresView, biasViews, uniforms };
}

function forwardKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const { backend, t, shape, view, scoresView, biasViews, uniforms } = scoreInputs(args);
  const views = [scoresView, ...biasViews];
  const stats = backend.runWebGLProgram(statsProgram(shape, t, view), views, 'float32', uniforms);
  const probs = backend.runWebGLProgram(probsProgram(shape, t, view), [...views, stats], 'float32', uniforms);
  [...views, stats].forEach((v) => backend.disposeIntermediateTensorInfo(v));
  const out = reshapeInfo(backend, probs, shape);
  backend.disposeIntermediateTensorInfo(probs);
  return out;
}

function valuesKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const { backend, t, shape, view, scoresView, biasViews, uniforms } = scoreInputs(args); // shape [B, nV, R, S]
  const { flat } = args.attrs as unknown as { flat: boolean };
  const value = args.inputs.value as tf.TensorInfo;
  const dv = value.shape[3];
  const views = [scoresView, reshapeInfo(backend, value, groupedView(value.shape)), ...biasViews];
  const out = backend.runWebGLProgram(valuesProgram(shape, dv, t, view, flat), views, 'float32', [...uniforms, [shape[3]]]);
  views.forEach((v) => backend.disposeIntermediateTensorInfo(v));
  if (flat) return out;
  const shaped = reshapeInfo(backend, out, [shape[0], shape[1], shape[2], dv]);
  backend.disposeIntermediateTensorInfo(out);
  return shaped;
}

/** sum_s(dy p) per row, packed `[G, R, 2]`: texel (g, r, 0) holds `(dot_r, 0, dot_r+1, 0)`. */
function rowDotProgram(shape: number[]): WebGLProgram {
  const [g, r, s] = shape;
  const userCode = `
void main() {
  ivec3 o = getOutputCoords();
  vec2 acc = vec2(0.0);
  for (int c = 0; c < ${s}; c += 2) {
    vec4 pd = getP(o.x, o.y, c) * getDy(o.x, o.y, c);
    acc += pd.xz;
    if (c + 1 < ${s}) acc += pd.yw;
  }
  setOutput(vec4(acc.x, 0.0, acc.y, 0.0));
}
`;
  return { variableNames: ['P', 'Dy'], outputShape: [g, r, 2], userCode, packedInputs: true, packedOutput: true };
}

/** scale * p * (dy - sum_s(dy p)), packed `[G, R, S]`. */
function gradProgram(shape: number[]): WebGLProgram {
  const userCode = `
void main() {
  ivec3 o = getOutputCoords();
  vec4 v = gtaScale * getP(o.x, o.y, o.z) * (getDy(o.x, o.y, o.z) - getRowDot(o.x, o.y, 0).xxzz);${zeroPadding(shape[1], shape[2])}
  setOutput(v);
}
`;
  const customUniforms: WebGLProgram['customUniforms'] = [{ name: 'gtaScale', type: 'float' }];
  return { variableNames: ['P', 'Dy', 'RowDot'], outputShape: shape, userCode, customUniforms, packedInputs: true, packedOutput: true };
}

function gradKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { scale } = args.attrs as unknown as { scale: number };
  const { probs, dy } = args.inputs as { probs: tf.TensorInfo; dy: tf.TensorInfo };
  const shape = groupedView(probs.shape);
  const views = [reshapeInfo(backend, probs, shape), reshapeInfo(backend, dy, shape)];
  const rowDot = backend.runWebGLProgram(rowDotProgram(shape), views, 'float32');
  const grad = backend.runWebGLProgram(gradProgram(shape), [...views, rowDot], 'float32', [[scale]]);
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
  tf.registerKernel({ kernelName: MASKED_SOFTMAX_KERNELS.withValues, backendName: 'webgl', kernelFunc: valuesKernel as tf.KernelFunc });
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

/**
 * Why `maskedSoftmaxValues` cannot take scores of `scoresShape` `[B, nV, R, S]` (folded per value head) with
 * values of `valueShape` and `bias`, or null when it can: what `maskedSoftmaxUnsupported` asks, values
 * `[B, nV, S, Dv]`, T at most `WEBGL_SOFTMAX_VALUES_MAX_QUERIES`, and no gradient tape recording (the kernel has
 * no gradient; training takes `maskedSoftmax` and a product).
 */
export function maskedSoftmaxValuesUnsupported(
  scoresShape: number[],
  valueShape: number[],
  bias: tf.Tensor | null,
  t: number,
): string | null {
  const why = maskedSoftmaxUnsupported(scoresShape, bias, t);
  if (why !== null) return why;
  const [b, nV, , s] = scoresShape;
  if (valueShape.length !== 4 || valueShape[0] !== b || valueShape[1] !== nV || valueShape[2] !== s || valueShape[3] < 1) {
    return `the values must be [${b}, ${nV}, ${s}, Dv] for scores [${scoresShape}], got [${valueShape}]`;
  }
  if (t > WEBGL_SOFTMAX_VALUES_MAX_QUERIES) return `T = ${t} queries exceed ${WEBGL_SOFTMAX_VALUES_MAX_QUERIES}`;
  if (tf.engine().isTapeOn()) return 'a gradient tape is recording (the kernel has no gradient)';
  return null;
}

/**
 * `softmax(scale * scores + bias + causal) value` for the unscaled scores folded per value head
 * `[B, nV, rv T, S]` and values `[B, nV, S, Dv]`: the attention output `[B, nV, rv T, Dv]` in one kernel
 * (`GtaMaskedSoftmaxValues`), for inference calls of at most `WEBGL_SOFTMAX_VALUES_MAX_QUERIES` queries. Throws
 * a `ValueError` for inputs `maskedSoftmaxValuesUnsupported` refuses.
 */
export function maskedSoftmaxValues(
  scores: tf.Tensor4D,
  value: tf.Tensor4D,
  bias: tf.Tensor | null,
  options: MaskedSoftmaxOptions,
): tf.Tensor4D;
/** With `flat` (T = 1, Dv even): the output side by side per head, `[B, 1, nV rv Dv]`, as the output projection takes it. */
export function maskedSoftmaxValues(
  scores: tf.Tensor4D,
  value: tf.Tensor4D,
  bias: tf.Tensor | null,
  options: MaskedSoftmaxOptions & { flat: true },
): tf.Tensor3D;
export function maskedSoftmaxValues(
  scores: tf.Tensor4D,
  value: tf.Tensor4D,
  bias: tf.Tensor | null,
  options: MaskedSoftmaxOptions & { flat?: boolean },
): tf.Tensor {
  let why = maskedSoftmaxValuesUnsupported(scores.shape, value.shape, bias, options.t);
  const flat = options.flat === true;
  if (why === null && flat && (options.t !== 1 || value.shape[3] % 2 !== 0)) {
    why = `a flat output needs T = 1 and an even Dv, got T = ${options.t}, Dv = ${value.shape[3]}`;
  }
  if (why !== null) throw new ValueError(`maskedSoftmaxValues: ${why}.`);
  const attrs = { scale: options.scale, causalOffset: options.causalOffset, t: options.t, flat } as unknown as tf.NamedAttrMap;
  const inputs: tf.NamedTensorMap = bias ? { scores, value, bias } : { scores, value };
  return tf.engine().runKernel(MASKED_SOFTMAX_KERNELS.withValues, inputs, attrs);
}
