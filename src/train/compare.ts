/**
 * Trains attention variants side by side on the same text (identical non-attention architecture,
 * data order, token budget and seed) and measures, per variant: parameters, KV-cache bytes per token
 * (measured from the cache and from the formula), validation loss / perplexity / bits per character,
 * training throughput, prefill latency and decode speed at a stated context, and a greedy sample.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import {
  CausalLMConfig, attentionSpec, causalLMCacheElementsPerToken, smallAttention,
} from '../models/config.js';
import { attentionParams } from '../analysis/costs.js';
import { Corpus, countCodePoints, loadCorpus } from '../data/corpus.js';
import { ByteTokenizer, CharTokenizer, Tokenizer } from '../data/tokenizer.js';
import { BpeTokenizer } from '../data/bpe.js';
import { splitTokens } from '../data/dataset.js';
import { unigramBaseline } from '../data/baseline.js';
import { EvalRecord, StepRecord, train } from './trainer.js';
import { evaluate } from './evaluate.js';

export const VARIANTS = ['gta', 'gqa', 'mla', 'mha', 'mqa'] as const;
export type VariantName = (typeof VARIANTS)[number];

export interface ComparePreset {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  batchSize: number;
  sequenceLength: number;
  steps: number;
  learningRate: number;
  evalEvery: number;
  evalBatches: number;
  /** Validation batches of the final evaluation (0 = the whole validation split). */
  finalEvalBatches: number;
  /** Context length at which prefill latency and decode speed are measured. */
  speedContext: number;
  /** Tokens decoded for the speed measurement. */
  speedTokens: number;
  /** Characters (tokens) of the greedy sample. */
  sampleTokens: number;
}

/**
 * Measured on 2 cores with tfjs-node: `default` about 4 minutes, `small` (width 192, 2M tokens per
 * variant) about 14 minutes; `quick` is a smoke test of seconds to a minute.
 */
export const COMPARE_PRESETS: Record<'quick' | 'default' | 'small', ComparePreset> = {
  quick: {
    hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 160, batchSize: 8, sequenceLength: 64, steps: 40,
    learningRate: 4e-3, evalEvery: 20, evalBatches: 4, finalEvalBatches: 8, speedContext: 64, speedTokens: 16, sampleTokens: 60,
  },
  default: {
    hiddenSize: 128, numLayers: 4, numHeads: 8, intermediateSize: 344, batchSize: 16, sequenceLength: 128, steps: 400,
    learningRate: 3e-3, evalEvery: 100, evalBatches: 8, finalEvalBatches: 32, speedContext: 256, speedTokens: 64, sampleTokens: 200,
  },
  small: {
    hiddenSize: 192, numLayers: 4, numHeads: 8, intermediateSize: 512, batchSize: 16, sequenceLength: 128, steps: 1000,
    learningRate: 2.5e-3, evalEvery: 100, evalBatches: 16, finalEvalBatches: 0, speedContext: 512, speedTokens: 64, sampleTokens: 300,
  },
};

export type TokenizerKind = 'char' | 'byte' | 'bpe';

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
  /** Prompt of the greedy sample. */
  prompt?: string;
  /** Where to put per-variant checkpoints (Node); none when omitted. */
  checkpointDir?: string;
  /** Refuse models whose training would need more than this many bytes (estimate). */
  maxMemoryBytes?: number;
  shouldStop?: () => boolean;
  onVariantStart?: (variant: VariantName, index: number, count: number, totalSteps: number) => void;
  onStep?: (variant: VariantName, record: StepRecord) => void;
  onEval?: (variant: VariantName, record: EvalRecord) => void;
  onLog?: (line: string) => void;
}

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
  prefillMs: number;
  decodeTokensPerSecond: number;
  sample: string;
  history: StepRecord[];
  evals: EvalRecord[];
  stopped: boolean;
}

export interface CompareReport {
  createdAt: string;
  backend: string;
  versions: Record<string, string>;
  machine: Record<string, unknown>;
  preset: string;
  settings: ComparePreset & { seed: number; tokenizer: TokenizerKind; validationFraction: number; prompt: string };
  data: { source: string; title?: string; characters: number; tokens: number; vocabSize: number; trainTokens: number; validationTokens: number; charactersPerToken: number };
  baseline: { unigramLoss: number; unigramBitsPerCharacter: number };
  variants: VariantReport[];
  wallSeconds: number;
  stopped: boolean;
}

export async function makeTokenizer(kind: TokenizerKind, text: string, bpeVocabSize = 1024): Promise<Tokenizer> {
  switch (kind) {
    case 'char': return CharTokenizer.fromText(text);
    case 'byte': return new ByteTokenizer();
    case 'bpe': return BpeTokenizer.train(text, bpeVocabSize);
    default: throw new ValueError(`tokenizer must be 'char', 'byte' or 'bpe', got ${JSON.stringify(kind)}.`);
  }
}

/** The model config of a variant under a preset (identical except for the attention). */
export function variantConfig(variant: VariantName, p: ComparePreset, vocabSize: number, seed: number): CausalLMConfig {
  if (!VARIANTS.includes(variant)) {
    throw new ValueError(`unknown variant ${JSON.stringify(variant)}; choose from ${VARIANTS.join(', ')}.`);
  }
  if (p.hiddenSize % p.numHeads !== 0) throw new ValueError(`hiddenSize ${p.hiddenSize} must be divisible by numHeads ${p.numHeads}.`);
  return {
    vocabSize, hiddenSize: p.hiddenSize, numLayers: p.numLayers, intermediateSize: p.intermediateSize,
    maxSequenceLength: Math.max(p.sequenceLength, p.speedContext + p.speedTokens + 1, 64 + p.sampleTokens),
    attention: smallAttention(variant, p.numHeads, p.hiddenSize / p.numHeads), seed,
  };
}

/** Rough bytes needed to train a config: weights + grads + 2 Adam moments, plus activations and scores. */
export function estimateTrainingBytes(config: CausalLMConfig, p: ComparePreset, params: number): number {
  const tokens = p.batchSize * p.sequenceLength;
  const activations = tokens * config.numLayers * (12 * config.hiddenSize + 3 * config.intermediateSize) * 4;
  const scores = 3 * p.batchSize * p.numHeads * p.sequenceLength * p.sequenceLength * config.numLayers * 4;
  return 4 * params * 4 + activations + scores + tokens * config.vocabSize * 4 * 3;
}

async function measureSpeed(lm: CausalLM, p: ComparePreset, ids: Int32Array): Promise<{ prefillMs: number; decodeTokensPerSecond: number; cacheBytesPerToken: number }> {
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

export async function compare(options: CompareOptions = {}): Promise<CompareReport> {
  const started = performance.now();
  const presetName = options.preset ?? 'default';
  const base = COMPARE_PRESETS[presetName];
  if (base === undefined) throw new ValueError(`preset must be one of ${Object.keys(COMPARE_PRESETS).join(', ')}, got ${JSON.stringify(presetName)}.`);
  const p: ComparePreset = { ...base, ...(options.overrides ?? {}) };
  const variants = options.variants ?? ['gta', 'gqa', 'mla', 'mha'];
  if (variants.length === 0) throw new ValueError('at least one variant is required.');
  for (const v of variants) variantConfig(v, p, 2, 0); // validate names and shapes before any work
  const seed = options.seed ?? 0;
  const log = options.onLog ?? (() => {});
  const corpus: Corpus = await loadCorpus(options.source);
  const tokenizerKind = options.tokenizer ?? 'char';
  const tokenizer = await makeTokenizer(tokenizerKind, corpus.text, options.bpeVocabSize);
  const ids = Int32Array.from(tokenizer.encode(corpus.text));
  const validationFraction = options.validationFraction ?? 0.05;
  const window = Math.max(p.sequenceLength, p.speedContext);
  if (ids.length < 2 * (window + 1)) {
    throw new ValueError(`the text has ${ids.length} tokens, fewer than two windows of ${window + 1} tokens (sequenceLength/speed context); use a longer text.`);
  }
  const { train: trainIds, validation } = splitTokens(ids, { validationFraction, sequenceLength: window });
  const validationChars = countCodePoints(tokenizer.decode(Array.from(validation)));
  const charsPerToken = validationChars / validation.length;
  const unigram = unigramBaseline(trainIds, validation, tokenizer.vocabSize);
  log(`data: ${corpus.title ?? corpus.source}, ${corpus.characters} characters, ${ids.length} ${tokenizerKind} tokens ` +
    `(vocabulary ${tokenizer.vocabSize}); unigram baseline ${unigram.toFixed(3)} nats/token`);
  const prompt = options.prompt ?? 'Call me Ishmael.';
  const promptIds = Array.from(tokenizer.encode(prompt));
  const reports: VariantReport[] = [];
  let stopped = false;
  for (const [index, variant] of variants.entries()) {
    const config = variantConfig(variant, p, tokenizer.vocabSize, seed);
    const lm = CausalLM.create(config, `lm_${variant}`);
    try {
      const params = lm.countParams();
      const needed = estimateTrainingBytes(config, p, params);
      if (options.maxMemoryBytes !== undefined && needed > options.maxMemoryBytes) {
        throw new ValueError(`variant ${variant} needs about ${(needed / 2 ** 20).toFixed(0)} MiB to train, more than the ` +
          `allowed ${(options.maxMemoryBytes / 2 ** 20).toFixed(0)} MiB; lower batchSize, sequenceLength or the model size.`);
      }
      options.onVariantStart?.(variant, index, variants.length, p.steps);
      const result = await train({
        model: lm, train: trainIds, validation, batchSize: p.batchSize, sequenceLength: p.sequenceLength, steps: p.steps,
        learningRate: p.learningRate, evalEvery: p.evalEvery, evalBatches: p.evalBatches, seed,
        checkpointDir: options.checkpointDir ? `${options.checkpointDir}/${variant}` : undefined,
        shouldStop: options.shouldStop,
        onStep: (r) => options.onStep?.(variant, r), onEval: (r) => options.onEval?.(variant, r),
      });
      if (result.stopped) {
        stopped = true;
        break;
      }
      const final = evaluate(lm, validation, { batchSize: p.batchSize, sequenceLength: p.sequenceLength, maxBatches: p.finalEvalBatches || undefined });
      const speed = await measureSpeed(lm, p, validation);
      const sample = await lm.generate(promptIds.length > 0 ? promptIds : [0], { maxNewTokens: p.sampleTokens });
      reports.push({
        name: variant, attention: config.attention, params,
        attentionParams: config.numLayers * attentionParams(attentionSpec(config.attention), config.hiddenSize),
        cacheBytesPerTokenMeasured: speed.cacheBytesPerToken, cacheBytesPerTokenFormula: 4 * causalLMCacheElementsPerToken(config),
        validationLoss: final.loss, perplexity: final.perplexity, bitsPerCharacter: final.loss / Math.LN2 / charsPerToken,
        trainTokensPerSecond: result.tokensPerSecond, trainSeconds: result.wallSeconds,
        prefillMs: speed.prefillMs, decodeTokensPerSecond: speed.decodeTokensPerSecond,
        sample: tokenizer.decode(sample.sequences[0]),
        history: result.history, evals: result.evals, stopped: false,
      });
      log(`${variant}: validation loss ${final.loss.toFixed(4)} nats/token, ${result.tokensPerSecond.toFixed(0)} tokens/s`);
    } finally {
      lm.dispose();
    }
  }
  return {
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
    versions: await versions(),
    machine: await machine(),
    preset: presetName,
    settings: { ...p, seed, tokenizer: tokenizerKind, validationFraction, prompt },
    data: {
      source: corpus.source, title: corpus.title, characters: corpus.characters, tokens: ids.length, vocabSize: tokenizer.vocabSize,
      trainTokens: trainIds.length, validationTokens: validation.length, charactersPerToken: charsPerToken,
    },
    baseline: { unigramLoss: unigram, unigramBitsPerCharacter: unigram / Math.LN2 / charsPerToken },
    variants: reports,
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

async function machine(): Promise<Record<string, unknown>> {
  if (typeof process === 'undefined') return {};
  const os = await import('node:os');
  const cpus = os.cpus();
  return { platform: `${os.platform()} ${os.arch()}`, cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1) };
}
