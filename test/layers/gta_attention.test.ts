import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { GroupedHeadLatentAttention, groupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { describeBackends, expectClose, expectShape, expectThrows, it, randomTensor } from '../kit/index.js';
import { causalAllowed, gtaPerHeadReference, GtaShape } from '../kit/reference.js';
import { randomizeWeights, weightValue } from '../kit/layers.js';
import { rowOf, weightMat, weightVec } from '../kit/extract.js';

const T = 6;

function perHeadReference(layer: GroupedHeadLatentAttention, x: tf.Tensor, b: number) {
  const d = x.shape[2] as number;
  const { numQueryHeads: hq, valueDim: dl, expandRate: r } = layer;
  const delta = weightValue(layer, 'value_decoder/kernel');
  const deltaNested = Array.from({ length: hq }, (_, g) =>
    Array.from({ length: dl }, (_, a) => Array.from({ length: r * dl }, (_, c) => delta[(g * dl + a) * r * dl + c])),
  );
  const w = {
    wq: weightMat(layer, 'query/kernel', d),
    wk: weightMat(layer, 'key/kernel', d),
    wc: weightMat(layer, 'value/kernel', d),
    wg: weightMat(layer, 'gate/kernel', d),
    wo: weightMat(layer, 'attention_output/kernel', layer.width),
    delta: deltaNested,
    ...(layer.useBias
      ? {
          bq: weightVec(layer, 'query/bias'),
          bk: weightVec(layer, 'key/bias'),
          bc: weightVec(layer, 'value/bias'),
          bg: weightVec(layer, 'gate/bias'),
        }
      : {}),
  };
  const shape: GtaShape = {
    heads: layer.numHeads,
    dh: layer.headDim,
    hq,
    hk: layer.numKeyHeads,
    hc: layer.numValueHeads,
    dl,
  };
  return gtaPerHeadReference(rowOf(x, b), w, shape, causalAllowed(T));
}

const CONFIGS = [
  // [numHeads, headDim, numQueryHeads, numKeyHeads, numValueHeads, valueDim]: r = 2, 1 (GTA4-like), 4, and one head per group
  { numHeads: 8, headDim: 4, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8 },
  { numHeads: 8, headDim: 4, numQueryHeads: 4, numKeyHeads: 2, numValueHeads: 2, valueDim: 8 },
  { numHeads: 8, headDim: 4, numQueryHeads: 2, numKeyHeads: 2, numValueHeads: 1, valueDim: 4 },
  { numHeads: 4, headDim: 6, numQueryHeads: 4, numKeyHeads: 1, numValueHeads: 1, valueDim: 6 },
];

describeBackends('GroupedHeadLatentAttention', ({ tol }) => {
  for (const cfg of CONFIGS) {
    const label = `Hh=${cfg.numHeads} Hq=${cfg.numQueryHeads} Hk=${cfg.numKeyHeads} Hc=${cfg.numValueHeads} Dl=${cfg.valueDim}`;
    it(`equals the paper's per-head form (Eq. 8, W_P,i = E_j + Delta_g) for ${label}`, () => {
      const layer = new GroupedHeadLatentAttention({ ...cfg, useCausalMask: true });
      const d = 20;
      tf.tidy(() => {
        const x = randomTensor([2, T, d], 31);
        layer.apply(x);
        randomizeWeights(layer, 7, 0.25);
        const [out, scores] = layer.apply(x, { returnAttentionScores: true }) as tf.Tensor[];
        expectShape(scores, [2, cfg.numQueryHeads, T, T], 'one map per query group');
        for (let b = 0; b < 2; b++) {
          const ref = perHeadReference(layer, x, b);
          expectClose(out.slice([b, 0, 0], [1, T, d]).dataSync(), ref.out.flat(), tol.output, `output batch ${b}`);
          expectClose(scores.slice([b, 0, 0, 0], [1, cfg.numQueryHeads, T, T]).dataSync(), ref.probs.flat(2), tol.output, 'maps');
        }
      });
      layer.dispose();
    });
  }

  it('with a zero decoder delta, decodes each latent by block tiling [o, o] (not element-wise repeat)', () => {
    const layer = groupedHeadLatentAttention({
      numHeads: 4,
      headDim: 4,
      numQueryHeads: 1,
      numKeyHeads: 1,
      numValueHeads: 1,
      valueDim: 8,
      valueDecoderInitializer: 'zeros',
      kernelInitializer: 'glorotUniform',
      useBias: false,
    });
    tf.tidy(() => {
      const d = 16;
      const x = randomTensor([1, 3, d], 41);
      layer.apply(x);
      // Gate ~ 1 (large positive gate kernel is not needed: set the gate to sigmoid(+inf) via a huge bias-free identity?)
      // Instead compare against the tiled latent through the same gate and output projection.
      const wc = tf.reshape(layer.getWeights()[2], [d, 8]);
      const wg = layer.getWeights()[3];
      const wo = tf.reshape(layer.getWeights()[5], [16, d]);
      const wq = tf.reshape(layer.getWeights()[0], [d, 4]);
      const wk = tf.reshape(layer.getWeights()[1], [d, 4]);
      // With one query group the attention over 3 tokens without a mask; recompute with the layer's own scores.
      const [out, scores] = layer.apply(x, { returnAttentionScores: true }) as tf.Tensor[];
      const latent = tf.matMul(tf.reshape(scores, [3, 3]), tf.matMul(tf.reshape(x, [3, d]), wc)); // [3, 8]
      const tiled = tf.concat([latent, latent], 1); // [3, 16]
      const gate = tf.sigmoid(tf.matMul(tf.reshape(x, [3, d]), wg));
      const expected = tf.matMul(tf.mul(gate, tiled), wo);
      expectClose(tf.reshape(out, [3, d]), expected, tol.same, 'tiled decoder');
      expect(wq.shape).to.deep.equal([d, 4]);
      expect(wk.shape).to.deep.equal([d, 4]);
    });
    layer.dispose();
  });

  it("has the released configuration's weights and cache size (GTA-1B layer: 192 elements per token)", () => {
    const layer = new GroupedHeadLatentAttention({
      numHeads: 20,
      headDim: 64,
      numQueryHeads: 5,
      numKeyHeads: 1,
      numValueHeads: 1,
      valueDim: 128,
    });
    expect(layer.expandRate).to.equal(2);
    expect(layer.kvCacheElementsPerToken()).to.equal(192);
    expect(layer.numAttentionMaps()).to.equal(5);
  });

  it('rejects invalid configurations at construction, naming the argument and the rule', () => {
    const ok = { numHeads: 8, headDim: 4, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8 };
    expectThrows(
      () => new GroupedHeadLatentAttention({ ...ok, valueDim: 6 }),
      /numHeads\*headDim \/ \(numQueryHeads\*valueDim\) must be a positive integer/,
      /32 \/ \(2\*6\)/,
    );
    expectThrows(() => new GroupedHeadLatentAttention({ ...ok, valueDim: 32 }), /must be a positive integer/, /0\.5/);
    expectThrows(
      () => new GroupedHeadLatentAttention({ ...ok, numKeyHeads: 3 }),
      /numQueryHeads \(2\) must be divisible by numKeyHeads \(3\)/,
    );
    expectThrows(
      () => new GroupedHeadLatentAttention({ ...ok, numValueHeads: 4 }),
      /numQueryHeads \(2\) must be divisible by numValueHeads \(4\)/,
    );
    expectThrows(() => new GroupedHeadLatentAttention({ ...ok, headDim: 5, numHeads: 8 }), /headDim must be even/);
    expectThrows(() => new GroupedHeadLatentAttention({ ...ok, numHeads: 2.5 }), /numHeads must be a positive integer/);
    const { valueDim: _omit, ...missing } = ok;
    expectThrows(() => new GroupedHeadLatentAttention(missing as never), /valueDim is required/);
    expectThrows(() => new GroupedHeadLatentAttention({ ...ok, useBias: 'yes' as never }), /useBias must be a boolean/);
  });
});
