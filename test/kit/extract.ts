/** Reads layer weights into the math layout `[in, out]` used by the loop references. */
import * as tf from '@tensorflow/tfjs';
import { Mat, toMat } from './reference.js';
import { weightValue } from './layers.js';

/** The weight ending in `suffix` as a `[rows, data.length/rows]` matrix. */
export function weightMat(layer: tf.layers.Layer, suffix: string, rows: number): Mat {
  const data = weightValue(layer, suffix);
  return toMat(data, rows, data.length / rows);
}

/** The weight ending in `suffix` as a plain array (biases, gains). */
export function weightVec(layer: tf.layers.Layer, suffix: string): number[] {
  return Array.from(weightValue(layer, suffix));
}

/** One batch row of `x [B, T, D]` as a matrix. */
export function rowOf(x: tf.Tensor, b: number): Mat {
  const [, t, d] = x.shape as number[];
  return toMat(x.dataSync(), t, d, b * t * d);
}
