/**
 * Scaled dot-product attention with grouped heads, shared by GQA, GTA and MLA.
 *
 * Notation: B batch, T query length, S key length, nQ query heads (attention maps), nK key heads,
 * nV value heads, Dk query/key dim, Dv value dim. Query head i reads key head floor(i / (nQ/nK)) and
 * value head floor(i / (nQ/nV)): contiguous blocks, the Hugging Face `repeat_kv` convention.
 *
 * Instead of repeating K/V per query head (copies) or broadcasting matMul (broken gradient in tfjs),
 * the query heads that share a key head are folded into the row axis:
 * `[B, nQ, T, Dk] -> [B*nK, (nQ/nK)*T, Dk]`, one plain batched matMul per product.
 */
import * as tf from '@tensorflow/tfjs';

export interface GroupedAttentionOptions {
  /** Multiplies the scores (applied to the queries, which is cheaper and equal up to rounding). */
  scale: number;
  /** Additive bias broadcastable to `[B, nQ, T, S]` (usually `[B|1, 1, T, S]`). */
  bias?: tf.Tensor | null;
  /** Dropout on the attention probabilities (training only). */
  dropoutRate?: number;
  dropoutSeed?: number;
}

export interface GroupedAttentionResult {
  output: tf.Tensor4D; // [B, nQ, T, Dv]
  probs: tf.Tensor4D; // [B, nQ, T, S]
}

/** `softmax(scale * Q K^T + bias) V` with grouped key/value heads. */
export function groupedAttention(query: tf.Tensor4D, key: tf.Tensor4D, value: tf.Tensor4D,
  options: GroupedAttentionOptions): GroupedAttentionResult {
  const [b, nQ, t, dk] = query.shape;
  const [, nK, s] = key.shape;
  const [, nV, , dv] = value.shape;
  const q = tf.mul(query, options.scale);
  const qf = tf.reshape(q, [b * nK, (nQ / nK) * t, dk]); // [B*nK, (nQ/nK)*T, Dk]
  const kf = tf.reshape(key, [b * nK, s, dk]); // [B*nK, S, Dk]
  let scores: tf.Tensor = tf.matMul(qf, kf, false, true); // [B*nK, (nQ/nK)*T, Dk] @ [B*nK, S, Dk]^T -> [B*nK, (nQ/nK)*T, S]
  scores = tf.reshape(scores, [b, nQ, t, s]); // [B, nQ, T, S]
  if (options.bias) scores = tf.add(scores, options.bias);
  const probs = tf.softmax(scores) as tf.Tensor4D; // [B, nQ, T, S]
  let weights: tf.Tensor = probs;
  if (options.dropoutRate && options.dropoutRate > 0) {
    weights = tf.dropout(probs, options.dropoutRate, undefined, options.dropoutSeed);
  }
  const pf = tf.reshape(weights, [b * nV, (nQ / nV) * t, s]); // [B*nV, (nQ/nV)*T, S]
  const vf = tf.reshape(value, [b * nV, s, dv]); // [B*nV, S, Dv]
  const out = tf.matMul(pf, vf); // [B*nV, (nQ/nV)*T, S] @ [B*nV, S, Dv] -> [B*nV, (nQ/nV)*T, Dv]
  return { output: tf.reshape(out, [b, nQ, t, dv]) as tf.Tensor4D, probs }; // [B, nQ, T, Dv]
}
