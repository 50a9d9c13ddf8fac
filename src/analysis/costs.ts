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
 *
 * The formulas live with each mechanism (`src/mechanisms/{gqa,gta,mla}.ts`); this module looks them up in
 * the registry by `spec.kind`.
 */
import type { AttentionLayer } from '../layers/attention_base.js';
import { ValueError } from '../utils/errors.js';
import { AttentionSpec, cacheElementsPerToken, mechanismOf, mechanismOfLayer } from '../mechanisms/registry.js';

export type { GqaSpec } from '../mechanisms/gqa.js';
export type { GtaSpec } from '../mechanisms/gta.js';
export type { MlaSpec } from '../mechanisms/mla.js';
export type { AttentionSpec } from '../mechanisms/registry.js';
export { mlaReexpansionPerCachedToken } from '../mechanisms/mla.js';

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
  return cacheElementsPerToken(spec);
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
  return mechanismOf(spec.kind).attentionCoefficient(spec, absorbed);
}

/** Projection MACs per token for a layer of width `hiddenSize`. */
export function linearMacsPerToken(spec: AttentionSpec, hiddenSize: number, absorbed = false): number {
  return mechanismOf(spec.kind).linearMacsPerToken(spec, hiddenSize, absorbed);
}

/** MACs of one call on `queryLength` new tokens attending `keyLength` keys. */
export function attentionMacs(spec: AttentionSpec, hiddenSize: number, options: CostOptions): Costs {
  const b = options.batchSize ?? 1;
  const { queryLength: t, keyLength: s } = options;
  if (!(t >= 1) || !(s >= t)) {
    throw new ValueError(`attentionMacs: need queryLength >= 1 and keyLength >= queryLength, got ${t} and ${s}.`);
  }
  const mechanism = mechanismOf(spec.kind);
  const absorbed = options.absorbed === true; // only MLA's formulas depend on it
  const linear = b * t * mechanism.linearMacsPerToken(spec, hiddenSize, absorbed);
  let attention = b * t * s * mechanism.attentionCoefficient(spec, absorbed);
  if (s > t) attention += b * (s - t) * mechanism.cachedTokenMacs(spec, absorbed);
  const total = linear + attention;
  return { linear, attention, total, flops: 2 * total };
}

/** Trainable parameters of one attention layer of width `hiddenSize` (equals the built layer's countParams()). */
export function attentionParams(spec: AttentionSpec, hiddenSize: number): number {
  return mechanismOf(spec.kind).params(spec, hiddenSize);
}

/** The analytic spec of a constructed attention layer. */
export function specOf(layer: AttentionLayer): AttentionSpec {
  const mechanism = mechanismOfLayer(layer);
  if (mechanism === null) throw new ValueError('specOf: not an attention layer of this package.');
  return mechanism.specOfLayer(layer);
}
