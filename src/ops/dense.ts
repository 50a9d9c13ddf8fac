/**
 * Projections as reshape -> 2-D matMul -> reshape. tfjs's broadcasting matMul has a broken gradient
 * (docs/TFJS_NOTES.md finding 3), so every projection in the package goes through `project`.
 *
 * Notation: N = product of the leading (batch, sequence) dims, Din input features, Dout output features.
 */
import * as tf from '@tensorflow/tfjs';
import { batchedMatMul, matMul2d } from './matmul.js';
import { sumsRowsByProduct } from './capabilities.js';

/**
 * `x [..., Din] @ kernel [Din, ...out] (+ bias [...out])`, returned as `[..., prod(out)]` (2-D inputs stay
 * 2-D, without reshapes).
 * A kernel with a multi-dimensional output shape (e.g. `[D, heads, headDim]`) is reshaped on every call; the
 * attention layers store theirs flat (`[D, heads*headDim]`) to avoid that.
 */
export function project(x: tf.Tensor, kernel: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  const din = kernel.shape[0];
  const dout = kernel.size / din;
  const lead = x.shape.slice(0, -1);
  const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, din]); // [N, Din]
  const k2 = kernel.rank === 2 ? kernel : tf.reshape(kernel, [din, dout]); // [Din, Dout]
  let y = matMul2d(x2, k2); // [N, Din] @ [Din, Dout] -> [N, Dout]
  if (bias) {
    const b = bias.rank === 1 ? bias : tf.reshape(bias, [dout]);
    y = sumsRowsByProduct() ? addBiasSummedByProduct(y, b) : tf.add(y, b); // [N, Dout] + [Dout]
  }
  return x.rank === 2 ? y : tf.reshape(y, [...lead, dout]); // [..., Dout]
}

/**
 * `y [N, C] + bias [C]` whose bias gradient is the column sums of dy as one product, `ones [1, N] @ dy [N, C]`,
 * instead of tfjs's Sum (see `sumsRowsByProduct`). The same values: a sum over the N rows either way.
 */
const addBiasSummedByProduct = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [y, bias] = args as tf.Tensor[];
  return {
    value: tf.add(y, bias), // [N, C] + [C]
    gradFunc: (dy: tf.Tensor) => {
      const [n, c] = dy.shape;
      return [dy, tf.reshape(matMul2d(tf.ones([1, n]), dy as tf.Tensor2D), [c])]; // [1, N] @ [N, C] -> [1, C] -> [C]
    },
  };
});

/**
 * Per-group matrices: `x [G, N, Din] @ w [G, Din, Dout] -> [G, N, Dout]`. Equal batch dims, so the
 * gradient is the ordinary batched one (no broadcasting).
 */
export function groupMatMul(x: tf.Tensor3D, w: tf.Tensor3D): tf.Tensor3D {
  return batchedMatMul(x, w) as tf.Tensor3D; // [G, N, Din] @ [G, Din, Dout] -> [G, N, Dout]
}
