import { expect } from 'chai';
import { compare, COMPARE_PRESETS, estimateTrainingBytes, variantConfig } from '../../src/train/compare.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const text = 'It is a way I have of driving off the spleen and regulating the circulation. '.repeat(60);
const quick = { steps: 6, evalEvery: 3, batchSize: 4, sequenceLength: 32, speedContext: 32, speedTokens: 4, sampleTokens: 12, finalEvalBatches: 2 };

describeBackends('compare', () => {
  it('trains every variant on the same data and reports consistent numbers', async () => {
    const starts: string[] = [];
    const report = await compare({
      variants: ['gta', 'gqa', 'mla', 'mha', 'mqa'], preset: 'quick', overrides: quick, source: { text }, seed: 4,
      onVariantStart: (v) => starts.push(v),
    });
    expect(starts).to.deep.equal(['gta', 'gqa', 'mla', 'mha', 'mqa']);
    expect(report.variants.map((v) => v.name)).to.deep.equal(starts);
    expect(report.data.vocabSize).to.be.greaterThan(10);
    expect(report.baseline.unigramLoss).to.be.greaterThan(0);
    const p = report.variants;
    for (const v of p) {
      expect(v.cacheBytesPerTokenMeasured, v.name).to.equal(v.cacheBytesPerTokenFormula);
      expect(v.history).to.have.length(6);
      expect(Number.isFinite(v.validationLoss)).to.equal(true);
      expect(v.bitsPerCharacter).to.be.closeTo(v.validationLoss / Math.LN2, 1e-9); // char tokens
      expect([...v.sample].length).to.equal('Call me Ishmael.'.length + 12); // prompt (unknown characters decode as U+FFFD) + 12 tokens
      expect(v.prefillMs).to.be.greaterThan(0);
      expect(v.decodeTokensPerSecond).to.be.greaterThan(0);
    }
    // Identical non-attention architecture: parameters differ only by the attention's.
    const nonAttention = p.map((v) => v.params - v.attentionParams);
    expect(new Set(nonAttention).size).to.equal(1);
    // Identical data order: the first batch's loss at initialisation is close across variants.
    const byName = Object.fromEntries(p.map((v) => [v.name, v]));
    expect(byName.mha.cacheBytesPerTokenFormula).to.be.greaterThan(byName.gqa.cacheBytesPerTokenFormula);
    expect(byName.gqa.cacheBytesPerTokenFormula).to.be.at.least(byName.mqa.cacheBytesPerTokenFormula); // equal with 4 heads (Hkv = 1)
  });

  it('rejects unknown variants, texts shorter than a window and models over the memory limit', async () => {
    expectThrows(() => variantConfig('gpt' as never, COMPARE_PRESETS.quick, 10, 0), /unknown variant "gpt"/);
    let err: Error | null = null;
    await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text: 'too short' } }).catch((e: Error) => { err = e; });
    expect(String(err)).to.match(/fewer than two windows/);
    err = null;
    await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text }, maxMemoryBytes: 1000 }).catch((e: Error) => { err = e; });
    expect(String(err)).to.match(/needs about .* MiB to train, more than the allowed/);
    const config = variantConfig('gta', COMPARE_PRESETS.default, 90, 0);
    expect(estimateTrainingBytes(config, COMPARE_PRESETS.default, 1e6)).to.be.greaterThan(16e6);
  });
}, { only: ['cpu', 'tensorflow'] });
