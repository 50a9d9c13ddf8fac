/**
 * Models saved before the per-head attention kernels were stored flat (commit 5b823ec) hold them in
 * Keras's EinsumDense shapes. The values are in the same row-major order, so loading only has to
 * rename the shapes: `[D, heads, dim] -> [D, heads*dim]` (query/key/value, MLA's query_b and
 * key_value_b), `[heads, dim, D] -> [heads*dim, D]` (attention_output) and per-head biases
 * `[heads, dim] -> [heads*dim]`. GTA's `value_decoder/kernel` stays 3-D (one matrix per group).
 */
import type * as tf from '@tensorflow/tfjs';

const INPUT_KERNELS = ['/query/kernel', '/key/kernel', '/value/kernel', '/query_b/kernel', '/key_value_b/kernel'];
const HEAD_BIASES = ['/query/bias', '/key/bias', '/value/bias'];

/** The flat shape of a weight saved in the 3-D layout, or null when the weight needs no change. */
export function flatShape(name: string, shape: number[]): number[] | null {
  if (shape.length === 3 && INPUT_KERNELS.some((s) => name.endsWith(s))) return [shape[0], shape[1] * shape[2]];
  if (shape.length === 3 && name.endsWith('/attention_output/kernel')) return [shape[0] * shape[1], shape[2]];
  if (shape.length === 2 && HEAD_BIASES.some((s) => name.endsWith(s))) return [shape[0] * shape[1]];
  return null;
}

/** `handler` with the weight specs of the older 3-D layout rewritten to the flat one (data untouched). */
export function withFlatAttentionWeights(handler: tf.io.IOHandler): tf.io.IOHandler {
  return {
    load: async () => {
      const artifacts = await handler.load!();
      const weightSpecs = artifacts.weightSpecs?.map((spec) => {
        const shape = flatShape(spec.name, spec.shape);
        return shape === null ? spec : { ...spec, shape };
      });
      return { ...artifacts, weightSpecs };
    },
  };
}
