/**
 * Rotary position embedding (RoPE), rotate-half layout (Hugging Face Llama, the GTA code, keras-hub):
 * dim j is paired with dim j + d/2, `x' = x * cos + rotateHalf(x) * sin`, `rotateHalf(x) = [-x2, x1]`,
 * angle(p, j) = (p / scalingFactor) * base^(-2j/d), and the cos/sin blocks are repeated once.
 *
 * Angles are computed in float64 in JavaScript and rounded once to float32, so positions in the
 * thousands keep full float32 accuracy (computing p * w in float32 loses ~1e-4 rad at p = 4096).
 *
 * Positions are integers in `[0, MAX_ROPE_POSITIONS)`; anything else (a fractional, negative or too
 * large position or start index) is a `ValueError`. Cached tables never exceed `ROPE_TABLE_POSITIONS`
 * rows per (dim, base, scaling factor).
 *
 * Notation: B batch, T sequence, n heads, d rotary dim.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul2d, useTwoDimProducts } from './matmul.js';
import { broadcastsSlowly, usesFusedKernel } from './capabilities.js';
import {
  fusedRope,
  fusedRopeToHeads,
  fusedRopeToHeadsUnsupported,
  fusedRopeUnsupported,
  ROPE_HEADS_KERNEL,
  ROPE_KERNEL,
} from '../kernels/webgpu/rope.js';
import { ValueError } from '../utils/errors.js';

/**
 * Largest number of RoPE positions: every position must be an integer in `[0, MAX_ROPE_POSITIONS)`
 * (2^20 = 1,048,576). Models bound positions by their `maxSequenceLength`; this is the limit for the
 * layers and functions used on their own (`RotaryEmbedding`'s `startIndex`, attention `positions`).
 */
export const MAX_ROPE_POSITIONS = 2 ** 20;

/**
 * Positions `[0, ROPE_TABLE_POSITIONS)` (16,384) are served from a table cached per (dim, base, scaling
 * factor), grown by doubling up to this bound and never beyond; rows of later positions are computed for
 * the call that needs them and not kept.
 */
export const ROPE_TABLE_POSITIONS = 2 ** 14;

interface Table {
  length: number;
  cos: Float32Array; // [length, d]
  sin: Float32Array; // [length, d]
  /** sin with the first half negated, [-sin, sin] (see `applyRotaryFactors`); built on first use. */
  sinSigned?: Float32Array; // [length, d]
}

const tables = new Map<string, Table>();

/** Factor sets and matrices built so far (`rotaryFactorsRange`, `rotaryFactorsAt`, `rotaryMatrix`). */
let builds = 0;

/** How many RoPE factor sets and matrices have been built since the module loaded (for tests and profiling). */
export function rotaryFactorBuilds(): number {
  return builds;
}

/** Writes cos/sin of `position` into row `row` of `cos`/`sin` (`[rows, dim]`), angles in float64. */
function fillRow(
  cos: Float32Array,
  sin: Float32Array,
  row: number,
  position: number,
  dim: number,
  base: number,
  scalingFactor: number,
): void {
  const half = dim / 2;
  const pos = position / scalingFactor;
  const at = row * dim;
  for (let j = 0; j < half; j++) {
    const angle = pos * Math.pow(base, (-2 * j) / dim);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    cos[at + j] = c;
    cos[at + j + half] = c;
    sin[at + j] = s;
    sin[at + j + half] = s;
  }
}

/** Throws unless `start..start+length-1` are valid positions (integers in `[0, MAX_ROPE_POSITIONS)`). */
function checkRange(start: number, length: number): void {
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new ValueError(`RoPE: startIndex must be a non-negative integer, got ${start}.`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new ValueError(`RoPE: the sequence length must be a non-negative integer, got ${length}.`);
  }
  if (start + length > MAX_ROPE_POSITIONS) {
    throw new ValueError(
      `RoPE: startIndex + sequence length must be at most MAX_ROPE_POSITIONS (${MAX_ROPE_POSITIONS}), ` + `got ${start} + ${length}.`,
    );
  }
}

/**
 * cos/sin rows for positions `0..length-1`, memoized per (dim, base, scalingFactor) and grown on demand
 * up to `ROPE_TABLE_POSITIONS` (a larger `length` is an error: callers compute later rows directly).
 */
export function rotaryTable(dim: number, base: number, scalingFactor: number, length: number): Table {
  if (!Number.isSafeInteger(length) || length < 0 || length > ROPE_TABLE_POSITIONS) {
    throw new ValueError(
      `RoPE: the cached table covers at most ROPE_TABLE_POSITIONS (${ROPE_TABLE_POSITIONS}) positions, asked for ${length}.`,
    );
  }
  const key = `${dim}|${base}|${scalingFactor}`;
  const have = tables.get(key);
  if (have && have.length >= length) return have;
  const size = Math.min(ROPE_TABLE_POSITIONS, Math.max(length, have ? have.length * 2 : 256));
  const cos = new Float32Array(size * dim);
  const sin = new Float32Array(size * dim);
  for (let p = 0; p < size; p++) fillRow(cos, sin, p, p, dim, base, scalingFactor);
  const table = { length: size, cos, sin };
  tables.set(key, table);
  return table;
}

/** Number of positions the cached tables hold, summed over every (dim, base, scaling factor) (for tests). */
export function cachedRotaryPositions(): number {
  let n = 0;
  for (const t of tables.values()) n += t.length;
  return n;
}

/**
 * cos and sin (or sin with its first half negated, `signed`) rows `[n, dim]` for the given positions,
 * already checked to be integers in `[0, MAX_ROPE_POSITIONS)`: cached rows below `ROPE_TABLE_POSITIONS`,
 * computed ones above.
 */
function rowsAt(
  dim: number,
  base: number,
  scalingFactor: number,
  positions: ArrayLike<number>,
  signed: boolean,
): { cos: Float32Array; sin: Float32Array } {
  const n = positions.length;
  let cachedMax = -1;
  for (let i = 0; i < n; i++) if (positions[i] < ROPE_TABLE_POSITIONS && positions[i] > cachedMax) cachedMax = positions[i];
  const table = cachedMax >= 0 ? rotaryTable(dim, base, scalingFactor, cachedMax + 1) : null;
  const tableSin = table === null ? null : signed ? signedSin(table, dim) : table.sin;
  const cos = new Float32Array(n * dim);
  const sin = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const p = positions[i];
    if (table !== null && p < ROPE_TABLE_POSITIONS) {
      cos.set(table.cos.subarray(p * dim, (p + 1) * dim), i * dim);
      sin.set(tableSin!.subarray(p * dim, (p + 1) * dim), i * dim);
    } else {
      fillRow(cos, sin, i, p, dim, base, scalingFactor);
      if (signed) for (let j = 0; j < dim / 2; j++) sin[i * dim + j] = -sin[i * dim + j];
    }
  }
  return { cos, sin };
}

/** cos and (signed) sin rows `[length, dim]` for `start..start+length-1`: views of the table when it covers them. */
function rowsRange(
  dim: number,
  base: number,
  scalingFactor: number,
  start: number,
  length: number,
  signed: boolean,
): { cos: Float32Array; sin: Float32Array } {
  checkRange(start, length);
  if (start + length <= ROPE_TABLE_POSITIONS) {
    const table = rotaryTable(dim, base, scalingFactor, start + length);
    const sin = signed ? signedSin(table, dim) : table.sin;
    return { cos: table.cos.subarray(start * dim, (start + length) * dim), sin: sin.subarray(start * dim, (start + length) * dim) };
  }
  return rowsAt(
    dim,
    base,
    scalingFactor,
    Array.from({ length }, (_, i) => start + i),
    signed,
  );
}

/**
 * The values of a `[B, T]` positions tensor, checked: integers (int32, or integer-valued float32) in
 * `[0, min(bound, MAX_ROPE_POSITIONS))`. Read on the CPU (`dataSync`).
 */
function positionValues(positions: tf.Tensor, bound: number): Int32Array {
  if (!(positions instanceof tf.Tensor))
    throw new ValueError('RoPE: positions must be a tf.Tensor of integer positions [batch, sequence].');
  if (positions.rank !== 2) throw new ValueError(`RoPE: positions must have shape [batch, sequence], got [${positions.shape}].`);
  if (positions.dtype !== 'int32' && positions.dtype !== 'float32') {
    throw new ValueError(`RoPE: positions must be an int32 (or integer-valued float32) tensor, got dtype ${positions.dtype}.`);
  }
  const values = positions.dataSync();
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0) throw new ValueError(`RoPE: positions must be non-negative integers, got ${v}.`);
    if (v >= MAX_ROPE_POSITIONS)
      throw new ValueError(`RoPE: positions must be below MAX_ROPE_POSITIONS (${MAX_ROPE_POSITIONS}), got ${v}.`);
    out[i] = v;
  }
  if (!Number.isSafeInteger(bound) || bound < 1)
    throw new ValueError(`RoPE: the positions bound must be a positive integer, got ${bound}.`);
  for (const v of out) {
    if (v >= bound)
      throw new ValueError(`RoPE: positions must be below ${bound} (the bound passed; for attention, cached + new tokens), got ${v}.`);
  }
  return out;
}

export interface RotaryAngles {
  cos: tf.Tensor; // [T, d] or [B, T, d]
  sin: tf.Tensor; // [T, d] or [B, T, d]
}

/** cos/sin `[T, d]` for the consecutive positions `start..start+T-1` (at most `MAX_ROPE_POSITIONS`). */
export function rotaryRange(dim: number, base: number, scalingFactor: number, start: number, length: number): RotaryAngles {
  const rows = rowsRange(dim, base, scalingFactor, start, length, false);
  return { cos: tf.tensor2d(rows.cos, [length, dim]), sin: tf.tensor2d(rows.sin, [length, dim]) };
}

/**
 * cos/sin `[B, T, d]` for per-row positions `[B, T]` (int32), e.g. left-padded batches. Every position
 * must be an integer in `[0, bound)` (`bound` at most `MAX_ROPE_POSITIONS`); others are a `ValueError`.
 */
export function rotaryAt(dim: number, base: number, scalingFactor: number, positions: tf.Tensor, bound: number): RotaryAngles {
  const [b, t] = positions.shape;
  const rows = rowsAt(dim, base, scalingFactor, positionValues(positions, bound), false);
  return { cos: tf.tensor3d(rows.cos, [b, t, dim]), sin: tf.tensor3d(rows.sin, [b, t, dim]) };
}

/**
 * Rotates `x [B, T, ..., d]` (sequence on axis 1, features last) by angles `[T, d]` or `[B, T, d]`: the
 * factors of `applyRotaryFactors` (cos, and sin with its first half negated), shaped to broadcast over x.
 */
export function applyRotary(x: tf.Tensor, angles: RotaryAngles): tf.Tensor {
  return tf.tidy(() => {
    const d = (x.shape as number[])[x.rank - 1];
    const sign = tf.concat([tf.fill([d / 2], -1), tf.ones([d / 2])]); // [d]: [-1.., +1..]
    return applyRotaryFactors(x, broadcastFactors({ cos: angles.cos, sinSigned: tf.mul(angles.sin, sign) }, x.rank));
  });
}

/**
 * Factors `[T, d]`, `[B|1, T, d]` or `[B|1, T, 1, d]` reshaped to `[B|1, T, 1.., d]` of the given rank, so
 * that they broadcast over `[B, T, ..., d]`.
 */
export function broadcastFactors(factors: RotaryFactors, rank: number): RotaryFactors {
  const shape = factors.cos.shape as number[];
  const d = shape[shape.length - 1];
  const t = shape[shape.length === 2 ? 0 : 1];
  const lead = shape.length === 2 ? 1 : shape[0];
  const target = [lead, t, ...new Array<number>(Math.max(0, rank - 3)).fill(1), d]; // [B|1, T, 1.., d]
  return { cos: tf.reshape(factors.cos, target), sinSigned: tf.reshape(factors.sinSigned, target) };
}

/**
 * Rotation factors for `applyRotaryFactors`: `cos` and the sign-folded `sinSigned = [-sin, sin]`, both
 * `[B|1, T, 1, d]`, so they broadcast over `[B, T, heads, d]` (and, for T = 1, over `[B, h, r, d]`).
 */
export interface RotaryFactors {
  cos: tf.Tensor; // [B|1, T, 1, d]
  sinSigned: tf.Tensor; // [B|1, T, 1, d]
}

function signedSin(table: Table, dim: number): Float32Array {
  if (table.sinSigned === undefined) {
    const half = dim / 2;
    const signed = new Float32Array(table.sin);
    for (let p = 0; p < table.length; p++) for (let j = 0; j < half; j++) signed[p * dim + j] = -signed[p * dim + j];
    table.sinSigned = signed;
  }
  return table.sinSigned;
}

/** The values of `rotaryFactorsRange(dim, base, scalingFactor, position, 1)` (cos and signed sin, `[dim]` each), on the CPU. */
export function rotaryFactorValues(
  dim: number,
  base: number,
  scalingFactor: number,
  position: number,
): { cos: Float32Array; sinSigned: Float32Array } {
  const rows = rowsRange(dim, base, scalingFactor, position, 1, true);
  return { cos: rows.cos, sinSigned: rows.sin };
}

/**
 * Factors `[1, T, heads, d]` for the consecutive positions `start..start+T-1`, made directly from the
 * table. `heads` > 1 repeats each row per head, for backends whose broadcasting multiply is slow (cpu:
 * about 10x slower than an element-wise one).
 */
export function rotaryFactorsRange(
  dim: number,
  base: number,
  scalingFactor: number,
  start: number,
  length: number,
  heads = 1,
): RotaryFactors {
  builds += 1;
  const table = rowsRange(dim, base, scalingFactor, start, length, true);
  const rows = (values: Float32Array): Float32Array => {
    if (heads === 1) return values;
    const out = new Float32Array(length * heads * dim);
    for (let p = 0; p < length; p++) {
      const row = values.subarray(p * dim, (p + 1) * dim);
      for (let h = 0; h < heads; h++) out.set(row, (p * heads + h) * dim);
    }
    return out;
  };
  return {
    cos: tf.tensor4d(rows(table.cos), [1, length, heads, dim]),
    sinSigned: tf.tensor4d(rows(table.sin), [1, length, heads, dim]),
  };
}

/**
 * Factors `[B, T, 1, d]` for per-row positions `[B, T]` (int32): every position must be an integer in
 * `[0, bound)` (`bound` at most `MAX_ROPE_POSITIONS`; the cache length plus T for an attention call).
 */
export function rotaryFactorsAt(dim: number, base: number, scalingFactor: number, positions: tf.Tensor, bound: number): RotaryFactors {
  builds += 1;
  const [b, t] = positions.shape;
  const rows = rowsAt(dim, base, scalingFactor, positionValues(positions, bound), true);
  return { cos: tf.tensor4d(rows.cos, [b, t, 1, dim]), sinSigned: tf.tensor4d(rows.sin, [b, t, 1, dim]) };
}

/**
 * RoPE with precomputed factors: `x * cos + swapHalves(x) * [-sin, sin]`, where `swapHalves(x) = [x2, x1]`.
 * Equal, bit for bit, to `applyRotary` (`rotateHalf(x) * sin = [-x2, x1] * [sin, sin]`) in five kernels.
 * `x` is `[B, T, heads, d]` (or `[B, h, r, d]` when T = 1); the factors broadcast over it.
 * Where `usesFusedKernel(ROPE_KERNEL)` (webgpu and webgl) this is one fused kernel, and its gradient wrt x
 * one more (src/kernels/webgpu/rope.ts, src/kernels/webgl/rope.ts; the factors get no gradient there);
 * elsewhere `composedRotaryFactors`.
 */
export function applyRotaryFactors(x: tf.Tensor, factors: RotaryFactors): tf.Tensor {
  if (usesFusedKernel(ROPE_KERNEL) && fusedRopeUnsupported(x, factors.cos, factors.sinSigned) === null) {
    return fusedRope(x, factors.cos, factors.sinSigned); // one kernel forward, one backward
  }
  return composedRotaryFactors(x, factors);
}

/**
 * `applyRotaryFactors` for x `[B, T, H, d]` (heads of a projection), returned heads first, `[B, H, T, d]`: on
 * webgpu one fused kernel writes the rotation in that layout (and one more its gradient), elsewhere the
 * rotation is followed by a transpose.
 */
export function applyRotaryFactorsToHeads(x: tf.Tensor4D, factors: RotaryFactors): tf.Tensor4D {
  if (usesFusedKernel(ROPE_HEADS_KERNEL) && fusedRopeToHeadsUnsupported(x, factors.cos, factors.sinSigned) === null) {
    return fusedRopeToHeads(x, factors.cos, factors.sinSigned); // [B, T, H, d] -> [B, H, T, d], one kernel
  }
  return tf.transpose(applyRotaryFactors(x, factors), [0, 2, 1, 3]) as tf.Tensor4D; // [B, T, H, d] -> [B, H, T, d]
}

/**
 * The composed ops of `applyRotaryFactors` (split/concat, a gather or a permutation product, then two
 * multiplies and an add): the path of every backend without the fused kernel, and the reference for it.
 */
export function composedRotaryFactors(x: tf.Tensor, factors: RotaryFactors): tf.Tensor {
  const d = (x.shape as number[])[x.rank - 1];
  const half = d / 2;
  let swapped: tf.Tensor;
  if (useTwoDimProducts()) {
    // wasm implements split and concat along the last axis in JavaScript, element by element; a product
    // with the half-swap permutation runs in XNNPACK and is exact (one 1 per column).
    swapped = tf.reshape(matMul2d(tf.reshape(x, [-1, d]), halfSwapMatrix(d)), x.shape); // [rows, d] @ [d, d] -> [..., d]
  } else if (broadcastsSlowly()) {
    // cpu slices a non-contiguous block element by element (~50 ns each); a gather is 4x faster.
    swapped = swapHalvesByGather(x);
  } else {
    const [x1, x2] = tf.split(x, [half, half], -1); // two [..., d/2]
    swapped = tf.concat([x2, x1], -1); // [..., d]
  }
  return tf.add(tf.mul(x, factors.cos), tf.mul(swapped, factors.sinSigned));
}

/**
 * `[x1, x2] -> [x2, x1]` on the last axis with `gather`. The swap is its own inverse, so its gradient is
 * the same gather on `dy` (tfjs's generic gather gradient, an UnsortedSegmentSum, is ~100x slower on cpu).
 */
const swapHalvesByGather = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  const d = (x.shape as number[])[x.rank - 1];
  const order = Array.from({ length: d }, (_, j) => (j < d / 2 ? j + d / 2 : j - d / 2));
  const swap = (t: tf.Tensor) => tf.gather(t, tf.tensor1d(order, 'int32'), t.rank - 1); // [..., d], halves swapped
  return { value: swap(x), gradFunc: (dy: tf.Tensor) => swap(dy) };
});

/** `[d, d]` permutation with `x P = [x2, x1]`. */
function halfSwapMatrix(d: number): tf.Tensor2D {
  const half = d / 2;
  const p = new Float32Array(d * d);
  for (let j = 0; j < d; j++) p[(j < half ? j + half : j - half) * d + j] = 1;
  return tf.tensor2d(p, [d, d]);
}

/**
 * RoPE at one position as a `[d, d]` matrix `M` with `x M = x * cos + rotateHalf(x) * sin` (two non-zeros
 * per column: `M[j][j] = cos_j`, `M[j+d/2][j] = -sin_j`, `M[j-d/2][j] = sin_j`), from the same float32
 * table. Rotating every head of a decoded token is then one `[rows, d] @ [d, d]` product instead of five
 * element-wise kernels; the zero entries add exact zeros, so only the rounding of the one remaining
 * addition may differ (fused multiply-add).
 */
export function rotaryMatrix(dim: number, base: number, scalingFactor: number, position: number): tf.Tensor2D {
  builds += 1;
  const rows = rowsRange(dim, base, scalingFactor, position, 1, false);
  const half = dim / 2;
  const m = new Float32Array(dim * dim);
  for (let j = 0; j < dim; j++) {
    m[j * dim + j] = rows.cos[j];
    if (j < half) m[(j + half) * dim + j] = -rows.sin[j];
    else m[(j - half) * dim + j] = rows.sin[j];
  }
  return tf.tensor2d(m, [dim, dim]);
}

/** Where the new tokens of one model step sit. */
export interface RotaryStepPositions {
  /** Tokens cached before the step: the position of its first token when `positions` is null. */
  start: number;
  /** New tokens per row (T). */
  length: number;
  /** `[B, T]` integer per-row positions, each below `start + length`; null/undefined = `start..start+T-1`. */
  positions?: tf.Tensor | null;
}

/**
 * The RoPE factors of one model step (a forward pass, a prefill or one decode step), shared by every
 * attention layer of the step: each factor set (per rotary dim, base, scaling factor and head repeat) and
 * each one-token rotation matrix is built on first request and reused by the other layers. Its tensors
 * outlive the layers' tidy scopes; `dispose()` frees them (the positions tensor stays the caller's).
 */
export class RotaryStep {
  readonly start: number;
  readonly length: number;
  readonly positions: tf.Tensor | null;
  private readonly built = new Map<string, tf.Tensor[]>();
  private disposed = false;

  constructor(where: RotaryStepPositions) {
    checkRange(where.start, where.length);
    const positions = where.positions ?? null;
    if (positions !== null && (!(positions instanceof tf.Tensor) || positions.rank !== 2 || positions.shape[1] !== where.length)) {
      throw new ValueError(
        `RotaryStep: positions must be a tf.Tensor [batch, ${where.length}] (length = ${where.length}), ` +
          `got ${positions instanceof tf.Tensor ? `shape [${positions.shape}]` : String(positions)}.`,
      );
    }
    this.start = where.start;
    this.length = where.length;
    this.positions = positions;
  }

  /** Factors for `applyRotaryFactors` (as `rotaryFactorsRange`, or `rotaryFactorsAt` with bound `start + length`). */
  factors(dim: number, base: number, scalingFactor: number, heads = 1): RotaryFactors {
    // Per-row factors are never repeated per head, so `heads` is not part of their key.
    const key = `f|${dim}|${base}|${scalingFactor}|${this.positions === null ? heads : 1}`;
    const [cos, sinSigned] = this.memo(key, () => {
      const f =
        this.positions === null
          ? rotaryFactorsRange(dim, base, scalingFactor, this.start, this.length, heads)
          : rotaryFactorsAt(dim, base, scalingFactor, this.positions, this.start + this.length);
      return [f.cos, f.sinSigned];
    });
    return { cos, sinSigned };
  }

  /** The `[dim, dim]` rotation of `rotaryMatrix` for a one-token step at consecutive positions, else null. */
  matrix(dim: number, base: number, scalingFactor: number): tf.Tensor2D | null {
    if (this.positions !== null || this.length !== 1) return null;
    const [m] = this.memo(`m|${dim}|${base}|${scalingFactor}`, () => [rotaryMatrix(dim, base, scalingFactor, this.start)]);
    return m as tf.Tensor2D;
  }

  /** Whether this step describes the given call: same start and length, and the same positions tensor (or none). */
  covers(start: number, length: number, positions: tf.Tensor | null): boolean {
    return this.start === start && this.length === length && this.positions === positions;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the factors built so far; the step cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const tensors of this.built.values()) tf.dispose(tensors);
    this.built.clear();
  }

  private memo(key: string, make: () => tf.Tensor[]): tf.Tensor[] {
    if (this.disposed) throw new ValueError('RotaryStep: the step has been disposed (a step serves one forward pass or decode step).');
    let tensors = this.built.get(key);
    if (tensors === undefined) {
      tensors = make().map((t) => tf.keep(t));
      this.built.set(key, tensors);
    }
    return tensors;
  }
}
