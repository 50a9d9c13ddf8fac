/**
 * The comparison report: a terminal/markdown table, `report.md`, `report.json` and loss-curve plots,
 * written to a temporary folder and renamed into place so a failed run never leaves a half-written
 * results folder.
 */
import type { CompareReport } from '../train/compare.js';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { lineChartSVG, smooth, svgToPNG } from './plots.js';
import { MissingPackageError } from '../utils/optional.js';
import { writeOwnedDir } from '../io/owned_dir.js';

const fmt = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** The per-variant comparison as a markdown table. */
export function comparisonTable(report: CompareReport): string {
  const header = ['variant', 'params', 'attn params', 'KV B/token (cache)', 'KV B/token (formula)', 'val loss', 'ppl', 'bits/char',
    'train tok/s', `prefill ms @${report.settings.speedContext}`, 'decode tok/s'];
  const rows = report.variants.map((v) => [
    v.name, v.params.toLocaleString('en-US'), v.attentionParams.toLocaleString('en-US'), String(v.cacheBytesPerTokenMeasured),
    String(v.cacheBytesPerTokenFormula), fmt(v.validationLoss, 4), fmt(v.perplexity, 3), fmt(v.bitsPerCharacter, 3),
    fmt(v.trainTokensPerSecond, 0), fmt(v.prefillMs, 1), fmt(v.decodeTokensPerSecond, 1),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The whole report as markdown. */
export function reportMarkdown(report: CompareReport, plots: string[], notes: string[] = []): string {
  const s = report.settings;
  const d = report.data;
  const lines = [
    '# Attention variants compared',
    '',
    `Created ${report.createdAt} on \`${report.backend}\` (${String(report.machine.cpu ?? '')}, ${String(report.machine.cores ?? '?')} cores), ` +
      `preset \`${report.preset}\`, wall time ${fmt(report.wallSeconds, 0)} s.`,
    '',
    `Data: ${d.title ?? d.source} - ${d.characters.toLocaleString('en-US')} characters, ${d.tokens.toLocaleString('en-US')} ${s.tokenizer} tokens ` +
      `(vocabulary ${d.vocabSize}); ${d.trainTokens.toLocaleString('en-US')} training and ${d.validationTokens.toLocaleString('en-US')} validation tokens.`,
    `Model: ${s.numLayers} layers, width ${s.hiddenSize}, ${s.numHeads} heads, SwiGLU ${s.intermediateSize}; every variant has the same ` +
      `non-attention architecture, data order, seed (${s.seed}) and token budget: ${s.steps} steps x ${s.batchSize} x ${s.sequenceLength} = ` +
      `${(s.steps * s.batchSize * s.sequenceLength).toLocaleString('en-US')} tokens, AdamW, peak learning rate ${s.learningRate}.`,
    '',
    `Unigram baseline: ${fmt(report.baseline.unigramLoss, 4)} nats/token (${fmt(report.baseline.unigramBitsPerCharacter, 3)} bits/char).`,
    '',
    comparisonTable(report),
    '',
    `Prefill latency and decode speed: batch 1, greedy, a ${s.speedContext}-token context, ${s.speedTokens} decoded tokens. ` +
      'KV bytes per token are float32 over all layers; "cache" is read from the KV cache after a prefill, "formula" from the analytic count.',
    '',
    ...plots.map((p) => `![${p}](${p})`),
    ...notes,
    '',
    '## Greedy samples',
    '',
    ...report.variants.flatMap((v) => [`**${v.name}**`, '', '```', v.sample, '```', '']),
    report.stopped ? '\n**The run was stopped early; variants after the interruption are missing.**' : '',
  ];
  return lines.join('\n');
}

/**
 * Writes `report.md`, `report.json` and the loss curves (`loss.svg/png`, `validation.svg/png`) as the folder
 * `dir` (Node). The folder is replaced atomically and only if it is missing, empty or an earlier report
 * (see `writeOwnedDir`); anything else is refused. The plots need the optional packages `vega` (SVG) and
 * `@resvg/resvg-js` (PNG); without them the report says how to get them and links what it has.
 */
export async function writeReport(report: CompareReport, dir: string): Promise<string[]> {
  const tokensPerStep = report.settings.batchSize * report.settings.sequenceLength;
  const trainSeries = report.variants.map((v) => ({
    name: v.name, points: smooth(v.history.map((h) => ({ x: h.step * tokensPerStep, y: h.loss }))),
  }));
  const validSeries = report.variants.map((v) => ({ name: v.name, points: v.evals.map((e) => ({ x: e.step * tokensPerStep, y: e.loss })) }));
  const rule = { y: report.baseline.unigramLoss, label: 'unigram baseline' };
  const files: string[] = [];
  await writeOwnedDir(dir, 'report', '--out', async (tmp) => {
    const shown: string[] = [];
    const missing = new Set<string>();
    for (const [name, series, title, points] of [
      ['loss', trainSeries, 'Training loss (smoothed)', false],
      ['validation', validSeries, 'Validation loss', true],
    ] as const) {
      const svg = await lineChartSVG(series, { title, xTitle: 'training tokens', yTitle: 'nats / token', points, rule })
        .catch((e) => { if (e instanceof MissingPackageError) { missing.add(e.packageName); return null; } throw e; });
      if (svg === null) continue;
      await fs.writeFile(path.join(tmp, `${name}.svg`), svg);
      files.push(`${name}.svg`);
      const png = await svgToPNG(svg)
        .catch((e) => { if (e instanceof MissingPackageError) { missing.add(e.packageName); return null; } throw e; });
      if (png !== null) {
        await fs.writeFile(path.join(tmp, `${name}.png`), png);
        files.push(`${name}.png`);
      }
      shown.push(png !== null ? `${name}.png` : `${name}.svg`);
    }
    const note = missing.size > 0
      ? [`_Plots need the optional package(s) ${[...missing].join(', ')}: \`npm install ${[...missing].join(' ')}\`._`] : [];
    await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 1));
    await fs.writeFile(path.join(tmp, 'report.md'), reportMarkdown(report, shown, note));
  });
  const target = path.resolve(dir);
  return ['report.md', 'report.json', ...files].map((f) => path.join(target, f));
}
