/**
 * Generic layer plumbing shared by every layer of the package (attention, normalization, MLP,
 * embedding, decoder block, models): building a layer the Keras way, making a directly built layer
 * disposable, and reading weights inside forward passes.
 */
import * as tf from '@tensorflow/tfjs';

/** The keyword arguments of `Layer.call`. */
export type Kwargs = Record<string, unknown>;

/**
 * Builds a layer the way Keras does, through `apply()` on a small zero input, so that its weights
 * get names scoped by the layer (`layer_name/query/kernel`; a bare `build()` would create unscoped,
 * colliding names) and tfjs counts the layer as used. `inputShape` may contain nulls (taken as 1).
 */
export function buildLayer(layer: tf.layers.Layer, inputShape: Array<number | null>): void {
  if (layer.built) return;
  tf.tidy(() => {
    layer.apply(tf.zeros(inputShape.map((d) => d ?? 1)));
  });
}

/**
 * tfjs only lets a layer be disposed after `apply()` has run (it counts references from there). Layers
 * built directly with `build()` (weight import, cached calls) are marked as used once, so `dispose()`
 * frees their weights instead of throwing.
 */
export function markUsed(layer: tf.layers.Layer): void {
  const counted = layer as unknown as { _refCount: number | null };
  if (layer.built && counted._refCount === null) counted._refCount = 1;
}

/** Reads a LayerVariable as a tensor (for brevity inside forward passes). */
export function read(v: tf.LayerVariable | null): tf.Tensor | null {
  return v === null ? null : v.read();
}
