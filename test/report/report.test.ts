import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  attentionLayout,
  cacheRatioSentences,
  comparisonTable,
  lossDifferences,
  reportMarkdown,
  writeReport,
} from '../../src/report/report.js';
import type { CompareReport } from '../../src/train/compare.js';
import { COMPARE_PRESETS, lossStats } from '../../src/train/compare.js';
import { smallAttention } from '../../src/models/config.js';
import { it } from '../kit/index.js';

/** A report of `losses.length` seeds per variant; the scalar loss fields are the seeds' mean. */
function fakeReport(seedLosses: Partial<Record<'gta' | 'gqa' | 'mha', number[]>> = { gta: [1.5], gqa: [1.7] }): CompareReport {
  const cache = { gta: 256, gqa: 512, mha: 2048 }; // bytes per token in the GTA paper's 1 : 2 : 8
  const variant = (name: 'gta' | 'gqa' | 'mha', losses: number[]) => {
    const stats = lossStats(losses);
    const loss = stats.mean;
    return {
      name,
      attention: smallAttention(name, 12, 8),
      params: 1000,
      attentionParams: 200,
      cacheBytesPerTokenMeasured: cache[name],
      cacheBytesPerTokenFormula: cache[name],
      validationLoss: loss,
      perplexity: Math.exp(loss),
      bitsPerCharacter: loss / Math.LN2,
      trainTokensPerSecond: 1234,
      trainSeconds: 3,
      trainKernelsPerStep: name === 'gta' ? 2366 : null,
      prefillMs: 4.5,
      decodeTokensPerSecond: 99,
      sample: `${name} sample text`,
      history: [1, 2, 3].map((s) => ({
        step: s,
        loss: loss + 1 / s,
        learningRate: 1e-3,
        gradNorm: 1,
        tokensPerSecond: 1,
        elapsed: s,
        eta: 0,
      })),
      evals: [{ step: 3, loss, perplexity: Math.exp(loss) }],
      stopped: false,
      validationLossStats: stats,
      runs: losses.map((l, k) => ({
        seed: k,
        validationLoss: l,
        perplexity: Math.exp(l),
        bitsPerCharacter: l / Math.LN2,
        trainTokensPerSecond: 1234,
        trainSeconds: 3,
      })),
    };
  };
  const seeds = Object.values(seedLosses)[0]!.length;
  return {
    createdAt: '2026-11-28T00:00:00Z',
    backend: 'cpu',
    versions: { tfjs: '4.22.0' },
    machine: { cpu: 'test', cores: 2 },
    preset: 'quick',
    settings: { ...COMPARE_PRESETS.quick, seed: 0, seeds, tokenizer: 'char', validationFraction: 0.05, prompt: 'Call' },
    data: { source: 'inline', characters: 100, tokens: 100, vocabSize: 20, trainTokens: 95, validationTokens: 5, charactersPerToken: 1 },
    baseline: { unigramLoss: 2.9, unigramBitsPerCharacter: 4.18 },
    variants: Object.entries(seedLosses).map(([name, losses]) => variant(name as 'gta', losses)),
    wallSeconds: 12,
    stopped: false,
  };
}

describe('report writer', () => {
  it('writes report.md, report.json and SVG/PNG loss curves', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tfjs-gta-report-'));
    try {
      const report = fakeReport();
      const files = await writeReport(report, join(root, 'results'));
      expect(files.map((f) => f.split('/').pop())).to.deep.equal([
        'report.md',
        'report.json',
        'loss.svg',
        'loss.png',
        'validation.svg',
        'validation.png',
      ]);
      for (const f of files) expect(existsSync(f), f).to.equal(true);
      expect(JSON.parse(readFileSync(join(root, 'results', 'report.json'), 'utf8'))).to.deep.equal(report);
      const md = readFileSync(join(root, 'results', 'report.md'), 'utf8');
      expect(md).to.contain('| gta | 1,000 | 200 | 256 | 256 | 1.5000 |');
      expect(md).to.contain('Unigram baseline: 2.9000 nats/token');
      expect(md).to.contain('gqa sample text');
      const svg = readFileSync(join(root, 'results', 'loss.svg'), 'utf8');
      expect(svg).to.match(/^<svg/);
      expect(svg).to.contain('unigram baseline');
      const png = readFileSync(join(root, 'results', 'validation.png'));
      expect(Array.from(png.subarray(0, 4))).to.deep.equal([0x89, 0x50, 0x4e, 0x47]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('leaves no half-written folder when writing fails', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tfjs-gta-report-'));
    try {
      writeFileSync(join(root, 'blocker'), 'a file where a folder is needed');
      let err: Error | null = null;
      await writeReport(fakeReport(), join(root, 'blocker', 'results')).catch((e: Error) => {
        err = e;
      });
      expect(err).to.not.equal(null);
      expect(existsSync(join(root, 'blocker', 'results'))).to.equal(false);
      expect(readFileSync(join(root, 'blocker'), 'utf8')).to.contain('a file');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('formats the comparison table with every reported quantity', () => {
    const table = comparisonTable(fakeReport());
    expect(table.split('\n')).to.have.length(4);
    expect(table).to.contain('KV B/token (cache)');
    expect(table).to.contain('prefill ms @64');
    expect(table).to.contain('| kernels/step |');
    expect(table).to.match(/\| 1234 \| 2,366 \| 4\.5 \|/); // gta counted its kernels
    expect(table).to.match(/\| 1234 \| - \| 4\.5 \|/); // the others did not
    expect(reportMarkdown(fakeReport(), ['loss.png'])).to.contain('![loss.png](loss.png)');
  });

  it("states each run's head layout and its cache as a ratio of GQA's and MHA's", () => {
    const report = fakeReport({ gta: [1.5], gqa: [1.7], mha: [1.6] });
    expect(cacheRatioSentences(report)).to.deep.equal([
      "GTA caches 0.50x GQA's bytes per token, 0.125x MHA's.",
      "GQA caches 0.25x MHA's bytes per token.",
    ]);
    expect(attentionLayout(smallAttention('gqa', 12, 16))).to.equal('12 query heads of 16, 3 key/value heads');
    expect(attentionLayout(smallAttention('gta', 12, 16))).to.equal(
      '12 heads of 16, 3 shared maps (n_q), 1 key head, 1 latent value head of 32 (r = 2)',
    );
    expect(attentionLayout(smallAttention('mla', 12, 16))).to.equal('12 heads, latent 64 + RoPE key 8 (nope 16, value 16 per head)');
    const md = reportMarkdown(report, []);
    expect(md).to.contain("KV cache per token: GTA caches 0.50x GQA's bytes per token, 0.125x MHA's.");
    expect(md).to.contain('gta: 12 heads of 8, 3 shared maps (n_q)');
    expect(md).to.contain('gqa: 12 query heads of 8, 3 key/value heads');
    expect(md).to.contain('mha: 12 query heads of 8, 12 key/value heads');
  });

  it('with one seed says that a single seed cannot separate small differences, and compares no pairs', () => {
    const report = fakeReport({ gta: [1.5], gqa: [1.7] });
    expect(lossDifferences(report)).to.deep.equal([]);
    const md = reportMarkdown(report, []);
    expect(md).to.contain('A single seed cannot separate small differences');
    expect(md).to.not.contain('exceeds the spread');
    expect(comparisonTable(report)).to.contain('| val loss |');
  });

  it('with several seeds shows mean ± sd and min-max, and tests each pair of means against the seed-to-seed spread', () => {
    // gta: mean 1.51, sd 0.01; gqa: mean 1.62, sd 0.02; mha: mean 1.515, sd 0.01 (three seeds each).
    const report = fakeReport({ gta: [1.5, 1.51, 1.52], gqa: [1.6, 1.62, 1.64], mha: [1.505, 1.515, 1.525] });
    const gta = report.variants[0].validationLossStats;
    expect(gta.n).to.equal(3);
    expect(gta.mean).to.be.closeTo(1.51, 1e-12);
    expect(gta.sd!).to.be.closeTo(0.01, 1e-12);
    expect([gta.min, gta.max]).to.deep.equal([1.5, 1.52]);
    const table = comparisonTable(report);
    expect(table).to.contain('val loss (mean ± sd, 3 seeds) | val loss min-max');
    expect(table).to.contain('| gta | 1,000 | 200 | 256 | 256 | 1.5100 ± 0.0100 | 1.5000-1.5200 |');
    expect(table).to.contain('| gqa | 1,000 | 200 | 512 | 512 | 1.6200 ± 0.0200 | 1.6000-1.6400 |');
    const diffs = lossDifferences(report);
    expect(diffs.map((d) => `${d.a}-${d.b}`)).to.deep.equal(['gta-gqa', 'gta-mha', 'gqa-mha']);
    // gta - gqa: -0.11 against 2 * sqrt(0.01^2/3 + 0.02^2/3) = 0.0258: larger than the spread.
    expect(diffs[0].difference).to.be.closeTo(-0.11, 1e-12);
    expect(diffs[0].threshold).to.be.closeTo(2 * Math.sqrt((0.01 ** 2 + 0.02 ** 2) / 3), 1e-12);
    expect(diffs[0].exceedsSpread).to.equal(true);
    // gta - mha: -0.005 against 2 * sqrt(2 * 0.01^2 / 3) = 0.0163: within the spread.
    expect(diffs[1].difference).to.be.closeTo(-0.005, 1e-12);
    expect(diffs[1].exceedsSpread).to.equal(false);
    expect(diffs[2].exceedsSpread).to.equal(true);
    const md = reportMarkdown(report, []);
    expect(md).to.contain('mean ± sample standard deviation over 3 seeds (0 to 2');
    expect(md).to.contain('|mean_a - mean_b| > 2 * sqrt(sd_a^2/N + sd_b^2/N)');
    expect(md).to.contain('| gta - gqa | -0.1100 | 0.0258 | yes |');
    expect(md).to.contain('| gta - mha | -0.0050 | 0.0163 | no |');
    expect(md).to.not.contain('A single seed cannot');
    expect(md).to.contain("those of the first seed's (0) models");
  });
});
