import { expect } from 'chai';
import { compare, COMPARE_PRESETS, estimateTrainingBytes, variantConfig } from '../../src/train/compare.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const text = 'It is a way I have of driving off the spleen and regulating the circulation. '.repeat(60);
// The quick preset's 12 heads at a smaller width (12 heads of 4), so the cpu backend runs these in seconds.
const quick = {
  hiddenSize: 48,
  intermediateSize: 96,
  steps: 6,
  evalEvery: 3,
  batchSize: 4,
  sequenceLength: 32,
  speedContext: 32,
  speedTokens: 4,
  sampleTokens: 12,
  finalEvalBatches: 2,
};

describeBackends(
  'compare',
  () => {
    it('trains every variant on the same data and reports consistent numbers', async () => {
      const starts: string[] = [];
      const report = await compare({
        variants: ['gta', 'gqa', 'mla', 'mha', 'mqa'],
        preset: 'quick',
        overrides: quick,
        source: { text },
        seed: 4,
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
      // The paper's 160M head ratios at 12 heads: GQA 3 KV heads, GTA half of GQA's cache and an eighth of MHA's.
      expect(byName.gqa.attention).to.include({ numQueryHeads: 12, numKeyValueHeads: 3 });
      expect(byName.gta.attention).to.include({ numHeads: 12, numQueryHeads: 3, numKeyHeads: 1, numValueHeads: 1 });
      expect(byName.gta.cacheBytesPerTokenFormula * 2).to.equal(byName.gqa.cacheBytesPerTokenFormula);
      expect(byName.gta.cacheBytesPerTokenFormula * 8).to.equal(byName.mha.cacheBytesPerTokenFormula);
      expect(byName.gqa.cacheBytesPerTokenFormula).to.be.greaterThan(byName.mqa.cacheBytesPerTokenFormula);
      // One seed: the stats are that run's loss with no spread.
      for (const v of p) {
        expect(v.runs.map((r) => r.seed)).to.deep.equal([4]);
        expect(v.validationLossStats).to.deep.equal({
          n: 1,
          mean: v.validationLoss,
          sd: null,
          min: v.validationLoss,
          max: v.validationLoss,
        });
      }
      expect(report.settings.seeds).to.equal(1);
    });

    it('repeats each variant over N seeds and reports the mean and spread of the validation loss', async () => {
      const root = mkdtempSync(join(tmpdir(), 'tfjs-gta-compare-'));
      try {
        const starts: string[] = [];
        const report = await compare({
          variants: ['gta', 'gqa'],
          preset: 'quick',
          overrides: quick,
          source: { text },
          seed: 4,
          seeds: 3,
          checkpointDir: join(root, 'ck'),
          onVariantStart: (v, i, n, _steps, seed) => starts.push(`${v}@${seed} ${i + 1}/${n}`),
        });
        expect(starts).to.deep.equal(['gta@4 1/6', 'gqa@4 2/6', 'gta@5 3/6', 'gqa@5 4/6', 'gta@6 5/6', 'gqa@6 6/6']);
        expect(report.settings).to.include({ seed: 4, seeds: 3 });
        for (const v of report.variants) {
          expect(v.runs.map((r) => r.seed)).to.deep.equal([4, 5, 6]);
          const losses = v.runs.map((r) => r.validationLoss);
          const mean = losses.reduce((a, b) => a + b, 0) / 3;
          const sd = Math.sqrt(losses.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
          expect(v.validationLoss).to.be.closeTo(mean, 1e-12);
          expect(v.validationLossStats.mean).to.be.closeTo(mean, 1e-12);
          expect(v.validationLossStats.sd!).to.be.closeTo(sd, 1e-12);
          expect(v.validationLossStats.sd!, `${v.name}: seeds change weights and data order`).to.be.greaterThan(0);
          expect([v.validationLossStats.min, v.validationLossStats.max]).to.deep.equal([Math.min(...losses), Math.max(...losses)]);
          expect(v.perplexity).to.be.closeTo(Math.exp(mean), 1e-9);
          expect(v.history).to.have.length(6); // the first seed's curve
          for (const s of [4, 5, 6])
            expect(existsSync(join(root, 'ck', `${v.name}-seed${s}`, 'trainer.json')), `${v.name} seed ${s}`).to.equal(true);
        }
        // The first seed's run is the same run as a one-seed comparison with that seed.
        const single = await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text }, seed: 4 });
        expect(single.variants[0].validationLoss).to.be.closeTo(report.variants[0].runs[0].validationLoss, 1e-5);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    it('rejects unknown variants, head layouts off the 4:1 ratio, bad seed counts, short texts and models over the memory limit', async () => {
      expectThrows(() => variantConfig('gpt' as never, COMPARE_PRESETS.quick, 10, 0), /unknown variant "gpt"/);
      expectThrows(
        () => variantConfig('gqa', { ...COMPARE_PRESETS.quick, numHeads: 6 }, 10, 0),
        /numHeads must be a positive multiple of 4.*got 6/,
      );
      expectThrows(
        () => variantConfig('gta', { ...COMPARE_PRESETS.quick, numHeads: 8, hiddenSize: 48 }, 10, 0),
        /head dim\) must be a multiple of 4.*48 \/ 8 = 6/,
      );
      expectThrows(
        () => variantConfig('gta', { ...COMPARE_PRESETS.quick, numHeads: 12, hiddenSize: 100 }, 10, 0),
        /hiddenSize 100 must be divisible by numHeads 12/,
      );
      for (const [seeds, pattern] of [
        [0, /seeds .* must be a positive integer, got 0/],
        [1.5, /got 1\.5/],
        [Number.NaN, /got NaN/],
      ] as const) {
        let e: Error | null = null;
        await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text }, seeds }).catch((x: Error) => {
          e = x;
        });
        expect(String(e)).to.match(pattern);
      }
      let err: Error | null = null;
      await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text: 'too short' } }).catch((e: Error) => {
        err = e;
      });
      expect(String(err)).to.match(/fewer than two windows/);
      err = null;
      await compare({ variants: ['gta'], preset: 'quick', overrides: quick, source: { text }, maxMemoryBytes: 1000 }).catch((e: Error) => {
        err = e;
      });
      expect(String(err)).to.match(/needs about .* MiB to train, more than the allowed/);
      for (const preset of Object.values(COMPARE_PRESETS)) expect(preset.hiddenSize % preset.numHeads).to.equal(0);
      const config = variantConfig('gta', COMPARE_PRESETS.default, 90, 0);
      expect(estimateTrainingBytes(config, COMPARE_PRESETS.default, 1e6)).to.be.greaterThan(16e6);
    });
  },
  { only: ['cpu', 'tensorflow'] },
);
