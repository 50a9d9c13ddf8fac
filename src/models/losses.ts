/** Losses for language models. */
import * as tf from '@tensorflow/tfjs';

/**
 * Mean cross-entropy (nats/token) of integer targets `[B, T]` under logits `[B, T, V]`, computed
 * stably as `logsumexp(logits) - logits[target]`. Usable as a `model.compile({loss})` function
 * (targets may arrive as float32 there; they are cast).
 */
export function sparseCrossEntropyFromLogits(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1] as number;
    const flat = tf.reshape(logits, [-1, v]); // [N, V]
    const ids = tf.cast(tf.reshape(targets, [-1]), 'int32'); // [N]
    const picked = tf.sum(tf.mul(flat, tf.oneHot(ids, v)), -1); // [N]
    return tf.mean(tf.sub(tf.logSumExp(flat, -1), picked)) as tf.Scalar;
  });
}
