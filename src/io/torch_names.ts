/**
 * PyTorch / Hugging Face names of every weight of this package's layers: one table per layer type
 * (attention tables keyed by mechanism kind), each row naming the torch tensor, the layer's own weight
 * (by its Keras name, e.g. `query/kernel`), the torch layout and the torch shape as a function of the
 * layer's sizes. The same rows give the weight specs of a built layer (`torchWeightSpecs`, for import
 * and export) and the tensors a config needs before any layer exists (`hf_shapes.ts`), so the two cannot
 * disagree. The layers themselves know nothing of torch names.
 */
import type * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import type { AttentionKind } from '../mechanisms/kinds.js';
import type { AttentionSpec } from '../mechanisms/registry.js';
import { mechanismOfLayer } from '../mechanisms/registry.js';
import { gtaExpandRate } from '../mechanisms/gta.js';
import { RMSNormalization } from '../layers/rms_normalization.js';
import { SwiGLUFeedForward } from '../layers/swiglu_mlp.js';
import { TransformerDecoderBlock } from '../layers/decoder_block.js';
import type { TorchLayout, TorchMappable, TorchWeightSpec } from './torch_layout.js';

/** One torch tensor of a layer whose sizes are `S` (`d` is the layer's input width). */
export interface TorchRow<S> {
  /** Name in the torch module's state dict, relative to the module. */
  torch: string;
  /** The layer's weight, by the name the layer gives it (`query/kernel`). */
  weight: string;
  layout: TorchLayout;
  /** Shape of the torch tensor. */
  shape: (sizes: S, d: number) => number[];
  /** Whether the layer has this weight (biases); default always. */
  when?: (sizes: S) => boolean;
}

/** A layer type's table. */
export interface TorchTable<S> {
  /** The torch weight whose second (or only) dimension is the layer's input width (to build the layer). */
  inputWeight: string;
  rows: Array<TorchRow<S>>;
}

type SpecOf<K extends AttentionKind> = Extract<AttentionSpec, { kind: K }>;

const linear = <S>(torch: string, weight: string, shape: TorchRow<S>['shape'], when?: TorchRow<S>['when']): TorchRow<S> => ({
  torch,
  weight,
  layout: 'linear',
  shape,
  when,
});
const vector = <S>(torch: string, weight: string, shape: TorchRow<S>['shape'], when?: TorchRow<S>['when']): TorchRow<S> => ({
  torch,
  weight,
  layout: 'vector',
  shape,
  when,
});

const GQA_TORCH: TorchTable<SpecOf<'gqa'>> = {
  inputWeight: 'q_proj.weight',
  rows: [
    linear('q_proj.weight', 'query/kernel', (s, d) => [s.numQueryHeads * s.headDim, d]),
    linear('k_proj.weight', 'key/kernel', (s, d) => [s.numKeyValueHeads * s.headDim, d]),
    linear('v_proj.weight', 'value/kernel', (s, d) => [s.numKeyValueHeads * s.headDim, d]),
    linear('o_proj.weight', 'attention_output/kernel', (s, d) => [d, s.numQueryHeads * s.headDim]),
    vector(
      'q_proj.bias',
      'query/bias',
      (s) => [s.numQueryHeads * s.headDim],
      (s) => s.useBias ?? true,
    ),
    vector(
      'k_proj.bias',
      'key/bias',
      (s) => [s.numKeyValueHeads * s.headDim],
      (s) => s.useBias ?? true,
    ),
    vector(
      'v_proj.bias',
      'value/bias',
      (s) => [s.numKeyValueHeads * s.headDim],
      (s) => s.useBias ?? true,
    ),
    vector(
      'o_proj.bias',
      'attention_output/bias',
      (_s, d) => [d],
      (s) => s.useOutputBias ?? s.useBias ?? true,
    ),
  ],
};

const gtaWidth = (s: SpecOf<'gta'>) => s.numHeads * s.headDim;
const gtaBias = (s: SpecOf<'gta'>) => s.useBias ?? true;

const GTA_TORCH: TorchTable<SpecOf<'gta'>> = {
  inputWeight: 'q_proj.weight',
  rows: [
    linear('q_proj.weight', 'query/kernel', (s, d) => [s.numQueryHeads * s.headDim, d]),
    linear('k_proj.weight', 'key/kernel', (s, d) => [s.numKeyHeads * s.headDim, d]),
    linear('v_proj.weight', 'value/kernel', (s, d) => [s.numValueHeads * s.valueDim, d]),
    linear('g_proj.weight', 'gate/kernel', (s, d) => [gtaWidth(s), d]),
    // The reference reads v_b_proj through `.view(n_q, d_l, r*d_l)`: reinterpreted, not transposed.
    {
      torch: 'v_b_proj.weight',
      weight: 'value_decoder/kernel',
      layout: 'raw',
      shape: (s) => [gtaExpandRate(s) * s.valueDim, s.numQueryHeads * s.valueDim],
    },
    linear('o_proj.weight', 'attention_output/kernel', (s, d) => [d, gtaWidth(s)]),
    vector('q_proj.bias', 'query/bias', (s) => [s.numQueryHeads * s.headDim], gtaBias),
    vector('k_proj.bias', 'key/bias', (s) => [s.numKeyHeads * s.headDim], gtaBias),
    vector('v_proj.bias', 'value/bias', (s) => [s.numValueHeads * s.valueDim], gtaBias),
    vector('g_proj.bias', 'gate/bias', (s) => [gtaWidth(s)], gtaBias),
  ],
};

const mlaQk = (s: SpecOf<'mla'>) => s.numHeads * (s.qkNopeHeadDim + s.qkRopeHeadDim);
const mlaBias = (s: SpecOf<'mla'>) => s.useBias ?? false;
const noQueryRank = (s: SpecOf<'mla'>) => (s.qLoraRank ?? null) === null;
const queryRank = (s: SpecOf<'mla'>) => s.qLoraRank ?? 0;

const MLA_TORCH: TorchTable<SpecOf<'mla'>> = {
  inputWeight: 'kv_a_proj_with_mqa.weight',
  rows: [
    linear('q_proj.weight', 'query/kernel', (s, d) => [mlaQk(s), d], noQueryRank),
    linear(
      'q_a_proj.weight',
      'query_a/kernel',
      (s, d) => [queryRank(s), d],
      (s) => !noQueryRank(s),
    ),
    vector(
      'q_a_proj.bias',
      'query_a/bias',
      (s) => [queryRank(s)],
      (s) => !noQueryRank(s) && mlaBias(s),
    ),
    vector(
      'q_a_layernorm.weight',
      'query_a_norm/scale',
      (s) => [queryRank(s)],
      (s) => !noQueryRank(s),
    ),
    linear(
      'q_b_proj.weight',
      'query_b/kernel',
      (s) => [mlaQk(s), queryRank(s)],
      (s) => !noQueryRank(s),
    ),
    linear('kv_a_proj_with_mqa.weight', 'key_value_a/kernel', (s, d) => [s.kvLoraRank + s.qkRopeHeadDim, d]),
    vector('kv_a_proj_with_mqa.bias', 'key_value_a/bias', (s) => [s.kvLoraRank + s.qkRopeHeadDim], mlaBias),
    vector('kv_a_layernorm.weight', 'key_value_a_norm/scale', (s) => [s.kvLoraRank]),
    linear('kv_b_proj.weight', 'key_value_b/kernel', (s) => [s.numHeads * (s.qkNopeHeadDim + s.vHeadDim), s.kvLoraRank]),
    linear('o_proj.weight', 'attention_output/kernel', (s, d) => [d, s.numHeads * s.vHeadDim]),
    vector('o_proj.bias', 'attention_output/bias', (_s, d) => [d], mlaBias),
  ],
};

/** The torch table of each attention mechanism (a new kind is a compile error until it has one). */
export const ATTENTION_TORCH: { readonly [K in AttentionKind]: TorchTable<SpecOf<K>> } = {
  gqa: GQA_TORCH,
  gta: GTA_TORCH,
  mla: MLA_TORCH,
};

/** RMSNormalization: `weight` (its sizes: none beyond the width). */
export const NORM_TORCH: TorchTable<Record<string, never>> = {
  inputWeight: 'weight',
  rows: [vector('weight', 'scale', (_s, d) => [d])],
};

/** The sizes of a SwiGLU MLP's table. */
export interface MlpSizes {
  intermediateDim: number;
  useBias: boolean;
}

/** SwiGLUFeedForward (`gate_proj`, `up_proj`, `down_proj`, as Llama's MLP). */
export const MLP_TORCH: TorchTable<MlpSizes> = {
  inputWeight: 'gate_proj.weight',
  rows: [
    linear('gate_proj.weight', 'gate/kernel', (s, d) => [s.intermediateDim, d]),
    linear('up_proj.weight', 'up/kernel', (s, d) => [s.intermediateDim, d]),
    linear('down_proj.weight', 'down/kernel', (s, d) => [d, s.intermediateDim]),
    vector(
      'gate_proj.bias',
      'gate/bias',
      (s) => [s.intermediateDim],
      (s) => s.useBias,
    ),
    vector(
      'up_proj.bias',
      'up/bias',
      (s) => [s.intermediateDim],
      (s) => s.useBias,
    ),
    vector(
      'down_proj.bias',
      'down/bias',
      (_s, d) => [d],
      (s) => s.useBias,
    ),
  ],
};

/** The torch module prefixes of a decoder block's sublayers (Llama's names). */
export const BLOCK_TORCH = {
  inputWeight: 'input_layernorm.weight',
  attentionNorm: 'input_layernorm.',
  attention: 'self_attn.',
  mlpNorm: 'post_attention_layernorm.',
  mlp: 'mlp.',
} as const;

/** The (torch name, torch shape) pairs a table gives for `sizes` and input width `d`, in table order. */
export function torchShapes<S>(table: TorchTable<S>, sizes: S, d: number): Array<[string, number[]]> {
  return table.rows.filter((r) => r.when?.(sizes) ?? true).map((r) => [r.torch, r.shape(sizes, d)]);
}

/** The layer's weight whose Keras name is `weight` (scoped names end with `/weight`). */
function findWeight(layer: tf.layers.Layer, weight: string): tf.LayerVariable {
  const found = layer.weights.filter((w) => w.originalName === weight || w.originalName.endsWith(`/${weight}`));
  if (found.length !== 1) {
    throw new ValueError(`torch weights: layer ${layer.name} has ${found.length} weights named ${weight}, expected one.`);
  }
  return found[0];
}

function specsOf<S>(layer: tf.layers.Layer, table: TorchTable<S>, sizes: S): TorchWeightSpec[] {
  const input = findWeight(layer, table.rows.find((r) => r.torch === table.inputWeight)!.weight);
  const d = input.shape[0] as number; // kernels are [in, out...]; RMSNorm's scale is [d]
  return table.rows
    .filter((r) => r.when?.(sizes) ?? true)
    .map((r) => ({
      torchName: r.torch,
      torchShape: r.shape(sizes, d),
      variable: findWeight(layer, r.weight),
      layout: r.layout,
    }));
}

const prefixed = (prefix: string, specs: TorchWeightSpec[]) => specs.map((s) => ({ ...s, torchName: prefix + s.torchName }));

function hasOwnSpecs(layer: tf.layers.Layer): layer is tf.layers.Layer & TorchMappable {
  return typeof (layer as Partial<TorchMappable>).torchWeightSpecs === 'function';
}

/**
 * The torch weight specs of a built layer of this package (attention of any mechanism, RMSNorm, SwiGLU,
 * decoder block), or of any layer that provides its own (`TorchMappable`). Throws a `ValueError` for an
 * unbuilt layer or a layer with no table.
 */
export function torchWeightSpecs(layer: tf.layers.Layer): TorchWeightSpec[] {
  if (hasOwnSpecs(layer)) return layer.torchWeightSpecs();
  if (!layer.built) throw new ValueError(`torch weights: layer ${layer.name} is not built.`);
  if (layer instanceof TransformerDecoderBlock) {
    return [
      ...prefixed(BLOCK_TORCH.attentionNorm, torchWeightSpecs(layer.attentionNorm)),
      ...prefixed(BLOCK_TORCH.attention, torchWeightSpecs(layer.attention)),
      ...prefixed(BLOCK_TORCH.mlpNorm, torchWeightSpecs(layer.mlpNorm)),
      ...prefixed(BLOCK_TORCH.mlp, torchWeightSpecs(layer.mlp)),
    ];
  }
  if (layer instanceof RMSNormalization) return specsOf(layer, NORM_TORCH, {});
  if (layer instanceof SwiGLUFeedForward) {
    return specsOf(layer, MLP_TORCH, { intermediateDim: layer.intermediateDim, useBias: layer.useBias });
  }
  const mechanism = mechanismOfLayer(layer);
  if (mechanism === null) throw new ValueError(`torch weights: layer ${layer.name} (${layer.getClassName()}) has no torch names.`);
  const spec = mechanism.specOfLayer(layer as never);
  return specsOf(layer, ATTENTION_TORCH[spec.kind] as TorchTable<AttentionSpec>, spec);
}

/** The torch weight whose shape gives the layer's input width, and the input shape to build the layer with. */
export function torchInputWeight(layer: tf.layers.Layer): { name: string; inputShape: (dim: number) => number[] } {
  if (hasOwnSpecs(layer)) return { name: layer.torchInputWeight, inputShape: (dim) => [1, 1, dim] };
  const sequence = (dim: number) => [1, 1, dim];
  if (layer instanceof TransformerDecoderBlock) return { name: BLOCK_TORCH.inputWeight, inputShape: sequence };
  if (layer instanceof RMSNormalization) return { name: NORM_TORCH.inputWeight, inputShape: (dim) => [1, dim] };
  if (layer instanceof SwiGLUFeedForward) return { name: MLP_TORCH.inputWeight, inputShape: sequence };
  const mechanism = mechanismOfLayer(layer);
  if (mechanism === null) throw new ValueError(`torch weights: layer ${layer.name} (${layer.getClassName()}) has no torch names.`);
  return { name: ATTENTION_TORCH[mechanism.kind].inputWeight, inputShape: sequence };
}
