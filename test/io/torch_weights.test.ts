import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { exportTorchWeights, importTorchWeights } from '../../src/io/torch_weights.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { describeBackends, expectThrows, it, randomTensor } from '../kit/index.js';
import { LAYER_CASES, randomizeWeights } from '../kit/layers.js';

describeBackends('torch weight import/export', () => {
  for (const lc of LAYER_CASES) {
    it(`${lc.kind}: export then import into a fresh (unbuilt) layer reproduces the outputs exactly`, () =>
      tf.tidy(() => {
        const a = lc.make({ useCausalMask: true });
        const x = randomTensor([2, 4, lc.dim], 3);
        a.apply(x);
        randomizeWeights(a, 21);
        const torch = exportTorchWeights(a as never);
        const b = lc.make({ useCausalMask: true });
        importTorchWeights(b as never, torch);
        expect(b.built).to.equal(true);
        expect(Array.from((b.apply(x) as tf.Tensor).dataSync())).to.deep.equal(Array.from((a.apply(x) as tf.Tensor).dataSync()));
        a.dispose();
        b.dispose();
      }));
  }

  it('reshapes (does not transpose) GTA v_b_proj and transposes linear weights', () =>
    tf.tidy(() => {
      const layer = new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 4,
      });
      buildLayer(layer, [1, 1, 8]);
      const torch = exportTorchWeights(layer);
      expect(torch['v_b_proj.weight'].shape).to.deep.equal([8, 8]); // [r*Dl, Hq*Dl] with r = 2
      expect(torch['q_proj.weight'].shape).to.deep.equal([8, 8]);
      expect(torch['g_proj.weight'].shape).to.deep.equal([16, 8]);
      const raw = Array.from({ length: 64 }, (_, i) => i);
      importTorchWeights(layer, { ...torch, 'v_b_proj.weight': { shape: [8, 8], data: raw } });
      const delta = layer.weights.find((w) => w.name.endsWith('value_decoder/kernel'))!;
      expect(delta.shape).to.deep.equal([2, 4, 8]);
      expect(Array.from(delta.read().dataSync())).to.deep.equal(raw); // row-major reinterpretation
      const wq = layer.weights.find((w) => w.name.endsWith('query/kernel'))!;
      const tq = torch['q_proj.weight'].arraySync() as number[][];
      expect((wq.read().reshape([8, 8]).arraySync() as number[][])[3][5]).to.equal(tq[5][3]);
      layer.dispose();
    }));

  it('fails clearly on a missing weight, a wrong shape or an unused entry, leaving the layer unchanged', () =>
    tf.tidy(() => {
      const layer = new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 4,
      });
      buildLayer(layer, [1, 1, 8]);
      const torch = exportTorchWeights(layer);
      const before = layer.getWeights().map((w) => Array.from(w.dataSync()));
      const { ['g_proj.weight']: _gate, ...missing } = torch;
      expectThrows(() => importTorchWeights(layer, missing), /g_proj\.weight is missing/, /\[16,8\]/);
      expectThrows(
        () => importTorchWeights(layer, { ...torch, 'k_proj.weight': tf.zeros([4, 9]) }),
        /k_proj\.weight has shape \[4,9\] but layer .* expects \[4,8\]/,
      );
      const zeros = Object.fromEntries(Object.entries(torch).map(([k, v]) => [k, tf.zerosLike(v)]));
      expectThrows(() => importTorchWeights(layer, { ...zeros, 'rotary.inv_freq': tf.zeros([2]) }), /not used .*rotary\.inv_freq/);
      expect(layer.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(before);
      importTorchWeights(layer, { ...zeros, 'rotary.inv_freq': tf.zeros([2]) }, { strict: false });
      expect(tf.max(tf.abs(layer.getWeights()[0])).dataSync()[0]).to.equal(0);
      expectThrows(
        () =>
          importTorchWeights(
            new GroupedHeadLatentAttention({ numHeads: 4, headDim: 4, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 4 }),
            {},
          ),
        /not built and q_proj\.weight is missing/,
      );
      expectThrows(() => importTorchWeights(layer, { ...torch, 'q_proj.weight': { shape: [8, 8], data: [1, 2] } }), /has 2 values/);
      layer.dispose();
    }));

  it('imports with a prefix (a layer inside a state dict)', () =>
    tf.tidy(() => {
      const layer = new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 4,
      });
      buildLayer(layer, [1, 1, 8]);
      const prefixed = exportTorchWeights(layer, 'model.layers.0.self_attn.');
      expect(Object.keys(prefixed).every((k) => k.startsWith('model.layers.0.self_attn.'))).to.equal(true);
      importTorchWeights(layer, { ...prefixed, 'model.norm.weight': tf.ones([8]) }, { prefix: 'model.layers.0.self_attn.' });
      layer.dispose();
    }));
});
