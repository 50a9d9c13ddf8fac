/**
 * Fused attention forward for webgpu, one query row per invocation: the same function and outputs as
 * flash_attention.ts (`softmax(scale q k^T [+ scale eq ek^T] + bias [+ causal]) v`, online softmax, no
 * `[T, S]` tensor), with another work split that suits long queries (prefill and training).
 *
 * Notation as in flash_attention.ts: B batch, T query length, S key length, nQ/nK/nV/nE heads, Dk/De/Dv
 * dims, DQ = Dk + De, rf folded heads (consecutive query heads that share key, value and extra heads).
 *
 * Work split: a workgroup takes ROWS consecutive folded rows of one (batch, head group) and one split of
 * the keys; each invocation owns one row and keeps its scaled query (DQ floats) and its unnormalised
 * output (Dv floats) in registers as vec4s. Per tile of BC keys, the workgroup stages the keys and values
 * in workgroup memory as vec4s; every invocation then reads the same vec4 at the same time (a broadcast),
 * so each workgroup-memory read feeds four multiply-adds for each of the ROWS rows. flash_attention.ts
 * reads both operands of every multiply-add from workgroup memory instead. Per tile, an invocation scores
 * its row against the BC keys, rescales its output once by the tile's new maximum, then adds the BC
 * weighted values.
 *
 * Limits: DQ and Dv multiples of 4 and at most ROWS_MAX_DIM (registers); the caller (fused_attention.ts)
 * takes this program when they hold and the folded rows fill at least one workgroup.
 *
 * Outputs and masking: exactly as flash_attention.ts ('final', 'lse', 'partial'), with the same uniforms,
 * so that attention_combine.ts merges its splits.
 */
import {
  foldedHeads,
  FORWARD_UNIFORMS,
  type FlashShapes,
  type FlashTiling,
  GROUP_HEADS,
  rowBlockCoords,
  WORKGROUP_FLOATS,
} from './flash_attention.js';
import type { ProgramUniform, WebGPUProgram } from './program.js';

/** Largest DQ and Dv this program keeps in registers. */
export const ROWS_MAX_DIM = 128;

/**
 * Tiling of the row-per-invocation program with `rows` rows per workgroup for query/key dims `dk` + `de`
 * and value dim `dv`, with `floats` floats of workgroup memory, or null when it does not apply.
 */
export function chooseRowTiling(dk: number, de: number, dv: number, rows: number, floats = WORKGROUP_FLOATS): FlashTiling | null {
  const dq = dk + de;
  if (dk % 4 !== 0 || de % 4 !== 0 || dv % 4 !== 0 || dq > ROWS_MAX_DIM || dv > ROWS_MAX_DIM) return null;
  // Keys and values of one tile in workgroup memory, leaving a few floats for the tile count.
  let keys = 64;
  while (keys > 4 && keys * (dq + dv) > floats - 4) keys /= 2;
  return { rows, keys, lanes: 1 };
}

/** WGSL: `line(c)` for c = 0..n-1, joined by `separator` (unrolled with constant names and indices). */
export function unrolled(n: number, line: (c: number) => string, separator: string): string {
  return Array.from({ length: n }, (_, c) => line(c)).join(separator);
}

/** WGSL: the vec4 of `buf[base .. base + 3]` (inputs are bound as scalar arrays). */
export function vec4At(buf: string, base: string): string {
  return `vec4<f32>(${buf}[${base}], ${buf}[${base} + 1], ${buf}[${base} + 2], ${buf}[${base} + 3])`;
}

/** WGSL: columns 4c..4c+3 of a query row, from Q at `qb` (c < Dk/4) or from EQ at `qe` after them. */
export function rowQueryAt(dk: number): (c: number) => string {
  return (c) => (4 * c < dk ? vec4At('Q', `qb + ${4 * c}`) : vec4At('EQ', `qe + ${4 * c - dk}`));
}

/** The row-per-invocation forward program: one workgroup per (batch, head group, block of rows, split of keys). */
export class FlashAttentionRowsProgram implements WebGPUProgram {
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
    splits: number,
    chunk: number,
    private readonly mode: 'final' | 'lse' | 'partial',
    private readonly keyBatch: 1 | 4 = 1,
    private readonly lateRowsFirst = false,
  ) {
    const { b, nQ, t, nK, nV, nE, de, dv } = shp;
    const rf = foldedHeads(shp);
    const groups = nQ / rf;
    const rowBlocks = Math.ceil((rf * t) / tile.rows);
    const total = b * groups * rowBlocks * splits;
    this.variableNames = ['Q', 'K', 'V'];
    if (shp.biasStrides) this.variableNames.push('Bias');
    if (de > 0) this.variableNames.push('EQ', 'EK');
    this.outputShape = mode === 'partial' ? [b, nQ, t, splits * (dv + 2)] : [b, nQ, t, mode === 'lse' ? dv + 1 : dv];
    this.workgroupSize = [tile.rows, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey =
      `gtaFlashAttentionRows_${tile.rows}_${tile.keys}_${keyBatch}_${shp.dk}_${de}_${dv}_${mode}` +
      `_${shp.biasStrides ? 'bias' : ''}_${shp.causalOffset === null ? '' : 'causal'}${lateRowsFirst ? '_late' : ''}`;
    const [biasB, biasT, biasS] = shp.biasStrides ?? [0, 0, 0];
    const ints = [t, shp.s, nQ, nK, nV, nE, nQ / nK, nQ / nV, de > 0 ? nQ / nE : 1, rf, groups, rowBlocks, splits, chunk];
    ints.push(shp.causalOffset ?? 0, total, biasB, biasT, biasS);
    this.uniformData = [...ints.map((x): ProgramUniform => ({ type: 'int32', data: [x] })), { type: 'float32', data: [shp.scale] }];
  }

  /** Uniform values in the order of `uniforms`. */
  uniformValues(): ProgramUniform[] {
    return this.uniformData;
  }

  getUserCode(): string {
    const { rows, keys } = this.tile;
    const { dk, de, dv } = this.shp;
    const hasBias = this.shp.biasStrides !== null;
    const causal = this.shp.causalOffset !== null;
    const dq4 = (dk + de) / 4;
    const dv4 = dv / 4;
    // The query and the output live in registers: one named vec4 per 4 columns (q0.., o0..), unrolled
    // here with constant names, so that no compiler has to prove a dynamically indexed array stays in registers.
    const unroll = (n: number, line: (c: number) => string) => unrolled(n, line, '\n    ');
    const queryAt = rowQueryAt(dk);
    const keyTile =
      de > 0
        ? `if (d < DK) { x = ${vec4At('K', '((b * uniforms.nK + kh) * uniforms.S + key) * DK + d')}; }
        else { x = ${vec4At('EK', '((b * uniforms.nE + eh) * uniforms.S + key) * DE + d - DK')}; }`
        : `x = ${vec4At('K', '((b * uniforms.nK + kh) * uniforms.S + key) * DK + d')};`;
    const outputs = (scale: string) =>
      unroll(
        dv4,
        (c) =>
          `{ let o = o${c}${scale}; result[at + ${4 * c}] = o.x; result[at + ${4 * c + 1}] = o.y; result[at + ${4 * c + 2}] = o.z; result[at + ${4 * c + 3}] = o.w; }`,
      );
    const write =
      this.mode === 'partial'
        ? `
    let at = (row * uniforms.splits + split) * (DV + 2);
    ${outputs('')}
    result[at + DV] = m;
    result[at + DV + 1] = l;`
        : `
    let width = ${this.mode === 'lse' ? 'DV + 1' : 'DV'};
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let at = row * width;
    ${outputs(' * inv')}
    ${this.mode === 'lse' ? 'result[at + DV] = select(NEG, m + log(l), l > 0.0);' : ''}`;
    // Key j's score: the dot product of the row's scaled query with the staged key, plus the bias.
    const score = (j: string) =>
      Array.from({ length: dq4 }, (_, c) => `dot(q${c}, ks[(${j}) * DQ4 + ${c}])`).join(' + ') +
      (hasBias ? ` + Bias[b * uniforms.biasB + t * uniforms.biasT + (k0 + ${j}) * uniforms.biasS]` : '');
    // keyBatch 4: four keys per step (four independent dot products, one maximum and at most one rescale
    // for the four), then the single-key loop for the rest of the tile.
    const batched =
      this.keyBatch === 4
        ? `
    while (j + 4 <= jEnd) {
      ${unroll(4, (i) => `let s${i} = ${score(`j + ${i}`)};`)}
      let top = max(max(s0, s1), max(s2, s3));
      if (top > m) {
        let alpha = exp(m - top);
        l = l * alpha;
        ${unroll(dv4, (c) => `o${c} = o${c} * alpha;`)}
        m = top;
      }
      ${unroll(4, (i) => `let p${i} = exp(s${i} - m);`)}
      l = l + ((p0 + p1) + (p2 + p3));
      ${unroll(dv4, (c) => `o${c} = o${c} + p0 * vs[j * DV4 + ${c}] + p1 * vs[(j + 1) * DV4 + ${c}] + p2 * vs[(j + 2) * DV4 + ${c}] + p3 * vs[(j + 3) * DV4 + ${c}];`)}
      j = j + 4;
    }`
        : '';
    return `
const ROWS = ${rows};
const BC = ${keys};
const DK = ${dk};
const DE = ${de};
const DQ4 = ${dq4};
const DV = ${dv};
const DV4 = ${dv4};
const NEG = -3.0e38;

var<workgroup> ks : array<vec4<f32>, ${keys * dq4}>;
var<workgroup> vs : array<vec4<f32>, ${keys * dv4}>;
var<workgroup> tileCount : i32;

fn main(index : i32) {
  let li = i32(localIndex);
  ${rowBlockCoords(this.lateRowsFirst)}
  ${GROUP_HEADS}
  let firstRow = block * ROWS;
  let fr = firstRow + li;
  let rowValid = valid && fr < groupRows;
  let frc = min(fr, groupRows - 1);
  let head = firstHead + frc / T;
  let t = frc % T;

  // This workgroup's keys: its split, cut after the last query's causal limit.
  let keyStart = split * uniforms.chunk;
  var keyEnd = min(uniforms.S, keyStart + uniforms.chunk);
  ${
    causal
      ? `let lastRow = min(groupRows, firstRow + ROWS) - 1;
  let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
  keyEnd = min(keyEnd, uniforms.offset + tMax + 1);`
      : ''
  }
  if (li == 0) {
    tileCount = select(0, (keyEnd - keyStart + BC - 1) / BC, valid && keyEnd > keyStart);
  }

  // This row's scaled query (q0..), its running max m and sum l, its unnormalised output (o0..).
  let qb = ((b * uniforms.nQ + head) * T + t) * DK;
  let qe = ((b * uniforms.nQ + head) * T + t) * DE;
  let scale = uniforms.scale;
  ${unroll(dq4, (c) => `let q${c} = ${queryAt(c)} * scale;`)}
  ${unroll(dv4, (c) => `var o${c} = vec4<f32>(0.0);`)}
  var m = NEG;
  var l = 0.0;
  // The last key this row attends to (none when the row is past the end).
  let limit = select(-1, ${causal ? 'min(uniforms.offset + t, keyEnd - 1)' : 'keyEnd - 1'}, rowValid);
  let tiles = workgroupUniformLoad(&tileCount);
  for (var tile = 0; tile < tiles; tile++) {
    let k0 = keyStart + tile * BC;
    for (var i = li; i < BC * DQ4; i += ROWS) {
      let key = k0 + i / DQ4;
      let d = 4 * (i % DQ4);
      var x = vec4<f32>(0.0);
      if (key < keyEnd) {
        ${keyTile}
      }
      ks[i] = x;
    }
    for (var i = li; i < BC * DV4; i += ROWS) {
      let key = k0 + i / DV4;
      var x = vec4<f32>(0.0);
      if (key < keyEnd) { x = ${vec4At('V', '((b * uniforms.nV + vh) * uniforms.S + key) * DV + 4 * (i % DV4)')}; }
      vs[i] = x;
    }
    workgroupBarrier();
    let jEnd = min(BC, limit - k0 + 1);
    var j = 0;${batched}
    for (; j < jEnd; j++) {
      let s = ${score('j')};
      // Online softmax, one key at a time: the output is rescaled only when the maximum rises.
      if (s > m) {
        let alpha = exp(m - s);
        l = l * alpha;
        ${unroll(dv4, (c) => `o${c} = o${c} * alpha;`)}
        m = s;
      }
      let p = exp(s - m);
      l = l + p;
      let vj = j * DV4;
      ${unroll(dv4, (c) => `o${c} = o${c} + p * vs[vj + ${c}];`)}
    }
    workgroupBarrier();
  }

  if (rowValid) {
    let row = (b * uniforms.nQ + head) * T + t;${write}
  }
}
`;
  }
}
