import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_KINDS } from '../../src/mechanisms/kinds.js';
import {
  AttentionConfig,
  MECHANISMS,
  cacheElementsPerToken,
  createAttentionLayer,
  mechanismOf,
  mechanismOfConfig,
  mechanismOfLayer,
} from '../../src/mechanisms/registry.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { torchWeightSpecs } from '../../src/io/torch_weights.js';
import { ATTENTION_TORCH } from '../../src/io/torch_names.js';
import { HF_MECHANISMS, detectHFMechanism } from '../../src/io/hf_mechanisms.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it, randomTensor } from '../kit/index.js';

/** Configs of every mechanism, with and without the optional arguments (defaults included). */
const CONFIGS: AttentionConfig[] = [
  { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2 },
  { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 1, useBias: true, useOutputBias: false },
  { kind: 'gqa', headDim: 6, numQueryHeads: 3, numKeyValueHeads: 3, useBias: false, useRope: false },
  { kind: 'gta', numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8 },
  { kind: 'gta', numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 2, numValueHeads: 1, valueDim: 4, useBias: false },
  { kind: 'mla', numHeads: 4, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 6 },
  { kind: 'mla', numHeads: 2, qLoraRank: 10, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 6, useBias: true },
];
const D = 24;
const label = (c: AttentionConfig) => JSON.stringify(c);

describe('mechanism registry', () => {
  it('has one entry per kind, each naming its own kind, with a torch table and an HF entry', () => {
    expect(Object.keys(MECHANISMS).sort()).to.deep.equal([...ATTENTION_KINDS].sort());
    for (const kind of ATTENTION_KINDS) {
      expect(mechanismOf(kind).kind).to.equal(kind);
      expect(ATTENTION_TORCH[kind].rows.length, kind).to.be.above(0);
      expect(HF_MECHANISMS[kind].read, kind).to.be.a('function');
    }
  });

  it('refuses unknown kinds and non-object configs, naming the known kinds', () => {
    const e = expectThrows(() => mechanismOf('xyz'), /attention kind must be 'gqa', 'gta' or 'mla', got "xyz"/);
    expect(e).to.be.instanceOf(ValueError);
    expectThrows(() => mechanismOfConfig(null), /attention config must be an object with a "kind" \('gqa', 'gta' or 'mla'\)/);
    expectThrows(() => createAttentionLayer({ kind: 'mha' } as unknown as AttentionConfig), /attention kind must be .* got "mha"/);
    expect(mechanismOfLayer(tf.layers.dense({ units: 2 }))).to.equal(null);
  });

  it('specOfConfig (defaults filled without a layer) equals specOfLayer of the layer the config builds', () => {
    for (const config of CONFIGS) {
      const m = mechanismOfConfig(config);
      const layer = createAttentionLayer(config);
      expect(layer, label(config)).to.be.instanceOf(m.layerClass);
      expect(m.specOfConfig(config), label(config)).to.deep.equal(m.specOfLayer(layer));
    }
  });

  it('describes each head layout in words', () => {
    const words = CONFIGS.map((c) => mechanismOfConfig(c).describe(mechanismOfConfig(c).specOfConfig(c)));
    expect(words[0]).to.equal('4 query heads of 8, 2 key/value heads');
    expect(words[3]).to.equal('4 heads of 8, 2 shared maps (n_q), 1 key head, 1 latent value head of 8 (r = 2)');
    expect(words[5]).to.equal('4 heads, latent 12 + RoPE key 4 (nope 8, value 6 per head)');
  });

  it('detects each mechanism from a Hugging Face config (GTA before MLA, GQA when nothing else fits)', () => {
    expect(detectHFMechanism({ num_query_heads: 2, value_dim: 8 })).to.equal('gta');
    expect(detectHFMechanism({ kv_lora_rank: 16 })).to.equal('mla');
    expect(detectHFMechanism({ num_query_heads: 2, value_dim: 8, kv_lora_rank: 16 })).to.equal('gta');
    expect(detectHFMechanism({ num_key_value_heads: 2 })).to.equal('gqa');
  });
});

describeBackends('mechanism descriptors against the built layers', () => {
  it('params(spec) equals countParams() of the built layer', () => {
    for (const config of CONFIGS) {
      const m = mechanismOfConfig(config);
      const layer = createAttentionLayer(config);
      buildLayer(layer, [1, 1, D]);
      expect(m.params(m.specOfLayer(layer), D), label(config)).to.equal(layer.countParams());
      layer.dispose();
    }
  });

  it('cacheLayout names the cache tensors, their sequence axes and sizes per token as the layer writes them', () => {
    for (const config of CONFIGS) {
      const m = mechanismOfConfig(config);
      const layer = createAttentionLayer(config, { useCausalMask: true });
      const x = randomTensor([2, 3, D], 5);
      const { output, cache } = layer.callWithCache(x);
      const spec = m.specOfLayer(layer);
      const layout = m.cacheLayout(spec);
      expect(Object.keys(cache.entries), label(config)).to.deep.equal(layout.map((t) => t.name));
      for (const t of layout) {
        const entry = cache.entries[t.name];
        expect(entry.seqAxis, `${label(config)} ${t.name}`).to.equal(t.seqAxis);
        expect(entry.tensor.shape[t.seqAxis]).to.equal(3);
        expect(entry.tensor.size / (2 * 3), `${label(config)} ${t.name} per token`).to.equal(t.elementsPerToken);
      }
      expect(cacheElementsPerToken(spec)).to.equal(cache.elementsPerToken());
      expect(cacheElementsPerToken(spec), "the layer's own formula").to.equal(layer.kvCacheElementsPerToken());
      tf.dispose([x, output]);
      cache.dispose();
      layer.dispose();
    }
  });

  it('the torch table covers every weight of a built layer once, with torch shapes that fit the weights', () => {
    for (const config of CONFIGS) {
      const layer = createAttentionLayer(config);
      buildLayer(layer, [1, 1, D]);
      const specs = torchWeightSpecs(layer);
      const mapped = specs.map((s) => s.variable.name).sort();
      expect(mapped, label(config)).to.deep.equal(layer.weights.map((w) => w.name).sort());
      expect(new Set(specs.map((s) => s.torchName)).size).to.equal(specs.length);
      for (const s of specs) {
        const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
        expect(size(s.torchShape), `${label(config)} ${s.torchName} size`).to.equal(size(s.variable.shape as number[]));
        // torch Linear weights are [out, in]; the layer's kernels are [in, out...].
        if (s.layout === 'linear') expect(s.torchShape[1], `${s.torchName} in`).to.equal(s.variable.shape[0]);
      }
      layer.dispose();
    }
  });
});
