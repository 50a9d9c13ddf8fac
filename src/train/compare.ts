/**
 * Trains attention variants side by side on the same text (identical non-attention architecture,
 * data order, token budget and seed) and measures, per variant: parameters, KV-cache bytes per token
 * (measured from the cache and from the formula), validation loss / perplexity / bits per character,
 * training throughput, prefill latency and decode speed at a stated context, and a greedy sample.
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
import { EvalRecord, StepRecord, train } from './trainer.js';
import { evaluate } from './evaluate.js';
import { directoryCheckpoint } from './checkpoint.js';
import {
  COMPARE_PRESETS, ComparePreset, TokenizerKind, VariantName, estimateTrainingBytes, makeTokenizer, variantConfig,
} from './presets.js';

export {
  COMPARE_PRESETS, VARIANTS, estimateTrainingBytes, makeTokenizer, variantConfig,
  type ComparePreset, type TokenizerKind, type VariantName,
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
  // Checkpoint folders are checked before any training, so a bad --checkpoint-dir fails at once.
  const checkpoints = await Promise.all(variants.map((v) => (options.checkpointDir
    ? directoryCheckpoint(path.join(options.checkpointDir, v)) : Promise.resolve(undefined))));
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
        checkpoint: checkpoints[index],
        checkpointExtra: { tokenizer: tokenizer.toJSON(), variant, preset: presetName, settings: p },
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
    machine: machine(),
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

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return { platform: `${os.platform()} ${os.arch()}`, cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1) };
}
