/**
 * Fused attention backward for webgpu with the work split of flash_attention_rows.ts: one query row (dQ) or
 * one key (dK, dV) per invocation, its vectors in registers, the other side staged in workgroup memory as
 * vec4s and read by every invocation at once (a broadcast). Same math, inputs, uniforms and outputs as
 * flash_attention_backward.ts, which documents them:
 *   s_ij = qs_i . k_j    p_ij = exp(s_ij - lse_i)    ds_ij = p_ij (dO_i . v_j - delta_i)    delta_i = dO_i . O_i
 *   dq_i = scale sum_j ds_ij k_j      dk_j = sum_i ds_ij qs_i      dv_j = sum_i p_ij dO_i
 *
 * query:    a workgroup takes R folded rows of one (batch, head group); each invocation keeps its scaled
 *           query, dO and dq (2 DQ + Dv floats) and visits the keys in tiles of BC.
 *           Output dQ [B, nQ, T, DQ].
 * keyValue: a workgroup takes R keys of one (batch, head group) and one split of the rows, with 2R
 *           invocations: the first R accumulate the keys' dk, the other R their dv, in the same registers (each
 *           keeps a key, its value and one accumulator: DQ + Dv + max(DQ, Dv) floats). Where that is too many
 *           registers (GTA's 128-wide latent), the halves run as two dispatches of R invocations ('key', then
 *           'value' writing the same output in place). Rows are staged in
 *           tiles of BR (scaled query, dO, lse, delta). Output dKV [P, B, G, S, DQ + Dv].
 * Hidden pairs (causal, or a row without keys: lse = -inf) get p = 0 by a select, not a branch.
 *
 * Limits: Dk, De, Dv multiples of 4 and 2 DQ + Dv <= ROWS_BACKWARD_MAX_REGISTERS (fused_attention.ts takes
 * flash_attention_backward.ts otherwise).
 */
import { foldedHeads, type FlashShapes, GROUP_HEADS, WORKGROUP_FLOATS } from './flash_attention.js';
import { inputNames, KEY_BLOCK_COORDS, ROW_BLOCK_COORDS, rowSplits, UNIFORMS, uniformValues } from './flash_attention_backward.js';
import { rowQueryAt, unrolled, vec4At } from './flash_attention_rows.js';
import type { ProgramUniform, WebGPUProgram } from './program.js';

/** Most floats an invocation keeps in registers (2 DQ + Dv in dQ and in dK). */
export const ROWS_BACKWARD_MAX_REGISTERS = 256;

/** Whether the row backward takes these dims. */
export function rowBackwardFits(dk: number, de: number, dv: number): boolean {
  return dk % 4 === 0 && de % 4 === 0 && dv % 4 === 0 && 2 * (dk + de) + dv <= ROWS_BACKWARD_MAX_REGISTERS;
}

/**
 * The dK/dV program's halves: 'both' in one dispatch (2R invocations) where a key, its value and one
 * accumulator of max(DQ, Dv) fit ROWS_BACKWARD_MAX_REGISTERS, otherwise 'key' then 'value' as two dispatches
 * into the same output.
 */
export function keyValueHalves(dk: number, de: number, dv: number): Array<'both' | 'key' | 'value'> {
  const dq = dk + de;
  return dq + dv + Math.max(dq, dv) <= ROWS_BACKWARD_MAX_REGISTERS ? ['both'] : ['key', 'value'];
}

/** Largest power of two <= 64 of items of `width` floats that fit in `floats` of workgroup memory with `reserve` kept. */
function tileOf(width: number, reserve: number, floats: number): number {
  let n = 64;
  while (n > 1 && n * width > floats - reserve) n /= 2;
  return n;
}

const unroll = (n: number, line: (c: number) => string): string => unrolled(n, line, '\n  ');
const dotSum = (n: number, a: (c: number) => string, b: (c: number) => string): string =>
  Array.from({ length: n }, (_, c) => `dot(${a(c)}, ${b(c)})`).join(' + ');

/** WGSL reading 4 columns from column d of a query row (Q, then EQ after Dk) or of a key (K, then EK). */
function loaders(shp: FlashShapes): { query: (c: number) => string; keyAt: string } {
  const { dk, de } = shp;
  const query = rowQueryAt(dk);
  const keyAt =
    de > 0
      ? `select(${vec4At('EK', '((b * uniforms.nE + eh) * uniforms.S + key) * DE + max(d - DK, 0)')},
            ${vec4At('K', '((b * uniforms.nK + kh) * uniforms.S + key) * DK + min(d, DK - 4)')}, d < DK)`
      : vec4At('K', '((b * uniforms.nK + kh) * uniforms.S + key) * DK + d');
  return { query, keyAt };
}

function constants(shp: FlashShapes, rows: number, tile: number): string {
  const { dk, de, dv } = shp;
  return `
const R = ${rows};
const TILE = ${tile};
const DK = ${dk};
const DE = ${de};
const DQ = ${dk + de};
const DQ4 = ${(dk + de) / 4};
const DV = ${dv};
const DV4 = ${dv / 4};
const NEG = -3.0e38;`;
}

abstract class RowBackwardProgram implements WebGPUProgram {
  variableNames: string[];
  abstract outputShape: number[];
  abstract shaderKey: string;
  dispatchLayout = { x: [0] };
  abstract dispatch: [number, number, number];
  abstract workgroupSize: [number, number, number];
  uniforms = UNIFORMS;
  protected abstract values: ProgramUniform[];

  constructor(protected readonly shp: FlashShapes) {
    this.variableNames = inputNames(shp);
  }

  /** Uniform values in the order of `uniforms`. */
  uniformValues(): ProgramUniform[] {
    return this.values;
  }

  abstract getUserCode(): string;
}

/** dQ, one folded row per invocation: one workgroup per (batch, head group, block of R rows). */
export class FlashAttentionQueryGradRowsProgram extends RowBackwardProgram {
  outputShape: number[];
  shaderKey: string;
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  protected values: ProgramUniform[];
  private readonly keys: number;

  constructor(
    shp: FlashShapes,
    private readonly rows: number,
    floats = WORKGROUP_FLOATS,
  ) {
    super(shp);
    const { b, nQ, t, dk, de, dv } = shp;
    const rf = foldedHeads(shp);
    const blocks = Math.ceil((rf * t) / rows);
    const total = b * (nQ / rf) * blocks;
    this.keys = tileOf(dk + de + dv, 4, floats);
    this.outputShape = [b, nQ, t, dk + de];
    this.workgroupSize = [rows, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey = `gtaFlashAttentionDqRows_${rows}_${this.keys}_${dk}_${de}_${dv}_${shp.causalOffset === null ? '' : 'causal'}`;
    this.values = uniformValues(shp, blocks, total);
  }

  getUserCode(): string {
    const causal = this.shp.causalOffset !== null;
    const { query, keyAt } = loaders(this.shp);
    const [dq4, dv4] = [(this.shp.dk + this.shp.de) / 4, this.shp.dv / 4];
    return `${constants(this.shp, this.rows, this.keys)}
var<workgroup> ks : array<vec4<f32>, ${this.keys * dq4}>;
var<workgroup> vs : array<vec4<f32>, ${this.keys * dv4}>;
var<workgroup> tileCount : i32;

fn main(index : i32) {
  let li = i32(localIndex);
  ${ROW_BLOCK_COORDS}
  ${GROUP_HEADS}
  let firstRow = block * R;
  let fr = firstRow + li;
  let rowValid = valid && fr < groupRows;
  let frc = min(fr, groupRows - 1);
  let t = frc % T;
  let row = (b * uniforms.nQ + firstHead + frc / T) * T + t;
  var keyEnd = uniforms.S;
  ${
    causal
      ? `let lastRow = min(groupRows, firstRow + R) - 1;
  let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
  keyEnd = min(keyEnd, uniforms.offset + tMax + 1);`
      : ''
  }
  if (li == 0) {
    tileCount = select(0, (keyEnd + TILE - 1) / TILE, valid && keyEnd > 0);
  }

  // This row's scaled query, dO, lse and delta = dO . O; its dq.
  let qb = row * DK;
  let qe = row * DE;
  let ob = row * (DV + 1);
  let scale = uniforms.scale;
  ${unroll(dq4, (c) => `let q${c} = ${query(c)} * scale;`)}
  ${unroll(dv4, (c) => `let g${c} = ${vec4At('DY', `row * DV + ${4 * c}`)};`)}
  let lse = OL[ob + DV];
  let delta = ${dotSum(
    dv4,
    (c) => `g${c}`,
    (c) => vec4At('OL', `ob + ${4 * c}`),
  )};
  ${unroll(dq4, (c) => `var a${c} = vec4<f32>(0.0);`)}
  let limit = select(-1, ${causal ? 'min(uniforms.offset + t, keyEnd - 1)' : 'keyEnd - 1'}, rowValid && lse > -1.0e37);
  let tiles = workgroupUniformLoad(&tileCount);
  for (var tile = 0; tile < tiles; tile++) {
    let k0 = tile * TILE;
    for (var i = li; i < TILE * DQ4; i += R) {
      let key = k0 + i / DQ4;
      let d = 4 * (i % DQ4);
      var x = vec4<f32>(0.0);
      if (key < keyEnd) { x = ${keyAt}; }
      ks[i] = x;
    }
    for (var i = li; i < TILE * DV4; i += R) {
      let key = k0 + i / DV4;
      var x = vec4<f32>(0.0);
      if (key < keyEnd) { x = ${vec4At('V', '((b * uniforms.nV + vh) * uniforms.S + key) * DV + 4 * (i % DV4)')}; }
      vs[i] = x;
    }
    workgroupBarrier();
    let jEnd = min(TILE, limit - k0 + 1);
    for (var j = 0; j < jEnd; j++) {
      let kj = j * DQ4;
      let vj = j * DV4;
      let p = exp(${dotSum(
        dq4,
        (c) => `q${c}`,
        (c) => `ks[kj + ${c}]`,
      )} - lse);
      let ds = p * (${dotSum(
        dv4,
        (c) => `g${c}`,
        (c) => `vs[vj + ${c}]`,
      )} - delta);
      ${unroll(dq4, (c) => `a${c} = a${c} + ds * ks[kj + ${c}];`)}
    }
    workgroupBarrier();
  }
  if (rowValid) {
    let at = row * DQ;
    ${unroll(dq4, (c) => `{ let o = a${c} * scale; result[at + ${4 * c}] = o.x; result[at + ${4 * c + 1}] = o.y; result[at + ${4 * c + 2}] = o.z; result[at + ${4 * c + 3}] = o.w; }`)}
  }
}
`;
  }
}

/**
 * dK and dV, one key per invocation pair: one workgroup of 2R invocations per (batch, head group, block of R
 * keys, split of the rows).
 */
export class FlashAttentionKeyValueGradRowsProgram extends RowBackwardProgram {
  outputShape: number[];
  shaderKey: string;
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  protected values: ProgramUniform[];
  private readonly tileRows: number;

  constructor(
    shp: FlashShapes,
    private readonly rows: number,
    private readonly half: 'both' | 'key' | 'value',
    floats = WORKGROUP_FLOATS,
  ) {
    super(shp);
    const { b, nQ, s, t, dk, de, dv } = shp;
    const rf = foldedHeads(shp);
    const groups = nQ / rf;
    const blocks = Math.ceil(s / rows);
    this.tileRows = tileOf(dk + de + dv + 2, 8, floats);
    const { splits, chunk } = rowSplits(b * groups * blocks, Math.ceil((rf * t) / this.tileRows));
    const total = b * groups * blocks * splits;
    this.outputShape = [splits, b, groups, s, dk + de + dv];
    this.workgroupSize = [half === 'both' ? 2 * rows : rows, 1, 1];
    this.dispatch = [total, 1, 1];
    this.shaderKey = `gtaFlashAttentionDkvRows_${half}_${rows}_${this.tileRows}_${dk}_${de}_${dv}_${shp.causalOffset === null ? '' : 'causal'}`;
    this.values = uniformValues(shp, blocks, total, splits, chunk);
  }

  /** WGSL running `value` in the value half and `key` in the key half (both, or the one this dispatch is). */
  private branch(value: string, key: string): string {
    if (this.half === 'value') return value;
    if (this.half === 'key') return key;
    return `if (valueHalf) {\n      ${value}\n    } else {\n      ${key}\n    }`;
  }

  getUserCode(): string {
    const causal = this.shp.causalOffset !== null;
    const { keyAt } = loaders(this.shp);
    const { dk, de } = this.shp;
    const [dq4, dv4] = [(dk + de) / 4, this.shp.dv / 4];
    const stageQuery =
      de > 0
        ? `select(${vec4At('EQ', 'row * DE + max(d - DK, 0)')}, ${vec4At('Q', 'row * DK + min(d, DK - 4)')}, d < DK)`
        : vec4At('Q', 'row * DK + d');
    const store = (name: string, from: string, n: number) =>
      unroll(
        n,
        (c) =>
          `{ let o = ${name}${c}; result[at + ${from} + ${4 * c}] = o.x; result[at + ${from} + ${4 * c + 1}] = o.y; result[at + ${from} + ${4 * c + 2}] = o.z; result[at + ${from} + ${4 * c + 3}] = o.w; }`,
      );
    const valueStep = unroll(dv4, (c) => `a${c} = a${c} + p * gs[gr + ${c}];`);
    const keyStep = `let ds = p * (${dotSum(
      dv4,
      (c) => `gs[gr + ${c}]`,
      (c) => `v${c}`,
    )} - st.y);
        ${unroll(dq4, (c) => `a${c} = a${c} + ds * qs[qr + ${c}];`)}`;
    return `${constants(this.shp, this.rows, this.tileRows)}
const WG = ${this.half === 'both' ? '2 * R' : 'R'};
var<workgroup> qs : array<vec4<f32>, ${this.tileRows * dq4}>;
var<workgroup> gs : array<vec4<f32>, ${this.tileRows * dv4}>;
var<workgroup> stats : array<vec2<f32>, ${this.tileRows}>;
var<workgroup> skipTile : i32;
var<workgroup> tileRange : array<i32, 2>;

fn main(index : i32) {
  let li = i32(localIndex);
  ${this.half === 'both' ? 'let valueHalf = li >= R;' : ''}
  ${KEY_BLOCK_COORDS}
  ${GROUP_HEADS}
  let keyStart = block * R;
  let key = min(keyStart + li % R, uniforms.S - 1);
  let keyValid = valid && keyStart + li % R < uniforms.S;
  let scale = uniforms.scale;

  // This invocation's key and value (unscaled), and one accumulator: dk (first R) or dv (the other R), so
  // that no invocation keeps both.
  ${unroll(dq4, (c) => `let k${c} = ${keyAt.replace(/\bd\b/g, String(4 * c))};`)}
  ${this.half === 'value' ? '_ = V[0]; // (V stays in the bind group layout that WebGPU derives from the shader)' : unroll(dv4, (c) => `let v${c} = ${vec4At('V', `((b * uniforms.nV + vh) * uniforms.S + key) * DV + ${4 * c}`)};`)}
  ${unroll(this.half === 'key' ? dq4 : this.half === 'value' ? dv4 : Math.max(dq4, dv4), (c) => `var a${c} = vec4<f32>(0.0);`)}

  if (li == 0) {
    tileRange[0] = rowSplit * uniforms.rowChunk;
    tileRange[1] = min((groupRows + TILE - 1) / TILE, tileRange[0] + uniforms.rowChunk);
  }
  let firstTile = workgroupUniformLoad(&tileRange[0]);
  let rowTiles = workgroupUniformLoad(&tileRange[1]);
  for (var tile = firstTile; tile < rowTiles; tile++) {
    let firstRow = tile * TILE;
    workgroupBarrier(); // the last tile's reads of the staged rows are done
    ${
      causal
        ? `// Rows that see none of this block's keys (all their positions before keyStart - offset) are skipped.
    if (li == 0) {
      let lastRow = min(groupRows, firstRow + TILE) - 1;
      let tMax = select(T - 1, lastRow % T, firstRow / T == lastRow / T);
      skipTile = select(0, 1, !valid || uniforms.offset + tMax < keyStart);
    }
    if (workgroupUniformLoad(&skipTile) == 1) { continue; }`
        : ''
    }
    // Stage the tile's rows: scaled queries, dO, and (lse, delta); lse = -inf past the end.
    for (var i = li; i < TILE * DQ4; i += WG) {
      let fr = firstRow + i / DQ4;
      let d = 4 * (i % DQ4);
      var x = vec4<f32>(0.0);
      if (valid && fr < groupRows) {
        let row = (b * uniforms.nQ + firstHead + fr / T) * T + fr % T;
        x = ${stageQuery} * scale;
      }
      qs[i] = x;
    }
    for (var i = li; i < TILE * DV4; i += WG) {
      let fr = firstRow + i / DV4;
      var x = vec4<f32>(0.0);
      if (valid && fr < groupRows) {
        let row = (b * uniforms.nQ + firstHead + fr / T) * T + fr % T;
        x = ${vec4At('DY', 'row * DV + 4 * (i % DV4)')};
      }
      gs[i] = x;
    }
    for (var i = li; i < TILE; i += WG) {
      let fr = firstRow + i;
      var st = vec2<f32>(NEG, 0.0);
      if (valid && fr < groupRows) {
        let row = (b * uniforms.nQ + firstHead + fr / T) * T + fr % T;
        let ob = row * (DV + 1);
        var delta = 0.0;
        for (var d = 0; d < DV; d++) { delta += DY[row * DV + d] * OL[ob + d]; }
        st = vec2<f32>(OL[ob + DV], delta);
      }
      stats[i] = st;
    }
    workgroupBarrier();
    for (var rr = 0; rr < TILE; rr++) {
      let fr = firstRow + rr;
      let qr = rr * DQ4;
      let gr = rr * DV4;
      let st = stats[rr];
      let visible = keyValid && st.x > -1.0e37${causal ? ' && key <= uniforms.offset + fr % T' : ''};
      let p = select(0.0, exp(${dotSum(
        dq4,
        (c) => `qs[qr + ${c}]`,
        (c) => `k${c}`,
      )} - st.x), visible);
      ${this.branch(valueStep, keyStep)}
    }
  }
  if (keyValid) {
    let at = (((rowSplit * uniforms.B + b) * uniforms.groups + g) * uniforms.S + key) * (DQ + DV);
    ${this.branch(store('a', 'DQ', dv4), store('a', '0', dq4))}
  }
}
`;
  }
}
