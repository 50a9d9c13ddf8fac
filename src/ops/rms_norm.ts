/**
 * RMSNorm over the last axis: `x * rsqrt(mean(x^2) + eps) * gain`, computed in float32.
 *
 * Where the fused RMSNorm kernels are used (`usesFusedKernel('GtaRmsNorm')`: webgpu and webgl, unless
 * `TRAINING_KERNELS.implementation` is 'composed'), a float32 input whose last axis is at most
 * `RMS_NORM_MAX_DIM` (webgl: `WEBGL_RMS_NORM_MAX_DIM`) and a gain of shape [D] or none runs the fused
 * kernels of src/kernels/webgpu/rms_norm.ts or webgl/rms_norm.ts (one kernel forward, one or two
 * backward); everything else runs the composed ops below, exactly as before.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedRmsNorm, fusedRmsNormUnsupported, RMS_NORM_KERNELS } from '../kernels/webgpu/rms_norm.js';
import { usesFusedKernel } from './capabilities.js';

/** `x * rsqrt(mean(x^2, -1) + epsilon) * gain` (gain null: no gain), fused where available. */
export function rmsNorm(x: tf.Tensor, gain: tf.Tensor | null, epsilon: number): tf.Tensor {
  if (usesFusedKernel(RMS_NORM_KERNELS.forward) && fusedRmsNormUnsupported(x, gain) === null) return fusedRmsNorm(x, gain, epsilon);
  return composedRmsNorm(x, gain, epsilon);
}

/** The composed ops (about 5 kernels forward): the reference path, and the path of every other backend. */
export function composedRmsNorm(x: tf.Tensor, gain: tf.Tensor | null, epsilon: number): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
  const normed = tf.mul(x, tf.rsqrt(tf.add(meanSquare, epsilon))); // [..., D]
  return gain === null ? normed : tf.mul(normed, gain);
}
