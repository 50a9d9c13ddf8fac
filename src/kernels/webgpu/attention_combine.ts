/**
 * Merges the per-split results of flash_attention.ts's `partial` mode (flash-decoding): each split of the
 * keys left an unnormalised output `o_i`, its running max `m_i` and its sum `l_i`; the row's result is
 * `sum_i exp(m_i - M) o_i / sum_i exp(m_i - M) l_i` with `M = max_i m_i`, and its log-sum-exp is
 * `M + log(sum_i exp(m_i - M) l_i)`.
 *
 * Notation: N = B * nQ * T rows, P splits, Dv value dim.
 *   input  Part [N, P * (Dv + 2)]   (per split: Dv outputs, m, l)
 *   output [B, nQ, T, Dv] or [B, nQ, T, Dv + 1] (log-sum-exp in the last column)
 * One invocation per output element; a row with no visible key (l = 0 in every split) gets zeros.
 */
import type { ProgramUniform, WebGPUProgram } from './program.js';

/** The combine program: one invocation per output element. */
export class AttentionCombineProgram implements WebGPUProgram {
  variableNames = ['Part'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  // The split count is a uniform, not a constant: decode steps see a new count as the cache grows, and a
  // constant would compile a new shader for each (seconds each on a software adapter).
  uniforms = 'splits : i32,';

  constructor(
    outShape: [number, number, number, number],
    private readonly splits: number,
    private readonly dv: number,
    private readonly withLse: boolean,
  ) {
    this.outputShape = outShape;
    const size = outShape.reduce((a, x) => a * x, 1);
    this.dispatch = [Math.ceil(size / 64), 1, 1];
    this.shaderKey = `gtaAttentionCombine_${dv}_${withLse}`;
  }

  /** The uniform values of this run: the split count. */
  uniformValues(): ProgramUniform[] {
    return [{ type: 'int32', data: [this.splits] }];
  }

  getUserCode(): string {
    const width = this.withLse ? this.dv + 1 : this.dv;
    return `
const DV = ${this.dv};
const W = ${width};

fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let row = index / W;
  let d = index % W;
  let P = uniforms.splits;
  let base = row * P * (DV + 2);
  var mMax = -3.0e38;
  for (var i = 0; i < P; i++) { mMax = max(mMax, Part[base + i * (DV + 2) + DV]); }
  var total = 0.0;
  var out = 0.0;
  for (var i = 0; i < P; i++) {
    let at = base + i * (DV + 2);
    let l = Part[at + DV + 1];
    let w = select(0.0, exp(Part[at + DV] - mMax), l > 0.0);
    total = total + w * l;
    if (d < DV) { out = out + w * Part[at + d]; }
  }
  if (d < DV) {
    result[index] = select(0.0, out / total, total > 0.0);
  } else {
    result[index] = select(-3.0e38, mMax + log(total), total > 0.0);
  }
}
`;
  }
}
