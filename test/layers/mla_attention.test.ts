import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { MultiHeadLatentAttention } from '../../src/layers/mla_attention.js';
import { attentionParams, specOf } from '../../src/analysis/costs.js';
import { describeBackends, expectClose, expectThrows, it, randomTensor } from '../kit/index.js';
import { causalAllowed, mlaReference } from '../kit/reference.js';
import { randomizeWeights } from '../kit/layers.js';
import { rowOf, weightMat, weightVec } from '../kit/extract.js';

const D = 20;
const T = 6;
const CFG = { numHeads: 3, kvLoraRank: 10, qkNopeHeadDim: 6, qkRopeHeadDim: 4, vHeadDim: 5 };

describeBackends('MultiHeadLatentAttention', ({ tol }) => {
  it('matches a float64 loop reference of naive MLA (norm on the latent only, shared RoPE key)', () => {
    const layer = new MultiHeadLatentAttention({ ...CFG, useCausalMask: true, rmsNormEpsilon: 1e-5 });
    tf.tidy(() => {
      const x = randomTensor([2, T, D], 51);
      layer.apply(x);
      randomizeWeights(layer, 9, 0.3);
      const out = layer.apply(x) as tf.Tensor;
      const w = {
        wq: weightMat(layer, 'query/kernel', D),
        wkva: weightMat(layer, 'key_value_a/kernel', D),
        kvNorm: weightVec(layer, 'key_value_a_norm/scale'),
        wkvb: weightMat(layer, 'key_value_b/kernel', CFG.kvLoraRank),
        wo: weightMat(layer, 'attention_output/kernel', CFG.numHeads * CFG.vHeadDim),
      };
      for (let b = 0; b < 2; b++) {
        const ref = mlaReference(
          rowOf(x, b),
          w,
          {
            h: CFG.numHeads,
            dc: CFG.kvLoraRank,
            dn: CFG.qkNopeHeadDim,
            dr: CFG.qkRopeHeadDim,
            dv: CFG.vHeadDim,
            eps: 1e-5,
          },
          causalAllowed(T),
        );
        expectClose(out.slice([b, 0, 0], [1, T, D]).dataSync(), ref.out.flat(), tol.output, `batch ${b}`);
      }
    });
    layer.dispose();
  });

  it('with query compression has the q_a / norm / q_b weights and counts them', () => {
    const layer = new MultiHeadLatentAttention({ ...CFG, qLoraRank: 8, useBias: true });
    tf.tidy(() => {
      layer.apply(tf.zeros([1, 2, D]));
    });
    const names = layer.weights.map((w) => w.name.split('/').slice(1).join('/'));
    expect(names).to.include.members([
      'query_a/kernel',
      'query_a/bias',
      'query_a_norm/scale',
      'query_b/kernel',
      'key_value_a/kernel',
      'key_value_a/bias',
      'key_value_a_norm/scale',
      'key_value_b/kernel',
      'attention_output/kernel',
      'attention_output/bias',
    ]);
    expect(names).to.not.include('query/kernel');
    expect(layer.countParams()).to.equal(attentionParams(specOf(layer), D));
    expect(layer.kvCacheElementsPerToken()).to.equal(14);
    layer.dispose();
  });

  it('decodes in the absorbed form with the same result as the naive form', () => {
    const absorbed = new MultiHeadLatentAttention({ ...CFG, absorbForDecode: true, useCausalMask: true });
    const naive = new MultiHeadLatentAttention({ ...CFG, absorbForDecode: false, useCausalMask: true });
    tf.tidy(() => {
      const x = randomTensor([2, T, D], 57);
      absorbed.apply(x);
      naive.apply(x);
      randomizeWeights(absorbed, 13, 0.3);
      naive.setWeights(absorbed.getWeights());
      const prompt = x.slice([0, 0, 0], [2, T - 1, D]);
      const last = x.slice([0, T - 1, 0], [2, 1, D]);
      const a0 = absorbed.callWithCache(prompt);
      const n0 = naive.callWithCache(prompt);
      const a1 = absorbed.callWithCache(last, { cache: a0.cache });
      const n1 = naive.callWithCache(last, { cache: n0.cache });
      expectClose(a1.output, n1.output, tol.same, 'absorbed vs naive decode');
      const full = absorbed.apply(x) as tf.Tensor;
      expectClose(a1.output, full.slice([0, T - 1, 0], [2, 1, D]), tol.same, 'decode vs full forward');
      for (const c of [a0.cache, n0.cache, a1.cache, n1.cache]) c.dispose();
    });
    absorbed.dispose();
    naive.dispose();
  });

  it('rejects invalid configurations at construction, naming the argument and the rule', () => {
    expectThrows(() => new MultiHeadLatentAttention({ ...CFG, qkRopeHeadDim: 3 }), /qkRopeHeadDim must be even/);
    expectThrows(() => new MultiHeadLatentAttention({ ...CFG, kvLoraRank: 0 }), /kvLoraRank must be a positive integer/);
    expectThrows(() => new MultiHeadLatentAttention({ ...CFG, qLoraRank: -1 }), /qLoraRank must be a positive integer/);
    expectThrows(() => new MultiHeadLatentAttention({ ...CFG, rmsNormEpsilon: 0 }), /rmsNormEpsilon must be a finite number > 0/);
    const { vHeadDim: _v, ...missing } = CFG;
    expectThrows(() => new MultiHeadLatentAttention(missing as never), /vHeadDim is required/);
  });
});
