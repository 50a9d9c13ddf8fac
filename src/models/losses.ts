/** Losses for language models. */
import * as tf from '@tensorflow/tfjs';

/**
 * Mean cross-entropy (nats/token) under logits `[B, T, V]`, computed stably as
 * `logsumexp(logits) - <target, logits>`. Targets are integer ids `[B, T]`, or one-hot/probability
 * rows `[B, T, V]`. With `model.fit()` pass one-hot targets: tfjs checks target shapes against the
 * model output and only special-cases its own (probability-based) sparse loss.
 */
export function sparseCrossEntropyFromLogits(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1] as number;
    const flat = tf.reshape(logits, [-1, v]); // [N, V]
    const dense = targets.rank === logits.rank
      ? tf.reshape(tf.cast(targets, 'float32'), [-1, v]) // [N, V]
      : tf.oneHot(tf.cast(tf.reshape(targets, [-1]), 'int32'), v); // [N] -> [N, V]
    const picked = tf.sum(tf.mul(flat, dense), -1); // [N]
    return tf.mean(tf.sub(tf.logSumExp(flat, -1), picked)) as tf.Scalar;
  });
}
