/**
 * Analytic costs per attention layer: KV-cache elements per token, multiply-accumulates (MACs) and
 * parameters. Conventions follow docs/ATTENTION_SPEC.md section 5: attention MACs count the full T x S score
 * matrix (no causal halving); FLOPs = 2 x MACs. `D` is the layer's input/output width.
 *
 * | mechanism | cache elems/token | attention MACs per (query, key) pair |
 * |---|---|---|
 * | GQA | 2 Hkv Dh | 2 Hq Dh |
 * | GTA | Hk Dh + Hc Dl | Hq (Dh + Dl) |
 * | MLA naive | Dc + Dr | H (Dqk + Dv) (+ H Dc (Dn + Dv) per cached token when decoding: re-expansion) |
 * | MLA absorbed | Dc + Dr | H (2 Dc + Dr) |
 */
import type { AttentionLayer } from '../layers/attention_base.js';
import { GroupedQueryAttention } from '../layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../layers/mla_attention.js';
import { ValueError } from '../utils/errors.js';

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

export type AttentionSpec = GqaSpec | GtaSpec | MlaSpec;

export interface CostOptions {
  batchSize?: number;
  /** Query tokens processed (T). */
  queryLength: number;
  /** Key tokens attended (S = cache + T). */
  keyLength: number;
  /** MLA only: the absorbed (latent-space) form. Default false. */
  absorbed?: boolean;
}

export interface Costs {
  /** Projection MACs (q, k, v/latent, gate, decoder, output). */
  linear: number;
  /** Score and value MACs over the full T x S matrix. */
  attention: number;
  total: number;
  /** 2 x total. */
  flops: number;
}

/** KV-cache elements stored per token per layer. */
export function kvCacheElementsPerToken(spec: AttentionSpec): number {
  switch (spec.kind) {
    case 'gqa': return 2 * spec.numKeyValueHeads * spec.headDim;
    case 'gta': return spec.numKeyHeads * spec.headDim + spec.numValueHeads * spec.valueDim;
    case 'mla': return spec.kvLoraRank + spec.qkRopeHeadDim;
  }
}

/** KV-cache bytes per token per layer (float32 unless `bytesPerElement` says otherwise). */
export function kvCacheBytesPerToken(spec: AttentionSpec, bytesPerElement = 4): number {
  return kvCacheElementsPerToken(spec) * bytesPerElement;
}

/**
 * Attention MACs per (query, key) pair: the coefficient of N^2 in prefill and of N per decoded token.
 * For naive MLA decoding add `mlaReexpansionPerCachedToken`.
 */
export function attentionCoefficient(spec: AttentionSpec, absorbed = false): number {
  switch (spec.kind) {
    case 'gqa': return 2 * spec.numQueryHeads * spec.headDim;
    case 'gta': return spec.numQueryHeads * (spec.headDim + spec.valueDim);
    case 'mla': return absorbed
      ? spec.numHeads * (2 * spec.kvLoraRank + spec.qkRopeHeadDim)
      : spec.numHeads * (spec.qkNopeHeadDim + spec.qkRopeHeadDim + spec.vHeadDim);
  }
}

/** Naive MLA decode re-expands every cached latent through W_kvb at each step: MACs per cached token. */
export function mlaReexpansionPerCachedToken(spec: MlaSpec): number {
  return spec.numHeads * spec.kvLoraRank * (spec.qkNopeHeadDim + spec.vHeadDim);
}

/** Projection MACs per token for a layer of width `hiddenSize`. */
export function linearMacsPerToken(spec: AttentionSpec, hiddenSize: number, absorbed = false): number {
  const d = hiddenSize;
  switch (spec.kind) {
    case 'gqa': {
      const hqd = spec.numQueryHeads * spec.headDim;
      return d * hqd + 2 * d * spec.numKeyValueHeads * spec.headDim + hqd * d;
    }
    case 'gta': {
      const w = spec.numHeads * spec.headDim;
      return d * spec.numQueryHeads * spec.headDim + d * spec.numKeyHeads * spec.headDim
        + d * spec.numValueHeads * spec.valueDim + d * w + spec.valueDim * w + w * d;
    }
    case 'mla': {
      const h = spec.numHeads;
      const dqk = spec.qkNopeHeadDim + spec.qkRopeHeadDim;
      const q = spec.qLoraRank ? d * spec.qLoraRank + spec.qLoraRank * h * dqk : d * h * dqk;
      const kvA = d * (spec.kvLoraRank + spec.qkRopeHeadDim);
      // Naive: expand the new token's latent to per-head keys and values. Absorbed: fold W_UK into the
      // query and apply W_UV after attention; the MAC count is the same.
      const expand = absorbed
        ? h * spec.qkNopeHeadDim * spec.kvLoraRank + h * spec.kvLoraRank * spec.vHeadDim
        : h * spec.kvLoraRank * (spec.qkNopeHeadDim + spec.vHeadDim);
      return q + kvA + expand + h * spec.vHeadDim * d;
    }
  }
}

/** MACs of one call on `queryLength` new tokens attending `keyLength` keys. */
export function attentionMacs(spec: AttentionSpec, hiddenSize: number, options: CostOptions): Costs {
  const b = options.batchSize ?? 1;
  const { queryLength: t, keyLength: s } = options;
  if (!(t >= 1) || !(s >= t)) {
    throw new ValueError(`attentionMacs: need queryLength >= 1 and keyLength >= queryLength, got ${t} and ${s}.`);
  }
  const absorbed = spec.kind === 'mla' && options.absorbed === true;
  const linear = b * t * linearMacsPerToken(spec, hiddenSize, absorbed);
  let attention = b * t * s * attentionCoefficient(spec, absorbed);
  if (spec.kind === 'mla' && !absorbed && s > t) attention += b * (s - t) * mlaReexpansionPerCachedToken(spec);
  const total = linear + attention;
  return { linear, attention, total, flops: 2 * total };
}

/** Trainable parameters of one attention layer of width `hiddenSize` (equals the built layer's countParams()). */
export function attentionParams(spec: AttentionSpec, hiddenSize: number): number {
  const d = hiddenSize;
  switch (spec.kind) {
    case 'gqa': {
      const hq = spec.numQueryHeads * spec.headDim;
      const hkv = spec.numKeyValueHeads * spec.headDim;
      const bias = spec.useBias ?? true;
      const outBias = spec.useOutputBias ?? bias;
      return d * hq + 2 * d * hkv + hq * d + (bias ? hq + 2 * hkv : 0) + (outBias ? d : 0);
    }
    case 'gta': {
      const w = spec.numHeads * spec.headDim;
      const q = spec.numQueryHeads * spec.headDim;
      const k = spec.numKeyHeads * spec.headDim;
      const c = spec.numValueHeads * spec.valueDim;
      const r = w / (spec.numQueryHeads * spec.valueDim);
      const bias = spec.useBias ?? true;
      return d * (q + k + c + w) + spec.numQueryHeads * spec.valueDim * r * spec.valueDim + w * d
        + (bias ? q + k + c + w : 0);
    }
    case 'mla': {
      const h = spec.numHeads;
      const dqk = spec.qkNopeHeadDim + spec.qkRopeHeadDim;
      const bias = spec.useBias ?? false;
      const q = spec.qLoraRank
        ? d * spec.qLoraRank + (bias ? spec.qLoraRank : 0) + spec.qLoraRank + spec.qLoraRank * h * dqk
        : d * h * dqk;
      const kvA = d * (spec.kvLoraRank + spec.qkRopeHeadDim) + (bias ? spec.kvLoraRank + spec.qkRopeHeadDim : 0);
      return q + kvA + spec.kvLoraRank + spec.kvLoraRank * h * (spec.qkNopeHeadDim + spec.vHeadDim)
        + h * spec.vHeadDim * d + (bias ? d : 0);
    }
  }
}

/** The analytic spec of a constructed attention layer. */
export function specOf(layer: AttentionLayer): AttentionSpec {
  if (layer instanceof GroupedQueryAttention) {
    return { kind: 'gqa', numQueryHeads: layer.numQueryHeads, numKeyValueHeads: layer.numKeyValueHeads,
      headDim: layer.headDim, useBias: layer.useBias, useOutputBias: layer.useOutputBias };
  }
  if (layer instanceof GroupedHeadLatentAttention) {
    return { kind: 'gta', numHeads: layer.numHeads, headDim: layer.headDim, numQueryHeads: layer.numQueryHeads,
      numKeyHeads: layer.numKeyHeads, numValueHeads: layer.numValueHeads, valueDim: layer.valueDim,
      useBias: layer.useBias };
  }
  if (layer instanceof MultiHeadLatentAttention) {
    return { kind: 'mla', numHeads: layer.numHeads, qLoraRank: layer.qLoraRank, kvLoraRank: layer.kvLoraRank,
      qkNopeHeadDim: layer.qkNopeHeadDim, qkRopeHeadDim: layer.qkRopeHeadDim, vHeadDim: layer.vHeadDim,
      useBias: layer.useBias };
  }
  throw new ValueError('specOf: not an attention layer of this package.');
}
