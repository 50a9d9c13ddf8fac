/**
 * Import of PyTorch / Hugging Face causal-LM checkpoints into a `CausalLM`: Llama-style GQA,
 * DeepSeek-V3-style MLA (dense MLPs) and the GTA authors' `GTAForCausalLM` layout. The model config
 * comes from the checkpoint's `config.json`; weights from safetensors or a JSON of arrays.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { CausalLMConfig, resolveCausalLMConfig } from '../models/config.js';
import { AttentionConfig } from '../layers/decoder_block.js';
import { importTorchWeights, TorchTensorLike, torchWeightSpecs } from './torch_weights.js';
import { detectHFMechanism, hfInt as int, hfMechanismOf } from './hf_mechanisms.js';
import type { AttentionKind } from '../mechanisms/kinds.js';
import { hfTensorEntries } from './hf_shapes.js';

export { DEEPSEEK_LATENT_EPSILON } from './hf_mechanisms.js';

type HFConfig = Record<string, unknown>;

/** The mechanism a config describes: GTA (num_query_heads + value_dim), MLA (kv_lora_rank) or GQA. */
export function detectMechanism(hf: HFConfig): AttentionKind {
  return detectHFMechanism(hf);
}

/** Maps a Hugging Face config (Llama, DeepSeek-V3 dense, GTA) to a `CausalLMConfig`. */
export function causalLMConfigFromHF(hf: HFConfig, weightNames: string[] = []): CausalLMConfig {
  if (hf.hidden_act !== undefined && hf.hidden_act !== 'silu')
    throw new ValueError(`HF config: hidden_act ${JSON.stringify(hf.hidden_act)} is not supported (silu only).`);
  if (hf.mlp_bias === true) throw new ValueError('HF config: mlp_bias is not supported.');
  if (hf.rope_scaling !== undefined && hf.rope_scaling !== null) throw new ValueError('HF config: rope_scaling is not supported.');
  if (hf.rope_interleave === true) throw new ValueError('HF config: interleaved RoPE (rope_interleave) is not supported.');
  const hidden = int(hf, 'hidden_size');
  const heads = int(hf, 'num_attention_heads');
  const eps = (hf.rms_norm_eps as number | undefined) ?? 1e-6;
  const attention: AttentionConfig = hfMechanismOf(detectMechanism(hf)).read({
    hf,
    hiddenSize: hidden,
    numHeads: heads,
    rope: { ropeMaxWavelength: (hf.rope_theta as number | undefined) ?? 10000 },
    hasTensor: (suffix) => weightNames.some((n) => n.endsWith(suffix)),
    namesKnown: weightNames.length > 0,
  });
  return {
    vocabSize: int(hf, 'vocab_size'),
    hiddenSize: hidden,
    numLayers: int(hf, 'num_hidden_layers'),
    intermediateSize: int(hf, 'intermediate_size'),
    maxSequenceLength: int(hf, 'max_position_embeddings', 2048),
    normEpsilon: eps,
    tieWordEmbeddings: hf.tie_word_embeddings === true,
    attention,
  };
}

/** Buffers that checkpoints may carry and that the model does not use. */
const IGNORED = /(rotary_emb\.inv_freq|\.masked_bias|\.attn\.bias)$/;

/** Writes a checkpoint's tensors (HF names) into `lm`. Fails on missing, mis-shaped or unused tensors. */
export function importHFWeights(lm: CausalLM, tensors: Record<string, TorchTensorLike>): void {
  const shapeOf = (v: TorchTensorLike) => (v instanceof tf.Tensor ? v.shape : v.shape);
  const used = new Set<string>();
  const take = (name: string): TorchTensorLike => {
    const v = tensors[name];
    if (v === undefined) throw new ValueError(`HF checkpoint: ${name} is missing.`);
    used.add(name);
    return v;
  };
  const writeMatrix = (variable: tf.LayerVariable, name: string, transpose: boolean) => {
    const v = take(name);
    const [r, c] = shapeOf(v);
    const expected = transpose ? [variable.shape[1], variable.shape[0]] : variable.shape;
    if (r !== expected[0] || c !== expected[1]) {
      throw new ValueError(`HF checkpoint: ${name} has shape [${shapeOf(v)}], expected [${expected}].`);
    }
    tf.tidy(() => {
      const t = v instanceof tf.Tensor ? v : tf.tensor2d(Float32Array.from(v.data), [r, c]);
      variable.write(transpose ? tf.transpose(t) : t);
    });
  };
  writeMatrix(lm.embedding.embeddings, 'model.embed_tokens.weight', false);
  lm.blocks.forEach((block, i) => {
    const prefix = `model.layers.${i}.`;
    const local = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)));
    importTorchWeights(block, local, { prefix, strict: false });
    for (const s of torchWeightSpecs(block)) used.add(prefix + s.torchName);
  });
  importTorchWeights(lm.finalNorm, { weight: take('model.norm.weight') });
  if (lm.head) writeMatrix(lm.head.weight, 'lm_head.weight', true);
  else if (tensors['lm_head.weight'] !== undefined) used.add('lm_head.weight'); // tied: a copy of the embeddings
  const unused = Object.keys(tensors).filter((k) => !used.has(k) && !IGNORED.test(k));
  if (unused.length > 0)
    throw new ValueError(
      `HF checkpoint: tensors not used by the model: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', ...' : ''}.`,
    );
}

function torchShape(name: string, v: TorchTensorLike): number[] {
  const shape = v instanceof tf.Tensor ? v.shape : (v as { shape?: unknown } | null)?.shape;
  if (!Array.isArray(shape)) throw new ValueError(`HF checkpoint: ${name} must be a tf.Tensor or {shape, data}.`);
  return shape as number[];
}

function checkTensor(name: string, v: TorchTensorLike | undefined, expected: number[]): void {
  if (v === undefined) throw new ValueError(`HF checkpoint: ${name} is missing (expected shape [${expected}] from the config).`);
  const shape = torchShape(name, v);
  if (shape.length !== expected.length || shape.some((d, k) => d !== expected[k])) {
    throw new ValueError(`HF checkpoint: ${name} has shape [${shape}] but the config needs [${expected}].`);
  }
  if (!(v instanceof tf.Tensor)) {
    const size = expected.reduce((a, b) => a * b, 1);
    const n = (v as { data?: ArrayLike<number> }).data?.length;
    if (n !== size) throw new ValueError(`HF checkpoint: ${name} has ${n} values but shape [${shape}] needs ${size}.`);
  }
}

/**
 * Checks a checkpoint's tensors against what `config` needs, without creating any weights: every
 * tensor present with the shape the config implies (names listed by `hfTensorEntries`), and none left
 * unused (besides buffers the model ignores and a tied `lm_head.weight` copy). Throws a `ValueError`
 * naming the first tensor that does not fit.
 */
export function checkHFTensors(config: CausalLMConfig, tensors: Record<string, TorchTensorLike>): void {
  resolveCausalLMConfig(config); // the config's own rules first (positive sizes, valid attention arguments)
  const get = (name: string) => (Object.hasOwn(tensors, name) ? tensors[name] : undefined);
  const used = new Set<string>();
  for (const [name, shape] of hfTensorEntries(config)) {
    checkTensor(name, get(name), shape);
    used.add(name);
  }
  if (config.tieWordEmbeddings !== false && get('lm_head.weight') !== undefined) {
    checkTensor('lm_head.weight', get('lm_head.weight'), [config.vocabSize, config.hiddenSize]);
    used.add('lm_head.weight');
  }
  const unused = Object.keys(tensors).filter((k) => !used.has(k) && !IGNORED.test(k));
  if (unused.length > 0)
    throw new ValueError(
      `HF checkpoint: tensors not used by the model: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', ...' : ''}.`,
    );
}

/**
 * Builds a `CausalLM` from an HF config and its tensors. The tensors are checked against the config
 * (`checkHFTensors`) before the model is created.
 */
export function causalLMFromHF(hfConfig: HFConfig, tensors: Record<string, TorchTensorLike>): CausalLM {
  const config = causalLMConfigFromHF(hfConfig, Object.keys(tensors));
  checkHFTensors(config, tensors);
  const lm = CausalLM.create(config);
  try {
    importHFWeights(lm, tensors);
  } catch (e) {
    lm.dispose();
    throw e;
  }
  return lm;
}
