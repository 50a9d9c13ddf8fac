/**
 * Attention of one query token per sequence over a long cache (flash-decoding) for webgpu: the attention part
 * of GtaDecodeAttention (decode_step.ts). flash_attention.ts serves any T; for T = 1 its tiles of 16-24 keys
 * staged in workgroup memory leave most of each workgroup waiting at barriers. Here each invocation owns one
 * key of a block (as many keys as invocations) and scores it against every query row of the workgroup, and
 * the value product reads the block's values straight from memory, coalesced along the value dim.
 *
 * Notation: B batch, nQ query heads, nK key heads, nV value heads, S keys, Dk key dim, Dv value dim,
 * R = query heads that share their key and value heads (folded rows: all of them, or a divisor when more than
 * MAX_ROWS share or their queries do not fit workgroup memory), G = nQ / R head groups, KB keys per block
 * (= invocations per workgroup), P splits of the keys.
 *
 * A workgroup takes (batch, group, split). Per block of KB keys:
 *   1. invocation j scores key j against the R scaled queries (staged once in workgroup memory): s[r][j];
 *   2. invocations r < R fold the block into row r's running max m_r (and the rescale factor of its sum and
 *      outputs); every invocation turns the scores into p = exp(s - m_r);
 *   3. each invocation owns value columns d (and every row r of them) and a share of the block's keys (the
 *      H = KB / Dv invocations of a column take every H-th key): acc[r][d] = acc * alpha_r + sum_j p[r][j] v[j][d],
 *      loading each value once for all R rows, four keys at a time; invocations r < R update their sums l_r.
 *      After the last block the H parts of each column are added through workgroup memory.
 * Outputs: one split: `[B, nQ, 1, Dv]` normalised; several: `[B, nQ, 1, P * (Dv + 2)]` (per split the
 * unnormalised output, m, l), merged by attention_combine.ts. Keys and values may be views into one buffer
 * (a cache arena): offsets and the keys' row capacity are uniforms.
 *
 * An extra key part (MLA's absorbed decode: De > 0): the query rows hold Dk + De values and each key's score
 * adds the dot product of the last De with a second key view `[B, nK, SC, De]` (the shared RoPE key), so the
 * key never has to be stored concatenated.
 */
import { type ProgramUniform, type WebGPUProgram, workgroupCoords } from './program.js';
import { WORKGROUP_FLOATS } from './flash_attention.js';

/** Most folded query rows per workgroup (each invocation keeps one score per row in registers). */
export const MAX_ROWS = 16;

/** Shapes of one decode attention call. */
export interface FlashDecodeShapes {
  b: number;
  nQ: number;
  nK: number;
  nV: number;
  s: number;
  dk: number;
  dv: number;
  scale: number;
  /**
   * Element offsets of q `[B, nQ, 1, Dk + De]`, k `[B, nK, SC, Dk]`, v `[B, nV, SC, Dv]` and the extra key
   * `[B, nK, SC, De]` (when De > 0), and SC.
   */
  views: { query: number; key: number; value: number; keyCapacity: number; extraKey?: number };
  /** De, the dim of the extra key part (default 0: none). */
  de?: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Rows R of a workgroup: the largest divisor of gcd(nQ/nK, nQ/nV) (the query heads sharing their key and value
 * heads) that is at most MAX_ROWS and fits workgroup memory with the key dim; null when not even one row fits.
 */
export function decodeRows(shapes: Pick<FlashDecodeShapes, 'nQ' | 'nK' | 'nV' | 'dk'>): number | null {
  const shared = gcd(shapes.nQ / shapes.nK, shapes.nQ / shapes.nV);
  for (let r = Math.min(shared, MAX_ROWS); r >= 1; r--) if (shared % r === 0 && decodeBlock(r, shapes.dk) !== null) return r;
  return null;
}

/** Keys per block (= invocations per workgroup) that fit workgroup memory for R rows, or null. */
export function decodeBlock(rows: number, dk: number): number | null {
  if (rows > MAX_ROWS) return null;
  for (const kb of [128, 64, 32]) if (rows * dk + rows * kb + 3 * rows <= WORKGROUP_FLOATS) return kb;
  return null;
}

/** Splits tuning (internal; exported for tests and experiments). */
export const FLASH_DECODE_TUNING = {
  /** Split the keys until about this many workgroups run. */
  targetWorkgroups: 1024,
  /** Fewest keys per split, in blocks. */
  minBlocksPerSplit: 1,
  /**
   * Read each key as vec4s (one load of 16 bytes instead of four of 4) where Dk and the keys' offset are
   * multiples of 4 (each invocation reads its own key row, so the loads of an invocation group are strided by
   * the row). On the H200 the step at B=32 S=16384 was faster this way in 8 of 9 comparisons (by 12-15%, once by
   * 1%, where one process alternated them) (docs/benchmarks/2026-12-03-decode-prefill-splits-h200.md); false reads four scalars.
   */
  vectorKeys: true,
};

/** Splits of the keys and keys per split (a multiple of the block). */
export function decodeSplits(shapes: FlashDecodeShapes, rows: number, block: number): { splits: number; chunk: number } {
  const workgroups = shapes.b * (shapes.nQ / rows);
  const blocks = Math.max(1, Math.ceil(shapes.s / block));
  const wanted = Math.ceil(FLASH_DECODE_TUNING.targetWorkgroups / workgroups);
  const splits = Math.max(1, Math.min(wanted, Math.floor(blocks / FLASH_DECODE_TUNING.minBlocksPerSplit)));
  const chunk = Math.ceil(blocks / splits) * block;
  return { splits: Math.ceil(shapes.s / chunk), chunk };
}

export class FlashDecodeProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableComponents?: number[];
  uniforms =
    'S : i32, nQ : i32, nK : i32, nV : i32, rk : i32, rv : i32, groups : i32, splits : i32, chunk : i32, total : i32, ' +
    'qBase : i32, kBase : i32, vBase : i32, SC : i32, eBase : i32, scale : f32,';
  private readonly values: ProgramUniform[];
  /** Keys read as vec4s (FLASH_DECODE_TUNING.vectorKeys, where the dims and offset allow). */
  private readonly vectorKeys: boolean;

  constructor(
    private readonly shp: FlashDecodeShapes,
    private readonly rows: number,
    private readonly block: number,
    private readonly splits: number,
    chunk: number,
  ) {
    const { b, nQ, nK, nV, dv } = shp;
    this.variableNames = (shp.de ?? 0) > 0 ? ['Q', 'K', 'V', 'E'] : ['Q', 'K', 'V'];
    const groups = nQ / this.rows;
    const total = b * groups * splits;
    this.outputShape = splits === 1 ? [b, nQ, 1, dv] : [b, nQ, 1, splits * (dv + 2)];
    this.workgroupSize = [block, 1, 1];
    this.dispatch = [total, 1, 1];
    this.vectorKeys = FLASH_DECODE_TUNING.vectorKeys && shp.dk % 4 === 0 && shp.views.key % 4 === 0;
    if (this.vectorKeys) this.variableComponents = this.variableNames.map((name) => (name === 'K' ? 4 : 1));
    this.shaderKey =
      `gtaFlashDecode_${this.rows}_${block}_${shp.dk}_${shp.de ?? 0}_${dv}_${splits === 1 ? 'final' : 'partial'}` +
      `${this.vectorKeys ? '_vk' : ''}`;
    const ints = [shp.s, nQ, nK, nV, nQ / nK, nQ / nV, groups, splits, chunk, total];
    const { query, key, value, keyCapacity, extraKey } = shp.views;
    this.values = [...ints, query, key, value, keyCapacity, extraKey ?? 0].map((x): ProgramUniform => ({ type: 'int32', data: [x] }));
    this.values.push({ type: 'float32', data: [shp.scale] });
  }

  uniformValues(): ProgramUniform[] {
    return this.values;
  }

  getUserCode(): string {
    const R = this.rows;
    const KB = this.block;
    const { dk, dv } = this.shp;
    const de = this.shp.de ?? 0;
    // Value columns per invocation (CC) and invocations per column (H, which split the keys of a block).
    const cc = dv > KB ? Math.ceil(dv / KB) : 1;
    const h = dv > KB ? 1 : Math.floor(KB / dv);
    const write =
      this.splits === 1
        ? `
          let inv = select(0.0, 1.0 / lrow[r], lrow[r] > 0.0);
          result[(b * uniforms.nQ + head) * DV + d] = a * inv;`
        : `
          let base = ((b * uniforms.nQ + head) * uniforms.splits + split) * (DV + 2);
          result[base + d] = a;
          if (d == 0) { result[base + DV] = mrow[r]; result[base + DV + 1] = lrow[r]; }`;
    const keyLoop = this.vectorKeys
      ? `
      for (var d = 0; d < DK; d += 4) {
        let y = K[(kp + d) / 4];
        for (var r = 0; r < R; r++) {
          let q = r * DQ + d;
          s[r] += qs[q] * y.x + qs[q + 1] * y.y + qs[q + 2] * y.z + qs[q + 3] * y.w;
        }
      }`
      : dk % 4 === 0
        ? `
      for (var d = 0; d < DK; d += 4) {
        let y0 = K[kp + d];
        let y1 = K[kp + d + 1];
        let y2 = K[kp + d + 2];
        let y3 = K[kp + d + 3];
        for (var r = 0; r < R; r++) {
          let q = r * DQ + d;
          s[r] += qs[q] * y0 + qs[q + 1] * y1 + qs[q + 2] * y2 + qs[q + 3] * y3;
        }
      }`
        : `
      for (var d = 0; d < DK; d++) {
        let kd = K[kp + d];
        for (var r = 0; r < R; r++) { s[r] += qs[r * DQ + d] * kd; }
      }`;
    const extraLoop =
      de === 0
        ? ''
        : `
      let ep = eRows + key * DE;
      for (var d = 0; d < DE; d++) {
        let ed = E[ep + d];
        for (var r = 0; r < R; r++) { s[r] += qs[r * DQ + DK + d] * ed; }
      }`;
    return `
const R = ${R};
const KB = ${KB};
const DK = ${dk};
const DE = ${de};
const DQ = DK + DE;
const DV = ${dv};
const CC = ${cc};
const H = ${h};
const NEG = -3.0e38;

var<workgroup> qs : array<f32, ${R * (dk + de)}>;
var<workgroup> ps : array<f32, ${R * KB}>;
var<workgroup> mrow : array<f32, R>;
var<workgroup> lrow : array<f32, R>;
var<workgroup> arow : array<f32, R>;
var<workgroup> blockCount : i32;

fn main(index : i32) {
  let li = i32(localIndex);
  ${workgroupCoords(
    [
      ['split', 'uniforms.splits'],
      ['g', 'uniforms.groups'],
    ],
    'b',
  )}
  let firstHead = g * R;
  let kh = firstHead / uniforms.rk;
  let vh = firstHead / uniforms.rv;
  let keyStart = split * uniforms.chunk;
  let keyEnd = select(keyStart, min(uniforms.S, keyStart + uniforms.chunk), valid);
  let kRows = uniforms.kBase + (b * uniforms.nK + kh) * uniforms.SC * DK;
  let vRows = uniforms.vBase + (b * uniforms.nV + vh) * uniforms.SC * DV;${
    de === 0
      ? ''
      : `
  let eRows = uniforms.eBase + (b * uniforms.nK + kh) * uniforms.SC * DE;`
  }

  for (var i = li; i < R * DQ; i += KB) {
    qs[i] = Q[uniforms.qBase + (b * uniforms.nQ + firstHead) * DQ + i] * uniforms.scale;
  }
  if (li < R) { mrow[li] = NEG; lrow[li] = 0.0; }
  if (li == 0) { blockCount = (keyEnd - keyStart + KB - 1) / KB; }
  // This invocation's value columns d0 + c*KB (c < CC) and its share of each block's keys (h, h + H, ...).
  let h = select(li / DV, 0, DV > KB);
  let d0 = select(li % DV, li, DV > KB);
  let owns = h < H;
  var acc : array<f32, ${R * cc}>;
  // (a barrier, and a value the compiler knows is the same in every invocation: the loop holds barriers)
  let blocks = workgroupUniformLoad(&blockCount);

  for (var blk = 0; blk < blocks; blk++) {
    let k0 = keyStart + blk * KB;
    // 1. one key per invocation, scored against every row
    let key = k0 + li;
    var s : array<f32, R>;
    if (key < keyEnd) {
      let kp = kRows + key * DK;${keyLoop}${extraLoop}
      for (var r = 0; r < R; r++) { ps[r * KB + li] = s[r]; }
    } else {
      for (var r = 0; r < R; r++) { ps[r * KB + li] = NEG; }
    }
    workgroupBarrier();
    // 2. running max per row, and the probabilities of the block
    if (li < R) {
      var bm = NEG;
      for (var j = 0; j < KB; j++) { bm = max(bm, ps[li * KB + j]); }
      let mNew = max(mrow[li], bm);
      arow[li] = exp(mrow[li] - mNew);
      mrow[li] = mNew;
    }
    workgroupBarrier();
    for (var i = li; i < R * KB; i += KB) {
      let x = ps[i];
      ps[i] = select(0.0, exp(x - mrow[i / KB]), x > -1.0e37);
    }
    workgroupBarrier();
    // 3. outputs (this invocation's columns, its share of the keys) and sums
    let n = min(KB, keyEnd - k0);
    if (owns) {
      for (var i = 0; i < R * CC; i++) { acc[i] = acc[i] * arow[i / CC]; }
      var j = h;
      for (; j + 3 * H < n; j += 4 * H) {
        let v0 = vRows + (k0 + j) * DV;
        let v1 = v0 + H * DV;
        let v2 = v1 + H * DV;
        let v3 = v2 + H * DV;
        for (var c = 0; c < CC; c++) {
          let d = d0 + c * KB;
          if (d < DV) {
            let x0 = V[v0 + d];
            let x1 = V[v1 + d];
            let x2 = V[v2 + d];
            let x3 = V[v3 + d];
            for (var r = 0; r < R; r++) {
              let pr = r * KB + j;
              acc[r * CC + c] += ps[pr] * x0 + ps[pr + H] * x1 + ps[pr + 2 * H] * x2 + ps[pr + 3 * H] * x3;
            }
          }
        }
      }
      for (; j < n; j += H) {
        let v0 = vRows + (k0 + j) * DV;
        for (var c = 0; c < CC; c++) {
          let d = d0 + c * KB;
          if (d < DV) {
            let x0 = V[v0 + d];
            for (var r = 0; r < R; r++) { acc[r * CC + c] += ps[r * KB + j] * x0; }
          }
        }
      }
    }
    if (li < R) {
      var l = lrow[li] * arow[li];
      for (var jj = 0; jj < n; jj++) { l += ps[li * KB + jj]; }
      lrow[li] = l;
    }
    workgroupBarrier();
  }

  // Invocations that shared a column (H > 1) add up their parts, through ps.
  if (owns && H > 1) {
    for (var r = 0; r < R; r++) { ps[(h * R + r) * DV + d0] = acc[r]; }
  }
  workgroupBarrier();
  if (owns && h == 0 && H > 1) {
    for (var r = 0; r < R; r++) {
      var t = 0.0;
      for (var k = 0; k < H; k++) { t += ps[(k * R + r) * DV + d0]; }
      acc[r] = t;
    }
  }

  if (valid && owns && h == 0) {
    for (var r = 0; r < R; r++) {
      for (var c = 0; c < CC; c++) {
        let d = d0 + c * KB;
        if (d < DV) {
          let head = firstHead + r;
          let a = acc[r * CC + c];${write}
        }
      }
    }
  }
}
`;
  }
}
