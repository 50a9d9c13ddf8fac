/**
 * The mechanisms compared by the benchmark, at width D = 64 * heads (head dim 64 throughout;
 * PERF_ANCHORS "Proposed benchmark matrix"), and their analytic costs from src/analysis/costs.ts.
 *
 * | impl | layer |
 * |---|---|
 * | gqa | GQA, numKeyValueHeads = heads / 4 |
 * | mha | GQA with numKeyValueHeads = numQueryHeads (our MHA setting, compared with `peer-plain-rope`) |
 * | mha-norope | the same with `useRope: false` (compared with `peer-plain` and `peer-tfjs-mha`, which have no RoPE) |
 * | gta | GTA: numQueryHeads = heads / 4 shared maps, one 64-d key head, one 128-d latent (r = 2) |
 * | mla | MLA, kvLoraRank 256, qkRopeHeadDim 32, qkNopeHeadDim 64, vHeadDim 64 (prefill and training) |
 * | mla-naive / mla-abs | the same MLA decoding with `absorbForDecode: false` / `true` |
 *
 * Every variant is built without biases (the analytic model counts none).
 */
import { AttentionConfig, AttentionSpec, attentionMacs, attentionParams, attentionSpec, kvCacheBytesPerToken } from '../src/index.js';

export const OUR_IMPLS = ['gqa', 'mha', 'mha-norope', 'gta', 'mla', 'mla-naive', 'mla-abs'] as const;
export type OurImpl = (typeof OUR_IMPLS)[number];
export const PEER_IMPLS = ['peer-plain', 'peer-plain-rope', 'peer-tfjs-mha'] as const;
export type PeerImpl = (typeof PEER_IMPLS)[number];
export type Impl = OurImpl | PeerImpl | 'matmul' | 'read';

export const HEAD_DIM = 64;
export const VOCAB = 4096;
export const L2_LAYERS = 4;

export function heads(d: number): number {
  return d / HEAD_DIM;
}

/** The attention config of one of our variants at width `d`. */
export function attentionConfig(impl: OurImpl, d: number): AttentionConfig {
  const h = heads(d);
  switch (impl) {
    case 'gqa':
      return { kind: 'gqa', headDim: HEAD_DIM, numQueryHeads: h, numKeyValueHeads: h / 4, useBias: false };
    case 'mha':
    case 'mha-norope':
      return {
        kind: 'gqa',
        headDim: HEAD_DIM,
        numQueryHeads: h,
        numKeyValueHeads: h,
        useBias: false,
        useRope: impl === 'mha',
      };
    case 'gta':
      return {
        kind: 'gta',
        numHeads: h,
        headDim: HEAD_DIM,
        numQueryHeads: h / 4,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 128,
        useBias: false,
      };
    case 'mla':
    case 'mla-naive':
    case 'mla-abs':
      return {
        kind: 'mla',
        numHeads: h,
        kvLoraRank: 256,
        qkRopeHeadDim: 32,
        qkNopeHeadDim: 64,
        vHeadDim: 64,
        absorbForDecode: impl === 'mla-abs',
        useBias: false,
      };
  }
}

export function specFor(impl: OurImpl, d: number): AttentionSpec {
  return attentionSpec(attentionConfig(impl, d));
}

/** Attention maps per token pair (score tensors): query heads for GQA/MHA/MLA, query groups for GTA. */
export function numMaps(impl: Impl, d: number): number {
  return impl === 'gta' ? heads(d) / 4 : heads(d);
}

/** SwiGLU width of the L2 model: 8/3 D rounded to a multiple of 64 (Llama style). */
export function intermediateSize(d: number): number {
  return Math.round((8 * d) / 3 / 64) * 64;
}

/** The L2 model config: 4 pre-norm blocks, RMSNorm, SwiGLU, tied embeddings, vocabulary 4096. */
export function l2Config(impl: OurImpl, d: number, maxSequenceLength: number) {
  return {
    vocabSize: VOCAB,
    hiddenSize: d,
    numLayers: L2_LAYERS,
    intermediateSize: intermediateSize(d),
    maxSequenceLength,
    attention: attentionConfig(impl, d),
    tieWordEmbeddings: true,
    seed: 1,
  };
}

/** Our implementation a peer is compared with at equal work: RoPE against RoPE, none against none. */
export function oursForPeer(peer: PeerImpl): OurImpl {
  return peer === 'peer-plain-rope' ? 'mha' : 'mha-norope';
}

/** The equivalent analytic spec of a peer (both peers are plain MHA without biases). */
export function peerSpec(d: number): AttentionSpec {
  return specFor('mha', d);
}

export interface Analytic {
  /** FLOPs of one timed unit (a prefill call, one decode step, one training step). */
  flops: number;
  /** Decode only: bytes read once per step (weights + cache), the byte model of PERF_ANCHORS. */
  bytes?: number;
  /** KV-cache bytes of the cell's cache by the formula (after prefill; at the start of decoding). */
  cacheBytes?: number;
}

/** L1 (one attention layer) analytic costs. Training FLOPs are 3x forward (forward + backward). */
export function l1Analytic(
  spec: AttentionSpec,
  d: number,
  phase: 'prefill' | 'decode' | 'train',
  b: number,
  t: number,
  s: number,
  absorbed: boolean,
): Analytic {
  if (phase === 'decode') {
    const fwd = attentionMacs(spec, d, { batchSize: b, queryLength: 1, keyLength: s + 1, absorbed }).flops;
    const bytes = 4 * attentionParams(spec, d) + kvCacheBytesPerToken(spec) * b * s;
    return { flops: fwd, bytes, cacheBytes: kvCacheBytesPerToken(spec) * b * s };
  }
  const fwd = attentionMacs(spec, d, { batchSize: b, queryLength: t, keyLength: t }).flops;
  return phase === 'train' ? { flops: 3 * fwd } : { flops: fwd, cacheBytes: kvCacheBytesPerToken(spec) * b * t };
}

/** L2 analytic costs: attention layers, SwiGLU (3 D I MACs per token) and the tied logits (D V). */
export function l2Analytic(
  spec: AttentionSpec,
  d: number,
  phase: 'prefill' | 'decode' | 'train',
  b: number,
  t: number,
  s: number,
  absorbed: boolean,
): Analytic {
  const inter = intermediateSize(d);
  const perTokenMacs = L2_LAYERS * 3 * d * inter + d * VOCAB;
  const mlpParams = L2_LAYERS * (3 * d * inter + 2 * d) + d + VOCAB * d;
  if (phase === 'decode') {
    const attn = attentionMacs(spec, d, { batchSize: b, queryLength: 1, keyLength: s + 1, absorbed }).flops;
    const flops = L2_LAYERS * attn + 2 * b * perTokenMacs;
    const cacheBytes = L2_LAYERS * kvCacheBytesPerToken(spec) * b * s;
    const bytes = 4 * (L2_LAYERS * attentionParams(spec, d) + mlpParams) + cacheBytes;
    return { flops, bytes, cacheBytes };
  }
  const attn = attentionMacs(spec, d, { batchSize: b, queryLength: t, keyLength: t }).flops;
  const fwd = L2_LAYERS * attn + 2 * b * t * perTokenMacs;
  return phase === 'train' ? { flops: 3 * fwd } : { flops: fwd, cacheBytes: L2_LAYERS * kvCacheBytesPerToken(spec) * b * t };
}
