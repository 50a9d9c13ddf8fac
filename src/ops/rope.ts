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

interface Table {
  length: number;
  cos: Float32Array; // [length, d]
  sin: Float32Array; // [length, d]
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

/** `[-x2, x1]` along the last axis. */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const half = x.shape[x.rank - 1] / 2;
  const [x1, x2] = tf.split(x, [half, half], -1); // two [..., d/2]
  return tf.concat([tf.neg(x2), x1], -1); // [..., d]
}

/**
 * Rotates `x [B, T, ..., d]` (sequence on axis 1, features last) by angles `[T, d]` or `[B, T, d]`.
 */
export function applyRotary(x: tf.Tensor, angles: RotaryAngles): tf.Tensor {
  const d = (x.shape as number[])[x.rank - 1];
  const t = (x.shape as number[])[1];
  const middle = new Array<number>(Math.max(0, x.rank - 3)).fill(1);
  const lead = angles.cos.rank === 2 ? 1 : (angles.cos.shape as number[])[0];
  const shape = [lead, t, ...middle, d]; // [B|1, T, 1.., d]
  const cos = tf.reshape(angles.cos, shape);
  const sin = tf.reshape(angles.sin, shape);
  return tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin));
}
