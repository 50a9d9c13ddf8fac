/** Small layer configurations used across specs, one per mechanism. */
import * as tf from '@tensorflow/tfjs';
import { AttentionLayer } from '../../src/layers/attention_base.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../../src/layers/mla_attention.js';

export interface LayerCase {
  kind: 'gqa' | 'gta' | 'mla';
  /** Input width. */
  dim: number;
  make: (extra?: Record<string, unknown>) => AttentionLayer;
}

export const LAYER_CASES: LayerCase[] = [
  {
    kind: 'gqa',
    dim: 32,
    make: (extra = {}) => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, seed: 1, ...extra }),
  },
  {
    kind: 'gta',
    dim: 32,
    make: (extra = {}) =>
      new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 8,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 8,
        seed: 2,
        ...extra,
      }),
  },
  {
    kind: 'mla',
    dim: 32,
    make: (extra = {}) =>
      new MultiHeadLatentAttention({
        numHeads: 4,
        kvLoraRank: 12,
        qkNopeHeadDim: 8,
        qkRopeHeadDim: 4,
        vHeadDim: 6,
        seed: 3,
        ...extra,
      }),
  },
];

/** The value of the weight whose name ends with `suffix`. */
export function weightValue(layer: tf.layers.Layer, suffix: string): Float32Array {
  const w = layer.weights.find((v) => v.name.endsWith(suffix));
  if (!w) throw new Error(`no weight ending in ${suffix}: ${layer.weights.map((v) => v.name).join(', ')}`);
  return w.read().dataSync() as Float32Array;
}

/** `make()` built for inputs of width `width`, its weights seeded random values (`randomizeWeights`). */
export function builtRandomLayer<L extends tf.layers.Layer>(make: () => L, width: number, seed: number): L {
  const layer = make();
  buildLayer(layer, [1, 1, width]);
  randomizeWeights(layer, seed);
  return layer;
}

/** Overwrites every weight with seeded random values of the given scale (biases and gains too). */
export function randomizeWeights(layer: tf.layers.Layer, seed: number, scale = 0.3): void {
  layer.weights.forEach((w, i) => {
    const v = tf.randomUniform(w.shape as number[], -scale, scale, 'float32', seed + i);
    const value = w.name.endsWith('scale') ? tf.add(v, 1) : v;
    w.write(value);
    tf.dispose([v, value]);
  });
}
