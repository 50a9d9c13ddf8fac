/**
 * Matrix products that stay on each backend's fast path.
 *
 * The wasm backend runs XNNPACK only when both operands of a BatchMatMul have batch 1 and neither
 * transpose flag is set; every other call (batched, `transposeA`, `transposeB`) runs a scalar loop
 * (tfjs-backend-wasm `batch_mat_mul_impl.cc`), about 1.5 GMAC/s against about 10 for XNNPACK on one
 * core. So on wasm:
 *   - a batched product with at least `WASM_SPLIT_MIN_ROWS` rows and `WASM_SPLIT_MIN_COLS` columns per
 *     entry is split into one 2-D product per batch entry, with transposes materialized. Below that, the
 *     copies (gathers, transposes, XNNPACK's packing of a new right operand) cost more than the scalar
 *     loop saves, so decoding keeps the batched call. Measured on one core (G entries, ms): [256,64]x[64,128]
 *     G=8 11.3 batched / 6.3 split; [128,64]x[64,128] G=8 5.6 / 5.9; [256,128]x[128,16] G=64 20.5 / 61.3
 *     (narrow outputs lose); [512,128]x[128,64] G=4 9.8 / 8.6. The same rule picks each gradient product;
 *   - 2-D products carry a custom gradient whose two products also run without transpose flags
 *     (tfjs's own BatchMatMul gradient uses transposeA/transposeB).
 * Other backends get a single `tf.matMul`. Batch dims must be equal: tfjs's broadcasting matMul has a
 * broken gradient (docs/TFJS_NOTES.md finding 3).
 *
 * Notation: G product of the batch dims, M rows, K shared dim, N columns.
 */
import * as tf from '@tensorflow/tfjs';
import { splitsBatchedProducts } from './capabilities.js';

/** Whether the active backend needs the 2-D decomposition (see `splitsBatchedProducts`). */
export function useTwoDimProducts(): boolean {
  return splitsBatchedProducts();
}

/** Rows per batch entry from which a batched product is split into 2-D products on wasm. */
export const WASM_SPLIT_MIN_ROWS = 256;
/** Columns per batch entry from which a batched product is split into 2-D products on wasm. */
export const WASM_SPLIT_MIN_COLS = 64;

/** Whether a product with `m` rows and `n` columns per entry runs faster as per-entry 2-D products (wasm). */
function splits(m: number, n: number): boolean {
  return useTwoDimProducts() && m >= WASM_SPLIT_MIN_ROWS && n >= WASM_SPLIT_MIN_COLS;
}

/** `a [G, M, K] @ b [G, K, N]`, split per entry when that is faster (transposes already materialized). */
function products(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  // [G, M, K] @ [G, K, N] -> [G, M, N]
  return splits(a.shape[1] as number, b.shape[2] as number) ? perEntryProducts(a, b) : tf.matMul(a, b);
}

/** `a [M, K] @ b [K, N]` with both backward products free of transpose flags. */
const matMul2dNoFlags = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b), // [M, K] @ [K, N] -> [M, N]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy, tf.transpose(saved[1])), // [M, N] @ [N, K] -> [M, K]
      tf.matMul(tf.transpose(saved[0]), dy), // [K, M] @ [M, N] -> [K, N]
    ],
  };
});

/** `a [M, K] @ b [K, N] -> [M, N]`. */
export function matMul2d(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const custom = useTwoDimProducts() && tf.engine().isTapeOn();
  return custom ? matMul2dNoFlags(a, b) : tf.matMul(a, b); // [M, K] @ [K, N] -> [M, N]
}

/**
 * `a [G, M, K] @ b [G, K, N]` as G 2-D products. Entries are taken with `gather` (a wasm kernel that
 * copies only the entry), not `unstack`/`split`: wasm's Slice reads its whole input into JavaScript for
 * every output, so unstacking G entries copies the tensor G times.
 */
function perEntryProducts(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [g, m, k] = a.shape as [number, number, number];
  const n = b.shape[2] as number;
  const ys: tf.Tensor[] = [];
  for (let i = 0; i < g; i++) {
    const ai = tf.reshape(tf.gather(a, [i]), [m, k]); // [G, M, K] -> [1, M, K] -> [M, K]
    const bi = tf.reshape(tf.gather(b, [i]), [k, n]); // [G, K, N] -> [1, K, N] -> [K, N]
    ys.push(tf.matMul(ai, bi)); // [M, K] @ [K, N] -> [M, N]
  }
  return tf.stack(ys); // G x [M, N] -> [G, M, N]
}

/** `perEntryProducts` with a gradient made of transpose-free products, each split when that is faster. */
const perEntryProductsNoFlags = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: perEntryProducts(a, b), // [G, M, K] @ [G, K, N] -> [G, M, N]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      products(dy, tf.transpose(saved[1], [0, 2, 1])), // [G, M, N] @ [G, N, K] -> [G, M, K]
      products(tf.transpose(saved[0], [0, 2, 1]), dy), // [G, K, M] @ [G, M, N] -> [G, K, N]
    ],
  };
});

/**
 * `a [..., M, K] @ b [..., K, N]`, or `@ b^T` with `b [..., N, K]` when `transposeB`; equal batch dims.
 */
export function batchedMatMul(a: tf.Tensor, b: tf.Tensor, transposeB = false): tf.Tensor {
  const rank = a.rank;
  const [m, k] = a.shape.slice(-2);
  const n = transposeB ? b.shape[rank - 2] : b.shape[rank - 1];
  if (!splits(m, n)) return tf.matMul(a, b, false, transposeB); // [..., M, K] @ [..., K, N] -> [..., M, N]
  const batch = a.shape.slice(0, -2);
  const g = batch.reduce((p, x) => p * x, 1);
  const perm = [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
  const bkn = transposeB ? tf.transpose(b, perm) : b; // [..., N, K] -> [..., K, N] (materialized)
  if (g === 1) {
    const y = matMul2d(tf.reshape(a, [m, k]), tf.reshape(bkn, [k, n])); // [M, K] @ [K, N] -> [M, N]
    return tf.reshape(y, [...batch, m, n]); // [M, N] -> [..., M, N]
  }
  const a3 = tf.reshape(a, [g, m, k]); // [..., M, K] -> [G, M, K]
  const b3 = tf.reshape(bkn, [g, k, n]); // [..., K, N] -> [G, K, N]
  const y = tf.engine().isTapeOn() ? perEntryProductsNoFlags(a3, b3) : perEntryProducts(a3, b3); // [G, M, N]
  return tf.reshape(y, [...batch, m, n]); // [G, M, N] -> [..., M, N]
}
