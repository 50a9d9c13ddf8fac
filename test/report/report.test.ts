import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { comparisonTable, reportMarkdown, writeReport } from '../../src/report/report.js';
import type { CompareReport } from '../../src/train/compare.js';
import { COMPARE_PRESETS } from '../../src/train/compare.js';
import { it } from '../kit/index.js';

function fakeReport(): CompareReport {
  const variant = (name: 'gta' | 'gqa', loss: number) => ({
    name, attention: { kind: 'gqa', headDim: 8, numQueryHeads: 2, numKeyValueHeads: 1 } as never, params: 1000, attentionParams: 200,
    cacheBytesPerTokenMeasured: 256, cacheBytesPerTokenFormula: 256, validationLoss: loss, perplexity: Math.exp(loss),
    bitsPerCharacter: loss / Math.LN2, trainTokensPerSecond: 1234, trainSeconds: 3, prefillMs: 4.5, decodeTokensPerSecond: 99,
    sample: `${name} sample text`, history: [1, 2, 3].map((s) => ({ step: s, loss: loss + 1 / s, learningRate: 1e-3, gradNorm: 1, tokensPerSecond: 1, elapsed: s, eta: 0 })),
    evals: [{ step: 3, loss, perplexity: Math.exp(loss) }], stopped: false,
  });
  return {
    createdAt: '2026-11-28T00:00:00Z', backend: 'cpu', versions: { tfjs: '4.22.0' }, machine: { cpu: 'test', cores: 2 }, preset: 'quick',
    settings: { ...COMPARE_PRESETS.quick, seed: 0, tokenizer: 'char', validationFraction: 0.05, prompt: 'Call' },
    data: { source: 'inline', characters: 100, tokens: 100, vocabSize: 20, trainTokens: 95, validationTokens: 5, charactersPerToken: 1 },
    baseline: { unigramLoss: 2.9, unigramBitsPerCharacter: 4.18 },
    variants: [variant('gta', 1.5), variant('gqa', 1.7)], wallSeconds: 12, stopped: false,
  };
}

describe('report writer', () => {
  it('writes report.md, report.json and SVG/PNG loss curves', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tfjs-gta-report-'));
    try {
      const report = fakeReport();
      const files = await writeReport(report, join(root, 'results'));
      expect(files.map((f) => f.split('/').pop())).to.deep.equal(['report.md', 'report.json', 'loss.svg', 'loss.png', 'validation.svg', 'validation.png']);
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
      await writeReport(fakeReport(), join(root, 'blocker', 'results')).catch((e: Error) => { err = e; });
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
    expect(reportMarkdown(fakeReport(), ['loss.png'])).to.contain('![loss.png](loss.png)');
  });
});
