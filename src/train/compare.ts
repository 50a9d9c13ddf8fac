/**
 * Trains attention variants side by side on the same text (identical non-attention architecture,
 * data order, token budget and seed) and measures, per variant: parameters, KV-cache bytes per token
 * (measured from the cache and from the formula), validation loss / perplexity / bits per character,
 * training throughput, prefill latency and decode speed at a stated context, and a greedy sample.
 * With `seeds: N` each variant is trained N times (seeds seed, seed+1, ...) and the validation loss is
 * reported as a mean with its seed-to-seed spread.
 * Node (reads corpora from files and describes the machine); the presets are in `presets.ts`.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { CausalLMConfig, attentionSpec, causalLMCacheElementsPerToken } from '../models/config.js';
import { attentionParams } from '../analysis/costs.js';
import { Corpus, countCodePoints } from '../data/corpus.js';
import { loadCorpus } from '../data/corpus_files.js';
import { splitTokens } from '../data/dataset.js';
import { unigramBaseline } from '../data/baseline.js';
import { CheckpointStore, EvalRecord, StepRecord, train } from './trainer.js';
import { evaluateAsync } from './evaluate.js';
import { directoryCheckpoint } from './checkpoint.js';
import type { Tokenizer } from '../data/tokenizer.js';
import {
  COMPARE_PRESETS,
  ComparePreset,
  TokenizerKind,
  VariantName,
  estimateTrainingBytes,
  makeTokenizer,
  variantConfig,
} from './presets.js';

export {
  COMPARE_PRESETS,
  VARIANTS,
  estimateTrainingBytes,
  makeTokenizer,
  variantConfig,
  type ComparePreset,
  type TokenizerKind,
  type VariantName,
} from './presets.js';

export interface CompareOptions {
  variants?: VariantName[];
  preset?: keyof typeof COMPARE_PRESETS;
  /** Overrides of the preset's fields. */
  overrides?: Partial<ComparePreset>;
  /** Text source: a path (file or directory), `{text}`, or undefined for the built-in Moby-Dick. */
  source?: string | { text: string };
  tokenizer?: TokenizerKind;
  /** BPE vocabulary size (with tokenizer 'bpe'). Default 1024. */
  bpeVocabSize?: number;
  validationFraction?: number;
  seed?: number;
  /**
   * Training runs per variant (default 1): run k uses seed `seed + k` for the weights and the data order.
   * The report gives each variant's mean validation loss and its spread over the runs.
   */
  seeds?: number;
  /** Prompt of the greedy sample. */
  prompt?: string;
  /** Where to put per-variant checkpoints (Node); none when omitted. */
  checkpointDir?: string;
  /** Refuse models whose training would need more than this many bytes (estimate). */
  maxMemoryBytes?: number;
  shouldStop?: () => boolean;
  /** Called before each training run; `index` and `count` count runs (variants x seeds), `seed` is the run's seed. */
  onVariantStart?: (variant: VariantName, index: number, count: number, totalSteps: number, seed: number) => void;
  onStep?: (variant: VariantName, record: StepRecord) => void;
  onEval?: (variant: VariantName, record: EvalRecord) => void;
  onLog?: (line: string) => void;
}

/** One training run of a variant (one seed). */
export interface SeedRun {
  seed: number;
  validationLoss: number;
  perplexity: number;
  bitsPerCharacter: number;
  trainTokensPerSecond: number;
  trainSeconds: number;
}

/** Mean and spread of a variant's validation loss over its seeds (nats/token). */
export interface LossStats {
  /** Number of seeds. */
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); null with one seed. */
  sd: number | null;
  min: number;
  max: number;
}

/**
 * One variant's results. With several seeds the scalar fields are means over the runs (`perplexity` is
 * `exp(mean loss)`), `runs` holds each run, and `history`, `evals`, the speed measurements and `sample`
 * are the first seed's model.
 */
export interface VariantReport {
  name: VariantName;
  attention: CausalLMConfig['attention'];
  params: number;
  attentionParams: number;
  cacheBytesPerTokenMeasured: number;
  cacheBytesPerTokenFormula: number;
  validationLoss: number;
  perplexity: number;
  bitsPerCharacter: number;
  trainTokensPerSecond: number;
  trainSeconds: number;
  /** tfjs kernels of one training step (forward, backward, clipping, AdamW), first seed; tf.profile. */
  trainKernelsPerStep: number | null;
  prefillMs: number;
  decodeTokensPerSecond: number;
  sample: string;
  history: StepRecord[];
  evals: EvalRecord[];
  stopped: boolean;
  /** Each training run, in seed order (one entry with one seed). */
  runs: SeedRun[];
  /** Validation loss over the seeds. */
  validationLossStats: LossStats;
}

export interface CompareReport {
  createdAt: string;
  backend: string;
  versions: Record<string, string>;
  machine: Record<string, unknown>;
  preset: string;
  /** `seed` is the first run's seed; `seeds` the number of runs per variant (seeds seed, seed+1, ...). */
  settings: ComparePreset & { seed: number; seeds: number; tokenizer: TokenizerKind; validationFraction: number; prompt: string };
  data: {
    source: string;
    title?: string;
    characters: number;
    tokens: number;
    vocabSize: number;
    trainTokens: number;
    validationTokens: number;
    charactersPerToken: number;
  };
  baseline: { unigramLoss: number; unigramBitsPerCharacter: number };
  variants: VariantReport[];
  wallSeconds: number;
  stopped: boolean;
}

async function measureSpeed(
  lm: CausalLM,
  p: ComparePreset,
  ids: Int32Array,
): Promise<{ prefillMs: number; decodeTokensPerSecond: number; cacheBytesPerToken: number }> {
  const context = Array.from(ids.subarray(0, p.speedContext));
  // Warm up (kernels, folded decode weights), then time a prefill and a greedy decode.
  const warm = lm.callWithCache([context.slice(0, 8)], null);
  warm.logits.dispose();
  warm.cache.dispose();
  const t0 = performance.now();
  const pre = lm.callWithCache([context], null);
  await pre.logits.data();
  const prefillMs = performance.now() - t0;
  const cacheBytesPerToken = pre.cache.bytesPerToken();
  pre.logits.dispose();
  pre.cache.dispose();
  const g = await lm.generate(context, { maxNewTokens: p.speedTokens + 1 });
  return { prefillMs, decodeTokensPerSecond: g.decodeTokensPerSecond, cacheBytesPerToken };
}

/** Mean, sample standard deviation (null for one value) and range of validation losses. */
export function lossStats(values: number[]): LossStats {
  if (values.length === 0) throw new ValueError('lossStats: values must hold at least one loss.');
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : null;
  return { n, mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

function checkSeeds(seed: unknown, seeds: unknown): void {
  if (!Number.isSafeInteger(seed)) throw new ValueError(`seed must be an integer, got ${String(seed)}.`);
  if (!Number.isSafeInteger(seeds) || (seeds as number) < 1) {
    throw new ValueError(`seeds (training runs per variant) must be a positive integer, got ${String(seeds)}.`);
  }
}

/** What every training run of a comparison shares. */
interface RunContext {
  options: CompareOptions;
  presetName: string;
  p: ComparePreset;
  tokenizer: Tokenizer;
  trainIds: Int32Array;
  validation: Int32Array;
  charsPerToken: number;
  promptIds: number[];
}

/** A finished run; `first` holds what only the first seed's model measures. */
interface RunResult {
  run: SeedRun;
  config: CausalLMConfig;
  params: number;
  first?: {
    speed: Awaited<ReturnType<typeof measureSpeed>>;
    sample: string;
    history: StepRecord[];
    evals: EvalRecord[];
    kernelsPerStep: number | null;
  };
}

/**
 * Trains, evaluates and (for the first seed) measures one variant at one seed; null when stopped.
 * `onStart` runs once the model is built and within the memory limit, before training.
 */
async function runOnce(
  ctx: RunContext,
  variant: VariantName,
  seed: number,
  first: boolean,
  checkpoint: CheckpointStore | undefined,
  onStart: () => void,
): Promise<RunResult | null> {
  const { options, p } = ctx;
  const config = variantConfig(variant, p, ctx.tokenizer.vocabSize, seed);
  const lm = CausalLM.create(config, `lm_${variant}`);
  try {
    const params = lm.countParams();
    const needed = estimateTrainingBytes(config, p, params);
    if (options.maxMemoryBytes !== undefined && needed > options.maxMemoryBytes) {
      throw new ValueError(
        `variant ${variant} needs about ${(needed / 2 ** 20).toFixed(0)} MiB to train, more than the ` +
          `allowed ${(options.maxMemoryBytes / 2 ** 20).toFixed(0)} MiB; lower batchSize, sequenceLength or the model size.`,
      );
    }
    onStart();
    const result = await train({
      model: lm,
      train: ctx.trainIds,
      validation: ctx.validation,
      batchSize: p.batchSize,
      sequenceLength: p.sequenceLength,
      steps: p.steps,
      learningRate: p.learningRate,
      evalEvery: p.evalEvery,
      evalBatches: p.evalBatches,
      seed,
      checkpoint,
      checkpointExtra: { tokenizer: ctx.tokenizer.toJSON(), variant, preset: ctx.presetName, settings: p, seed },
      shouldStop: options.shouldStop,
      onStep: (r) => options.onStep?.(variant, r),
      onEval: (r) => options.onEval?.(variant, r),
      countKernels: first,
    });
    if (result.stopped) return null;
    const final = await evaluateAsync(lm, ctx.validation, {
      batchSize: p.batchSize,
      sequenceLength: p.sequenceLength,
      maxBatches: p.finalEvalBatches || undefined,
    });
    const run: SeedRun = {
      seed,
      validationLoss: final.loss,
      perplexity: final.perplexity,
      bitsPerCharacter: final.loss / Math.LN2 / ctx.charsPerToken,
      trainTokensPerSecond: result.tokensPerSecond,
      trainSeconds: result.wallSeconds,
    };
    options.onLog?.(
      `${variant} (seed ${seed}): validation loss ${final.loss.toFixed(4)} nats/token, ${result.tokensPerSecond.toFixed(0)} tokens/s`,
    );
    if (!first) return { run, config, params };
    const speed = await measureSpeed(lm, p, ctx.validation);
    const sample = await lm.generate(ctx.promptIds.length > 0 ? ctx.promptIds : [0], { maxNewTokens: p.sampleTokens });
    return {
      run,
      config,
      params,
      first: {
        speed,
        sample: ctx.tokenizer.decode(sample.sequences[0]),
        history: result.history,
        evals: result.evals,
        kernelsPerStep: result.kernelsPerStep,
      },
    };
  } finally {
    lm.dispose();
  }
}

/** A variant's report from its runs (the first run carries the speed, sample and curves). */
function variantReport(variant: VariantName, results: RunResult[]): VariantReport {
  const [head] = results;
  const first = head.first!;
  const runs = results.map((r) => r.run);
  const mean = (key: keyof SeedRun) => runs.reduce((a, r) => a + r[key], 0) / runs.length;
  const stats = lossStats(runs.map((r) => r.validationLoss));
  const config = head.config;
  return {
    name: variant,
    attention: config.attention,
    params: head.params,
    attentionParams: config.numLayers * attentionParams(attentionSpec(config.attention), config.hiddenSize),
    cacheBytesPerTokenMeasured: first.speed.cacheBytesPerToken,
    cacheBytesPerTokenFormula: 4 * causalLMCacheElementsPerToken(config),
    validationLoss: stats.mean,
    perplexity: Math.exp(stats.mean),
    bitsPerCharacter: mean('bitsPerCharacter'),
    trainTokensPerSecond: mean('trainTokensPerSecond'),
    trainSeconds: mean('trainSeconds'),
    trainKernelsPerStep: first.kernelsPerStep,
    prefillMs: first.speed.prefillMs,
    decodeTokensPerSecond: first.speed.decodeTokensPerSecond,
    sample: first.sample,
    history: first.history,
    evals: first.evals,
    stopped: false,
    runs,
    validationLossStats: stats,
  };
}

/**
 * Trains each variant `seeds` times (seed, seed+1, ...; all variants at one seed before the next seed)
 * on the same data and reports, per variant, the measurements above with the validation loss averaged
 * over the seeds (see `VariantReport`). Checkpoints go to `<checkpointDir>/<variant>` with one seed and
 * `<checkpointDir>/<variant>-seed<seed>` with several. A stop request ends the run with `stopped: true`
 * and only the variants whose every run finished.
 */
export async function compare(options: CompareOptions = {}): Promise<CompareReport> {
  const started = performance.now();
  const presetName = options.preset ?? 'default';
  const base = COMPARE_PRESETS[presetName];
  if (base === undefined)
    throw new ValueError(`preset must be one of ${Object.keys(COMPARE_PRESETS).join(', ')}, got ${JSON.stringify(presetName)}.`);
  const p: ComparePreset = { ...base, ...(options.overrides ?? {}) };
  const variants = options.variants ?? ['gta', 'gqa', 'mla', 'mha'];
  if (variants.length === 0) throw new ValueError('at least one variant is required.');
  for (const v of variants) variantConfig(v, p, 2, 0); // validate names and shapes before any work
  const seed = options.seed ?? 0;
  const seedCount = options.seeds ?? 1;
  checkSeeds(seed, seedCount);
  const runSeeds = Array.from({ length: seedCount }, (_, k) => seed + k);
  const log = options.onLog ?? (() => {});
  // Checkpoint folders are checked before any training, so a bad --checkpoint-dir fails at once.
  const checkpointName = (v: VariantName, s: number) => (seedCount === 1 ? v : `${v}-seed${s}`);
  const checkpoints = await Promise.all(
    runSeeds.map((s) =>
      Promise.all(
        variants.map((v) =>
          options.checkpointDir ? directoryCheckpoint(path.join(options.checkpointDir, checkpointName(v, s))) : Promise.resolve(undefined),
        ),
      ),
    ),
  );
  const corpus: Corpus = await loadCorpus(options.source);
  const tokenizerKind = options.tokenizer ?? 'char';
  const tokenizer = await makeTokenizer(tokenizerKind, corpus.text, options.bpeVocabSize);
  const ids = Int32Array.from(tokenizer.encode(corpus.text));
  const validationFraction = options.validationFraction ?? 0.05;
  const window = Math.max(p.sequenceLength, p.speedContext);
  if (ids.length < 2 * (window + 1)) {
    throw new ValueError(
      `the text has ${ids.length} tokens, fewer than two windows of ${window + 1} tokens (sequenceLength/speed context); use a longer text.`,
    );
  }
  const { train: trainIds, validation } = splitTokens(ids, { validationFraction, sequenceLength: window });
  const validationChars = countCodePoints(tokenizer.decode(Array.from(validation)));
  const charsPerToken = validationChars / validation.length;
  const unigram = unigramBaseline(trainIds, validation, tokenizer.vocabSize);
  log(
    `data: ${corpus.title ?? corpus.source}, ${corpus.characters} characters, ${ids.length} ${tokenizerKind} tokens ` +
      `(vocabulary ${tokenizer.vocabSize}); unigram baseline ${unigram.toFixed(3)} nats/token`,
  );
  const prompt = options.prompt ?? 'Call me Ishmael.';
  const ctx: RunContext = {
    options,
    presetName,
    p,
    tokenizer,
    trainIds,
    validation,
    charsPerToken,
    promptIds: Array.from(tokenizer.encode(prompt)),
  };
  const results = new Map<VariantName, RunResult[]>(variants.map((v) => [v, []]));
  let stopped = false;
  const count = variants.length * seedCount;
  runs: for (const [k, s] of runSeeds.entries()) {
    for (const [i, variant] of variants.entries()) {
      const result = await runOnce(ctx, variant, s, k === 0, checkpoints[k][i], () =>
        options.onVariantStart?.(variant, k * variants.length + i, count, p.steps, s),
      );
      if (result === null) {
        stopped = true;
        break runs;
      }
      results.get(variant)!.push(result);
    }
  }
  const finished = variants.filter((v) => results.get(v)!.length === seedCount);
  return {
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
    versions: await versions(),
    machine: machine(),
    preset: presetName,
    settings: { ...p, seed, seeds: seedCount, tokenizer: tokenizerKind, validationFraction, prompt },
    data: {
      source: corpus.source,
      title: corpus.title,
      characters: corpus.characters,
      tokens: ids.length,
      vocabSize: tokenizer.vocabSize,
      trainTokens: trainIds.length,
      validationTokens: validation.length,
      charactersPerToken: charsPerToken,
    },
    baseline: { unigramLoss: unigram, unigramBitsPerCharacter: unigram / Math.LN2 / charsPerToken },
    variants: finished.map((v) => variantReport(v, results.get(v)!)),
    wallSeconds: (performance.now() - started) / 1000,
    stopped,
  };
}

async function versions(): Promise<Record<string, string>> {
  const v: Record<string, string> = { ...(tf.version as Record<string, string>) };
  if (typeof process !== 'undefined') v.node = process.versions.node;
  const nodeBackend = tf.findBackendFactory('tensorflow') ? (tf.version as Record<string, string>)['tfjs-node'] : undefined;
  if (nodeBackend) v['tfjs-node'] = nodeBackend;
  return v;
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    platform: `${os.platform()} ${os.arch()}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
  };
}
