/**
 * Rotary position embedding (RoPE), rotate-half layout (Hugging Face Llama, the GTA code, keras-hub):
 * dim j is paired with dim j + d/2, `x' = x * cos + rotateHalf(x) * sin`, `rotateHalf(x) = [-x2, x1]`,
 * angle(p, j) = (p / scalingFactor) * base^(-2j/d), and the cos/sin blocks are repeated once.
 *
 * Angles are computed in float64 in JavaScript and rounded once to float32, so positions in the
 * thousands keep full float32 accuracy (computing p * w in float32 loses ~1e-4 rad at p = 4096).
 *
 * Notation: B batch, T sequence, n heads, d rotary dim.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul2d, useTwoDimProducts } from './matmul.js';

interface Table {
  length: number;
  cos: Float32Array; // [length, d]
  sin: Float32Array; // [length, d]
  /** sin with the first half negated, [-sin, sin] (see `applyRotaryFactors`); built on first use. */
  sinSigned?: Float32Array; // [length, d]
}

const tables = new Map<string, Table>();

/** cos/sin rows for positions `0..length-1`, memoized per (dim, base, scalingFactor) and grown on demand. */
export function rotaryTable(dim: number, base: number, scalingFactor: number, length: number): Table {
  const key = `${dim}|${base}|${scalingFactor}`;
  const have = tables.get(key);
  if (have && have.length >= length) return have;
  const size = Math.max(length, have ? have.length * 2 : 256);
  const half = dim / 2;
  const cos = new Float32Array(size * dim);
  const sin = new Float32Array(size * dim);
  for (let p = 0; p < size; p++) {
    const pos = p / scalingFactor;
    for (let j = 0; j < half; j++) {
      const angle = pos * Math.pow(base, (-2 * j) / dim);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * dim + j] = c;
      cos[p * dim + j + half] = c;
      sin[p * dim + j] = s;
      sin[p * dim + j + half] = s;
    }
  }
  const table = { length: size, cos, sin };
  tables.set(key, table);
  return table;
}

export interface RotaryAngles {
  cos: tf.Tensor; // [T, d] or [B, T, d]
  sin: tf.Tensor; // [T, d] or [B, T, d]
}

/** cos/sin `[T, d]` for the consecutive positions `start..start+T-1`. */
export function rotaryRange(dim: number, base: number, scalingFactor: number, start: number,
  length: number): RotaryAngles {
  const table = rotaryTable(dim, base, scalingFactor, start + length);
  const from = start * dim;
  const to = (start + length) * dim;
  return {
    cos: tf.tensor2d(table.cos.subarray(from, to), [length, dim]),
    sin: tf.tensor2d(table.sin.subarray(from, to), [length, dim]),
  };
}

/**
 * cos/sin `[B, T, d]` for per-row positions `[B, T]` (int32), e.g. left-padded batches.
 * `bound` must exceed every position (the cache length plus T is always enough).
 */
export function rotaryAt(dim: number, base: number, scalingFactor: number, positions: tf.Tensor,
  bound: number): RotaryAngles {
  const table = rotaryTable(dim, base, scalingFactor, bound);
  return tf.tidy(() => {
    const cosTable = tf.tensor2d(table.cos.subarray(0, bound * dim), [bound, dim]); // [bound, d]
    const sinTable = tf.tensor2d(table.sin.subarray(0, bound * dim), [bound, dim]); // [bound, d]
    const ids = tf.cast(tf.clipByValue(positions, 0, bound - 1), 'int32'); // [B, T]
    return { cos: tf.gather(cosTable, ids), sin: tf.gather(sinTable, ids) }; // [B, T, d]
  });
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

/**
 * Factors `[1, T, heads, d]` for the consecutive positions `start..start+T-1`, made directly from the
 * table. `heads` > 1 repeats each row per head, for backends whose broadcasting multiply is slow (cpu:
 * about 10x slower than an element-wise one).
 */
export function rotaryFactorsRange(dim: number, base: number, scalingFactor: number, start: number,
  length: number, heads = 1): RotaryFactors {
  const table = rotaryTable(dim, base, scalingFactor, start + length);
  const from = start * dim;
  const to = (start + length) * dim;
  const rows = (values: Float32Array): Float32Array => {
    if (heads === 1) return values.subarray(from, to);
    const out = new Float32Array(length * heads * dim);
    for (let p = 0; p < length; p++) {
      const row = values.subarray(from + p * dim, from + (p + 1) * dim);
      for (let h = 0; h < heads; h++) out.set(row, (p * heads + h) * dim);
    }
    return out;
  };
  return {
    cos: tf.tensor4d(rows(table.cos), [1, length, heads, dim]),
    sinSigned: tf.tensor4d(rows(signedSin(table, dim)), [1, length, heads, dim]),
  };
}

/** Factors `[B, T, 1, d]` for per-row positions `[B, T]` (int32); `bound` must exceed every position. */
export function rotaryFactorsAt(dim: number, base: number, scalingFactor: number, positions: tf.Tensor,
  bound: number): RotaryFactors {
  const table = rotaryTable(dim, base, scalingFactor, bound);
  const [b, t] = positions.shape;
  return tf.tidy(() => {
    const cosTable = tf.tensor2d(table.cos.subarray(0, bound * dim), [bound, dim]); // [bound, d]
    const sinTable = tf.tensor2d(signedSin(table, dim).subarray(0, bound * dim), [bound, dim]); // [bound, d]
    const ids = tf.cast(tf.clipByValue(positions, 0, bound - 1), 'int32'); // [B, T]
    return {
      cos: tf.reshape(tf.gather(cosTable, ids), [b, t, 1, dim]), // [B, T, d] -> [B, T, 1, d]
      sinSigned: tf.reshape(tf.gather(sinTable, ids), [b, t, 1, dim]), // [B, T, d] -> [B, T, 1, d]
    };
  });
}

/**
 * RoPE with precomputed factors: `x * cos + swapHalves(x) * [-sin, sin]`, where `swapHalves(x) = [x2, x1]`.
 * Equal, bit for bit, to `applyRotary` (`rotateHalf(x) * sin = [-x2, x1] * [sin, sin]`) in five kernels.
 * `x` is `[B, T, heads, d]` (or `[B, h, r, d]` when T = 1); the factors broadcast over it.
 */
export function applyRotaryFactors(x: tf.Tensor, factors: RotaryFactors): tf.Tensor {
  const d = (x.shape as number[])[x.rank - 1];
  const half = d / 2;
  let swapped: tf.Tensor;
  if (useTwoDimProducts()) {
    // wasm implements split and concat along the last axis in JavaScript, element by element; a product
    // with the half-swap permutation runs in XNNPACK and is exact (one 1 per column).
    swapped = tf.reshape(matMul2d(tf.reshape(x, [-1, d]), halfSwapMatrix(d)), x.shape); // [rows, d] @ [d, d] -> [..., d]
  } else if (tf.getBackend() === 'cpu') {
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
  const table = rotaryTable(dim, base, scalingFactor, position + 1);
  const half = dim / 2;
  const m = new Float32Array(dim * dim);
  const row = position * dim;
  for (let j = 0; j < dim; j++) {
    m[j * dim + j] = table.cos[row + j];
    if (j < half) m[(j + half) * dim + j] = -table.sin[row + j];
    else m[(j - half) * dim + j] = table.sin[row + j];
  }
  return tf.tensor2d(m, [dim, dim]);
}
