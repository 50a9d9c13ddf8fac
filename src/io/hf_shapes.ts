/**
 * The Hugging Face tensor names and torch shapes a `CausalLM` of a given config needs, computed from
 * the config alone (no weights are created). `causalLMFromHF` checks a checkpoint against them before
 * it builds the model, so a config that does not match its tensors (say `vocab_size: 2e6` with 97-row
 * embeddings) fails at once instead of after allocating the model it describes.
 *
 * The names and shapes come from the same tables (`torch_names.ts`) as the built layers' torch weight
 * specs (a test compares the two for every mechanism).
 */
import type { CausalLMConfig } from '../models/config.js';
import { createAttention } from '../layers/decoder_block.js';
import { mechanismOfConfig } from '../mechanisms/registry.js';
import { ATTENTION_TORCH, BLOCK_TORCH, MLP_TORCH, NORM_TORCH, TorchTable, torchShapes } from './torch_names.js';

type Shapes = Array<[string, number[]]>;

const under = (prefix: string, shapes: Shapes): Shapes => shapes.map(([n, s]): [string, number[]] => [prefix + n, s]);

/**
 * The tensors (HF name, torch shape) a `CausalLM` with `config` reads from a checkpoint, in order:
 * embeddings, each layer's, final norm, then `lm_head.weight` when the embeddings are untied (a tied
 * checkpoint may still carry it, as a copy of the embeddings). Lazy, so a check can stop at the first
 * mismatch whatever `numLayers` says.
 */
export function* hfTensorEntries(config: CausalLMConfig): Generator<[string, number[]]> {
  const d = config.hiddenSize;
  const i = config.intermediateSize;
  createAttention(config.attention); // checks the attention arguments; creates no weights
  const spec = mechanismOfConfig(config.attention).specOfConfig(config.attention);
  const attentionTable = ATTENTION_TORCH[spec.kind] as TorchTable<typeof spec>;
  const perLayer: Shapes = [
    ...under(BLOCK_TORCH.attentionNorm, torchShapes(NORM_TORCH, {}, d)),
    ...under(BLOCK_TORCH.attention, torchShapes(attentionTable, spec, d)),
    ...under(BLOCK_TORCH.mlpNorm, torchShapes(NORM_TORCH, {}, d)),
    ...under(BLOCK_TORCH.mlp, torchShapes(MLP_TORCH, { intermediateDim: i, useBias: false }, d)), // blocks' MLPs have no biases
  ];
  yield ['model.embed_tokens.weight', [config.vocabSize, d]];
  for (let l = 0; l < config.numLayers; l++) {
    for (const [n, s] of perLayer) yield [`model.layers.${l}.${n}`, s];
  }
  yield* under('model.norm.', torchShapes(NORM_TORCH, {}, d));
  if (config.tieWordEmbeddings === false) yield ['lm_head.weight', [config.vocabSize, d]];
}

/** `hfTensorEntries` as a map from HF name to torch shape. */
export function hfTensorShapes(config: CausalLMConfig): Map<string, number[]> {
  return new Map(hfTensorEntries(config));
}
