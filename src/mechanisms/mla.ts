/**
 * Multi-head latent attention (MLA, DeepSeek-V2/V3): the layer `MultiHeadLatentAttention`, its config
 * and its analytic costs.
 *
 * Cache per token: Dc + Dr (the normed latent and the shared RoPE key). Attention MACs per (query, key)
 * pair: H (Dqk + Dv) naive, plus H Dc (Dn + Dv) per cached token when decoding (re-expansion);
 * H (2 Dc + Dr) absorbed.
 */
import { MultiHeadLatentAttention, MultiHeadLatentAttentionArgs } from '../layers/mla_attention.js';
import { BlockManagedKeys, Mechanism } from './mechanism.js';

/** The analytic config of an MLA layer. */
export interface MlaSpec {
  kind: 'mla';
  numHeads: number;
  qLoraRank?: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** Biases on q_a/kv_a/o (DeepSeek `attention_bias`). Default false. */
  useBias?: boolean;
}

/** MLA in an `AttentionConfig`: `kind: 'mla'` and the layer's arguments. */
export type MlaAttentionConfig = { kind: 'mla' } & Omit<MultiHeadLatentAttentionArgs, BlockManagedKeys>;

/** Naive MLA decode re-expands every cached latent through W_kvb at each step: MACs per cached token. */
export function mlaReexpansionPerCachedToken(spec: MlaSpec): number {
  return spec.numHeads * spec.kvLoraRank * (spec.qkNopeHeadDim + spec.vHeadDim);
}

function linearMacs(s: MlaSpec, d: number, absorbed: boolean): number {
  const h = s.numHeads;
  const dqk = s.qkNopeHeadDim + s.qkRopeHeadDim;
  const q = s.qLoraRank ? d * s.qLoraRank + s.qLoraRank * h * dqk : d * h * dqk;
  const kvA = d * (s.kvLoraRank + s.qkRopeHeadDim);
  // Naive: expand the new token's latent to per-head keys and values. Absorbed: fold W_UK into the
  // query and apply W_UV after attention; the MAC count is the same.
  const expand = absorbed
    ? h * s.qkNopeHeadDim * s.kvLoraRank + h * s.kvLoraRank * s.vHeadDim
    : h * s.kvLoraRank * (s.qkNopeHeadDim + s.vHeadDim);
  return q + kvA + expand + h * s.vHeadDim * d;
}

function params(s: MlaSpec, d: number): number {
  const h = s.numHeads;
  const dqk = s.qkNopeHeadDim + s.qkRopeHeadDim;
  const bias = s.useBias ?? false;
  const q = s.qLoraRank ? d * s.qLoraRank + (bias ? s.qLoraRank : 0) + s.qLoraRank + s.qLoraRank * h * dqk : d * h * dqk;
  const kvA = d * (s.kvLoraRank + s.qkRopeHeadDim) + (bias ? s.kvLoraRank + s.qkRopeHeadDim : 0);
  return q + kvA + s.kvLoraRank + s.kvLoraRank * h * (s.qkNopeHeadDim + s.vHeadDim) + h * s.vHeadDim * d + (bias ? d : 0);
}

/** The MLA mechanism. */
export const MLA: Mechanism<MlaSpec, MlaAttentionConfig, MultiHeadLatentAttention> = {
  kind: 'mla',
  label: 'MLA',
  layerClass: MultiHeadLatentAttention,
  create: ({ kind: _kind, ...args }, extras = {}) => new MultiHeadLatentAttention({ ...args, ...extras }),
  specOfConfig: (a) => ({
    kind: 'mla',
    numHeads: a.numHeads,
    qLoraRank: a.qLoraRank ?? null,
    kvLoraRank: a.kvLoraRank,
    qkNopeHeadDim: a.qkNopeHeadDim,
    qkRopeHeadDim: a.qkRopeHeadDim,
    vHeadDim: a.vHeadDim,
    useBias: a.useBias ?? false,
  }),
  specOfLayer: (layer) => ({
    kind: 'mla',
    numHeads: layer.numHeads,
    qLoraRank: layer.qLoraRank,
    kvLoraRank: layer.kvLoraRank,
    qkNopeHeadDim: layer.qkNopeHeadDim,
    qkRopeHeadDim: layer.qkRopeHeadDim,
    vHeadDim: layer.vHeadDim,
    useBias: layer.useBias,
  }),
  cacheLayout: (s) => [
    { name: 'latent', seqAxis: 1, elementsPerToken: s.kvLoraRank }, // [B, S, Dc], post-RMSNorm
    { name: 'keyRope', seqAxis: 1, elementsPerToken: s.qkRopeHeadDim }, // [B, S, Dr], post-RoPE
  ],
  attentionCoefficient: (s, absorbed) =>
    absorbed ? s.numHeads * (2 * s.kvLoraRank + s.qkRopeHeadDim) : s.numHeads * (s.qkNopeHeadDim + s.qkRopeHeadDim + s.vHeadDim),
  cachedTokenMacs: (s, absorbed) => (absorbed ? 0 : mlaReexpansionPerCachedToken(s)),
  linearMacsPerToken: linearMacs,
  params,
  describe: (s) =>
    `${s.numHeads} heads, latent ${s.kvLoraRank} + RoPE key ${s.qkRopeHeadDim} ` +
    `(nope ${s.qkNopeHeadDim}, value ${s.vHeadDim} per head)`,
};
