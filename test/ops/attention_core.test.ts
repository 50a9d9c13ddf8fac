import * as tf from '@tensorflow/tfjs';
import { BLOCKING, groupedAttention, type GroupedAttentionOptions } from '../../src/ops/attention_core.js';
import { causalBias } from '../../src/ops/masks.js';
import { describeBackends, expectClose, expectShape, it, randomTensor } from '../kit/index.js';

/** Runs `fn` with query blocks forced small (a few rows), restoring the defaults afterwards. */
function withSmallBlocks<T>(fn: () => T): T {
  const saved = { ...BLOCKING };
  BLOCKING.elements = 1;
  BLOCKING.tapeElements = 1;
  BLOCKING.minFoldedRows = 1;
  try {
    return fn();
  } finally {
    Object.assign(BLOCKING, saved);
  }
}

// The composed path throughout: on webgpu 'auto' would run the fused kernel, which has no query blocks.
describeBackends('groupedAttention (ops/attention_core)', ({ tol }) => {
  // 2 batches, 4 query heads over 2 key heads and 1 value head, 40 queries after a 9-token cache.
  const b = 2,
    nQ = 4,
    nK = 2,
    nV = 1,
    t = 40,
    cache = 9,
    s = cache + t,
    dk = 8,
    dv = 6;
  const q = () => randomTensor([b, nQ, t, dk], 11) as tf.Tensor4D;
  const k = () => randomTensor([b, nK, s, dk], 12) as tf.Tensor4D;
  const v = () => randomTensor([b, nV, s, dv], 13) as tf.Tensor4D;

  it('blocked causal attention (cache offset, padding bias, extra query/key pair) equals one block', () => {
    tf.tidy(() => {
      const pad = tf.tensor2d(
        Array.from({ length: b * s }, (_, i) => (i % s < 2 && i >= s ? -1e9 : 0)),
        [b, s],
      );
      const options: GroupedAttentionOptions = {
        scale: 0.3,
        causalOffset: cache,
        returnProbs: false,
        bias: tf.reshape(pad, [b, 1, 1, s]),
        implementation: 'composed',
        extra: { query: randomTensor([b, nQ, t, 4], 14) as tf.Tensor4D, key: randomTensor([b, 1, s, 4], 15) as tf.Tensor4D },
      };
      const whole = groupedAttention(q(), k(), v(), options).output;
      const blocked = withSmallBlocks(() => groupedAttention(q(), k(), v(), options).output);
      expectShape(blocked, [b, nQ, t, dv]);
      expectClose(blocked, whole, tol.same, 'blocked output');
    });
  });

  it('blocked attention with a [T, S] bias equals one block (the blocks slice its rows and keys)', () => {
    tf.tidy(() => {
      const mask = tf.mul(tf.cast(tf.less(tf.randomUniform([t, s], 0, 1, 'float32', 16), 0.25), 'float32'), -1e9);
      const options: GroupedAttentionOptions = {
        scale: 0.3,
        causalOffset: cache,
        returnProbs: false,
        bias: mask,
        implementation: 'composed',
      };
      const whole = groupedAttention(q(), k(), v(), options).output;
      const blocked = withSmallBlocks(() => groupedAttention(q(), k(), v(), options).output);
      expectShape(blocked, [b, nQ, t, dv]);
      expectClose(blocked, whole, tol.same, 'blocked output, [T, S] bias');
    });
  });

  it('blocked attention equals the same attention with an explicit causal bias', () => {
    tf.tidy(() => {
      const viaOffset = withSmallBlocks(
        () => groupedAttention(q(), k(), v(), { scale: 1, causalOffset: cache, returnProbs: false, implementation: 'composed' }).output,
      );
      const viaBias = groupedAttention(q(), k(), v(), { scale: 1, bias: tf.reshape(causalBias(t, s, cache), [1, 1, t, s]) }).output;
      expectClose(viaOffset, viaBias, tol.same, 'causal offset vs bias');
    });
  });

  it('blocked attention has the same gradients as one block', () => {
    tf.tidy(() => {
      const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        tf.sum(
          tf.square(
            groupedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, {
              scale: 0.5,
              causalOffset: cache,
              returnProbs: false,
              implementation: 'composed',
            }).output,
          ),
        );
      const whole = tf.grads(loss)([q(), k(), v()]);
      const blocked = withSmallBlocks(() => tf.grads(loss)([q(), k(), v()]));
      ['query', 'key', 'value'].forEach((name, i) => expectClose(blocked[i], whole[i], tol.same, `grad ${name}`));
    });
  });
});
