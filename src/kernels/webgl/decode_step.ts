/**
 * The decode step on webgl: one token per sequence attends over caches held as tensors, in a handful of fragment
 * programs instead of the composed path's 18-20 (projections split into heads, RoPE as a product, reshapes,
 * two concatenations, the scores, the softmax and the value product; src/layers/attention_base.ts chooses it).
 * WebGL programs cannot write into an existing texture, so each step still writes the grown caches anew; what
 * goes is every program between them.
 *
 * Notation: B batch, L cached positions before the step (S = L + 1 after it), N width of the projected row
 * (every projection of the token side by side, e.g. GQA's `[q | k | v]`, the score scale folded into q), Hq
 * query heads (attention maps), per cache tensor H heads of D values, rk = Hq / Hk query heads per key head.
 * RoPE (rotate-half) of a row's dims d, d + 1 at position L: `x_d cos_d + x_{d'} sinSigned_d` with d' = d +- D/2;
 * the cos and signed sin of position L are uniforms (`vec4 (cos_j, cos_j+1, sin_j, sin_j+1)` per pair j < D/2), so
 * that no factors tensor is uploaded per step.
 *
 * Kernels (registered for webgl on first use; every program is packed like tfjs's matMul, so the product that
 * makes the rows and the caches need no pack or unpack program, and sizes that change per step are uniforms,
 * so that one compiled shader serves every step):
 *   GtaDecodeAppend       cache [B, H, L, D], rows [B, 1, N] -> [B, H, S, D]: the cache with the row's segment at
 *                         `offset` (H heads of D) appended at position L, rotated when RoPE is given
 *   GtaDecodeScores       rows [B, 1, N], keys [B, Hk, S, D] -> scores [B, Hk, rk, S]: q (the row's first Hq D
 *                         values, rotated) against every key; q heads rk h .. rk h + rk - 1 share key head h
 *   GtaDecodeGatedLatent  o [B, 1, Hq Dl], rows [B, 1, N], blocks [Hq, Dl, C] -> u [B, 1, Hq C]: GTA's decoder and
 *                         gate, `u_w = sigmoid(rows[gate + w]) sum_j o[g Dl + j] blocks[g, j, w - g C]`, g = w / C
 * Between them, `maskedSoftmaxValues` (attention_softmax.ts) turns the scores and the values into the attention
 * output, flat `[B, 1, Hq Dv]`.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { runReshaped, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names. */
export const WEBGL_DECODE_KERNELS = {
  append: 'GtaDecodeAppend',
  scores: 'GtaDecodeScores',
  gatedLatent: 'GtaDecodeGatedLatent',
} as const;

/** The uniform values of RoPE at one position: `(cos_j, cos_j+1, sin_j, sin_j+1)` for j = 0, 2, .. < D/2. */
export function ropeUniform(cos: ArrayLike<number>, sinSigned: ArrayLike<number>, dim: number): number[] {
  const half = dim / 2;
  const out: number[] = [];
  // sinSigned holds -sin in its first half and +sin in its second.
  for (let j = 0; j < half; j += 2) out.push(cos[j], cos[j + 1], sinSigned[j + half], sinSigned[j + half + 1]);
  return out;
}

/**
 * GLSL: `vec2 rowPair(int b, int base, int d)`, the values d, d + 1 (d even) of the D-wide segment of row b that
 * starts at column `base`, rotated by `gtaRope` when `rope`.
 */
function rowPairCode(dim: number, rope: boolean): string {
  if (!rope) return 'vec2 rowPair(int b, int base, int d) { return getRows(b, 0, base + d).xy; }';
  const half = dim / 2;
  return `
vec2 rowPair(int b, int base, int d) {
  vec2 x = getRows(b, 0, base + d).xy;
  bool first = d < ${half};
  vec2 y = getRows(b, 0, base + (first ? d + ${half} : d - ${half})).xy;
  vec4 f = gtaRope[(first ? d : d - ${half}) / 2];
  return x * f.xy + (first ? -1.0 : 1.0) * y * f.zw;
}`;
}

/**
 * A packed program with shape uniforms whose custom uniforms are the int `size` (a size that grows per step) and,
 * with `rope`, `gtaRope` for D = `dim`.
 */
function stepProgram(
  variableNames: string[],
  outputShape: number[],
  userCode: string,
  size: string,
  rope: boolean,
  dim: number,
): WebGLProgram {
  const customUniforms: NonNullable<WebGLProgram['customUniforms']> = [{ name: size, type: 'int' }];
  if (rope) customUniforms.push({ name: 'gtaRope', type: 'vec4', arrayIndex: dim / 4 });
  return { variableNames, outputShape, userCode, customUniforms, packedInputs: true, packedOutput: true, enableShapeUniforms: true };
}

interface AppendAttrs {
  offset: number;
  heads: number;
  dim: number;
  rope: number[] | null;
}

/** `[B H, S, D]`: rows s, s + 1 and dims d, d + 1 per texel, from the cache below L and from the row at L. */
function appendProgram(a: AppendAttrs, length: number, b: number): WebGLProgram {
  const { heads, dim, offset } = a;
  const userCode = `
${rowPairCode(dim, a.rope !== null)}
void main() {
  ivec3 o = getOutputCoords();
  int b = o.x / ${heads};
  int base = ${offset} + (o.x - b * ${heads}) * ${dim};
  vec4 v = vec4(0.0);
  if (o.y < gtaLength) v = getCache(o.x, o.y, o.z);
  if (o.y == gtaLength) v = vec4(rowPair(b, base, o.z), 0.0, 0.0);
  else if (o.y + 1 == gtaLength) v.zw = rowPair(b, base, o.z);
  setOutput(v);
}
`;
  return stepProgram(['Cache', 'Rows'], [b * heads, length + 1, dim], userCode, 'gtaLength', a.rope !== null, dim);
}

function appendKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const a = args.attrs as unknown as AppendAttrs;
  const { cache, rows } = args.inputs as { cache: tf.TensorInfo; rows: tf.TensorInfo };
  const [b, h, l, d] = cache.shape;
  const uniforms = a.rope === null ? [[l]] : [[l], a.rope];
  return runReshaped(backend, appendProgram(a, l, b), [cache, rows], [[b * h, l, d], rows.shape], [b, h, l + 1, d], uniforms);
}

interface ScoresAttrs {
  queryHeads: number;
  dim: number;
  rope: number[] | null;
}

/** `[B Hk, rk, S]`: query heads r, r + 1 of the group against keys s, s + 1 per texel. */
function scoresProgram(a: ScoresAttrs, keyHeads: number, b: number, s: number): WebGLProgram {
  const { queryHeads, dim } = a;
  const rk = queryHeads / keyHeads;
  const userCode = `
${rowPairCode(dim, a.rope !== null)}
void main() {
  ivec3 o = getOutputCoords();
  int b = o.x / ${keyHeads};
  int head = (o.x - b * ${keyHeads}) * ${rk} + o.y;
  bool second = o.y + 1 < ${rk};
  vec4 acc = vec4(0.0);
  for (int d = 0; d < ${dim}; d += 2) {
    vec2 q0 = rowPair(b, head * ${dim}, d);
    vec2 q1 = second ? rowPair(b, (head + 1) * ${dim}, d) : vec2(0.0);
    vec4 k = getKeys(o.x, o.z, d);
    acc += vec4(dot(q0, k.xy), dot(q0, k.zw), dot(q1, k.xy), dot(q1, k.zw));
  }
  if (o.z + 1 >= gtaKeys) acc.yw = vec2(0.0);
  setOutput(acc);
}
`;
  return stepProgram(['Rows', 'Keys'], [b * keyHeads, rk, s], userCode, 'gtaKeys', a.rope !== null, dim);
}

function scoresKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const a = args.attrs as unknown as ScoresAttrs;
  const { rows, keys } = args.inputs as { rows: tf.TensorInfo; keys: tf.TensorInfo };
  const [b, hk, s, d] = keys.shape;
  const uniforms = a.rope === null ? [[s]] : [[s], a.rope];
  const outShape = [b, hk, a.queryHeads / hk, s];
  return runReshaped(backend, scoresProgram(a, hk, b, s), [rows, keys], [rows.shape, [b * hk, s, d]], outShape, uniforms);
}

interface GatedAttrs {
  gateOffset: number;
}

/** `[B, 1, Hq C]`: columns w, w + 1 of the token's gated, decoded value per texel (the second row is padding). */
function gatedProgram(gateOffset: number, b: number, hq: number, dl: number, c: number): WebGLProgram {
  const userCode = `
void main() {
  ivec3 o = getOutputCoords();
  int g = o.z / ${c};
  int w = o.z - g * ${c};
  vec2 u = vec2(0.0);
  for (int j = 0; j < ${dl}; j += 2) {
    vec2 oj = getO(o.x, 0, g * ${dl} + j).xy;
    vec4 m = getBlocks(g, j, w);
    u += oj.x * m.xy + oj.y * m.zw;
  }
  vec2 gate = getRows(o.x, 0, ${gateOffset} + o.z).xy;
  setOutput(vec4(u / (1.0 + exp(-gate)), 0.0, 0.0));
}
`;
  return {
    variableNames: ['O', 'Rows', 'Blocks'],
    outputShape: [b, 1, hq * c],
    userCode,
    packedInputs: true,
    packedOutput: true,
    enableShapeUniforms: true,
  };
}

function gatedKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { gateOffset } = args.attrs as unknown as GatedAttrs;
  const { o, rows, blocks } = args.inputs as { o: tf.TensorInfo; rows: tf.TensorInfo; blocks: tf.TensorInfo };
  const [hq, dl, c] = blocks.shape;
  return backend.runWebGLProgram(gatedProgram(gateOffset, o.shape[0], hq, dl, c), [o, rows, blocks], 'float32');
}

/** Registers the three kernels for the webgl backend (once). */
export function registerWebGLDecodeKernels(): void {
  if (tf.getKernel(WEBGL_DECODE_KERNELS.append, 'webgl') !== undefined) return;
  const kernels: Array<[string, (args: WebGLKernelArgs) => tf.TensorInfo]> = [
    [WEBGL_DECODE_KERNELS.append, appendKernel],
    [WEBGL_DECODE_KERNELS.scores, scoresKernel],
    [WEBGL_DECODE_KERNELS.gatedLatent, gatedKernel],
  ];
  for (const [kernelName, fn] of kernels) tf.registerKernel({ kernelName, backendName: 'webgl', kernelFunc: fn as tf.KernelFunc });
}

/** Why the webgl decode step cannot run heads of these dims, or null when it can (after registering the kernels). */
export function webglDecodeUnsupported(
  queryHeads: number,
  keyHeads: number,
  valueHeads: number,
  dim: number,
  valueDim: number,
  rope: boolean,
): string | null {
  registerWebGLDecodeKernels();
  if (tf.getKernel(WEBGL_DECODE_KERNELS.append, tf.getBackend()) === undefined)
    return `no ${WEBGL_DECODE_KERNELS.append} kernel on the ${tf.getBackend()} backend`;
  if (dim % (rope ? 4 : 2) !== 0) return `the head dim ${dim} must be a multiple of ${rope ? 4 : 2}`;
  if (valueDim % 2 !== 0) return `the value dim ${valueDim} must be even`;
  if (queryHeads % keyHeads !== 0 || queryHeads % valueHeads !== 0)
    return `${queryHeads} query heads do not group over ${keyHeads} key and ${valueHeads} value heads`;
  return null;
}

/** `cache [B, H, L, D]` with the segment of `rows [B, 1, N]` at `offset` appended (rotated by `rope` when given). */
export function decodeAppend(cache: tf.Tensor4D, rows: tf.Tensor3D, offset: number, rope: number[] | null): tf.Tensor4D {
  const [, heads, , dim] = cache.shape;
  if (offset % 2 !== 0 || offset + heads * dim > rows.shape[2])
    throw new ValueError(
      `decodeAppend: the segment at ${offset} of ${heads} x ${dim} does not fit rows [${rows.shape}] (its start must be even).`,
    );
  const attrs = { offset, heads, dim, rope } as unknown as tf.NamedAttrMap;
  registerWebGLDecodeKernels();
  return tf.engine().runKernel(WEBGL_DECODE_KERNELS.append, { cache, rows }, attrs) as tf.Tensor4D;
}

/** The scores `[B, Hk, rk, S]` of the rows' first `queryHeads` heads (rotated by `rope` when given) against `keys`. */
export function decodeScores(rows: tf.Tensor3D, keys: tf.Tensor4D, queryHeads: number, rope: number[] | null): tf.Tensor4D {
  const attrs = { queryHeads, dim: keys.shape[3], rope } as unknown as tf.NamedAttrMap;
  registerWebGLDecodeKernels();
  return tf.engine().runKernel(WEBGL_DECODE_KERNELS.scores, { rows, keys }, attrs) as tf.Tensor4D;
}

/** GTA's decoder and gate for one token: `o [B, 1, Hq Dl]`, gate logits in `rows` from `gateOffset`, `blocks = R + Delta`. */
export function decodeGatedLatent(o: tf.Tensor3D, rows: tf.Tensor3D, blocks: tf.Tensor3D, gateOffset: number): tf.Tensor3D {
  const attrs = { gateOffset } as unknown as tf.NamedAttrMap;
  registerWebGLDecodeKernels();
  return tf.engine().runKernel(WEBGL_DECODE_KERNELS.gatedLatent, { o, rows, blocks }, attrs) as tf.Tensor3D;
}
