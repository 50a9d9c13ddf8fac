/**
 * Grouped-query attention (GQA; MHA when every query head has its own key/value head, MQA with one):
 * the layer `GroupedQueryAttention`, its config and its analytic costs.
 *
 * Cache per token: 2 Hkv Dh (keys and values). Attention MACs per (query, key) pair: 2 Hq Dh.
 */
import { GroupedQueryAttention, GroupedQueryAttentionArgs } from '../layers/gqa_attention.js';
import { BlockManagedKeys, Mechanism, plural } from './mechanism.js';

/** The analytic config of a GQA layer. */
export interface GqaSpec {
  kind: 'gqa';
  numQueryHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  /** Biases on q/k/v (and on the output unless `useOutputBias` is false). Default true, as the layer. */
  useBias?: boolean;
  /** Bias on the output projection; defaults to `useBias`. */
  useOutputBias?: boolean;
}

/** GQA in an `AttentionConfig`: `kind: 'gqa'` and the layer's arguments. */
export type GqaAttentionConfig = { kind: 'gqa' } & Omit<GroupedQueryAttentionArgs, BlockManagedKeys>;

/** The GQA/MHA/MQA mechanism. */
export const GQA: Mechanism<GqaSpec, GqaAttentionConfig, GroupedQueryAttention> = {
  kind: 'gqa',
  label: 'GQA',
  layerClass: GroupedQueryAttention,
  create: ({ kind: _kind, ...args }, extras = {}) => new GroupedQueryAttention({ ...args, ...extras }),
  specOfConfig: (a) => ({
    kind: 'gqa',
    numQueryHeads: a.numQueryHeads,
    numKeyValueHeads: a.numKeyValueHeads,
    headDim: a.headDim,
    useBias: a.useBias ?? true,
    useOutputBias: a.useOutputBias ?? a.useBias ?? true,
  }),
  specOfLayer: (layer) => ({
    kind: 'gqa',
    numQueryHeads: layer.numQueryHeads,
    numKeyValueHeads: layer.numKeyValueHeads,
    headDim: layer.headDim,
    useBias: layer.useBias,
    useOutputBias: layer.useOutputBias,
  }),
  cacheLayout: (s) => [
    { name: 'key', seqAxis: 2, elementsPerToken: s.numKeyValueHeads * s.headDim }, // [B, Hkv, S, Dh], post-RoPE
    { name: 'value', seqAxis: 2, elementsPerToken: s.numKeyValueHeads * s.headDim }, // [B, Hkv, S, Dh]
  ],
  attentionCoefficient: (s) => 2 * s.numQueryHeads * s.headDim,
  cachedTokenMacs: () => 0,
  linearMacsPerToken: (s, d) => {
    const hqd = s.numQueryHeads * s.headDim;
    return d * hqd + 2 * d * s.numKeyValueHeads * s.headDim + hqd * d;
  },
  params: (s, d) => {
    const hq = s.numQueryHeads * s.headDim;
    const hkv = s.numKeyValueHeads * s.headDim;
    const bias = s.useBias ?? true;
    const outBias = s.useOutputBias ?? bias;
    return d * hq + 2 * d * hkv + hq * d + (bias ? hq + 2 * hkv : 0) + (outBias ? d : 0);
  },
  describe: (s) => `${s.numQueryHeads} query heads of ${s.headDim}, ${plural(s.numKeyValueHeads, 'key/value head')}`,
};
