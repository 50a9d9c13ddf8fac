/**
 * The attention variants that `compare` trains and their presets: model sizes and token budgets, one
 * model config per variant (identical except for the attention), and the tokenizers. Works everywhere
 * (the browser demo uses it).
 */
import { ValueError } from '../utils/errors.js';
import { CausalLMConfig, smallAttention } from '../models/config.js';
import { ByteTokenizer, CharTokenizer, Tokenizer } from '../data/tokenizer.js';
import { BpeTokenizer } from '../data/bpe.js';

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
 * Every preset has 12 heads, the head layout of the GTA paper's 160M models (docs/ATTENTION_SPEC.md
 * section 5.2): GQA has 3 key/value heads (4 query heads per KV head) and GTA 3 shared attention maps
 * (`n_q = 3`), one key head and one latent value head of `2 * headDim` (`r = 2`), so GTA caches 0.5x
 * GQA's bytes per token and 0.125x MHA's; MLA has a latent of `4 * headDim` plus a RoPE key of
 * `headDim / 2` (0.75x GQA's cache). `quick` (width 96, head dim 8) is a smoke test of seconds to a
 * minute; `default` (width 144, head dim 12, 400 steps) about 8 minutes with tfjs-node on 2 cores;
 * `small` (width 192, head dim 16, 2M tokens per variant) roughly 15 minutes (docs/COMPARISON.md says
 * how these were measured or estimated).
 */
export const COMPARE_PRESETS: Record<'quick' | 'default' | 'small', ComparePreset> = {
  quick: {
    hiddenSize: 96,
    numLayers: 2,
    numHeads: 12,
    intermediateSize: 240,
    batchSize: 8,
    sequenceLength: 64,
    steps: 40,
    learningRate: 4e-3,
    evalEvery: 20,
    evalBatches: 4,
    finalEvalBatches: 8,
    speedContext: 64,
    speedTokens: 16,
    sampleTokens: 60,
  },
  default: {
    hiddenSize: 144,
    numLayers: 4,
    numHeads: 12,
    intermediateSize: 384,
    batchSize: 16,
    sequenceLength: 128,
    steps: 400,
    learningRate: 3e-3,
    evalEvery: 100,
    evalBatches: 8,
    finalEvalBatches: 32,
    speedContext: 256,
    speedTokens: 64,
    sampleTokens: 200,
  },
  small: {
    hiddenSize: 192,
    numLayers: 4,
    numHeads: 12,
    intermediateSize: 512,
    batchSize: 16,
    sequenceLength: 128,
    steps: 1000,
    learningRate: 2.5e-3,
    evalEvery: 100,
    evalBatches: 16,
    finalEvalBatches: 0,
    speedContext: 512,
    speedTokens: 64,
    sampleTokens: 300,
  },
};

export type TokenizerKind = 'char' | 'byte' | 'bpe';

export async function makeTokenizer(kind: TokenizerKind, text: string, bpeVocabSize = 1024): Promise<Tokenizer> {
  switch (kind) {
    case 'char':
      return CharTokenizer.fromText(text);
    case 'byte':
      return new ByteTokenizer();
    case 'bpe':
      return BpeTokenizer.train(text, bpeVocabSize);
    default:
      throw new ValueError(`tokenizer must be 'char', 'byte' or 'bpe', got ${JSON.stringify(kind)}.`);
  }
}

/**
 * The model config of a variant under a preset (identical except for the attention, which is
 * `smallAttention(variant, numHeads, hiddenSize / numHeads)`). `numHeads` must be a multiple of 4 (GQA
 * gets `numHeads / 4` KV heads and GTA `numHeads / 4` maps, the paper's ratio) and the head dim a
 * multiple of 4 (RoPE rotates pairs; MLA's RoPE part is half a head).
 */
export function variantConfig(variant: VariantName, p: ComparePreset, vocabSize: number, seed: number): CausalLMConfig {
  if (!VARIANTS.includes(variant)) {
    throw new ValueError(`unknown variant ${JSON.stringify(variant)}; choose from ${VARIANTS.join(', ')}.`);
  }
  if (!Number.isInteger(p.numHeads) || p.numHeads < 4 || p.numHeads % 4 !== 0) {
    throw new ValueError(
      `numHeads must be a positive multiple of 4 (GQA and GTA use numHeads / 4 key/value heads or maps), got ${p.numHeads}.`,
    );
  }
  if (p.hiddenSize % p.numHeads !== 0) throw new ValueError(`hiddenSize ${p.hiddenSize} must be divisible by numHeads ${p.numHeads}.`);
  const headDim = p.hiddenSize / p.numHeads;
  if (headDim % 4 !== 0) {
    throw new ValueError(
      `hiddenSize / numHeads (the head dim) must be a multiple of 4 (RoPE rotates pairs; MLA's RoPE part is ` +
        `half a head), got ${p.hiddenSize} / ${p.numHeads} = ${headDim}.`,
    );
  }
  return {
    vocabSize,
    hiddenSize: p.hiddenSize,
    numLayers: p.numLayers,
    intermediateSize: p.intermediateSize,
    maxSequenceLength: Math.max(p.sequenceLength, p.speedContext + p.speedTokens + 1, 64 + p.sampleTokens),
    attention: smallAttention(variant, p.numHeads, headDim),
    seed,
  };
}

/** Rough bytes needed to train a config: weights + grads + 2 Adam moments, plus activations and scores. */
export function estimateTrainingBytes(config: CausalLMConfig, p: ComparePreset, params: number): number {
  const tokens = p.batchSize * p.sequenceLength;
  const activations = tokens * config.numLayers * (12 * config.hiddenSize + 3 * config.intermediateSize) * 4;
  const scores = 3 * p.batchSize * p.numHeads * p.sequenceLength * p.sequenceLength * config.numLayers * 4;
  return 4 * params * 4 + activations + scores + tokens * config.vocabSize * 4 * 3;
}
