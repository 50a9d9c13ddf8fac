/**
 * MLA's absorbed decode step for webgpu (DeepSeek-V2 multi-head latent attention, docs/ATTENTION_SPEC.md):
 * one token per sequence attends in latent space over a cache arena (src/cache/cache_arena.ts) that grows
 * in place, instead of the RMSNorm, RoPE, absorption product, two concatenations of the whole cache and the
 * attention as separate kernels.
 *
 * Notation: B batch, H heads, Dn no-RoPE query dim, Dr RoPE dim (one key shared by all heads),
 * Dqk = Dn + Dr, Dc latent dim, L cached positions before the step, C arena capacity. Arena regions:
 * `latent [B, 1, C, Dc]` (post-RMSNorm) and `keyRope [B, 1, C, Dr]` (post-RoPE); query scratch
 * `[B, H, 1, Dc + Dr]`.
 *
 * Kernel GtaMlaDecodeAttention: queries Q `[B, 1, WQ]` (per head `[q_nope | q_rope]` from column qColumn),
 * rows A `[B, 1, WA]` (`[c_raw | k_rope_raw]` from column aColumn), [bias `[Dc + Dr]`], cos, sinSigned `[Dr]`,
 * the latent norm's gain `[Dc]`, W_UK `[H, Dn, Dc]`, arena -> o~ `[B, H, 1, Dc]`:
 *   1. in place (one dispatch, one invocation per written value):
 *        c = RMSNorm(c_raw + b) * gain               -> latent region, position L
 *        k_rope = RoPE_L(k_rope_raw + b)             -> keyRope region, position L
 *        q~_h = q_nope_h W_UK_h,  RoPE_L(q_rope_h)   -> query scratch row h, `[q~_h | q_rope_h]`
 *   2. o~_h = softmax(scale [q~_h | q_rope_h] [c | k_rope]^T) c over the first L + 1 positions
 *      (flash_decode.ts with the RoPE key as its extra key part: one dispatch, or two with the keys split).
 * The layer then applies W_UV per head (decode_step.ts's `latentUpDecode`) and the output projection.
 */
import * as tf from '@tensorflow/tfjs';
import type { CacheArena } from '../../cache/cache_arena.js';
import { ValueError } from '../../utils/errors.js';
import { runFlashDecode } from './decode_step.js';
import { decodeBlock, decodeRows, type FlashDecodeShapes } from './flash_decode.js';
import { CountedProgram, type WebGPUBackendLike } from './program.js';

export const MLA_DECODE_KERNEL = 'GtaMlaDecodeAttention';

/** Attributes of GtaMlaDecodeAttention. */
interface MlaDecodeAttrs {
  batch: number;
  heads: number;
  dn: number;
  dr: number;
  dc: number;
  /** Widths of the query and latent rows, and the columns their parts start at. */
  queryWidth: number;
  queryColumn: number;
  rowWidth: number;
  rowColumn: number;
  epsilon: number;
  /** Score scale, 1 / sqrt(Dqk). */
  scale: number;
  position: number;
  capacity: number;
  /** Element offsets of the latent and keyRope regions and of the query scratch. */
  latent: number;
  keyRope: number;
  query: number;
}

/** Writes the step's latent, RoPE key and absorbed query into the arena: one invocation per value. */
class MlaDecodeAppendProgram extends CountedProgram {
  constructor(
    private readonly attrs: MlaDecodeAttrs,
    arenaElements: number,
    private readonly bias: boolean,
  ) {
    const { batch, heads, dn, dr, dc, queryWidth, queryColumn, rowWidth, rowColumn } = attrs;
    super(
      ['Q', 'A', 'Cs', 'Sn', 'Gain', 'Uk', ...(bias ? ['Bias'] : [])],
      [arenaElements],
      `gtaMlaDecodeAppend_${batch}_${heads}_${dn}_${dr}_${dc}_${queryWidth}_${queryColumn}_${rowWidth}_${rowColumn}_${bias}`,
      batch * (dc + dr) + batch * heads * (dr + dc),
      [
        ['position', 'i32', attrs.position],
        ['capacity', 'i32', attrs.capacity],
        ['latent', 'i32', attrs.latent],
        ['keyRope', 'i32', attrs.keyRope],
        ['query', 'i32', attrs.query],
        ['epsilon', 'f32', attrs.epsilon],
      ],
    );
  }

  getUserCode(): string {
    const { batch, heads, dn, dr, dc, queryWidth, queryColumn, rowWidth, rowColumn } = this.attrs;
    const half = dr / 2;
    const a = (j: string) => (this.bias ? `(A[rowBase + ${j}] + Bias[${j}])` : `A[rowBase + ${j}]`);
    return `
const DN = ${dn};
const DR = ${dr};
const DC = ${dc};
const DQK = DN + DR;
const HEADS = ${heads};

fn partner(d : i32) -> i32 { return select(d - ${half}, d + ${half}, d < ${half}); }

fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  var i = index;
  // 1. the normed latent c [B, Dc] at position L
  if (i < ${batch} * DC) {
    let c = i % DC;
    let b = i / DC;
    let rowBase = b * ${rowWidth} + ${rowColumn};
    var ss = 0.0;
    for (var j = 0; j < DC; j++) {
      let x = ${a('j')};
      ss += x * x;
    }
    let normed = ${a('c')} * inverseSqrt(ss / f32(DC) + uniforms.epsilon) * Gain[c];
    result[uniforms.latent + (b * uniforms.capacity + uniforms.position) * DC + c] = normed;
    return;
  }
  i = i - ${batch} * DC;
  // 2. the rotated shared key k_rope [B, Dr] at position L
  if (i < ${batch} * DR) {
    let d = i % DR;
    let b = i / DR;
    let rowBase = b * ${rowWidth} + ${rowColumn};
    let rotated = ${a('DC + d')} * Cs[d] + ${a('DC + partner(d)')} * Sn[d];
    result[uniforms.keyRope + (b * uniforms.capacity + uniforms.position) * DR + d] = rotated;
    return;
  }
  i = i - ${batch} * DR;
  // 3. each head's rotated q_rope, after its absorbed part in the scratch row [B, H, Dc + Dr]
  if (i < ${batch} * HEADS * DR) {
    let d = i % DR;
    let bh = i / DR;
    let h = bh % HEADS;
    let b = bh / HEADS;
    let q = b * ${queryWidth} + ${queryColumn} + h * DQK + DN;
    result[uniforms.query + bh * (DC + DR) + DC + d] = Q[q + d] * Cs[d] + Q[q + partner(d)] * Sn[d];
    return;
  }
  i = i - ${batch} * HEADS * DR;
  // 4. each head's absorbed query q~_h = q_nope_h W_UK_h [Dc]
  let c = i % DC;
  let bh = i / DC;
  let h = bh % HEADS;
  let b = bh / HEADS;
  let q = b * ${queryWidth} + ${queryColumn} + h * DQK;
  var acc = 0.0;
  for (var n = 0; n < DN; n++) { acc += Q[q + n] * Uk[(h * DN + n) * DC + c]; }
  result[uniforms.query + bh * (DC + DR) + c] = acc;
}
`;
  }
}

function mlaDecodeKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const attrs = args.attrs as unknown as MlaDecodeAttrs;
  const { queries, rows, bias, cos, sinSigned, gain, uk, arena } = args.inputs;
  const append = new MlaDecodeAppendProgram(attrs, arena!.shape[0], bias !== undefined);
  const inputs = [queries!, rows!, cos!, sinSigned!, gain!, uk!, ...(bias ? [bias] : [])];
  backend.runWebGPUProgram(append, inputs, 'float32', append.uniformValues(), arena!);
  const { batch, heads, dc, dr } = attrs;
  const shapes: FlashDecodeShapes = {
    b: batch,
    nQ: heads,
    nK: 1,
    nV: 1,
    s: attrs.position + 1,
    dk: dc,
    de: dr,
    dv: dc,
    scale: attrs.scale,
    // The latent is both the key's first part and the value.
    views: { query: attrs.query, key: attrs.latent, value: attrs.latent, keyCapacity: attrs.capacity, extraKey: attrs.keyRope },
  };
  const rowsPerGroup = mlaDecodeRows(heads, dc, dr);
  if (rowsPerGroup === null) throw new ValueError(`${MLA_DECODE_KERNEL}: a query row of ${dc + dr} values does not fit workgroup memory.`);
  return runFlashDecode(backend, shapes, rowsPerGroup, decodeBlock(rowsPerGroup, dc + dr)!, arena!);
}

/** Query rows per workgroup for H heads over one latent key of Dc + Dr values, or null when none fits. */
function mlaDecodeRows(heads: number, dc: number, dr: number): number | null {
  return decodeRows({ nQ: heads, nK: 1, nV: 1, dk: dc + dr });
}

/** Why the fused MLA decode cannot take these dims, or null when it can. */
export function mlaDecodeUnsupported(heads: number, dc: number, dr: number): string | null {
  if (dr % 2 !== 0) return 'the RoPE dim must be even';
  return mlaDecodeRows(heads, dc, dr) === null ? `a query row of ${dc + dr} values does not fit in workgroup memory` : null;
}

/** Registers the kernel for the webgpu backend (once). */
function registerMlaDecodeKernel(): void {
  if (tf.getKernel(MLA_DECODE_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: MLA_DECODE_KERNEL, backendName: 'webgpu', kernelFunc: mlaDecodeKernel as unknown as tf.KernelFunc });
}

/** The step's inputs: the projected rows, where their parts start, and the weights the kernel reads. */
export interface MlaDecodeInputs {
  /** `[B, 1, WQ]`: per head `[q_nope | q_rope]` from column `queryColumn` (not scaled). */
  queries: tf.Tensor;
  queryColumn: number;
  /** `[B, 1, WA]`: `[c_raw | k_rope_raw]` from column `rowColumn` (may be `queries` itself). */
  rows: tf.Tensor;
  rowColumn: number;
  /** The KV-A bias `[Dc + Dr]`, or null. */
  bias: tf.Tensor | null;
  factors: { cos: tf.Tensor; sinSigned: tf.Tensor };
  /** The latent RMSNorm's gain `[Dc]` and epsilon. */
  gain: tf.Tensor;
  epsilon: number;
  /** W_UK `[H, Dn, Dc]`. */
  uk: tf.Tensor;
}

/**
 * One MLA decode step's attention on webgpu over `arena` (regions `latent` and `keyRope`, query scratch of
 * H rows of Dc + Dr) after `position` cached positions: writes the token's latent and RoPE key in place at
 * `position` and returns the latent-space output o~ `[B, H, 1, Dc]`. Inference only (no gradient).
 */
export function mlaDecodeAttention(inputs: MlaDecodeInputs, arena: CacheArena, position: number, scale: number): tf.Tensor4D {
  registerMlaDecodeKernel();
  const [heads, dn, dc] = inputs.uk.shape;
  const latent = arena.regions.latent;
  const keyRope = arena.regions.keyRope;
  if (latent === undefined || keyRope === undefined || latent.dim !== dc || arena.query.dim !== dc + keyRope.dim) {
    throw new ValueError(`${MLA_DECODE_KERNEL}: the arena does not hold an MLA cache with a latent of ${dc}.`);
  }
  const attrs: MlaDecodeAttrs = {
    batch: arena.batch,
    heads,
    dn,
    dr: keyRope.dim,
    dc,
    queryWidth: inputs.queries.shape[inputs.queries.rank - 1],
    queryColumn: inputs.queryColumn,
    rowWidth: inputs.rows.shape[inputs.rows.rank - 1],
    rowColumn: inputs.rowColumn,
    epsilon: inputs.epsilon,
    scale,
    position,
    capacity: arena.capacity,
    latent: latent.offset,
    keyRope: keyRope.offset,
    query: arena.query.offset,
  };
  const named: tf.NamedTensorMap = {
    queries: inputs.queries,
    rows: inputs.rows,
    cos: inputs.factors.cos,
    sinSigned: inputs.factors.sinSigned,
    gain: inputs.gain,
    uk: inputs.uk,
    arena: arena.tensor,
  };
  if (inputs.bias !== null) named.bias = inputs.bias;
  return tf.engine().runKernel(MLA_DECODE_KERNEL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
