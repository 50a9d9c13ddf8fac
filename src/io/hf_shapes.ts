/**
 * The Hugging Face tensor names and torch shapes a `CausalLM` of a given config needs, computed from
 * the config alone (no weights are created). `causalLMFromHF` checks a checkpoint against them before
 * it builds the model, so a config that does not match its tensors (say `vocab_size: 2e6` with 97-row
 * embeddings) fails at once instead of after allocating the model it describes.
 *
 * The shapes follow the layers' `torchWeightSpecs()` (a test compares the two for every mechanism).
 */
import { ValueError } from '../utils/errors.js';
import type { CausalLMConfig } from '../models/config.js';
import { createAttention } from '../layers/decoder_block.js';
import { GroupedQueryAttention } from '../layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../layers/mla_attention.js';
import type { AttentionLayer } from '../layers/attention_base.js';

type Shapes = Array<[string, number[]]>;

function gqaShapes(a: GroupedQueryAttention, d: number): Shapes {
  const q = a.numQueryHeads * a.headDim;
  const kv = a.numKeyValueHeads * a.headDim;
  const out: Shapes = [['q_proj.weight', [q, d]], ['k_proj.weight', [kv, d]], ['v_proj.weight', [kv, d]], ['o_proj.weight', [d, q]]];
  if (a.useBias) out.push(['q_proj.bias', [q]], ['k_proj.bias', [kv]], ['v_proj.bias', [kv]]);
  if (a.useOutputBias) out.push(['o_proj.bias', [d]]);
  return out;
}

function gtaShapes(a: GroupedHeadLatentAttention, d: number): Shapes {
  const q = a.numQueryHeads * a.headDim;
  const k = a.numKeyHeads * a.headDim;
  const c = a.numValueHeads * a.valueDim;
  const w = a.width;
  const out: Shapes = [
    ['q_proj.weight', [q, d]], ['k_proj.weight', [k, d]], ['v_proj.weight', [c, d]], ['g_proj.weight', [w, d]],
    ['v_b_proj.weight', [a.expandRate * a.valueDim, a.numQueryHeads * a.valueDim]], ['o_proj.weight', [d, w]],
  ];
  if (a.useBias) out.push(['q_proj.bias', [q]], ['k_proj.bias', [k]], ['v_proj.bias', [c]], ['g_proj.bias', [w]]);
  return out;
}

function mlaShapes(a: MultiHeadLatentAttention, d: number): Shapes {
  const h = a.numHeads;
  const out: Shapes = [];
  if (a.qLoraRank === null) {
    out.push(['q_proj.weight', [h * a.qkHeadDim, d]]);
  } else {
    out.push(['q_a_proj.weight', [a.qLoraRank, d]]);
    if (a.useBias) out.push(['q_a_proj.bias', [a.qLoraRank]]);
    out.push(['q_a_layernorm.weight', [a.qLoraRank]], ['q_b_proj.weight', [h * a.qkHeadDim, a.qLoraRank]]);
  }
  out.push(['kv_a_proj_with_mqa.weight', [a.kvLoraRank + a.qkRopeHeadDim, d]]);
  if (a.useBias) out.push(['kv_a_proj_with_mqa.bias', [a.kvLoraRank + a.qkRopeHeadDim]]);
  out.push(['kv_a_layernorm.weight', [a.kvLoraRank]], ['kv_b_proj.weight', [h * (a.qkNopeHeadDim + a.vHeadDim), a.kvLoraRank]],
    ['o_proj.weight', [d, h * a.vHeadDim]]);
  if (a.useBias) out.push(['o_proj.bias', [d]]);
  return out;
}

function attentionShapes(a: AttentionLayer, d: number): Shapes {
  if (a instanceof GroupedQueryAttention) return gqaShapes(a, d);
  if (a instanceof GroupedHeadLatentAttention) return gtaShapes(a, d);
  if (a instanceof MultiHeadLatentAttention) return mlaShapes(a, d);
  throw new ValueError(`hfTensorShapes: unsupported attention layer ${a.constructor.name}.`);
}

/**
 * The tensors (HF name, torch shape) a `CausalLM` with `config` reads from a checkpoint, in order:
 * embeddings, each layer's, final norm, then `lm_head.weight` when the embeddings are untied (a tied
 * checkpoint may still carry it, as a copy of the embeddings). Lazy, so a check can stop at the first
 * mismatch whatever `numLayers` says.
 */
export function* hfTensorEntries(config: CausalLMConfig): Generator<[string, number[]]> {
  const d = config.hiddenSize;
  const i = config.intermediateSize;
  const attention = createAttention(config.attention); // resolves the arguments' defaults; creates no weights
  const perLayer: Shapes = [
    ['input_layernorm.weight', [d]],
    ...attentionShapes(attention, d).map(([n, s]): [string, number[]] => [`self_attn.${n}`, s]),
    ['post_attention_layernorm.weight', [d]],
    ['mlp.gate_proj.weight', [i, d]], ['mlp.up_proj.weight', [i, d]], ['mlp.down_proj.weight', [d, i]],
  ];
  yield ['model.embed_tokens.weight', [config.vocabSize, d]];
  for (let l = 0; l < config.numLayers; l++) {
    for (const [n, s] of perLayer) yield [`model.layers.${l}.${n}`, s];
  }
  yield ['model.norm.weight', [d]];
  if (config.tieWordEmbeddings === false) yield ['lm_head.weight', [config.vocabSize, d]];
}

/** `hfTensorEntries` as a map from HF name to torch shape. */
export function hfTensorShapes(config: CausalLMConfig): Map<string, number[]> {
  return new Map(hfTensorEntries(config));
}
