/**
 * Export of a `CausalLM` as a Hugging Face checkpoint: the `config.json` object and torch-named,
 * torch-shaped float32 tensors, in exactly the layouts that `causalLMFromHF` reads:
 *
 * - GQA / MHA / MQA as Llama (`LlamaForCausalLM`, model_type `llama`);
 * - MLA as DeepSeek-V3 with a dense MLP in every layer (`DeepseekV3ForCausalLM`, model_type
 *   `deepseek_v3`, rotate-half RoPE: `rope_interleave: false`, `first_k_dense_replace` = all layers);
 * - GTA as the authors' `GTAForCausalLM` (plm-team/GTA: model_type `llama` with `num_query_heads`,
 *   `num_key_heads`, `num_value_heads`, `value_dim`, ...). transformers does not ship that class: load
 *   it with the authors' modeling code.
 *
 * ```ts
 * const { config, tensors } = exportHF(lm);
 * writeFileSync('out/config.json', JSON.stringify(config, null, 2));
 * writeFileSync('out/model.safetensors', serializeSafetensors(tensors));
 * ```
 *
 * Where a target architecture has a bias that the model lacks, the bias is written as zeros, which
 * computes the same function: Llama's `attention_bias` covers q, k, v and o together (so GQA with
 * `useBias !== useOutputBias` gets zeros for the missing ones), and the authors' GTA code always has
 * q/k/v/g biases (so GTA with `useBias: false` gets zero biases). Settings that the target cannot
 * express at all are rejected with a `ValueError`. transformers 5 also refuses a Llama config whose
 * hidden_size is not a multiple of num_attention_heads (even with head_dim set), so such GQA exports
 * load in transformers 4 and in `causalLMFromHF` only.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { AttentionConfig, TransformerDecoderBlock, createAttention } from '../layers/decoder_block.js';
import { AttentionLayer } from '../layers/attention_base.js';
import { buildLayer } from '../layers/layer_utils.js';
import { mechanismOfLayer } from '../mechanisms/registry.js';
import type { AttentionKind } from '../mechanisms/kinds.js';
import { exportTorchWeights, torchWeightSpecs } from './torch_weights.js';
import { F32Tensor } from './safetensors_write.js';
import { hfMechanismOf } from './hf_mechanisms.js';

export type { F32Tensor } from './safetensors_write.js';

/** A Hugging Face checkpoint in memory: `config.json`'s object and the state dict's tensors. */
export interface HFExport {
  config: Record<string, unknown>;
  tensors: Record<string, F32Tensor>;
}

/** Token ids to record in the config (the model itself has no special tokens). Default null. */
export interface ExportHFOptions {
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  padTokenId?: number | null;
}

const OWNER = 'exportHF';

/** A copy of a float32 tensor's values (dataSync may return the backend's own buffer). */
function f32(t: tf.Tensor): F32Tensor {
  return { dtype: 'F32', shape: [...t.shape], data: (t.dataSync() as Float32Array).slice() };
}

function tokenId(name: string, value: number | null | undefined, vocabSize: number): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isInteger(value) || value < 0 || value >= vocabSize) {
    throw new ValueError(`${OWNER}: options.${name} must be null or an integer in [0, ${vocabSize}), got ${JSON.stringify(value)}.`);
  }
  return value;
}

/** Rejects RoPE settings that none of the target configs can express (causalLMFromHF reads no rope_scaling). */
function checkRope(layer: AttentionLayer): void {
  if (layer.ropeScalingFactor !== 1) {
    throw new ValueError(
      `${OWNER}: ropeScalingFactor must be 1 (the exported configs carry no rope_scaling), ` + `got ${layer.ropeScalingFactor}.`,
    );
  }
}

/** The mechanism of a block's attention layer. */
function mechanismKind(layer: AttentionLayer): AttentionKind {
  const mechanism = mechanismOfLayer(layer);
  if (mechanism === null) throw new ValueError(`${OWNER}: unsupported attention layer ${layer.getClassName()}.`);
  return mechanism.kind;
}

/** The config keys of the attention mechanism (and its architecture), from the built layer. */
function attentionConfig(layer: AttentionLayer): Record<string, unknown> {
  return hfMechanismOf(mechanismKind(layer)).write(layer as never, OWNER);
}

/** Adds the keys every architecture shares, and the MLA rule that depends on the layer count. */
function fullConfig(lm: CausalLM, layer: AttentionLayer, options: ExportHFOptions): Record<string, unknown> {
  const c = lm.config;
  const config: Record<string, unknown> = {
    ...attentionConfig(layer),
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    max_position_embeddings: c.maxSequenceLength,
    rms_norm_eps: c.normEpsilon,
    rope_theta: layer.ropeMaxWavelength,
    rope_scaling: null,
    rope_parameters: { rope_type: 'default', rope_theta: layer.ropeMaxWavelength },
    hidden_act: 'silu',
    mlp_bias: false,
    attention_dropout: 0,
    initializer_range: 0.02,
    // transformers 5 reads `dtype` (and warns on `torch_dtype` alone); earlier versions read `torch_dtype`.
    tie_word_embeddings: c.tieWordEmbeddings,
    use_cache: true,
    torch_dtype: 'float32',
    dtype: 'float32',
    bos_token_id: tokenId('bosTokenId', options.bosTokenId, c.vocabSize),
    eos_token_id: tokenId('eosTokenId', options.eosTokenId, c.vocabSize),
    pad_token_id: tokenId('padTokenId', options.padTokenId, c.vocabSize),
  };
  if (config.model_type === 'deepseek_v3') config.first_k_dense_replace = c.numLayers;
  return Object.fromEntries(
    Object.keys(config)
      .sort()
      .map((k) => [k, config[k]]),
  );
}

/**
 * Biases that the target architecture has and the block's attention lacks, as zeros (names relative to
 * `self_attn.`). They come from a twin layer built with every bias on, so names and shapes are the layers' own.
 */
function zeroBiases(block: TransformerDecoderBlock, inputDim: number): Record<string, F32Tensor> {
  const layer = block.attention;
  const allOn = hfMechanismOf(mechanismKind(layer)).allBiases?.(layer as never) ?? null;
  if (allOn === null) return {};
  const have = new Set(torchWeightSpecs(layer).map((s) => s.torchName));
  const twinConfig = { ...block.attentionConfig, ...allOn, seed: null, kernelInitializer: 'zeros' } as AttentionConfig;
  const twin = createAttention(twinConfig, { name: 'bias_twin', useCausalMask: true });
  const out: Record<string, F32Tensor> = {};
  try {
    buildLayer(twin, [1, 1, inputDim]);
    for (const s of torchWeightSpecs(twin)) {
      if (!have.has(s.torchName)) out[s.torchName] = { dtype: 'F32', shape: [...s.torchShape], data: new Float32Array(s.torchShape[0]) };
    }
  } finally {
    twin.dispose();
  }
  return out;
}

/** Every block's tensors under `model.layers.{i}.`, with the zero biases the target needs. */
function blockTensors(lm: CausalLM): Record<string, F32Tensor> {
  const out: Record<string, F32Tensor> = {};
  const zeros = zeroBiases(lm.blocks[0], lm.config.hiddenSize);
  lm.blocks.forEach((block, i) => {
    const prefix = `model.layers.${i}.`;
    const exported = exportTorchWeights(block, prefix);
    try {
      for (const [name, t] of Object.entries(exported)) out[name] = f32(t);
    } finally {
      tf.dispose(Object.values(exported));
    }
    for (const [name, z] of Object.entries(zeros)) out[`${prefix}self_attn.${name}`] = { ...z, data: z.data.slice() };
  });
  return out;
}

/** Rejects blocks that the target configs cannot describe (they hold one setting for every layer). */
function checkBlocks(lm: CausalLM): void {
  for (const block of lm.blocks) {
    if (block.mlp.useBias) throw new ValueError(`${OWNER}: MLP biases cannot be exported (the configs have mlp_bias false).`);
    checkRope(block.attention);
  }
}

/**
 * The Hugging Face checkpoint of `lm`: `config` (the `config.json` object, with dtype float32)
 * and `tensors` (float32, torch names and `[out, in]` Linear layout; tied models have no
 * `lm_head.weight`). `serializeSafetensors(tensors)` gives `model.safetensors`. The tensors are copies:
 * later training does not change them.
 */
export function exportHF(lm: CausalLM, options: ExportHFOptions = {}): HFExport {
  if (!(lm instanceof CausalLM)) throw new ValueError(`${OWNER}: lm must be a CausalLM.`);
  if (options === null || typeof options !== 'object') throw new ValueError(`${OWNER}: options must be an object.`);
  checkBlocks(lm);
  const config = fullConfig(lm, lm.blocks[0].attention, options);
  const tensors: Record<string, F32Tensor> = {};
  tensors['model.embed_tokens.weight'] = f32(lm.embedding.embeddings.read());
  Object.assign(tensors, blockTensors(lm));
  const norm = exportTorchWeights(lm.finalNorm, 'model.norm.');
  try {
    tensors['model.norm.weight'] = f32(norm['model.norm.weight']);
  } finally {
    tf.dispose(Object.values(norm));
  }
  if (lm.head) {
    const head = tf.tidy(() => tf.transpose(lm.head!.weight.read())); // [D, V] -> [V, D]
    try {
      tensors['lm_head.weight'] = f32(head);
    } finally {
      head.dispose();
    }
  }
  return { config, tensors };
}
