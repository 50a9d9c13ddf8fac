/**
 * Fused decode for webgpu: one token per sequence attends over a cache that grows in place (a cache
 * arena, src/cache/cache_arena.ts), instead of projections split into heads, RoPE, a concatenation of the
 * whole cache and the attention as separate kernels.
 *
 * Notation: B batch, L cached positions before the step, C arena capacity, N width of the projected row
 * (every projection of the token side by side, e.g. GQA's `[q | k | v]`), Hq query heads (maps), Dq their
 * dim, and per arena region H heads of D values.
 *
 * Kernels (registered for webgpu on first use):
 *   GtaCacheArenaPack    sources -> arena [elements]     copies the first L positions of each region from
 *                                                         exact cache tensors [B, H, L, D] or an older arena
 *                                                         into a new arena (one dispatch)
 *   GtaDecodeAttention   rows [B, 1, N], [bias [N]], [cos, sinSigned [Dr]], arena -> out [B, Hq, 1, Dv]
 *       1. in place: each segment of the row (q and k with RoPE at position L, v or the latent without)
 *          is written to its region, the cache regions at position L, the query to the scratch (one dispatch);
 *       2. attention of the query over the arena's first L + 1 keys and values (flash_decode.ts: one dispatch,
 *          or two with the keys split).
 *   GtaGatedLatentDecode o [B, Hq, 1, Dl], rows [B, 1, N], blocks [Hq, Dl, r*Dl] -> u [B, 1, W]
 *       GTA's value decoder and gate for one token: u_w = sigmoid(rows[gate + w]) * sum_j o[g, j] blocks[g, j, w - g*r*Dl]
 *       with g = floor(w / (r*Dl)), blocks = R + Delta (one dispatch; the composed path: a product with the
 *       block-diagonal decoder, a slice, a sigmoid and a multiply).
 * The in-place write makes the arena an output of a program and never an input of the same program; the
 * attention reads it afterwards, in queue order.
 */
import * as tf from '@tensorflow/tfjs';
import type { CacheArena } from '../../cache/cache_arena.js';
import { ValueError } from '../../utils/errors.js';
import { AttentionCombineProgram } from './attention_combine.js';
import { decodeBlock, decodeRows, decodeSplits, FlashDecodeProgram, type FlashDecodeShapes } from './flash_decode.js';
import { CountedProgram, type NamedUniform, type WebGPUBackendLike, type WebGPUProgram } from './program.js';

export const ARENA_PACK_KERNEL = 'GtaCacheArenaPack';
export const DECODE_ATTENTION_KERNEL = 'GtaDecodeAttention';

const WORKGROUP = 64;

/** One region copied by the pack kernel: `[B, heads, L, dim]` from source `source` to the new arena. */
export interface ArenaCopy {
  /** Index of the source tensor. */
  source: number;
  sourceOffset: number;
  /** Row capacity of the source (L for an exact cache tensor). */
  sourceCapacity: number;
  offset: number;
  heads: number;
  dim: number;
}

interface PackAttrs {
  batch: number;
  rows: number;
  capacity: number;
  elements: number;
  copies: ArenaCopy[];
}

/** One invocation per copied element. Offsets, capacities and L are uniforms; heads and dims are constants. */
class ArenaPackProgram extends CountedProgram {
  constructor(
    private readonly attrs: PackAttrs,
    sources: number,
  ) {
    const { batch, rows, capacity, copies } = attrs;
    const count = copies.reduce((n, c) => n + batch * c.heads * rows * c.dim, 0);
    super(
      Array.from({ length: sources }, (_, i) => `S${i}`),
      [attrs.elements],
      `gtaArenaPack_${batch}_${copies.map((c) => `${c.source}:${c.heads}x${c.dim}`).join('_')}`,
      count,
      [
        ['rows', 'i32', rows],
        ['capacity', 'i32', capacity],
        ...copies.flatMap((c, i): NamedUniform[] => [
          [`so${i}`, 'i32', c.sourceOffset],
          [`sc${i}`, 'i32', c.sourceCapacity],
          [`do${i}`, 'i32', c.offset],
        ]),
      ],
    );
  }

  getUserCode(): string {
    const { batch, copies } = this.attrs;
    const body = copies
      .map(
        (c, i) => `
  {
    let n = ${batch * c.heads} * L * ${c.dim};
    if (i < n) {
      let d = i % ${c.dim};
      let r = i / ${c.dim};
      let p = r % L;
      let bh = r / L;
      result[uniforms.do${i} + (bh * uniforms.capacity + p) * ${c.dim} + d] = S${c.source}[uniforms.so${i} + (bh * uniforms.sc${i} + p) * ${c.dim} + d];
      return;
    }
    i = i - n;
  }`,
      )
      .join('');
    return `
fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  let L = uniforms.rows;
  var i = index;${body}
}
`;
  }
}

function packKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const attrs = args.attrs as unknown as PackAttrs;
  const sources = Object.keys(args.inputs)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((k) => args.inputs[k]!);
  const program = new ArenaPackProgram(attrs, sources.length);
  return backend.runWebGPUProgram(program, sources, 'float32', program.uniformValues());
}

/** One segment of the projected row written to the arena: columns `column..column + heads*dim`. */
interface DecodeSegment {
  column: number;
  heads: number;
  dim: number;
  /** Rotate with the step's RoPE factors (dim must equal theirs). */
  rope: boolean;
  /** Element offset of the destination region and its row capacity (1 for the query scratch). */
  offset: number;
  capacity: number;
  /** Whether this is the query (written at row 0 of the scratch) rather than a cache region (row L). */
  query: boolean;
}

/** Attributes of GtaDecodeAttention. */
interface DecodeAttentionAttrs {
  batch: number;
  /** Width N of the projected row. */
  width: number;
  /** Cached positions L before the step. */
  position: number;
  segments: DecodeSegment[];
  /** Attention: the query segment, the key and value segments (indices into `segments`), and the scale. */
  query: number;
  key: number;
  value: number;
  scale: number;
}

/** Writes the row's segments into the arena in place: one invocation per written element. */
class DecodeAppendProgram extends CountedProgram {
  constructor(
    private readonly attrs: DecodeAttentionAttrs,
    arenaElements: number,
    private readonly bias: boolean,
    rope: boolean,
  ) {
    const { batch, segments } = attrs;
    super(
      ['R', ...(bias ? ['Bias'] : []), ...(rope ? ['Cs', 'Sn'] : [])],
      [arenaElements],
      `gtaDecodeAppend_${batch}_${attrs.width}_${bias}_` +
        segments.map((s) => `${s.column}:${s.heads}x${s.dim}${s.rope ? 'r' : ''}`).join('_'),
      segments.reduce((n, s) => n + batch * s.heads * s.dim, 0),
      [
        ['position', 'i32', attrs.position],
        ...segments.flatMap((s, i): NamedUniform[] => [
          [`off${i}`, 'i32', s.offset],
          [`cap${i}`, 'i32', s.capacity],
        ]),
      ],
    );
  }

  getUserCode(): string {
    const { batch, width, segments } = this.attrs;
    const body = segments
      .map((s, i) => {
        const half = s.dim / 2;
        const at = (j: string) => (this.bias ? `(R[src + ${j}] + Bias[col + ${j}])` : `R[src + ${j}]`);
        const value = s.rope ? `${at('d')} * Cs[d] + ${at(`select(d - ${half}, d + ${half}, d < ${half})`)} * Sn[d]` : at('d');
        return `
  {
    let n = ${batch * s.heads * s.dim};
    if (i < n) {
      let d = i % ${s.dim};
      let bh = i / ${s.dim};
      let h = bh % ${s.heads};
      let b = bh / ${s.heads};
      let col = ${s.column} + h * ${s.dim};
      let src = b * ${width} + col;
      result[uniforms.off${i} + (bh * uniforms.cap${i} + ${s.query ? '0' : 'uniforms.position'}) * ${s.dim} + d] = ${value};
      return;
    }
    i = i - n;
  }`;
      })
      .join('');
    return `
fn main(index : i32) {
  if (index >= uniforms.count) { return; }
  var i = index;${body}
}
`;
  }
}

function decodeAttentionKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const attrs = args.attrs as unknown as DecodeAttentionAttrs;
  const { rows, bias, cos, sinSigned, arena } = args.inputs;
  const rope = cos !== undefined && sinSigned !== undefined;
  const append = new DecodeAppendProgram(attrs, arena!.shape[0], bias !== undefined, rope);
  const appendInputs = [rows!, ...(bias ? [bias] : []), ...(rope ? [cos, sinSigned] : [])];
  backend.runWebGPUProgram(append, appendInputs, 'float32', append.uniformValues(), arena!);
  const [q, k, v] = [attrs.segments[attrs.query], attrs.segments[attrs.key], attrs.segments[attrs.value]];
  const views = { query: q.offset, key: k.offset, value: v.offset, keyCapacity: k.capacity };
  const s = attrs.position + 1;
  const decode: FlashDecodeShapes = {
    b: attrs.batch,
    nQ: q.heads,
    nK: k.heads,
    nV: v.heads,
    s,
    dk: q.dim,
    dv: v.dim,
    scale: attrs.scale,
    views,
  };
  const folded = decodeRows(decode);
  if (folded === null) throw new ValueError(`${DECODE_ATTENTION_KERNEL}: a query row of ${q.dim} values does not fit workgroup memory.`);
  return runFlashDecode(backend, decode, folded, decodeBlock(folded, q.dim)!, arena!);
}

/** flash_decode.ts's program over `source` (q, k, v and any extra key all views of it), and the combine of its splits. */
export function runFlashDecode(
  backend: WebGPUBackendLike,
  shapes: FlashDecodeShapes,
  rows: number,
  block: number,
  source: tf.TensorInfo,
): tf.TensorInfo {
  const { splits, chunk } = decodeSplits(shapes, rows, block);
  const program = new FlashDecodeProgram(shapes, rows, block, splits, chunk);
  const views = program.variableNames.map(() => source);
  const out = backend.runWebGPUProgram(program, views, 'float32', program.uniformValues());
  if (splits === 1) return out;
  const combine = new AttentionCombineProgram([shapes.b, shapes.nQ, 1, shapes.dv], splits, shapes.dv, false);
  const merged = backend.runWebGPUProgram(combine, [out], 'float32', combine.uniformValues());
  backend.disposeData(out.dataId);
  return merged;
}

export const GATED_DECODE_KERNEL = 'GtaGatedLatentDecode';
/** The same product without the gate (MLA's W_UV per head): `[B, H, 1, Dc]` x `[H, Dc, Dv]` -> `[B, 1, H*Dv]`. */
export const LATENT_UP_DECODE_KERNEL = 'GtaLatentUpDecode';

interface GatedDecodeAttrs {
  /** Width N of the projected row, and the column of its first gate value (-1: no gate). */
  width: number;
  gateColumn: number;
}

/** One invocation per output element u[b, w]; without a gate (gateColumn -1) u itself. */
class GatedDecodeProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1, 2] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;

  constructor(
    private readonly b: number,
    private readonly hq: number,
    private readonly dl: number,
    private readonly group: number,
    private readonly attrs: GatedDecodeAttrs,
    private readonly bias: boolean,
  ) {
    const gated = attrs.gateColumn >= 0;
    this.variableNames = !gated ? ['O', 'F'] : bias ? ['O', 'R', 'F', 'Bias'] : ['O', 'R', 'F'];
    this.outputShape = [b, 1, hq * group];
    this.dispatch = [Math.ceil((b * hq * group) / WORKGROUP), 1, 1];
    this.shaderKey = `gtaGatedDecode_${hq}_${dl}_${group}_${attrs.width}_${attrs.gateColumn}_${bias}`;
  }

  getUserCode(): string {
    const { hq, dl, group } = this;
    const w = hq * group;
    const gate = `R[b * ${this.attrs.width} + ${this.attrs.gateColumn} + c]${this.bias ? ` + Bias[${this.attrs.gateColumn} + c]` : ''}`;
    const write = this.attrs.gateColumn >= 0 ? `result[index] = u / (1.0 + exp(-(${gate})));` : 'result[index] = u;';
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let c = index % ${w};
  let b = index / ${w};
  let g = c / ${group};
  let col = c % ${group};
  var u = 0.0;
  for (var j = 0; j < ${dl}; j++) {
    u += O[(b * ${hq} + g) * ${dl} + j] * F[(g * ${dl} + j) * ${group} + col];
  }
  ${write}
}
`;
  }
}

function gatedDecodeKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { latents, rows, blocks, bias } = args.inputs;
  const [b, hq, , dl] = latents!.shape;
  const program = new GatedDecodeProgram(b, hq, dl, blocks!.shape[2], args.attrs as unknown as GatedDecodeAttrs, bias !== undefined);
  const inputs = rows === undefined ? [latents!, blocks!] : [latents!, rows, blocks!, ...(bias ? [bias] : [])];
  return backend.runWebGPUProgram(program, inputs, 'float32');
}

/**
 * GTA's decoder and gate for one token per sequence: `sigmoid(gate) * concat_g(o_g blocks_g)`, from the
 * attention's latents `o [B, Hq, 1, Dl]`, the projected row `[B, 1, N]` (plus `bias [N]`) whose columns
 * `gateColumn..` hold the gate's pre-activations, and the folded decoder blocks `[Hq, Dl, r*Dl]`: `[B, 1, Hq*r*Dl]`.
 */
export function gatedLatentDecode(
  latents: tf.Tensor4D,
  rows: tf.Tensor,
  bias: tf.Tensor | null,
  blocks: tf.Tensor3D,
  gateColumn: number,
): tf.Tensor3D {
  registerDecodeKernels();
  const attrs: GatedDecodeAttrs = { width: rows.shape[rows.rank - 1], gateColumn };
  const inputs: tf.NamedTensorMap = { latents, rows, blocks };
  if (bias !== null) inputs.bias = bias;
  return tf.engine().runKernel(GATED_DECODE_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}

/**
 * Per head `o_h blocks_h` side by side for one token per sequence: latents `o [B, H, 1, Dl]` and blocks
 * `[H, Dl, Dv]` -> `[B, 1, H*Dv]` (one dispatch; MLA's W_UV after its absorbed decode).
 */
export function latentUpDecode(latents: tf.Tensor4D, blocks: tf.Tensor3D): tf.Tensor3D {
  registerDecodeKernels();
  const attrs: GatedDecodeAttrs = { width: 0, gateColumn: -1 };
  return tf.engine().runKernel(LATENT_UP_DECODE_KERNEL, { latents, blocks }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}

/** Registers the kernels for the webgpu backend (once). */
export function registerDecodeKernels(): void {
  if (tf.getKernel(DECODE_ATTENTION_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: ARENA_PACK_KERNEL, backendName: 'webgpu', kernelFunc: packKernel as unknown as tf.KernelFunc });
  tf.registerKernel({
    kernelName: DECODE_ATTENTION_KERNEL,
    backendName: 'webgpu',
    kernelFunc: decodeAttentionKernel as unknown as tf.KernelFunc,
  });
  tf.registerKernel({ kernelName: GATED_DECODE_KERNEL, backendName: 'webgpu', kernelFunc: gatedDecodeKernel as unknown as tf.KernelFunc });
  tf.registerKernel({
    kernelName: LATENT_UP_DECODE_KERNEL,
    backendName: 'webgpu',
    kernelFunc: gatedDecodeKernel as unknown as tf.KernelFunc,
  });
}

/** Why the fused decode cannot take these dims, or null when it can. */
export function fusedDecodeUnsupported(queryHeads: number, keyHeads: number, valueHeads: number, dk: number, dv: number): string | null {
  if (queryHeads % keyHeads !== 0 || queryHeads % valueHeads !== 0) return 'query heads must be a multiple of key and value heads';
  if (dk < 1 || dv < 1) return 'dims must be positive';
  if (decodeRows({ nQ: queryHeads, nK: keyHeads, nV: valueHeads, dk }) === null)
    return `a query row of ${dk} values does not fit in workgroup memory`;
  return null;
}

/**
 * A new arena `[elements]` holding the first `rows` positions of each copy's region (one dispatch). `sources`
 * are exact cache tensors `[B, H, rows, D]` or an older arena.
 */
export function packArena(sources: tf.Tensor[], attrs: PackAttrs): tf.Tensor1D {
  registerDecodeKernels();
  if (attrs.copies.some((c) => c.source < 0 || c.source >= sources.length))
    throw new ValueError('packArena: a copy names a missing source.');
  const inputs: tf.NamedTensorMap = {};
  sources.forEach((s, i) => (inputs[`s${i}`] = s));
  if (attrs.rows === 0) return tf.zeros([attrs.elements]);
  return tf.engine().runKernel(ARENA_PACK_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor1D;
}

/**
 * One decode step's attention on webgpu over `arena` after `position` cached positions. `rows [B, 1, N]` (plus
 * `bias [N]`) holds, from column 0 and in this order, the query (`arena.query`'s heads and dim, scaled by the
 * score scale already) and one part per cache region of the arena's spec (further columns, e.g. GTA's gate,
 * are not read). The query and the first region (the keys) are rotated with `factors`, when given; the parts
 * are written into `arena` in place (the regions at `position`), then the query attends over the first
 * position + 1 keys and values (the last region): `[B, Hq, 1, Dv]`. Inference only (no gradient).
 */
export function decodeAttention(
  rows: tf.Tensor,
  bias: tf.Tensor | null,
  factors: { cos: tf.Tensor; sinSigned: tf.Tensor } | null,
  arena: CacheArena,
  position: number,
): tf.Tensor4D {
  registerDecodeKernels();
  const parts = [
    { ...arena.query, capacity: 1, query: true },
    ...arena.spec.regions.map((r) => ({ ...arena.regions[r.name], capacity: arena.capacity, query: false })),
  ];
  let column = 0;
  const segments: DecodeSegment[] = parts.map((p, i) => {
    const segment = {
      column,
      heads: p.heads,
      dim: p.dim,
      rope: factors !== null && i < 2,
      offset: p.offset,
      capacity: p.capacity,
      query: p.query,
    };
    column += p.heads * p.dim;
    return segment;
  });
  const attrs: DecodeAttentionAttrs = {
    batch: arena.batch,
    width: rows.shape[rows.rank - 1],
    position,
    segments,
    query: 0,
    key: 1,
    value: segments.length - 1,
    scale: 1,
  };
  const inputs: tf.NamedTensorMap = { rows, arena: arena.tensor };
  if (bias !== null) inputs.bias = bias;
  if (factors !== null) {
    inputs.cos = factors.cos;
    inputs.sinSigned = factors.sinSigned;
  }
  return tf.engine().runKernel(DECODE_ATTENTION_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
