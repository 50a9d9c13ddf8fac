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
import { attentionSpec } from '../models/config.js';
import { mechanismOfConfig } from '../mechanisms/registry.js';
import type { AttentionConfig } from '../layers/decoder_block.js';

const fmt = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

const ratio = (x: number): string => {
  const s = x.toFixed(3);
  return s.endsWith('0') ? s.slice(0, -1) : s;
};

/** The head layout of one attention config in words, e.g. "12 query heads of 16, 3 key/value heads". */
export function attentionLayout(attention: AttentionConfig): string {
  return mechanismOfConfig(attention).describe(attentionSpec(attention));
}

/**
 * One sentence per variant (MHA excepted) giving its KV-cache bytes per token as a ratio of GQA's and
 * MHA's (those of the two that the run has), e.g. "GTA caches 0.50x GQA's bytes per token, 0.125x MHA's."
 */
export function cacheRatioSentences(report: CompareReport): string[] {
  const byName = new Map(report.variants.map((v) => [v.name, v.cacheBytesPerTokenFormula]));
  const references = (['gqa', 'mha'] as const).filter((r) => byName.has(r));
  return report.variants.flatMap((v) => {
    // MHA is the largest reference: it is described against nothing; GQA only against MHA.
    const parts = references
      .filter((r) => r !== v.name && v.name !== 'mha')
      .map((r) => `${ratio(v.cacheBytesPerTokenFormula / byName.get(r)!)}x ${r.toUpperCase()}'s`);
    if (parts.length === 0) return [];
    return [
      `${v.name.toUpperCase()} caches ${parts[0].replace("'s", "'s bytes per token")}${parts
        .slice(1)
        .map((p) => `, ${p}`)
        .join('')}.`,
    ];
  });
}

/** The difference of two variants' mean validation losses against their seed-to-seed spread. */
export interface LossDifference {
  a: string;
  b: string;
  /** mean_a - mean_b (nats/token). */
  difference: number;
  /** 2 * sqrt(sd_a^2 / n_a + sd_b^2 / n_b): twice the standard error of the difference. */
  threshold: number;
  /** |difference| > threshold. */
  exceedsSpread: boolean;
}

/**
 * Every pairwise difference of mean validation losses, in the report's variant order, with the rule
 * |mean_a - mean_b| > 2 * sqrt(sd_a^2/n_a + sd_b^2/n_b). Empty when any variant has a single seed
 * (no spread to compare against).
 */
export function lossDifferences(report: CompareReport): LossDifference[] {
  const stats = report.variants.map((v) => ({ name: v.name, s: v.validationLossStats }));
  if (stats.some(({ s }) => s === undefined || s.sd === null)) return [];
  const out: LossDifference[] = [];
  for (let i = 0; i < stats.length; i++) {
    for (let j = i + 1; j < stats.length; j++) {
      const [a, b] = [stats[i], stats[j]];
      const difference = a.s.mean - b.s.mean;
      const threshold = 2 * Math.sqrt(a.s.sd! ** 2 / a.s.n + b.s.sd! ** 2 / b.s.n);
      out.push({ a: a.name, b: b.name, difference, threshold, exceedsSpread: Math.abs(difference) > threshold });
    }
  }
  return out;
}

/** The seed paragraph of the report: what one seed can say, or the rule and each pair against it. */
function seedLines(report: CompareReport): string[] {
  const seeds = report.settings.seeds ?? 1;
  const first = report.settings.seed;
  if (seeds === 1) {
    return [
      `Validation losses come from a single seed (${first}). A single seed cannot separate small differences: ` +
        'retrain with other seeds (`--seeds N`, `compare({seeds: N})`) to see how far the losses move from seed to seed.',
    ];
  }
  const lines = [
    `Validation loss is the mean ± sample standard deviation over ${seeds} seeds (${first} to ${first + seeds - 1}: weights and data order), ` +
      'min-max in its own column. A difference of two means counts as larger than the seed-to-seed spread when ' +
      '|mean_a - mean_b| > 2 * sqrt(sd_a^2/N + sd_b^2/N) (twice the standard error of the difference; a rough rule, ' +
      'not a significance test, with few seeds).',
  ];
  const diffs = lossDifferences(report);
  if (diffs.length === 0) return lines;
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    ...lines,
    '',
    line(['pair', 'mean difference (nats)', '2 x std. error', 'exceeds the spread?']),
    line(['---', '---', '---', '---']),
    ...diffs.map((d) => line([`${d.a} - ${d.b}`, fmt(d.difference, 4), fmt(d.threshold, 4), d.exceedsSpread ? 'yes' : 'no'])),
  ];
}

/**
 * The per-variant comparison as a markdown table. With several seeds the loss column is the mean ±
 * sample standard deviation over the seeds, followed by a min-max column; ppl and bits/char are of the mean.
 */
export function comparisonTable(report: CompareReport): string {
  const seeds = report.settings.seeds ?? 1;
  const lossHeader = seeds > 1 ? [`val loss (mean ± sd, ${seeds} seeds)`, 'val loss min-max'] : ['val loss'];
  const lossCells = (v: CompareReport['variants'][number]) => {
    const s = v.validationLossStats;
    if (seeds === 1 || s === undefined) return [fmt(v.validationLoss, 4)];
    return [`${fmt(s.mean, 4)} ± ${s.sd === null ? '-' : fmt(s.sd, 4)}`, `${fmt(s.min, 4)}-${fmt(s.max, 4)}`];
  };
  const header = [
    'variant',
    'params',
    'attn params',
    'KV B/token (cache)',
    'KV B/token (formula)',
    ...lossHeader,
    'ppl',
    'bits/char',
    'train tok/s',
    'kernels/step',
    `prefill ms @${report.settings.speedContext}`,
    'decode tok/s',
  ];
  const rows = report.variants.map((v) => [
    v.name,
    v.params.toLocaleString('en-US'),
    v.attentionParams.toLocaleString('en-US'),
    String(v.cacheBytesPerTokenMeasured),
    String(v.cacheBytesPerTokenFormula),
    ...lossCells(v),
    fmt(v.perplexity, 3),
    fmt(v.bitsPerCharacter, 3),
    fmt(v.trainTokensPerSecond, 0),
    v.trainKernelsPerStep === null || v.trainKernelsPerStep === undefined ? '-' : v.trainKernelsPerStep.toLocaleString('en-US'),
    fmt(v.prefillMs, 1),
    fmt(v.decodeTokensPerSecond, 1),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The whole report as markdown. */
export function reportMarkdown(report: CompareReport, plots: string[], notes: string[] = []): string {
  const s = report.settings;
  const d = report.data;
  const seeds = s.seeds ?? 1;
  const seedRange = seeds > 1 ? `${s.seed} to ${s.seed + seeds - 1}` : String(s.seed);
  const ratios = cacheRatioSentences(report);
  const lines = [
    '# Attention variants compared',
    '',
    `Created ${report.createdAt} on \`${report.backend}\` (${String(report.machine.cpu ?? '')}, ${String(report.machine.cores ?? '?')} cores), ` +
      `preset \`${report.preset}\`, wall time ${fmt(report.wallSeconds, 0)} s.`,
    '',
    `Data: ${d.title ?? d.source} - ${d.characters.toLocaleString('en-US')} characters, ${d.tokens.toLocaleString('en-US')} ${s.tokenizer} tokens ` +
      `(vocabulary ${d.vocabSize}); ${d.trainTokens.toLocaleString('en-US')} training and ${d.validationTokens.toLocaleString('en-US')} validation tokens.`,
    `Model: ${s.numLayers} layers, width ${s.hiddenSize}, ${s.numHeads} heads, SwiGLU ${s.intermediateSize}; every variant has the same ` +
      `non-attention architecture, data order, seed${seeds > 1 ? 's' : ''} (${seedRange}) and token budget: ${s.steps} steps x ${s.batchSize} x ${s.sequenceLength} = ` +
      `${(s.steps * s.batchSize * s.sequenceLength).toLocaleString('en-US')} tokens${seeds > 1 ? ' per run' : ''}, AdamW, peak learning rate ${s.learningRate}.`,
    '',
    'Attention layouts: ' + report.variants.map((v) => `${v.name}: ${attentionLayout(v.attention)}`).join('; ') + '.',
    ...(ratios.length > 0 ? ['', `KV cache per token: ${ratios.join(' ')}`] : []),
    '',
    `Unigram baseline: ${fmt(report.baseline.unigramLoss, 4)} nats/token (${fmt(report.baseline.unigramBitsPerCharacter, 3)} bits/char).`,
    '',
    comparisonTable(report),
    '',
    ...seedLines(report),
    '',
    `Prefill latency and decode speed: batch 1, greedy, a ${s.speedContext}-token context, ${s.speedTokens} decoded tokens. ` +
      'KV bytes per token are float32 over all layers; "cache" is read from the KV cache after a prefill, "formula" from the analytic count.',
    ...(seeds > 1 ? [`Loss curves, speed columns and greedy samples are those of the first seed's (${s.seed}) models.`] : []),
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
    name: v.name,
    points: smooth(v.history.map((h) => ({ x: h.step * tokensPerStep, y: h.loss }))),
  }));
  const validSeries = report.variants.map((v) => ({
    name: v.name,
    points: v.evals.map((e) => ({ x: e.step * tokensPerStep, y: e.loss })),
  }));
  const rule = { y: report.baseline.unigramLoss, label: 'unigram baseline' };
  const firstSeed = (report.settings.seeds ?? 1) > 1 ? `, seed ${report.settings.seed}` : '';
  const files: string[] = [];
  await writeOwnedDir(dir, 'report', '--out', async (tmp) => {
    const shown: string[] = [];
    const missing = new Set<string>();
    for (const [name, series, title, points] of [
      ['loss', trainSeries, `Training loss (smoothed${firstSeed})`, false],
      ['validation', validSeries, `Validation loss${firstSeed}`, true],
    ] as const) {
      const svg = await lineChartSVG(series, { title, xTitle: 'training tokens', yTitle: 'nats / token', points, rule }).catch((e) => {
        if (e instanceof MissingPackageError) {
          missing.add(e.packageName);
          return null;
        }
        throw e;
      });
      if (svg === null) continue;
      await fs.writeFile(path.join(tmp, `${name}.svg`), svg);
      files.push(`${name}.svg`);
      const png = await svgToPNG(svg).catch((e) => {
        if (e instanceof MissingPackageError) {
          missing.add(e.packageName);
          return null;
        }
        throw e;
      });
      if (png !== null) {
        await fs.writeFile(path.join(tmp, `${name}.png`), png);
        files.push(`${name}.png`);
      }
      shown.push(png !== null ? `${name}.png` : `${name}.svg`);
    }
    const note =
      missing.size > 0
        ? [`_Plots need the optional package(s) ${[...missing].join(', ')}: \`npm install ${[...missing].join(' ')}\`._`]
        : [];
    await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 1));
    await fs.writeFile(path.join(tmp, 'report.md'), reportMarkdown(report, shown, note));
  });
  const target = path.resolve(dir);
  return ['report.md', 'report.json', ...files].map((f) => path.join(target, f));
}
