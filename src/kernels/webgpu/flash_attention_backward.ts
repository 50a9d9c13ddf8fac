/**
 * Fused attention backward for webgpu (FlashAttention-2 style): the scores are recomputed tile by tile from
 * the saved log-sum-exp of each row, so, as in the forward, no `[T, S]` tensor exists in memory.
 *
 * Notation as in flash_attention.ts: B batch, T query length, S key length, nQ/nK/nV/nE query, key, value
 * and extra-key heads, Dk, De, Dv dims, DQ = Dk + De; rf consecutive query heads that share their key,
 * value and extra heads are folded into one row axis of rf*T rows; G = nQ / rf head groups.
 *
 * With qs = scale q (and scale eq in the extra columns), for a row i and a key j:
 *   s_ij = qs_i . k_j (+ eqs_i . ek_j)       p_ij = exp(s_ij - lse_i)   (0 for a causally hidden key)
 *   delta_i = dO_i . O_i                     ds_ij = p_ij (dO_i . v_j - delta_i)
 *   dq_i = scale sum_j ds_ij k_j             dk_j = sum_i ds_ij qs_i    dv_j = sum_i p_ij dO_i
 * (the extra pair's columns follow Dk in dq and dk). Two programs:
 *   query:    one workgroup per (batch, head group, block of BR folded rows), visiting the keys in tiles:
 *             dQ [B, nQ, T, DQ]
 *   keyValue: one workgroup per (batch, head group, block of BC keys, split of the rows), visiting its rows in
 *             tiles: dKV [P, B, G, S, DQ + Dv], the key (and extra key) gradient then the value gradient of the
 *             keys as seen from one head group and one split of its rows (P = 1 unless the workgroups would not
 *             fill the GPU, `rowSplits`); fused_attention.ts sums the splits and the groups that share a key or
 *             value head.
 * Inputs: Q [B, nQ, T, Dk], K [B, nK, S, Dk], V [B, nV, S, Dv], optional EQ [B, nQ, T, De], EK [B, nE, S, De],
 * OL [B, nQ, T, Dv + 1] (the forward's output with the log-sum-exp last) and DY [B, nQ, T, Dv].
 * No bias input: a call with a bias takes the composed path's gradient (src/ops/attention_core.ts), which
 * also gives the bias its gradient.
 */
import type { FlashShapes } from './flash_attention.js';
import { foldedHeads, GROUP_HEADS, WORKGROUP_FLOATS } from './flash_attention.js';
import { type ProgramUniform, type WebGPUProgram, workgroupCoords } from './program.js';

/** WGSL: the coordinates of a dQ workgroup over (row block, head group, batch), fastest first. */
export const ROW_BLOCK_COORDS = workgroupCoords(
  [
    ['block', 'uniforms.blocks'],
    ['g', 'uniforms.groups'],
  ],
  'b',
);

/** WGSL: the coordinates of a workgroup over (row split, key block, head group, batch), fastest first. */
export const KEY_BLOCK_COORDS = workgroupCoords(
  [
    ['rowSplit', 'uniforms.rowSplits'],
    ['block', 'uniforms.blocks'],
    ['g', 'uniforms.groups'],
  ],
  'b',
);

/** Tile sizes of one backward program: rows and keys per tile, invocations per row (query) or key (keyValue). */
export interface BackwardTiling {
  rows: number;
  keys: number;
  lanes: number;
}

const CANDIDATES: Array<[number, number]> = [
  [16, 16],
  [16, 8],
  [8, 16],
  [8, 8],
  [8, 4],
  [4, 8],
  [4, 4],
  [2, 4],
  [4, 2],
  [2, 2],
  [1, 2],
  [2, 1],
  [1, 1],
];

/**
 * Tiles for the `query` or `keyValue` program at query width `dq` (Dk + De) and value width `dv`, or null when
 * one row and one key do not fit in workgroup memory.
 */
export function chooseBackwardTiling(dq: number, dv: number, kind: 'query' | 'keyValue'): BackwardTiling | null {
  for (const [a, c] of CANDIDATES) {
    const [rows, keys] = kind === 'query' ? [a, c] : [c, a];
    const staged = (rows + keys) * (dq + 1 + dv);
    const floats = kind === 'query' ? staged + rows * keys : staged + 2 * rows + 2 * rows * keys;
    if (floats <= WORKGROUP_FLOATS) {
      const parallel = kind === 'query' ? rows : keys;
      return { rows, keys, lanes: Math.min(32, Math.max(8, 128 / parallel)) };
    }
  }
  return null;
}

/** WGSL shared by both programs: constants, staging of scaled queries (with extra columns) and dO rows. */
function common(shp: FlashShapes, tile: BackwardTiling, workgroup: number): string {
  const { dk, de, dv } = shp;
  const dq = dk + de;
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
  return `
const BR = ${tile.rows};
const BC = ${tile.keys};
const LANES = ${tile.lanes};
const WG = ${workgroup};
const DK = ${dk};
const DE = ${de};
const DQ = ${dq};
const DQP = ${dq + 1};
const DV = ${dv};
const NEG = -3.0e38;

var<workgroup> qs : array<f32, ${tile.rows * (dq + 1)}>;
var<workgroup> dos : array<f32, ${tile.rows * dv}>;
var<workgroup> ks : array<f32, ${tile.keys * (dq + 1)}>;
var<workgroup> vs : array<f32, ${tile.keys * dv}>;

// Scaled queries and dO of the folded rows firstRow .. firstRow + BR - 1 of head group g (zeros past the end).
fn stageRows(li : i32, valid : bool, b : i32, firstHead : i32, firstRow : i32) {
  let T = uniforms.T;
  let groupRows = uniforms.rf * T;
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
  for (var i = li; i < BR * DV; i += WG) {
    let rr = i / DV;
    let frr = firstRow + rr;
    var x = 0.0;
    if (valid && frr < groupRows) {
      let h = firstHead + frr / T;
      x = DY[((b * uniforms.nQ + h) * T + frr % T) * DV + i % DV];
    }
    dos[i] = x;
  }
}

// Keys (with extra keys after column DK) and values k0 .. k0 + BC - 1 (zeros from keyEnd on).
fn stageKeys(li : i32, b : i32, kh : i32, vh : i32, eh : i32, k0 : i32, keyEnd : i32) {
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
}

// dO_r . O_r of the row at flat index row (B, nQ, T) whose dO is staged at dos[r].
fn rowDelta(r : i32, row : i32) -> f32 {
  var delta = 0.0;
  for (var d = 0; d < DV; d++) { delta += dos[r * DV + d] * OL[row * (DV + 1) + d]; }
  return delta;
}

// ds and p of staged row r against staged key j (key index key, row position t); p = 0 when hidden.
fn scoreGrad(r : i32, j : i32, lse : f32, delta : f32) -> vec2<f32> {
  if (lse < -1.0e37) { return vec2<f32>(0.0, 0.0); }
  var s = 0.0;
  for (var d = 0; d < DQ; d++) { s += qs[r * DQP + d] * ks[j * DQP + d]; }
  let p = exp(s - lse);
  var dp = 0.0;
  for (var d = 0; d < DV; d++) { dp += dos[r * DV + d] * vs[j * DV + d]; }
  return vec2<f32>(p * (dp - delta), p);
}
`;
}

/** The uniforms of the backward programs (here and in flash_attention_backward_rows.ts). */
export const UNIFORMS =
  'B : i32, T : i32, S : i32, nQ : i32, nK : i32, nV : i32, nE : i32, rk : i32, rv : i32, re : i32, rf : i32, ' +
  'groups : i32, blocks : i32, offset : i32, total : i32, rowSplits : i32, rowChunk : i32, scale : f32,';

/** Values of `UNIFORMS` for `blocks` blocks and `total` workgroups (and the keyValue program's row splits). */
export function uniformValues(shp: FlashShapes, blocks: number, total: number, rowSplits = 1, rowChunk = 0): ProgramUniform[] {
  const { t, s, nQ, nK, nV, nE, de } = shp;
  const rf = foldedHeads(shp);
  const ints = [shp.b, t, s, nQ, nK, nV, nE, nQ / nK, nQ / nV, de > 0 ? nQ / nE : 1, rf, nQ / rf, blocks, shp.causalOffset ?? 0, total];
  ints.push(rowSplits, rowChunk);
  return [...ints.map((x): ProgramUniform => ({ type: 'int32', data: [x] })), { type: 'float32', data: [shp.scale] }];
}

/** Tuning of the keyValue program's row splits (internal; exported for tests and experiments). */
export const BACKWARD_TUNING = {
  /** Split the rows over workgroups until about this many run (the H200 has 132 SMs). */
  targetWorkgroups: 528,
  /** Most splits. */
  maxSplits: 16,
};

/**
 * Splits of the keyValue program's row tiles when its (batch, group, key block) workgroups would not fill the
 * GPU (few head groups, e.g. GTA's one key head): each split visits `chunk` row tiles and writes its partial
 * dK and dV; fused_attention.ts sums the splits.
 */
export function rowSplits(workgroups: number, rowTiles: number): { splits: number; chunk: number } {
  const { targetWorkgroups, maxSplits } = BACKWARD_TUNING;
  const wanted = Math.min(Math.ceil(targetWorkgroups / workgroups), maxSplits, rowTiles);
  if (wanted <= 1) return { splits: 1, chunk: rowTiles };
  const chunk = Math.ceil(rowTiles / wanted);
  return { splits: Math.ceil(rowTiles / chunk), chunk };
}

/** Input names of the backward programs, in the order fused_attention.ts passes them. */
export function inputNames(shp: FlashShapes): string[] {
  return ['Q', 'K', 'V', ...(shp.de > 0 ? ['EQ', 'EK'] : []), 'OL', 'DY'];
}

/** dQ (with the extra query's gradient after column Dk): one workgroup per (batch, head group, block of rows). */
export class FlashAttentionQueryGradProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = UNIFORMS;
  private readonly values: ProgramUniform[];

  constructor(
    private readonly shp: FlashShapes,
    private readonly tile: BackwardTiling,
  ) {
    const { b, nQ, t, dk, de, dv } = shp;
    const rf = foldedHeads(shp);
    const blocks = Math.ceil((rf * t) / tile.rows);
    const total = b * (nQ / rf) * blocks;
    this.variableNames = inputNames(shp);
    this.outputShape = [b, nQ, t, dk + de];
    this.workgroupSize = [tile.rows * tile.lanes, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey = `gtaFlashAttentionDq_${tile.rows}_${tile.keys}_${tile.lanes}_${dk}_${de}_${dv}_${shp.causalOffset === null ? '' : 'causal'}`;
    this.values = uniformValues(shp, blocks, total);
  }

  /** Uniform values in the order of `uniforms`. */
  uniformValues(): ProgramUniform[] {
    return this.values;
  }

  getUserCode(): string {
    const { rows, lanes } = this.tile;
    const causal = this.shp.causalOffset !== null;
    return `${common(this.shp, this.tile, rows * lanes)}
const ACC = ${Math.ceil((this.shp.dk + this.shp.de) / lanes)};
var<workgroup> dss : array<f32, ${rows * this.tile.keys}>;
var<workgroup> tileCount : i32;

fn main(index : i32) {
  let li = i32(localIndex);
  let r = li / LANES;
  let lane = li % LANES;
  ${ROW_BLOCK_COORDS}
  ${GROUP_HEADS}
  let firstRow = block * BR;
  let fr = firstRow + r;
  let rowValid = valid && fr < groupRows;
  let head = firstHead + fr / T;
  let t = fr % T;
  var keyEnd = uniforms.S;
  ${
    causal
      ? `let lastRow = min(groupRows, firstRow + BR) - 1;
  let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
  keyEnd = min(keyEnd, uniforms.offset + tMax + 1);`
      : ''
  }
  if (li == 0) { tileCount = select(0, (keyEnd + BC - 1) / BC, valid && keyEnd > 0); }
  stageRows(li, valid, b, firstHead, firstRow);
  let tiles = workgroupUniformLoad(&tileCount);

  let row = (b * uniforms.nQ + head) * T + t;
  var lse = NEG;
  var delta = 0.0;
  if (rowValid) {
    lse = OL[row * (DV + 1) + DV];
    delta = rowDelta(r, row);
  }
  let limit = ${causal ? 'uniforms.offset + t' : 'uniforms.S'};
  var acc : array<f32, ACC>;
  for (var tile = 0; tile < tiles; tile++) {
    let k0 = tile * BC;
    stageKeys(li, b, firstHead / uniforms.rk, firstHead / uniforms.rv, firstHead / uniforms.re, k0, keyEnd);
    workgroupBarrier();
    for (var j = lane; j < BC; j += LANES) {
      var x = 0.0;
      if (rowValid && k0 + j < keyEnd && k0 + j <= limit) { x = scoreGrad(r, j, lse, delta).x; }
      dss[r * BC + j] = x;
    }
    workgroupBarrier();
    for (var j = 0; j < BC; j++) {
      let x = dss[r * BC + j];
      for (var i = 0; i < ACC; i++) {
        let d = lane + i * LANES;
        if (d < DQ) { acc[i] = acc[i] + x * ks[j * DQP + d]; }
      }
    }
    workgroupBarrier();
  }
  if (rowValid) {
    for (var i = 0; i < ACC; i++) {
      let d = lane + i * LANES;
      if (d < DQ) { result[row * DQ + d] = acc[i] * uniforms.scale; }
    }
  }
}
`;
  }
}

/** dK (with the extra key's) and dV per head group: one workgroup per (batch, head group, block of keys). */
export class FlashAttentionKeyValueGradProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = UNIFORMS;
  private readonly values: ProgramUniform[];

  constructor(
    private readonly shp: FlashShapes,
    private readonly tile: BackwardTiling,
  ) {
    const { b, nQ, s, dk, de, dv } = shp;
    const rf = foldedHeads(shp);
    const groups = nQ / rf;
    const blocks = Math.ceil(s / tile.keys);
    const { splits, chunk } = rowSplits(b * groups * blocks, Math.ceil((rf * shp.t) / tile.rows));
    const total = b * groups * blocks * splits;
    this.variableNames = inputNames(shp);
    this.outputShape = [splits, b, groups, s, dk + de + dv];
    this.workgroupSize = [tile.keys * tile.lanes, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey = `gtaFlashAttentionDkv_${tile.rows}_${tile.keys}_${tile.lanes}_${dk}_${de}_${dv}_${shp.causalOffset === null ? '' : 'causal'}`;
    this.values = uniformValues(shp, blocks, total, splits, chunk);
  }

  /** Uniform values in the order of `uniforms`. */
  uniformValues(): ProgramUniform[] {
    return this.values;
  }

  getUserCode(): string {
    const { keys, rows, lanes } = this.tile;
    const causal = this.shp.causalOffset !== null;
    const { dk, de, dv } = this.shp;
    return `${common(this.shp, this.tile, keys * lanes)}
const ACCK = ${Math.ceil((dk + de) / lanes)};
const ACCV = ${Math.ceil(dv / lanes)};
var<workgroup> stats : array<f32, ${2 * rows}>;
var<workgroup> pp : array<f32, ${rows * keys}>;
var<workgroup> dss : array<f32, ${rows * keys}>;
var<workgroup> skipTile : i32;
var<workgroup> tileRange : array<i32, 2>;

fn main(index : i32) {
  let li = i32(localIndex);
  let j = li / LANES;
  let lane = li % LANES;
  ${KEY_BLOCK_COORDS}
  ${GROUP_HEADS}
  let keyStart = block * BC;
  let key = keyStart + j;
  let keyValid = valid && key < uniforms.S;
  stageKeys(li, b, kh, vh, eh, keyStart, uniforms.S);

  var dk : array<f32, ACCK>;
  var dv : array<f32, ACCV>;
  // This workgroup's share of the row tiles (all of them unless the rows are split over workgroups), through
  // workgroup memory so that the compiler sees the loop bounds uniform (the loop holds barriers).
  if (li == 0) {
    tileRange[0] = rowSplit * uniforms.rowChunk;
    tileRange[1] = min((groupRows + BR - 1) / BR, tileRange[0] + uniforms.rowChunk);
  }
  let firstTile = workgroupUniformLoad(&tileRange[0]);
  let rowTiles = workgroupUniformLoad(&tileRange[1]);
  for (var tile = firstTile; tile < rowTiles; tile++) {
    let firstRow = tile * BR;
    workgroupBarrier(); // the last tile's reads of skipTile and the staged rows are done
    ${
      causal
        ? `// Rows that see none of this block's keys (all their positions before keyStart - offset) are skipped.
    if (li == 0) {
      let lastRow = min(groupRows, firstRow + BR) - 1;
      let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
      skipTile = select(0, 1, !valid || uniforms.offset + tMax < keyStart);
    }
    if (workgroupUniformLoad(&skipTile) == 1) { continue; }`
        : ''
    }
    stageRows(li, valid, b, firstHead, firstRow);
    workgroupBarrier();
    if (li < BR) {
      let fr = firstRow + li;
      var lse = NEG;
      var delta = 0.0;
      if (valid && fr < groupRows) {
        let row = (b * uniforms.nQ + firstHead + fr / T) * T + fr % T;
        lse = OL[row * (DV + 1) + DV];
        delta = rowDelta(li, row);
      }
      stats[2 * li] = lse;
      stats[2 * li + 1] = delta;
    }
    workgroupBarrier();
    for (var rr = lane; rr < BR; rr += LANES) {
      let fr = firstRow + rr;
      var x = vec2<f32>(0.0, 0.0);
      if (keyValid && fr < groupRows${causal ? ' && key <= uniforms.offset + fr % T' : ''}) {
        x = scoreGrad(rr, j, stats[2 * rr], stats[2 * rr + 1]);
      }
      dss[rr * BC + j] = x.x;
      pp[rr * BC + j] = x.y;
    }
    workgroupBarrier();
    for (var rr = 0; rr < BR; rr++) {
      let x = dss[rr * BC + j];
      let p = pp[rr * BC + j];
      for (var i = 0; i < ACCK; i++) {
        let d = lane + i * LANES;
        if (d < DQ) { dk[i] = dk[i] + x * qs[rr * DQP + d]; }
      }
      for (var i = 0; i < ACCV; i++) {
        let d = lane + i * LANES;
        if (d < DV) { dv[i] = dv[i] + p * dos[rr * DV + d]; }
      }
    }
    workgroupBarrier();
  }
  if (keyValid) {
    let out = (((rowSplit * uniforms.B + b) * uniforms.groups + g) * uniforms.S + key) * (DQ + DV);
    for (var i = 0; i < ACCK; i++) {
      let d = lane + i * LANES;
      if (d < DQ) { result[out + d] = dk[i]; }
    }
    for (var i = 0; i < ACCV; i++) {
      let d = lane + i * LANES;
      if (d < DV) { result[out + DQ + d] = dv[i]; }
    }
  }
}
`;
  }
}
