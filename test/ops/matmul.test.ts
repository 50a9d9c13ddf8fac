import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { batchedMatMul, matMul2d, useTwoDimProducts, WASM_SPLIT_MIN_COLS, WASM_SPLIT_MIN_ROWS } from '../../src/ops/matmul.js';
import { describeBackends, expectClose, expectShape, it, randomTensor } from '../kit/index.js';

/** Forward values and both gradients of `f(a, b)` weighted by a fixed cotangent. */
function valueAndGrads(f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, a: tf.Tensor, b: tf.Tensor, dy: tf.Tensor) {
  const y = f(a, b);
  const [ga, gb] = tf.grads((x: tf.Tensor, w: tf.Tensor) => f(x, w))([a, b], dy);
  return { y, ga, gb };
}

describeBackends('matrix products (ops/matmul)', ({ backend, tol }) => {
  it('uses the 2-D decomposition on wasm only', () => {
    expect(useTwoDimProducts()).to.equal(backend === 'wasm');
  });

  it('matMul2d matches tf.matMul in value and gradients', () => {
    tf.tidy(() => {
      const a = randomTensor([WASM_SPLIT_MIN_ROWS + 3, 24], 1);
      const b = randomTensor([24, 40], 2);
      const dy = randomTensor([WASM_SPLIT_MIN_ROWS + 3, 40], 3);
      const ours = valueAndGrads(matMul2d, a, b, dy);
      const ref = valueAndGrads((x, w) => tf.matMul(x, w), a, b, dy);
      expectClose(ours.y, ref.y, tol.same, 'value');
      expectClose(ours.ga, ref.ga, tol.same, 'grad a');
      expectClose(ours.gb, ref.gb, tol.same, 'grad b');
    });
  });

  it('splits batched products into 2-D products on wasm only when they are large enough', async () => {
    const kernelsOf = async (m: number, n: number) => {
      const a = randomTensor([3, m, 8], 1);
      const b = randomTensor([3, 8, n], 2);
      // batchedMatMul is an internal op for code inside tf.tidy; it leaves its per-entry intermediates to the scope.
      const info = await tf.profile(() => tf.tidy(() => batchedMatMul(a, b)));
      tf.dispose([a, b, info.result as tf.Tensor]);
      return info.kernelNames;
    };
    const split = backend === 'wasm';
    expect((await kernelsOf(WASM_SPLIT_MIN_ROWS, WASM_SPLIT_MIN_COLS)).includes('GatherV2')).to.equal(split);
    expect((await kernelsOf(WASM_SPLIT_MIN_ROWS - 1, WASM_SPLIT_MIN_COLS)).includes('GatherV2')).to.equal(false);
    expect((await kernelsOf(WASM_SPLIT_MIN_ROWS, WASM_SPLIT_MIN_COLS - 1)).includes('GatherV2')).to.equal(false);
  });

  for (const transposeB of [false, true]) {
    for (const batch of [[1], [2, 3]]) {
      for (const [m, n] of [
        [7, 20],
        [WASM_SPLIT_MIN_ROWS, WASM_SPLIT_MIN_COLS],
        [WASM_SPLIT_MIN_ROWS, 20],
      ]) {
        it(`batchedMatMul matches tf.matMul: batch [${batch}], [${m}, K] x [K, ${n}], transposeB=${transposeB}`, () => {
          tf.tidy(() => {
            const k = 16;
            const a = randomTensor([...batch, m, k], 4);
            const b = randomTensor(transposeB ? [...batch, n, k] : [...batch, k, n], 5);
            const dy = randomTensor([...batch, m, n], 6);
            const ours = valueAndGrads((x, w) => batchedMatMul(x, w, transposeB), a, b, dy);
            const ref = valueAndGrads((x, w) => tf.matMul(x, w, false, transposeB), a, b, dy);
            expectShape(ours.y, [...batch, m, n], 'value');
            expectClose(ours.y, ref.y, tol.same, 'value');
            expectClose(ours.ga, ref.ga, tol.same, 'grad a');
            expectClose(ours.gb, ref.gb, tol.same, 'grad b');
          });
        });
      }
    }
  }
});
