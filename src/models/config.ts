/**
 * `CausalLMConfig`: one config object per model, a resolve step that checks it, an analytic parameter
 * count, and named presets (the GTA paper's model configurations and small ones for experiments).
 */
import { ValueError } from '../utils/errors.js';
import * as check from '../utils/errors.js';
import { MAX_ROPE_POSITIONS } from '../ops/rope.js';
import { AttentionConfig, createAttention } from '../layers/decoder_block.js';
import { AttentionSpec, attentionParams, kvCacheElementsPerToken } from '../analysis/costs.js';
import { mechanismOfConfig } from '../mechanisms/registry.js';

export interface CausalLMConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** SwiGLU hidden width. */
  intermediateSize: number;
  /** Longest sequence (prompt + generated) the model accepts. */
  maxSequenceLength: number;
  attention: AttentionConfig;
  /** Epsilon of every RMSNorm (blocks and final). Default 1e-6. */
  normEpsilon?: number;
  /** Share the embedding table with the output head. Default true. */
  tieWordEmbeddings?: boolean;
  /** Residual and attention dropout (training only). Default 0. */
  dropout?: number;
  seed?: number | null;
}

export type ResolvedCausalLMConfig = Required<Omit<CausalLMConfig, 'seed'>> & { seed: number | null };

/** Fills defaults and checks every field, naming the field and the rule on error. */
/** `maxSequenceLength`: a positive integer within RoPE's position limit. */
function maxPositions(owner: string, value: unknown): number {
  const n = check.positiveInt(owner, 'maxSequenceLength', value);
  if (n > MAX_ROPE_POSITIONS) {
    throw new ValueError(`${owner}: maxSequenceLength must be at most ${MAX_ROPE_POSITIONS} (the RoPE position limit), got ${n}.`);
  }
  return n;
}

export function resolveCausalLMConfig(config: CausalLMConfig): ResolvedCausalLMConfig {
  const owner = 'CausalLM';
  if (config === null || typeof config !== 'object') throw new ValueError(`${owner}: config must be an object.`);
  check.knownKeys(owner, config, [
    'vocabSize',
    'hiddenSize',
    'numLayers',
    'intermediateSize',
    'maxSequenceLength',
    'attention',
    'normEpsilon',
    'tieWordEmbeddings',
    'dropout',
    'seed',
  ]);
  const resolved: ResolvedCausalLMConfig = {
    vocabSize: check.positiveInt(owner, 'vocabSize', config.vocabSize),
    hiddenSize: check.positiveInt(owner, 'hiddenSize', config.hiddenSize),
    numLayers: check.positiveInt(owner, 'numLayers', config.numLayers),
    intermediateSize: check.positiveInt(owner, 'intermediateSize', config.intermediateSize),
    maxSequenceLength: maxPositions(owner, config.maxSequenceLength),
    attention: config.attention,
    normEpsilon: check.positiveNumber(owner, 'normEpsilon', config.normEpsilon, 1e-6),
    tieWordEmbeddings: check.bool(owner, 'tieWordEmbeddings', config.tieWordEmbeddings, true),
    dropout: check.rate(owner, 'dropout', config.dropout),
    seed: check.seed(owner, config.seed),
  };
  createAttention(resolved.attention); // validates the attention arguments (no weights are created)
  return resolved;
}

/** The analytic spec of an attention config (defaults as the layers apply them). */
export function attentionSpec(attention: AttentionConfig): AttentionSpec {
  return mechanismOfConfig(attention).specOfConfig(attention);
}

/** Parameters of the whole model: embeddings, blocks (attention, SwiGLU, two norms), final norm, untied head. */
export function causalLMParams(config: CausalLMConfig): number {
  const c = resolveCausalLMConfig(config);
  const h = c.hiddenSize;
  const block = attentionParams(attentionSpec(c.attention), h) + 3 * h * c.intermediateSize + 2 * h;
  return c.vocabSize * h + c.numLayers * block + h + (c.tieWordEmbeddings ? 0 : c.vocabSize * h);
}

/** KV-cache elements per token for the whole model (all layers). */
export function causalLMCacheElementsPerToken(config: CausalLMConfig): number {
  return config.numLayers * kvCacheElementsPerToken(attentionSpec(config.attention));
}

const d64 = { headDim: 64 };
const gqaBaseline = (h: number, kv: number): AttentionConfig => ({
  kind: 'gqa',
  ...d64,
  numQueryHeads: h,
  numKeyValueHeads: kv,
  useBias: true,
  useOutputBias: false,
});
const gtaConfig = (h: number, q: number, c: number, useBias = true): AttentionConfig => ({
  kind: 'gta',
  ...d64,
  numHeads: h,
  numQueryHeads: q,
  numKeyHeads: 1,
  numValueHeads: c,
  valueDim: 128,
  useBias,
});
const mlaConfig = (h: number, dc: number): AttentionConfig => ({
  kind: 'mla',
  numHeads: h,
  kvLoraRank: dc,
  qkNopeHeadDim: 64,
  qkRopeHeadDim: 32,
  vHeadDim: 64,
});

const paper160 = {
  vocabSize: 32000,
  hiddenSize: 768,
  numLayers: 24,
  intermediateSize: 1920,
  maxSequenceLength: 4096,
  tieWordEmbeddings: true,
};
const paper500 = {
  vocabSize: 32000,
  hiddenSize: 1280,
  numLayers: 24,
  intermediateSize: 3584,
  maxSequenceLength: 4096,
  tieWordEmbeddings: false,
};
const paper1b = {
  vocabSize: 128256,
  hiddenSize: 1280,
  numLayers: 54,
  intermediateSize: 3584,
  maxSequenceLength: 2048,
  tieWordEmbeddings: true,
  normEpsilon: 1e-5,
};

/**
 * The GTA paper's model configurations (docs/ATTENTION_SPEC.md section 5.2; Table 5 parameter counts in units of 2^20).
 * Baseline internals inferred from the counts: 160M/500M MHA and GQA have q/k/v biases and no output
 * bias; MLA uses d_nope = d_v = 64, d_rope = 32 and no query compression; GQA-1B has no biases.
 */
export const PAPER_PRESETS: Record<string, { config: CausalLMConfig; table5: number }> = {
  '160M-MHA': { config: { ...paper160, attention: gqaBaseline(12, 12) }, table5: 178.78 },
  '160M-MLA': { config: { ...paper160, attention: mlaConfig(12, 256) }, table5: 172.54 },
  '160M-GQA': { config: { ...paper160, attention: gqaBaseline(12, 3) }, table5: 158.5 },
  '160M-GTA1': { config: { ...paper160, attention: gtaConfig(12, 3, 1) }, table5: 160.75 },
  '160M-GTA2': { config: { ...paper160, attention: gtaConfig(12, 6, 1) }, table5: 164.13 },
  '500M-MHA': { config: { ...paper500, attention: gqaBaseline(20, 20) }, table5: 543.27 },
  '500M-MLA': { config: { ...paper500, attention: mlaConfig(20, 320) }, table5: 516.0 },
  '500M-GQA': { config: { ...paper500, attention: gqaBaseline(20, 4) }, table5: 483.23 },
  '500M-GTA3': { config: { ...paper500, attention: gtaConfig(20, 5, 1) }, table5: 486.98 },
  '500M-GTA4': { config: { ...paper500, attention: gtaConfig(20, 10, 2) }, table5: 500.11 },
  'GQA-1B': {
    config: { ...paper1b, attention: { kind: 'gqa', ...d64, numQueryHeads: 20, numKeyValueHeads: 5, useBias: false } },
    table5: 1076.38,
  },
  'GTA-1B': { config: { ...paper1b, attention: gtaConfig(20, 5, 1) }, table5: 1076.48 },
};

/** Attention variants for a width of `heads * 64`-style small models, all with head dim `headDim`. */
export function smallAttention(kind: 'gta' | 'gqa' | 'mla' | 'mha' | 'mqa', numHeads: number, headDim: number): AttentionConfig {
  switch (kind) {
    case 'mha':
      return { kind: 'gqa', headDim, numQueryHeads: numHeads, numKeyValueHeads: numHeads, useBias: false };
    case 'mqa':
      return { kind: 'gqa', headDim, numQueryHeads: numHeads, numKeyValueHeads: 1, useBias: false };
    case 'gqa':
      return { kind: 'gqa', headDim, numQueryHeads: numHeads, numKeyValueHeads: Math.max(1, numHeads / 4), useBias: false };
    // GTA as in the paper: numHeads/4 shared maps, one key head, one latent of 2*headDim (r = 2).
    case 'gta':
      return {
        kind: 'gta',
        headDim,
        numHeads,
        numQueryHeads: Math.max(1, numHeads / 4),
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: (numHeads * headDim) / (2 * Math.max(1, numHeads / 4)),
      };
    // MLA as the paper's baselines: latent 4*headDim, RoPE dim headDim/2, nope = v = headDim.
    case 'mla':
      return { kind: 'mla', numHeads, kvLoraRank: 4 * headDim, qkNopeHeadDim: headDim, qkRopeHeadDim: headDim / 2, vHeadDim: headDim };
  }
}

/** Small presets for experiments: `tiny` (tests, seconds) and `small` (minutes on a CPU). */
export function smallPreset(size: 'tiny' | 'small', kind: 'gta' | 'gqa' | 'mla' | 'mha' | 'mqa', vocabSize: number): CausalLMConfig {
  const dims =
    size === 'tiny'
      ? { hiddenSize: 64, numLayers: 2, intermediateSize: 128, maxSequenceLength: 256, heads: 4, headDim: 16 }
      : { hiddenSize: 256, numLayers: 4, intermediateSize: 640, maxSequenceLength: 1024, heads: 8, headDim: 32 };
  return {
    vocabSize,
    hiddenSize: dims.hiddenSize,
    numLayers: dims.numLayers,
    intermediateSize: dims.intermediateSize,
    maxSequenceLength: dims.maxSequenceLength,
    attention: smallAttention(kind, dims.heads, dims.headDim),
  };
}
