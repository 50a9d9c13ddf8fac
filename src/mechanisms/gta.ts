/**
 * Grouped-head latent attention (GTA): the layer `GroupedHeadLatentAttention`, its config and its
 * analytic costs.
 *
 * Cache per token: Hk Dh + Hc Dl (keys and value latents). Attention MACs per (query, key) pair:
 * Hq (Dh + Dl).
 */
import { GroupedHeadLatentAttention, GroupedHeadLatentAttentionArgs } from '../layers/gta_attention.js';
import { BlockManagedKeys, Mechanism, plural } from './mechanism.js';

/** The analytic config of a GTA layer. */
export interface GtaSpec {
  kind: 'gta';
  numHeads: number;
  headDim: number;
  numQueryHeads: number;
  numKeyHeads: number;
  numValueHeads: number;
  valueDim: number;
  /** Biases on q/k/latent/gate as in the released code. Default true. */
  useBias?: boolean;
}

/** GTA in an `AttentionConfig`: `kind: 'gta'` and the layer's arguments. */
export type GtaAttentionConfig = { kind: 'gta' } & Omit<GroupedHeadLatentAttentionArgs, BlockManagedKeys>;

/** The value decoder's expansion rate r = numHeads*headDim / (numQueryHeads*valueDim). */
export function gtaExpandRate(s: GtaSpec): number {
  return (s.numHeads * s.headDim) / (s.numQueryHeads * s.valueDim);
}

/** The GTA mechanism. */
export const GTA: Mechanism<GtaSpec, GtaAttentionConfig, GroupedHeadLatentAttention> = {
  kind: 'gta',
  label: 'GTA',
  layerClass: GroupedHeadLatentAttention,
  create: ({ kind: _kind, ...args }, extras = {}) => new GroupedHeadLatentAttention({ ...args, ...extras }),
  specOfConfig: (a) => ({
    kind: 'gta',
    numHeads: a.numHeads,
    headDim: a.headDim,
    numQueryHeads: a.numQueryHeads,
    numKeyHeads: a.numKeyHeads,
    numValueHeads: a.numValueHeads,
    valueDim: a.valueDim,
    useBias: a.useBias ?? true,
  }),
  specOfLayer: (layer) => ({
    kind: 'gta',
    numHeads: layer.numHeads,
    headDim: layer.headDim,
    numQueryHeads: layer.numQueryHeads,
    numKeyHeads: layer.numKeyHeads,
    numValueHeads: layer.numValueHeads,
    valueDim: layer.valueDim,
    useBias: layer.useBias,
  }),
  cacheLayout: (s) => [
    { name: 'key', seqAxis: 2, elementsPerToken: s.numKeyHeads * s.headDim }, // [B, Hk, S, Dh], post-RoPE
    { name: 'latent', seqAxis: 2, elementsPerToken: s.numValueHeads * s.valueDim }, // [B, Hc, S, Dl]
  ],
  attentionCoefficient: (s) => s.numQueryHeads * (s.headDim + s.valueDim),
  cachedTokenMacs: () => 0,
  linearMacsPerToken: (s, d) => {
    const w = s.numHeads * s.headDim;
    return (
      d * s.numQueryHeads * s.headDim + d * s.numKeyHeads * s.headDim + d * s.numValueHeads * s.valueDim + d * w + s.valueDim * w + w * d
    );
  },
  params: (s, d) => {
    const w = s.numHeads * s.headDim;
    const q = s.numQueryHeads * s.headDim;
    const k = s.numKeyHeads * s.headDim;
    const c = s.numValueHeads * s.valueDim;
    const bias = s.useBias ?? true;
    return d * (q + k + c + w) + s.numQueryHeads * s.valueDim * gtaExpandRate(s) * s.valueDim + w * d + (bias ? q + k + c + w : 0);
  },
  describe: (s) =>
    `${s.numHeads} heads of ${s.headDim}, ${s.numQueryHeads} shared maps (n_q), ` +
    `${plural(s.numKeyHeads, 'key head')}, ${plural(s.numValueHeads, 'latent value head')} of ${s.valueDim} ` +
    `(r = ${gtaExpandRate(s)})`,
};
