/**
 * Fused attention forward for webgpu: `softmax(scale q k^T [+ scale eq ek^T] + bias [+ causal]) v` in one
 * compute shader with an online softmax (FlashAttention-2 style): the keys are visited in tiles, each
 * query row keeps a running maximum `m`, a running sum `l` and an unnormalised output; no `[T, S]` score
 * tensor exists in memory.
 *
 * Notation: B batch, T query length, S key length, nQ query heads, nK key heads, nV value heads, nE
 * extra-key heads, Dk query/key dim, De extra query/key dim (0 = none), Dv value dim. Query head i reads
 * key head floor(i / (nQ/nK)), value head floor(i / (nQ/nV)), extra key head floor(i / (nQ/nE)) by index
 * (no repeat or tile).
 *
 * Work split: the query heads that share their key, value and extra heads (groups of
 * rf = gcd(nQ/nK, nQ/nV, nQ/nE) consecutive heads) are folded into one row axis of rf*T rows, ordered
 * (head in group, t), so that one workgroup reads each key/value tile once for all of them. A workgroup
 * takes BR folded rows of one (batch, group) and one split of the keys; LANES invocations per row.
 * Per tile of BC keys: the keys (and extra keys) and values are staged in workgroup memory, each
 * invocation computes BC/LANES scores of its row, then every lane of the row folds the tile into the
 * running max and sum and into its Dv/LANES output columns.
 *
 * Outputs (one buffer, as tfjs programs have one output):
 *   final:   [B, nQ, T, Dv]      normalised output
 *   lse:     [B, nQ, T, Dv + 1]  the same with the log-sum-exp of each row's scores in the last column
 *   partial: [B, nQ, T, splits, Dv + 2]  per split of the keys: unnormalised output, m, l (flash-decoding;
 *            attention_combine.ts merges the splits)
 *
 * Masking: keys after `causalOffset + t` (when causal) and keys past the end of the split get no weight
 * (they are skipped, as the composed path's causal blocks skip them); the bias is added to the scaled
 * scores, so padding with MASK_VALUE behaves exactly as in the composed path.
 */
import { type ProgramUniform, type WebGPUProgram, workgroupCoords } from './program.js';

/**
 * WGSL: the coordinates of a workgroup over (key split, row block, head group, batch), fastest first. With
 * `lateRowsFirst` the row blocks run last to first: under a causal mask the last rows see the most keys, so
 * starting them first leaves the short blocks for the end of the dispatch.
 */
export function rowBlockCoords(lateRowsFirst = false): string {
  const coords = workgroupCoords(
    [
      ['split', 'uniforms.splits'],
      [lateRowsFirst ? 'wgBlock' : 'block', 'uniforms.rowBlocks'],
      ['g', 'uniforms.groups'],
    ],
    'b',
  );
  return lateRowsFirst ? `${coords}\n  let block = uniforms.rowBlocks - 1 - wgBlock;` : coords;
}

/**
 * WGSL: head group g's extent. `groupRows` folded rows (rf query heads of T rows each), its first query head, and
 * the key, value and extra-key heads that the group reads (query head i reads key head floor(i / rk), ...).
 */
export const GROUP_HEADS = [
  'let T = uniforms.T;',
  'let groupRows = uniforms.rf * T;',
  'let firstHead = g * uniforms.rf;',
  'let kh = firstHead / uniforms.rk;',
  'let vh = firstHead / uniforms.rv;',
  'let eh = firstHead / uniforms.re;',
].join('\n  ');

/** Workgroup memory available to one workgroup, in floats (WebGPU's default limit is 16 KiB). */
export const WORKGROUP_FLOATS = 4096;

/** Tile sizes of one compiled variant. */
export interface FlashTiling {
  /** Folded query rows per workgroup. */
  rows: number;
  /** Keys per tile. */
  keys: number;
  /** Invocations per query row. */
  lanes: number;
}

/** Shapes and options of one fused attention call (the kernel's attributes). */
export interface FlashShapes {
  b: number;
  nQ: number;
  t: number;
  s: number;
  nK: number;
  nV: number;
  nE: number;
  dk: number;
  de: number;
  dv: number;
  /** Bias strides over (batch, query, key); null = no bias. */
  biasStrides: [number, number, number] | null;
  causalOffset: number | null;
  scale: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Heads folded into one row axis: the largest run of consecutive query heads sharing key, value and extra heads. */
export function foldedHeads(shapes: FlashShapes): number {
  const { nQ, nK, nV, nE } = shapes;
  return gcd(gcd(nQ / nK, nQ / nV), shapes.de > 0 ? nQ / nE : nQ / nK);
}

/**
 * Tile sizes for query width `dq` (Dk + De) and value width `dv` with `rowsPerGroup` folded rows, or null
 * when even one row and one key do not fit in workgroup memory.
 */
export function chooseTiling(dq: number, dv: number, rowsPerGroup: number): FlashTiling | null {
  let start = 1;
  while (start < Math.min(16, rowsPerGroup)) start *= 2;
  for (const minKeys of [8, 4, 1]) {
    for (let rows = start; rows >= 1; rows /= 2) {
      const lanes = Math.min(32, Math.max(8, 128 / rows));
      const fixed = rows * (dq + 1);
      const perKey = dq + 1 + dv + rows;
      let keys = Math.min(64, Math.floor((WORKGROUP_FLOATS - fixed) / perKey));
      if (keys >= 8) keys -= keys % 8;
      if (keys >= minKeys) return { rows, keys, lanes };
    }
  }
  return null;
}

/** The uniforms of both forward programs (this file's and flash_attention_rows.ts's), in order. */
export const FORWARD_UNIFORMS =
  'T : i32, S : i32, nQ : i32, nK : i32, nV : i32, nE : i32, rk : i32, rv : i32, re : i32, rf : i32, ' +
  'groups : i32, rowBlocks : i32, splits : i32, chunk : i32, offset : i32, total : i32, ' +
  'biasB : i32, biasT : i32, biasS : i32, scale : f32,';

/** The fused forward program: one workgroup per (batch, head group, block of rows, split of keys). */
export class FlashAttentionProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = FORWARD_UNIFORMS;
  private readonly uniformData: ProgramUniform[];

  constructor(
    private readonly shp: FlashShapes,
    private readonly tile: FlashTiling,
    private readonly splits: number,
    private readonly chunk: number,
    private readonly mode: 'final' | 'lse' | 'partial',
  ) {
    const { b, nQ, t, nK, nV, nE, dk, de, dv } = shp;
    const rf = foldedHeads(shp);
    const groups = nQ / rf;
    const rowBlocks = Math.ceil((rf * t) / tile.rows);
    const total = b * groups * rowBlocks * splits;
    this.variableNames = ['Q', 'K', 'V'];
    if (shp.biasStrides) this.variableNames.push('Bias');
    if (de > 0) this.variableNames.push('EQ', 'EK');
    this.outputShape = mode === 'partial' ? [b, nQ, t, splits * (dv + 2)] : [b, nQ, t, mode === 'lse' ? dv + 1 : dv];
    this.workgroupSize = [tile.rows * tile.lanes, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey =
      `gtaFlashAttention_${tile.rows}_${tile.keys}_${tile.lanes}_${dk}_${de}_${dv}_${mode}` +
      `_${shp.biasStrides ? 'bias' : ''}_${shp.causalOffset === null ? '' : 'causal'}`;
    const [biasB, biasT, biasS] = shp.biasStrides ?? [0, 0, 0];
    const ints = [
      t,
      shp.s,
      nQ,
      nK,
      nV,
      nE,
      nQ / nK,
      nQ / nV,
      de > 0 ? nQ / nE : 1,
      rf,
      groups,
      rowBlocks,
      splits,
      chunk,
      shp.causalOffset ?? 0,
      total,
      biasB,
      biasT,
      biasS,
    ];
    this.uniformData = [...ints.map((x): ProgramUniform => ({ type: 'int32', data: [x] })), { type: 'float32', data: [shp.scale] }];
  }

  /** Uniform values in the order of `uniforms`. */
  uniformValues(): ProgramUniform[] {
    return this.uniformData;
  }

  getUserCode(): string {
    const { rows, keys, lanes } = this.tile;
    const { dk, de, dv } = this.shp;
    const hasBias = this.shp.biasStrides !== null;
    const causal = this.shp.causalOffset !== null;
    const dq = dk + de;
    const acc = Math.ceil(dv / lanes);
    const loadQuery =
      de > 0
        ? `if (d < DK) { x = Q[((b * uniforms.nQ + h) * uniforms.T + tt) * DK + d]; }
      else { x = EQ[((b * uniforms.nQ + h) * uniforms.T + tt) * DE + d - DK]; }`
        : 'x = Q[((b * uniforms.nQ + h) * uniforms.T + tt) * DK + d];';
    const loadKey =
      de > 0
        ? `if (d < DK) { x = K[((b * uniforms.nK + kh) * uniforms.S + key) * DK + d]; }
        else { x = EK[((b * uniforms.nE + eh) * uniforms.S + key) * DE + d - DK]; }`
        : 'x = K[((b * uniforms.nK + kh) * uniforms.S + key) * DK + d];';
    const extraDot =
      de > 0
        ? `
          var dotE = 0.0;
          for (var d = DK; d < DQ; d++) { dotE += qs[r * DQP + d] * ks[j * DQP + d]; }
          s = s + dotE;`
        : '';
    const write =
      this.mode === 'partial'
        ? `
      let base = (row * uniforms.splits + split) * (DV + 2);
      for (var i = 0; i < ACC; i++) {
        let d = lane + i * LANES;
        if (d < DV) { result[base + d] = acc[i]; }
      }
      if (lane == 0) { result[base + DV] = m; result[base + DV + 1] = l; }`
        : `
      let width = ${this.mode === 'lse' ? 'DV + 1' : 'DV'};
      let inv = select(0.0, 1.0 / l, l > 0.0);
      for (var i = 0; i < ACC; i++) {
        let d = lane + i * LANES;
        if (d < DV) { result[row * width + d] = acc[i] * inv; }
      }
      ${this.mode === 'lse' ? 'if (lane == 0) { result[row * width + DV] = select(NEG, m + log(l), l > 0.0); }' : ''}`;
    return `
const BR = ${rows};
const BC = ${keys};
const LANES = ${lanes};
const WG = ${rows * lanes};
const DK = ${dk};
const DE = ${de};
const DQ = ${dq};
const DQP = ${dq + 1};
const DV = ${dv};
const ACC = ${acc};
const NEG = -3.0e38;

var<workgroup> qs : array<f32, ${rows * (dq + 1)}>;
var<workgroup> ks : array<f32, ${keys * (dq + 1)}>;
var<workgroup> vs : array<f32, ${keys * dv}>;
var<workgroup> ps : array<f32, ${rows * keys}>;
var<workgroup> tileCount : i32;

fn main(index : i32) {
  let li = i32(localIndex);
  let r = li / LANES;
  let lane = li % LANES;
  ${rowBlockCoords()}
  ${GROUP_HEADS}
  let firstRow = block * BR;
  let fr = firstRow + r;
  let rowValid = valid && fr < groupRows;
  let head = firstHead + fr / T;
  let t = fr % T;

  // This workgroup's keys: its split, cut after the last query's causal limit.
  let keyStart = split * uniforms.chunk;
  var keyEnd = min(uniforms.S, keyStart + uniforms.chunk);
  ${
    causal
      ? `let lastRow = min(groupRows, firstRow + BR) - 1;
  let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
  keyEnd = min(keyEnd, uniforms.offset + tMax + 1);`
      : ''
  }
  if (li == 0) {
    tileCount = select(0, (keyEnd - keyStart + BC - 1) / BC, valid && keyEnd > keyStart);
  }

  // Scaled queries of the block (and the extra queries after column DK).
  for (var i = li; i < BR * DQ; i += WG) {
    let rr = i / DQ;
    let d = i % DQ;
    let frr = firstRow + rr;
    var x = 0.0;
    if (valid && frr < groupRows) {
      let h = firstHead + frr / T;
      let tt = frr % T;
      ${loadQuery}
    }
    qs[rr * DQP + d] = x * uniforms.scale;
  }
  let tiles = workgroupUniformLoad(&tileCount);

  var m = NEG;
  var l = 0.0;
  var acc : array<f32, ACC>;
  let limit = ${causal ? 'uniforms.offset + t' : 'keyEnd'};
  for (var tile = 0; tile < tiles; tile++) {
    let k0 = keyStart + tile * BC;
    for (var i = li; i < BC * DQ; i += WG) {
      let j = i / DQ;
      let d = i % DQ;
      let key = k0 + j;
      var x = 0.0;
      if (key < keyEnd) {
        ${loadKey}
      }
      ks[j * DQP + d] = x;
    }
    for (var i = li; i < BC * DV; i += WG) {
      let key = k0 + i / DV;
      var x = 0.0;
      if (key < keyEnd) { x = V[((b * uniforms.nV + vh) * uniforms.S + key) * DV + i % DV]; }
      vs[i] = x;
    }
    workgroupBarrier();
    for (var j = lane; j < BC; j += LANES) {
      let key = k0 + j;
      var s = NEG;
      if (rowValid && key < keyEnd && key <= limit) {
        var dot = 0.0;
        for (var d = 0; d < DK; d++) { dot += qs[r * DQP + d] * ks[j * DQP + d]; }
        s = dot;${extraDot}
        ${hasBias ? 's = s + Bias[b * uniforms.biasB + t * uniforms.biasT + key * uniforms.biasS];' : ''}
      }
      ps[r * BC + j] = s;
    }
    workgroupBarrier();
    var tileMax = NEG;
    for (var j = 0; j < BC; j++) { tileMax = max(tileMax, ps[r * BC + j]); }
    let mNew = max(m, tileMax);
    let alpha = exp(m - mNew);
    l = l * alpha;
    for (var i = 0; i < ACC; i++) { acc[i] = acc[i] * alpha; }
    for (var j = 0; j < BC; j++) {
      let s = ps[r * BC + j];
      let p = select(0.0, exp(s - mNew), s > -1.0e37);
      l = l + p;
      for (var i = 0; i < ACC; i++) {
        let d = lane + i * LANES;
        if (d < DV) { acc[i] = acc[i] + p * vs[j * DV + d]; }
      }
    }
    m = mNew;
    workgroupBarrier();
  }

  if (rowValid) {
    let row = (b * uniforms.nQ + head) * T + t;${write}
  }
}
`;
  }
}
