import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import {
  AttentionSpec,
  GroupedHeadLatentAttention,
  GroupedQueryAttention,
  MultiHeadLatentAttention,
  attentionCoefficient,
  attentionMacs,
  attentionParams,
  kvCacheBytesPerToken,
  kvCacheElementsPerToken,
  linearMacsPerToken,
  specOf,
} from '../../src/index.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { expectThrows, it } from '../kit/index.js';

const gqa = (h: number, kv: number): AttentionSpec => ({ kind: 'gqa', numQueryHeads: h, numKeyValueHeads: kv, headDim: 64 });
const gta = (h: number, q: number, c: number): AttentionSpec => ({
  kind: 'gta',
  numHeads: h,
  headDim: 64,
  numQueryHeads: q,
  numKeyHeads: 1,
  numValueHeads: c,
  valueDim: 128,
});
const mla = (h: number, dc: number): AttentionSpec => ({
  kind: 'mla',
  numHeads: h,
  kvLoraRank: dc,
  qkNopeHeadDim: 64,
  qkRopeHeadDim: 32,
  vHeadDim: 64,
});

// ATTENTION_SPEC section 5.3: [name, spec, H, cache elements, attention coefficient, linear MACs/token/layer, absorbed]
const TABLE: Array<[string, AttentionSpec, number, number, number, number, number?]> = [
  ['160M MHA', gqa(12, 12), 768, 1536, 1536, 2359296],
  ['160M GQA', gqa(12, 3), 768, 384, 1536, 1474560],
  ['160M MLA', mla(12, 256), 768, 288, 1920, 2088960, 6528],
  ['160M GTA1', gta(12, 3, 1), 768, 192, 576, 1572864],
  ['160M GTA2', gta(12, 6, 1), 768, 192, 1152, 1720320],
  ['500M MHA', gqa(20, 20), 1280, 2560, 2560, 6553600],
  ['500M GQA', gqa(20, 4), 1280, 512, 2560, 3932160],
  ['500M MLA', mla(20, 320), 1280, 352, 3200, 5365760, 13440],
  ['500M GTA3', gta(20, 5, 1), 1280, 192, 960, 4096000],
  ['500M GTA4', gta(20, 10, 2), 1280, 320, 1920, 4669440],
  ['GQA-1B', gqa(20, 5), 1280, 640, 2560, 4096000],
  ['GTA-1B', gta(20, 5, 1), 1280, 192, 960, 4096000],
];

describe('analytic costs', () => {
  for (const [name, spec, h, cache, coeff, linear, absorbed] of TABLE) {
    it(`reproduce ATTENTION_SPEC 5.3 for ${name}`, () => {
      expect(kvCacheElementsPerToken(spec)).to.equal(cache);
      expect(kvCacheBytesPerToken(spec)).to.equal(cache * 4);
      expect(attentionCoefficient(spec)).to.equal(coeff);
      expect(linearMacsPerToken(spec, h)).to.equal(linear);
      if (absorbed !== undefined) expect(attentionCoefficient(spec, true)).to.equal(absorbed);
    });
  }

  it('give the headline ratios: GTA-1B caches 30% of GQA-1B and does 37.5% of its attention', () => {
    expect(kvCacheElementsPerToken(gta(20, 5, 1)) / kvCacheElementsPerToken(gqa(20, 5))).to.equal(0.3);
    expect(attentionCoefficient(gta(20, 5, 1)) / attentionCoefficient(gqa(20, 5))).to.equal(0.375);
  });

  it('count prefill as coefficient x N^2 plus linear x N, and decode as coefficient x N per token', () => {
    const spec = gta(20, 5, 1);
    const prefill = attentionMacs(spec, 1280, { queryLength: 2048, keyLength: 2048, batchSize: 2 });
    expect(prefill.attention).to.equal(2 * 960 * 2048 * 2048);
    expect(prefill.linear).to.equal(2 * 2048 * 4096000);
    expect(prefill.flops).to.equal(2 * prefill.total);
    const decode = attentionMacs(spec, 1280, { queryLength: 1, keyLength: 4096 });
    expect(decode.attention).to.equal(960 * 4096);
    // Whole-layer ratio GTA-1B / GQA-1B at N = 2048 (ATTENTION_SPEC 5.3: 0.649).
    const gqaPrefill = attentionMacs(gqa(20, 5), 1280, { queryLength: 2048, keyLength: 2048 });
    expect(attentionMacs(spec, 1280, { queryLength: 2048, keyLength: 2048 }).total / gqaPrefill.total).to.be.closeTo(0.649, 0.001);
    // Naive MLA decoding re-expands the cached latents every step; the absorbed form does not.
    const naive = attentionMacs(mla(12, 256), 768, { queryLength: 1, keyLength: 101 });
    const absorbedDecode = attentionMacs(mla(12, 256), 768, { queryLength: 1, keyLength: 101, absorbed: true });
    expect(naive.attention).to.equal(1920 * 101 + 100 * 12 * 256 * 128);
    expect(absorbedDecode.attention).to.equal(6528 * 101);
    expectThrows(() => attentionMacs(spec, 1280, { queryLength: 4, keyLength: 2 }), /keyLength >= queryLength/);
  });

  it('count parameters exactly as the built layers report them', () => {
    const layers = [
      new GroupedQueryAttention({ headDim: 64, numQueryHeads: 12, numKeyValueHeads: 3 }),
      new GroupedQueryAttention({ headDim: 64, numQueryHeads: 12, numKeyValueHeads: 12, useBias: false }),
      new GroupedHeadLatentAttention({ numHeads: 12, headDim: 64, numQueryHeads: 3, numKeyHeads: 1, numValueHeads: 1, valueDim: 128 }),
      new GroupedHeadLatentAttention({
        numHeads: 12,
        headDim: 64,
        numQueryHeads: 6,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 128,
        useBias: false,
      }),
      new MultiHeadLatentAttention({ numHeads: 12, kvLoraRank: 256, qkNopeHeadDim: 64, qkRopeHeadDim: 32, vHeadDim: 64 }),
      new MultiHeadLatentAttention({
        numHeads: 12,
        qLoraRank: 96,
        kvLoraRank: 256,
        qkNopeHeadDim: 64,
        qkRopeHeadDim: 32,
        vHeadDim: 64,
        useBias: true,
      }),
    ];
    for (const layer of layers) {
      buildLayer(layer, [1, 1, 768]);
      expect(layer.countParams(), layer.getClassName()).to.equal(attentionParams(specOf(layer), 768));
      expect(layer.kvCacheElementsPerToken()).to.equal(kvCacheElementsPerToken(specOf(layer)));
      layer.dispose();
    }
    // The paper's 160M GQA baseline: q/k/v biases, no output bias (ATTENTION_SPEC section 2 note).
    expect(attentionParams({ ...gqa(12, 3), useBias: true, useOutputBias: false } as AttentionSpec, 768)).to.equal(
      768 * 768 * 2 + 2 * 768 * 192 + 768 + 2 * 192,
    );
    expect(tf.memory().numTensors).to.be.a('number');
  });
});
