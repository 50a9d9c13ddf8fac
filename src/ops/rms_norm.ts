/** RMSNorm over the last axis: `x * rsqrt(mean(x^2) + eps) * gain`, computed in float32. */
import * as tf from '@tensorflow/tfjs';

export function rmsNorm(x: tf.Tensor, gain: tf.Tensor | null, epsilon: number): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
  const normed = tf.mul(x, tf.rsqrt(tf.add(meanSquare, epsilon))); // [..., D]
  return gain === null ? normed : tf.mul(normed, gain);
}
