/**
 * Attention masks as additive biases.
 *
 * Notation: B batch, T query length, S key length (cache + T), `offset` = position of the first query
 * (the cache length), so query row t may see key s when s <= offset + t.
 *
 * Each mask is turned into its own bias of 0 (attend) or MASK_VALUE (blocked), and the biases are
 * summed. A padded query row then still prefers padded-but-earlier keys (one bias) over future keys
 * (two biases), so even fully padded rows never look ahead and never produce NaN.
 *
 * Padding and attention masks must hold 0/1 (or booleans): other values (0.5, 2, NaN) are a `ValueError`.
 */
import * as tf from '@tensorflow/tfjs';
import { readsSynchronously } from './capabilities.js';
import { ValueError } from '../utils/errors.js';

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

/**
 * Throws a `ValueError` unless every value of `mask` is 0 or 1 (or the mask is boolean): a mask of 0.5,
 * 2 or NaN would otherwise become a partial, amplified or NaN bias. Reads the values (`dataSync`).
 */
export function checkMaskValues(mask: tf.Tensor, what: string): void {
  if (!(mask instanceof tf.Tensor)) throw new ValueError(`${what} must be a tf.Tensor of 0/1 values.`);
  if (mask.dtype === 'bool') return;
  if (mask.dtype !== 'float32' && mask.dtype !== 'int32') {
    throw new ValueError(`${what} must be a bool, int32 or float32 tensor of 0/1 values, got dtype ${mask.dtype}.`);
  }
  if (!readsSynchronously()) return; // webgpu in Node cannot read values back synchronously
  const values = mask.dataSync();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== 0 && v !== 1) throw new ValueError(`${what} values must be 0 or 1 (1 = attend / real token), got ${v}.`);
  }
}

/** Options of the mask-to-bias functions. */
export interface MaskBiasOptions {
  /** The caller already checked the values (`checkMaskValues`), e.g. a mask kept from an earlier call. */
  checked?: boolean;
}

/** `[B, 1, 1, S]` bias from a key padding mask `[B, S]` (1/true = real token; values must be 0/1). */
export function paddingBias(paddingMask: tf.Tensor, options: MaskBiasOptions = {}): tf.Tensor4D {
  if (options.checked !== true) checkMaskValues(paddingMask, 'paddingMask');
  const [b, s] = paddingMask.shape;
  const keep = tf.cast(paddingMask, 'float32'); // [B, S]
  return tf.reshape(tf.mul(tf.sub(1, keep), MASK_VALUE), [b, 1, 1, s]); // [B, 1, 1, S]
}

/** `[B, 1, T, S]` bias from an attention mask `[B, T, S]` (1/true = may attend; values must be 0/1). */
export function attentionMaskBias(attentionMask: tf.Tensor, options: MaskBiasOptions = {}): tf.Tensor4D {
  if (options.checked !== true) checkMaskValues(attentionMask, 'attentionMask');
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
