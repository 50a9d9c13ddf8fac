import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { GroupedQueryAttention, multiHeadAttention, multiQueryAttention, groupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { describeBackends, expectClose, expectThrows, it, randomTensor } from '../kit/index.js';
import { causalAllowed, gqaReference } from '../kit/reference.js';
import { randomizeWeights } from '../kit/layers.js';
import { rowOf, weightMat, weightVec } from '../kit/extract.js';
import { tfjsSeed } from '../../src/utils/serialization.js';

const D = 24;
const T = 6;

function referenceOutput(layer: GroupedQueryAttention, x: tf.Tensor, b: number) {
  const hq = layer.numQueryHeads;
  const dh = layer.headDim;
  const w = {
    wq: weightMat(layer, 'query/kernel', D),
    wk: weightMat(layer, 'key/kernel', D),
    wv: weightMat(layer, 'value/kernel', D),
    wo: weightMat(layer, 'attention_output/kernel', hq * dh),
    ...(layer.useBias
      ? {
          bq: weightVec(layer, 'query/bias'),
          bk: weightVec(layer, 'key/bias'),
          bv: weightVec(layer, 'value/bias'),
          bo: weightVec(layer, 'attention_output/bias'),
        }
      : {}),
  };
  return gqaReference(rowOf(x, b), w, { hq, hkv: layer.numKeyValueHeads, dh, useRope: layer.useRope }, causalAllowed(T));
}

describeBackends('GroupedQueryAttention', ({ tol }) => {
  for (const [hq, hkv, useBias] of [
    [6, 2, true],
    [6, 6, false],
    [6, 1, true],
  ] as const) {
    it(`matches the float64 loop reference (Hq=${hq}, Hkv=${hkv}, useBias=${useBias})`, () => {
      const layer = new GroupedQueryAttention({ headDim: 4, numQueryHeads: hq, numKeyValueHeads: hkv, useBias, useCausalMask: true });
      tf.tidy(() => {
        const x = randomTensor([2, T, D], 5);
        layer.apply(x);
        randomizeWeights(layer, 3);
        const out = layer.apply(x) as tf.Tensor;
        for (let b = 0; b < 2; b++) {
          const ref = referenceOutput(layer, x, b).out.flat();
          expectClose(out.slice([b, 0, 0], [1, T, D]).dataSync(), ref, tol.output, `batch ${b}`);
        }
      });
      layer.dispose();
    });
  }

  it('MHA factory equals GQA with one KV head per query head, and an independent MHA reference', () => {
    const mha = multiHeadAttention({ numHeads: 4, headDim: 6, useCausalMask: true });
    expect(mha.numKeyValueHeads).to.equal(4);
    tf.tidy(() => {
      const x = randomTensor([1, T, D], 8);
      mha.apply(x);
      randomizeWeights(mha, 4);
      const ref = referenceOutput(mha, x, 0).out.flat();
      expectClose((mha.apply(x) as tf.Tensor).dataSync(), ref, tol.output, 'MHA');
    });
    mha.dispose();
  });

  it('useRope: false leaves queries and keys unrotated (reference, decoding, config, odd headDim)', () => {
    const layer = new GroupedQueryAttention({ headDim: 3, numQueryHeads: 4, numKeyValueHeads: 2, useRope: false, useCausalMask: true });
    const mha = new GroupedQueryAttention({ headDim: 3, numQueryHeads: 2, numKeyValueHeads: 2, useRope: false, useCausalMask: true });
    tf.tidy(() => {
      const x = randomTensor([2, T, D], 9);
      layer.apply(x);
      randomizeWeights(layer, 5);
      const out = layer.apply(x) as tf.Tensor;
      for (let b = 0; b < 2; b++) {
        expectClose(out.slice([b, 0, 0], [1, T, D]).dataSync(), referenceOutput(layer, x, b).out.flat(), tol.output, `batch ${b}`);
      }
      // A cached prefill (inference: one fused q|k|v product on tensorflow/webgl) and token-by-token decoding
      // (the T = 1 path) give the same outputs.
      const prefill = layer.callWithCache(x);
      expectClose(prefill.output, out, tol.same, 'prefill');
      prefill.cache.dispose();
      // MHA's equal q/k/v parts take the stacked path (one transpose, then unstack).
      mha.apply(x);
      randomizeWeights(mha, 8);
      const mhaPrefill = mha.callWithCache(x);
      expectClose(mhaPrefill.output, mha.apply(x) as tf.Tensor, tol.same, 'MHA prefill');
      mhaPrefill.cache.dispose();
      let cache: AttentionCache | null = null;
      const steps: tf.Tensor[] = [];
      for (let t = 0; t < T; t++) {
        const r: { output: tf.Tensor; cache: AttentionCache } = layer.callWithCache(x.slice([0, t, 0], [2, 1, D]), { cache });
        cache?.dispose();
        cache = r.cache;
        steps.push(r.output);
      }
      cache?.dispose();
      expectClose(tf.concat(steps, 1), out, tol.same, 'decoded');
    });
    mha.dispose();
    expect(layer.getConfig().useRope).to.equal(false);
    expect(new GroupedQueryAttention(layer.getConfig() as never).useRope).to.equal(false);
    const rotated = new GroupedQueryAttention({ ...(layer.getConfig() as object), useRope: true, headDim: 4 } as never);
    expect(rotated.useRope).to.equal(true);
    expectThrows(() => new GroupedQueryAttention({ headDim: 3, numQueryHeads: 2, numKeyValueHeads: 1 }), /headDim/);
    expectThrows(() => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1, useRope: 1 as never }), /useRope/);
    layer.dispose();
  });

  it('MQA factory shares one KV head', () => {
    const mqa = multiQueryAttention({ numHeads: 4, headDim: 6 });
    expect(mqa.numKeyValueHeads).to.equal(1);
    expect(mqa.kvCacheElementsPerToken()).to.equal(12);
    const gqa = groupedQueryAttention({ headDim: 6, numQueryHeads: 4, numKeyValueHeads: 1 });
    expect(gqa.getConfig().numKeyValueHeads).to.equal(mqa.getConfig().numKeyValueHeads);
  });

  it('GQA equals MHA whose KV heads repeat each group', () => {
    const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 6, numKeyValueHeads: 2, useBias: false, useCausalMask: true });
    const mha = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 6, numKeyValueHeads: 6, useBias: false, useCausalMask: true });
    tf.tidy(() => {
      const x = randomTensor([2, T, D], 9);
      gqa.apply(x);
      mha.apply(x);
      randomizeWeights(gqa, 6);
      const [wq, wk, wv, wo] = gqa.getWeights(); // [D,6*4], [D,2*4], [D,2*4], [6*4,D]
      // head i -> KV head floor(i/3)
      const repeat = (w: tf.Tensor) => tf.reshape(tf.tile(tf.reshape(w, [D, 2, 1, 4]), [1, 1, 3, 1]), [D, 6 * 4]);
      mha.setWeights([wq, repeat(wk), repeat(wv), wo]);
      expectClose(mha.apply(x) as tf.Tensor, gqa.apply(x) as tf.Tensor, tol.same, 'GQA vs repeated-KV MHA');
    });
    gqa.dispose();
    mha.dispose();
  });

  it('rejects invalid configurations at construction, naming the argument and the rule', () => {
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 6, numKeyValueHeads: 4 }),
      /numQueryHeads \(6\) must be divisible by numKeyValueHeads \(4\)/,
    );
    expectThrows(() => new GroupedQueryAttention({ headDim: 7, numQueryHeads: 4, numKeyValueHeads: 2 }), /headDim must be even/);
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 0, numQueryHeads: 4, numKeyValueHeads: 2 }),
      /headDim must be a positive integer/,
    );
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: -2, numKeyValueHeads: 2 }),
      /numQueryHeads must be a positive integer/,
    );
    expectThrows(() => new GroupedQueryAttention({ numQueryHeads: 4, numKeyValueHeads: 2 } as never), /headDim is required/);
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, dropout: 1.5 }),
      /dropout must be a number in \[0, 1\)/,
    );
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, numHeads: 4 } as never),
      /unknown argument "numHeads"/,
    );
    expectThrows(
      () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, kernelInitializer: 'nope' }),
      /kernelInitializer/,
    );
    expectThrows(() => multiHeadAttention({ headDim: 8 } as never), /multiHeadAttention: numHeads is required/);
  });

  it('stores per-head kernels flat, initialized as the Keras [D, heads, dim] kernels', () => {
    const layer = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, seed: 5 });
    tf.tidy(() => {
      layer.apply(tf.zeros([1, 2, D]));
    });
    // glorotUniform scales by the fans of Keras's EinsumDense shapes; the layer's k-th weight uses seed + k
    // (passed to tfjs as tfjsSeed(seed + k), which avoids tfjs's "0 = unseeded").
    const keras: Array<[number, number[]]> = [
      [0, [D, 4, 4]],
      [1, [D, 2, 4]],
      [2, [D, 2, 4]],
      [3, [4, 4, D]],
    ];
    const weights = layer.getWeights();
    for (const [i, shape] of keras) {
      const expected = tf.initializers.glorotUniform({ seed: tfjsSeed(5 + i) }).apply(shape);
      expect(weights[i].shape).to.deep.equal([shape[0] * (i < 3 ? 1 : shape[1]), i < 3 ? shape[1] * shape[2] : shape[2]]);
      expect(Array.from(weights[i].dataSync())).to.deep.equal(Array.from(expected.dataSync()));
      expected.dispose();
    }
    layer.dispose();
  });

  it('uses flat kernel shapes and honours initializers, regularizers and constraints', () => {
    const layer = new GroupedQueryAttention({
      headDim: 4,
      numQueryHeads: 4,
      numKeyValueHeads: 2,
      kernelInitializer: 'ones',
      biasInitializer: { className: 'Constant', config: { value: 0.5 } },
      kernelRegularizer: 'l2',
      kernelConstraint: 'nonNeg',
    });
    tf.tidy(() => {
      layer.apply(tf.zeros([1, 2, D]));
    });
    const shapes = Object.fromEntries(layer.weights.map((w) => [w.name.split('/').slice(1).join('/'), w.shape]));
    expect(shapes).to.deep.equal({
      'query/kernel': [D, 16],
      'key/kernel': [D, 8],
      'value/kernel': [D, 8],
      'attention_output/kernel': [16, D],
      'query/bias': [16],
      'key/bias': [8],
      'value/bias': [8],
      'attention_output/bias': [D],
    });
    tf.tidy(() => {
      expect(tf.min(layer.getWeights()[0]).dataSync()[0]).to.equal(1);
      expect(tf.max(layer.getWeights()[4]).dataSync()[0]).to.equal(0.5);
    });
    expect(layer.losses.length).to.equal(4); // one L2 term per kernel
    const config = layer.getConfig();
    expect(config.kernelRegularizer).to.equal('l2');
    expect(config.biasInitializer).to.deep.equal({ className: 'Constant', config: { value: 0.5 } });
    layer.dispose();
  });
});
