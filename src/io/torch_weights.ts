/**
 * Import and export of PyTorch (state-dict) weights for the layers of this package.
 *
 * ```ts
 * const layer = new GroupedHeadLatentAttention({...});
 * importTorchWeights(layer, { 'q_proj.weight': {shape: [32, 128], data: [...]}, ... });
 * ```
 * Linear weights are transposed from torch's `[out, in]`; GTA's `v_b_proj.weight` is reshaped without a
 * transpose (see `torch_layout.ts`). Unbuilt layers are built from the weights' input width. The names
 * come from the tables in `torch_names.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import type { TorchWeightSpec } from './torch_layout.js';
import { torchInputWeight, torchWeightSpecs } from './torch_names.js';
// buildLayer lives in layer_utils.ts; attention_base.ts re-exports it (before and after the split).
import { buildLayer } from '../layers/layer_utils.js';

export { torchWeightSpecs } from './torch_names.js';

/** A torch tensor: a tf.Tensor in torch layout, or `{shape, data}` with row-major data. */
export type TorchTensorLike = tf.Tensor | { shape: number[]; data: ArrayLike<number> };

export interface ImportTorchOptions {
  /** Prefix of the layer's entries in `weights` (e.g. `'model.layers.0.self_attn.'`). Default ''. */
  prefix?: string;
  /** Fail when `weights` holds entries under the prefix that the layer does not use. Default true. */
  strict?: boolean;
}

/** A layer of this package (attention, RMSNorm, SwiGLU, decoder block) or one that is `TorchMappable`. */
type MappableLayer = tf.layers.Layer;

function toTensor(name: string, value: TorchTensorLike): tf.Tensor {
  if (value instanceof tf.Tensor) return tf.cast(value, 'float32');
  if (!value || !Array.isArray(value.shape) || value.data === undefined) {
    throw new ValueError(`importTorchWeights: ${name} must be a tf.Tensor or {shape, data}.`);
  }
  const size = value.shape.reduce((a, b) => a * b, 1);
  if (value.data.length !== size) {
    throw new ValueError(`importTorchWeights: ${name} has ${value.data.length} values but shape [${value.shape}] ` + `needs ${size}.`);
  }
  return tf.tensor(Float32Array.from(value.data), value.shape, 'float32');
}

function shapeOf(value: TorchTensorLike): number[] {
  return value instanceof tf.Tensor ? value.shape : value.shape;
}

/** Converts a torch-layout tensor to the variable's layout (also used to map reference gradients). */
export function torchToLayer(spec: TorchWeightSpec, torchTensor: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const target = spec.variable.shape as number[];
    if (spec.layout === 'linear') return tf.reshape(tf.transpose(torchTensor), target);
    return tf.reshape(torchTensor, target);
  });
}

/** Converts a variable's value (or its gradient) back to torch layout. */
export function layerToTorch(spec: TorchWeightSpec, value: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (spec.layout === 'linear') {
      const [out, inp] = spec.torchShape;
      return tf.transpose(tf.reshape(value, [inp, out]));
    }
    return tf.reshape(value, spec.torchShape);
  });
}

function ensureBuilt(layer: MappableLayer, weights: Record<string, TorchTensorLike>, prefix: string): void {
  if (layer.built) return;
  const input = torchInputWeight(layer);
  const name = prefix + input.name;
  const w = weights[name];
  if (w === undefined) {
    throw new ValueError(
      `importTorchWeights: layer ${layer.name} is not built and ${name} is missing, so its ` + 'input width is unknown.',
    );
  }
  const shape = shapeOf(w);
  const dim = shape.length === 2 ? shape[1] : shape[0];
  buildLayer(layer, input.inputShape(dim));
}

/**
 * Writes torch-named weights into `layer` (building it first if needed). Throws a `ValueError` naming
 * the entry for a missing weight, a shape mismatch, or (with `strict`) an unused entry.
 */
export function importTorchWeights(layer: MappableLayer, weights: Record<string, TorchTensorLike>, options: ImportTorchOptions = {}): void {
  const prefix = options.prefix ?? '';
  const strict = options.strict ?? true;
  ensureBuilt(layer, weights, prefix);
  const specs = torchWeightSpecs(layer);
  const pending: Array<[TorchWeightSpec, tf.Tensor]> = [];
  try {
    for (const spec of specs) {
      const name = prefix + spec.torchName;
      const value = weights[name];
      if (value === undefined) {
        throw new ValueError(`importTorchWeights: ${name} is missing for layer ${layer.name} ` + `(expected shape [${spec.torchShape}]).`);
      }
      const shape = shapeOf(value);
      if (shape.length !== spec.torchShape.length || shape.some((d, i) => d !== spec.torchShape[i])) {
        throw new ValueError(`importTorchWeights: ${name} has shape [${shape}] but layer ${layer.name} expects ` + `[${spec.torchShape}].`);
      }
      const t = toTensor(name, value);
      pending.push([spec, torchToLayer(spec, t)]);
      if (t !== value) t.dispose();
    }
    if (strict) {
      const used = new Set(specs.map((s) => prefix + s.torchName));
      const extra = Object.keys(weights).filter((k) => k.startsWith(prefix) && !used.has(k));
      if (extra.length > 0) {
        throw new ValueError(
          `importTorchWeights: entries not used by layer ${layer.name}: ${extra.join(', ')} ` + '(pass {strict: false} to ignore them).',
        );
      }
    }
    // Only write once everything has been checked, so a failed import leaves the layer unchanged.
    for (const [spec, value] of pending) spec.variable.write(value);
  } finally {
    tf.dispose(pending.map(([, v]) => v));
  }
}

/** The layer's weights as torch-named tensors in torch layout (the caller disposes them). */
export function exportTorchWeights(layer: MappableLayer, prefix = ''): Record<string, tf.Tensor> {
  if (!layer.built) throw new ValueError(`exportTorchWeights: layer ${layer.name} is not built.`);
  const out: Record<string, tf.Tensor> = {};
  for (const spec of torchWeightSpecs(layer)) out[prefix + spec.torchName] = layerToTorch(spec, spec.variable.read());
  return out;
}
