/**
 * GTA's gated value decoder over whole sequences (prefill and training): each query group's attention
 * output, a latent row, is expanded by that group's decoder `R + Delta` (R = [I ... I], r copies of the
 * identity; docs/ATTENTION_SPEC.md, GTA) and gated by `sigmoid(x Wg)`:
 *
 *   y[n, g r Dl + c] = sigmoid(gate[n, g r Dl + c]) (o[b, g, t, c mod Dl] + sum_j o[b, g, t, j] Delta[g, j, c])
 *
 * Notation: o [B, Hq, T, Dl] the attention output per group, gate [N, W] the gate logits (N = B T rows,
 * W = Hq r Dl columns, group-major), Delta [Hq, Dl, r Dl] the learned decoder.
 *
 * Where the fused kernels are used (`usesFusedKernel('GtaGatedDecoder')`: webgpu and webgl, unless
 * `TRAINING_KERNELS.implementation` is 'composed'), float32 inputs of these shapes run the kernels of
 * src/kernels/webgpu/gated_decoder.ts or webgl/gated_decoder.ts (one kernel forward; three backward);
 * everything else runs the composed ops below.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedGatedDecoder, fusedGatedDecoderUnsupported, GATED_DECODER_KERNELS } from '../kernels/webgpu/gated_decoder.js';
import { usesFusedKernel } from './capabilities.js';
import { groupMatMul } from './dense.js';

/** `sigmoid(gate) * (o expanded by R + delta)`, [N, W] group-major; fused where available. */
export function gatedValueDecoder(o: tf.Tensor4D, gate: tf.Tensor2D, delta: tf.Tensor3D): tf.Tensor2D {
  if (usesFusedKernel(GATED_DECODER_KERNELS.forward) && fusedGatedDecoderUnsupported(o, gate, delta) === null)
    return fusedGatedDecoder(o, gate, delta);
  return composedGatedValueDecoder(o, gate, delta);
}

/** The composed ops (about 11 kernels forward): the reference path, and the path of every other backend. */
export function composedGatedValueDecoder(o: tf.Tensor4D, gate: tf.Tensor2D, delta: tf.Tensor3D): tf.Tensor2D {
  const [b, hq, t, dl] = o.shape;
  const c = delta.shape[2]; // r Dl
  const r = c / dl;
  const rows = tf.reshape(tf.transpose(o, [1, 0, 2, 3]), [hq, b * t, dl]) as tf.Tensor3D; // [B, Hq, T, Dl] -> [Hq, B*T, Dl]
  const tiled = tf.tile(rows, [1, 1, r]); // [Hq, N, Dl] -> [Hq, N, r*Dl] (block copies [o, o]: the R part)
  const decoded = tf.add(tiled, groupMatMul(rows, delta)); // + [Hq, N, Dl] @ [Hq, Dl, r*Dl] -> [Hq, N, r*Dl]
  // [Hq, B, T, r*Dl] -> [B, T, Hq, r*Dl] -> [N, W] (group-major)
  const u = tf.reshape(tf.transpose(tf.reshape(decoded, [hq, b, t, c]), [1, 2, 0, 3]), [b * t, hq * c]);
  return tf.mul(tf.sigmoid(gate), u) as tf.Tensor2D; // sigmoid([N, W]) * [N, W]
}
