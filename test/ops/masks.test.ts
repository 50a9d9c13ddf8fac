import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE, attentionMaskBias, checkMaskValues, paddingBias } from '../../src/ops/masks.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it, randomTensor } from '../kit/index.js';

describeBackends('mask values', () => {
  it('turns 0/1 and boolean masks into 0 / MASK_VALUE biases', () => {
    const values = (t: tf.Tensor) => Array.from(t.dataSync(), (v) => v + 0); // + 0 turns -0 into 0
    tf.tidy(() => {
      expect(values(paddingBias(tf.tensor2d([[1, 0]], [1, 2], 'float32')))).to.deep.equal([0, MASK_VALUE]);
      expect(values(paddingBias(tf.tensor2d([[0, 1]], [1, 2], 'int32')))).to.deep.equal([MASK_VALUE, 0]);
      expect(values(paddingBias(tf.tensor2d([[true, false]], [1, 2], 'bool')))).to.deep.equal([0, MASK_VALUE]);
      expect(values(attentionMaskBias(tf.tensor3d([[[1, 0]]], [1, 1, 2])))).to.deep.equal([0, MASK_VALUE]);
    });
  });

  it('rejects values other than 0 and 1 (0.5, 2, NaN, -1) in padding and attention masks', () => {
    tf.tidy(() => {
      for (const v of [0.5, 2, NaN, -1]) {
        const e = expectThrows(() => paddingBias(tf.tensor2d([[1, v]], [1, 2])), /paddingMask values must be 0 or 1/);
        expect(e).to.be.instanceOf(ValueError);
        expect(e.message).to.contain(`got ${v}`);
        expectThrows(() => attentionMaskBias(tf.tensor3d([[[v, 1]]], [1, 1, 2])), /attentionMask values must be 0 or 1/);
      }
      expectThrows(() => checkMaskValues(tf.tensor([['1']]), 'mask'), /must be a bool, int32 or float32 tensor/);
    });
  });

  it('reaches the attention layers: a padding mask or an attention mask of 0.5 is an error, not a silent half-mask', () => {
    const layer = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 2, numKeyValueHeads: 1, seed: 1 });
    tf.tidy(() => {
      const x = randomTensor([1, 3, 16], 4);
      expectThrows(
        () => layer.callWithCache(x, { paddingMask: tf.tensor2d([[1, 0.5, 1]], [1, 3]) }),
        /paddingMask values must be 0 or 1 .*got 0.5/,
      );
      expectThrows(() => layer.apply([x, tf.tensor2d([[1, NaN, 1]], [1, 3])]), /paddingMask values must be 0 or 1 .*got NaN/);
      expectThrows(() => layer.callWithCache(x, { attentionMask: tf.fill([1, 3, 3], 2) }), /attentionMask values must be 0 or 1 .*got 2/);
      const r = layer.callWithCache(x, { paddingMask: tf.tensor2d([[0, 1, 1]], [1, 3]) });
      expect(r.output.shape).to.deep.equal([1, 3, 16]);
      r.cache.dispose();
    });
    layer.dispose();
  });
});
