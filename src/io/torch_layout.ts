/**
 * How a layer's weights correspond to PyTorch state-dict entries (used by `importTorchWeights`). The
 * names of this package's layers are in `torch_names.ts`.
 *
 * - `linear`: a torch `nn.Linear.weight` stored `[out, in]`; transposed to `[in, out]`, then reshaped
 *   to the variable's (possibly Keras-style 3-D) shape.
 * - `vector`: biases and norm gains; reshaped to the variable's shape.
 * - `raw`: the torch buffer is reinterpreted row-major in the variable's shape, without a transpose
 *   (GTA's `v_b_proj.weight`, which the reference reads through `.view(n_q, d_l, r*d_l)`).
 */
import type * as tf from '@tensorflow/tfjs';

export type TorchLayout = 'linear' | 'vector' | 'raw';

export interface TorchWeightSpec {
  /** Name of the tensor in the torch module's state dict (relative to the module). */
  torchName: string;
  /** Shape of the torch tensor. */
  torchShape: number[];
  variable: tf.LayerVariable;
  layout: TorchLayout;
}

/**
 * A layer of your own whose weights can be imported from / exported to a PyTorch state dict. The
 * package's layers do not implement it: their torch names are tables in `torch_names.ts`, and
 * `torchWeightSpecs(layer)` (in `torch_weights.ts`) serves both kinds.
 */
export interface TorchMappable {
  /** Name of a torch weight whose second dimension is the layer's input width (to build the layer). */
  readonly torchInputWeight: string;
  torchWeightSpecs(): TorchWeightSpec[];
}

/** Shape of the torch `nn.Linear` weight for a variable with `[in, ...out]` of given sizes. */
export function linearShape(inFeatures: number, outFeatures: number): number[] {
  return [outFeatures, inFeatures];
}
