/**
 * How each attention mechanism appears in a Hugging Face `config.json`: how to recognise it, how to read
 * its `AttentionConfig` from the config, and which keys an export writes (with the architecture it
 * targets). One entry per mechanism kind; `hf_checkpoint.ts` and `hf_export.ts` look entries up here
 * instead of matching kinds or layer classes.
 *
 * - GQA / MHA / MQA: Llama (`LlamaForCausalLM`, model_type `llama`);
 * - MLA: DeepSeek-V3 with dense MLPs (`DeepseekV3ForCausalLM`, rotate-half RoPE);
 * - GTA: the authors' `GTAForCausalLM` (plm-team/GTA; model_type `llama` with `num_query_heads`, ...).
 */
import { ValueError } from '../utils/errors.js';
import type { AttentionKind } from '../mechanisms/kinds.js';
import { ATTENTION_KINDS } from '../mechanisms/kinds.js';
import type { AttentionConfig, MECHANISMS } from '../mechanisms/registry.js';

/**
 * The epsilon of DeepSeek-V3's latent norms (`q_a_layernorm`, `kv_a_layernorm`): transformers builds them
 * with its RMSNorm default, 1e-6, whatever `rms_norm_eps` says (that one is for the blocks' norms).
 */
export const DEEPSEEK_LATENT_EPSILON = 1e-6;

/** A Hugging Face `config.json` object. */
export type HFConfig = Record<string, unknown>;

/** What reading an attention config needs besides the HF config. */
export interface HFReadContext {
  hf: HFConfig;
  hiddenSize: number;
  /** `num_attention_heads`. */
  numHeads: number;
  /** RoPE arguments every mechanism takes. */
  rope: { ropeMaxWavelength: number };
  /** Whether the checkpoint has a tensor whose name ends with `suffix` (false when no names are known). */
  hasTensor: (suffix: string) => boolean;
  /** Whether the tensor names are known. */
  namesKnown: boolean;
}

type ConfigOf<K extends AttentionKind> = Extract<AttentionConfig, { kind: K }>;
type LayerOf<K extends AttentionKind> = InstanceType<(typeof MECHANISMS)[K]['layerClass']>;

/** One mechanism's Hugging Face form. */
export interface HFMechanism<K extends AttentionKind> {
  /** Whether an HF config describes this mechanism; absent for the fallback (GQA: plain Llama). */
  detect?: (hf: HFConfig) => boolean;
  /** The attention config an HF config describes. */
  read(ctx: HFReadContext): ConfigOf<K>;
  /** The config keys (architecture included) an export writes; throws for settings it cannot express. */
  write(layer: LayerOf<K>, owner: string): Record<string, unknown>;
  /**
   * Arguments that turn on every bias the target architecture always has, when `layer` lacks some (the
   * export writes those as zeros); null when nothing is missing.
   */
  allBiases?(layer: LayerOf<K>): Partial<ConfigOf<K>> | null;
}

/** An integer field of an HF config (`fallback` when absent). */
export function hfInt(hf: HFConfig, key: string, fallback?: number): number {
  const v = hf[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new ValueError(`HF config: ${key} must be an integer, got ${JSON.stringify(hf[key])}.`);
  return v;
}

const GQA_HF: HFMechanism<'gqa'> = {
  read: ({ hf, hiddenSize, numHeads, rope }) => ({
    kind: 'gqa',
    headDim: hfInt(hf, 'head_dim', hiddenSize / numHeads),
    numQueryHeads: numHeads,
    numKeyValueHeads: hfInt(hf, 'num_key_value_heads', numHeads),
    useBias: hf.attention_bias === true,
    ...rope,
  }),
  write: (layer, owner) => {
    if (!layer.useRope) {
      throw new ValueError(
        `${owner}: useRope must be true: Llama always applies RoPE, so a RoPE-free GQA model has no ` + 'Hugging Face equivalent.',
      );
    }
    return {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      num_attention_heads: layer.numQueryHeads,
      num_key_value_heads: layer.numKeyValueHeads,
      head_dim: layer.headDim,
      attention_bias: layer.useBias || layer.useOutputBias,
      pretraining_tp: 1,
    };
  },
  // Llama's attention_bias covers q, k, v and o together.
  allBiases: (layer) => (layer.useBias !== layer.useOutputBias ? { useBias: true, useOutputBias: true } : null),
};

const GTA_HF: HFMechanism<'gta'> = {
  detect: (hf) => hf.num_query_heads !== undefined && hf.value_dim !== undefined,
  read: ({ hf, hiddenSize, numHeads, rope, hasTensor, namesKnown }) => {
    const headDim = hfInt(hf, 'head_dim', hiddenSize / numHeads);
    for (const k of ['query_dim', 'key_dim']) {
      if (hf[k] !== undefined && hf[k] !== headDim) throw new ValueError(`HF config: ${k} must equal head_dim (${headDim}).`);
    }
    return {
      kind: 'gta',
      numHeads,
      headDim,
      numQueryHeads: hfInt(hf, 'num_query_heads'),
      numKeyHeads: hfInt(hf, 'num_key_heads'),
      numValueHeads: hfInt(hf, 'num_value_heads'),
      valueDim: hfInt(hf, 'value_dim'),
      useBias: namesKnown ? hasTensor('self_attn.q_proj.bias') : true,
      ...rope,
    };
  },
  write: (layer) => ({
    architectures: ['GTAForCausalLM'],
    model_type: 'llama',
    num_attention_heads: layer.numHeads,
    head_dim: layer.headDim,
    num_query_heads: layer.numQueryHeads,
    query_dim: layer.headDim,
    num_key_heads: layer.numKeyHeads,
    key_dim: layer.headDim,
    num_value_heads: layer.numValueHeads,
    value_dim: layer.valueDim,
    attention_bias: false,
    pretraining_tp: 1, // the authors' code hard-codes its biases and ignores attention_bias
  }),
  // The authors' code always has q/k/v/g biases.
  allBiases: (layer) => (layer.useBias ? null : { useBias: true, valueDecoderInitializer: 'zeros' }),
};

const MLA_HF: HFMechanism<'mla'> = {
  detect: (hf) => hf.kv_lora_rank !== undefined,
  read: ({ hf, numHeads, rope }) => ({
    kind: 'mla',
    numHeads,
    qLoraRank: (hf.q_lora_rank as number | null | undefined) ?? null,
    kvLoraRank: hfInt(hf, 'kv_lora_rank'),
    qkNopeHeadDim: hfInt(hf, 'qk_nope_head_dim'),
    qkRopeHeadDim: hfInt(hf, 'qk_rope_head_dim'),
    vHeadDim: hfInt(hf, 'v_head_dim'),
    rmsNormEpsilon: DEEPSEEK_LATENT_EPSILON,
    useBias: hf.attention_bias === true,
    ...rope,
  }),
  write: (layer, owner) => {
    if (layer.rmsNormEpsilon !== DEEPSEEK_LATENT_EPSILON) {
      throw new ValueError(
        `${owner}: MLA rmsNormEpsilon must be ${DEEPSEEK_LATENT_EPSILON}: transformers' DeepSeek-V3 ` +
          `uses that epsilon for q_a_layernorm and kv_a_layernorm, got ${layer.rmsNormEpsilon}.`,
      );
    }
    return {
      architectures: ['DeepseekV3ForCausalLM'],
      model_type: 'deepseek_v3',
      num_attention_heads: layer.numHeads,
      num_key_value_heads: layer.numHeads,
      q_lora_rank: layer.qLoraRank,
      kv_lora_rank: layer.kvLoraRank,
      qk_nope_head_dim: layer.qkNopeHeadDim,
      qk_rope_head_dim: layer.qkRopeHeadDim,
      v_head_dim: layer.vHeadDim,
      head_dim: layer.qkRopeHeadDim,
      attention_bias: layer.useBias,
      rope_interleave: false,
      // No mixture of experts and no multi-token prediction: every layer keeps its dense SwiGLU MLP.
      n_routed_experts: 0,
      n_shared_experts: 0,
      num_nextn_predict_layers: 0,
    };
  },
};

/** The HF form of each mechanism (a new kind is a compile error until it has one). */
export const HF_MECHANISMS: { readonly [K in AttentionKind]: HFMechanism<K> } = { gqa: GQA_HF, gta: GTA_HF, mla: MLA_HF };

/** An entry seen through the unions (for a kind known only at run time). */
export function hfMechanismOf(kind: AttentionKind): HFMechanism<AttentionKind> {
  return HF_MECHANISMS[kind] as unknown as HFMechanism<AttentionKind>;
}

/** The mechanism an HF config describes: the first whose `detect` accepts it, else the one without `detect`. */
export function detectHFMechanism(hf: HFConfig): AttentionKind {
  const detected = ATTENTION_KINDS.find((k) => HF_MECHANISMS[k].detect?.(hf) === true);
  if (detected !== undefined) return detected;
  return ATTENTION_KINDS.find((k) => HF_MECHANISMS[k].detect === undefined)!;
}
