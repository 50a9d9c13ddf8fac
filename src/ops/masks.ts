/**
 * Attention masks as additive biases.
 *
 * Notation: B batch, T query length, S key length (cache + T), `offset` = position of the first query
 * (the cache length), so query row t may see key s when s <= offset + t.
 *
 * Each mask is turned into its own bias of 0 (attend) or MASK_VALUE (blocked), and the biases are
 * summed. A padded query row then still prefers padded-but-earlier keys (one bias) over future keys
 * (two biases), so even fully padded rows never look ahead and never produce NaN.
 */
import * as tf from '@tensorflow/tfjs';

/** Large finite negative added to blocked scores (after scaling). -Infinity would give NaN rows. */
export const MASK_VALUE = -1e9;

/**
 * `[T, S]` bias that blocks keys after each query's position. Rank 2, so that it broadcasts over the
 * leading score axes by trailing alignment: cpu adds a rank-4 `[1, 1, T, S]` bias to `[B, H, T, S]` scores
 * about 8x slower than a rank-2 one (its broadcasting add maps every index through the bias's rank).
 */
export function causalBias(queryLength: number, keyLength: number, offset: number): tf.Tensor2D {
  const data = new Float32Array(queryLength * keyLength);
  for (let t = 0; t < queryLength; t++) {
    for (let s = offset + t + 1; s < keyLength; s++) data[t * keyLength + s] = MASK_VALUE;
  }
  return tf.tensor2d(data, [queryLength, keyLength]);
}

/** `[B, 1, 1, S]` bias from a key padding mask `[B, S]` (1/true = real token). */
export function paddingBias(paddingMask: tf.Tensor): tf.Tensor4D {
  const [b, s] = paddingMask.shape;
  const keep = tf.cast(paddingMask, 'float32'); // [B, S]
  return tf.reshape(tf.mul(tf.sub(1, keep), MASK_VALUE), [b, 1, 1, s]); // [B, 1, 1, S]
}

/** `[B, 1, T, S]` bias from an attention mask `[B, T, S]` (1/true = may attend). */
export function attentionMaskBias(attentionMask: tf.Tensor): tf.Tensor4D {
  const [b, t, s] = attentionMask.shape;
  const keep = tf.cast(attentionMask, 'float32'); // [B, T, S]
  return tf.reshape(tf.mul(tf.sub(1, keep), MASK_VALUE), [b, 1, t, s]); // [B, 1, T, S]
}

/** Sum of the given biases (broadcast to `[B|1, 1, T, S]`), or null when there are none. */
export function combineBiases(biases: Array<tf.Tensor | null | undefined>): tf.Tensor | null {
  const present = biases.filter((b): b is tf.Tensor => b !== null && b !== undefined);
  if (present.length === 0) return null;
  return present.reduce((acc, b) => tf.add(acc, b));
}
