/**
 * Peers the benchmark compares our MHA setting (GQA with numKeyValueHeads == numQueryHeads) against,
 * at equal shapes (width D, D/64 heads of 64, no biases):
 *
 * - `peer-tfjs-mha`: the multi-head attention that ships, unexported, inside `@tensorflow/tfjs-layers`
 *   4.22 (`dist/layers/nlp/multihead_attention.js`, EinsumDense projections and einsum attention).
 *   In Node it is loaded through an esbuild bundle that shares tfjs-core with `@tensorflow/tfjs`
 *   (bench/tfjs_mha_node.ts); each built peer is also checked to produce tensors of our engine and backend.
 * - `peer-plain`: attention written directly with `tf.matMul`/`tf.softmax` the way an app developer
 *   would: 2-D projection matMuls, heads via reshape/transpose, a causal mask built in JS, `concat`
 *   KV cache for decoding. No RoPE (ours does RoPE on top, so the comparison favours the peer).
 * - `peer-plain-rope`: the same plus RoPE on q and k written the usual way (cos/sin tables from JS,
 *   rotate-half with split/neg/concat): the same work as ours, for an equal-work comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { IS_NODE } from '../src/index.js';
import { HEAD_DIM, heads } from './variants.js';

// ------------------------------------------------------------------ tfjs-layers MultiHeadAttention

export interface TfjsMhaLayer {
  call(query: tf.Tensor, kwargs: { value: tf.Tensor; useCausalMask?: boolean; training?: boolean }): tf.Tensor;
  dispose(): unknown;
  built: boolean;
}
export type TfjsMhaCtor = new (args: { numHeads: number; keyDim: number; useBias?: boolean }) => TfjsMhaLayer;

let loaded: { ctor: TfjsMhaCtor | null; error: string | null; registry: Record<string, unknown> } | null = null;

/**
 * The tfjs-layers MHA class: in Node through an esbuild bundle (bench/tfjs_mha_node.ts); in a browser
 * bundle by importing the file directly (esbuild resolves its extensionless imports, and the bundle holds
 * one copy of tfjs-layers).
 */
export async function loadTfjsMultiHeadAttention(): Promise<{ ctor: TfjsMhaCtor | null; error: string | null }> {
  if (loaded === null) {
    try {
      if (IS_NODE) {
        const node = await import('./tfjs_mha_node.js');
        const r = await node.bundleTfjsMultiHeadAttention();
        loaded = { ctor: r.ctor as TfjsMhaCtor, error: null, registry: r.registry };
      } else {
        const mod = await import('@tensorflow/tfjs-layers/dist/layers/nlp/multihead_attention.js');
        loaded = { ctor: mod.MultiHeadAttention as unknown as TfjsMhaCtor, error: null, registry: {} };
      }
    } catch (e) {
      loaded = { ctor: null, error: (e as Error).message.split('\n')[0], registry: {} };
    }
  }
  return { ctor: loaded.ctor, error: loaded.error };
}

/**
 * Runs `fn` with the Node bundle's serialization entries in place (the bundled layer rebuilds its
 * initializers through the registry while it builds), then restores tfjs-layers' own entries.
 */
function withBundleRegistry<T>(fn: () => T): T {
  const bundleRegistry = loaded?.registry ?? {};
  const registry = tf.serialization.SerializationMap.getMap().classNameMap as Record<string, unknown>;
  const saved: Record<string, unknown> = {};
  for (const key of Object.keys(bundleRegistry)) saved[key] = registry[key];
  Object.assign(registry, bundleRegistry);
  try {
    return fn();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete registry[key];
      else registry[key] = value;
    }
  }
}

/** Checks on the active backend that the peer's output is a tensor of our engine and backend. */
export function checkSameEngine(out: tf.Tensor): string | null {
  if (!(out instanceof tf.Tensor)) return 'output is not a tf.Tensor of @tensorflow/tfjs';
  const info = tf.engine().state.tensorInfo.get(out.dataId);
  if (info === undefined) return 'output tensor is unknown to the engine of @tensorflow/tfjs';
  if (info.backend !== tf.engine().backend) return `output lives on another backend instance (${tf.getBackend()} expected)`;
  return null;
}

export class TfjsMhaPeer {
  readonly layer: TfjsMhaLayer;

  constructor(ctor: TfjsMhaCtor, d: number) {
    this.layer = withBundleRegistry(() => new ctor({ numHeads: heads(d), keyDim: HEAD_DIM, useBias: false }));
  }

  /** Causal self-attention of `x [B, T, D]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return withBundleRegistry(() => tf.tidy(() => this.layer.call(x, { value: x, useCausalMask: true })));
  }

  /** The layer's own weights are not tracked by tfjs-layers (sublayers), so collect the engine's. */
  variables(): tf.Variable[] {
    const layer = this.layer as unknown as Record<string, { trainableWeights?: Array<{ read(): tf.Variable }> }>;
    return ['_queryDense', '_keyDense', '_valueDense', '_outputDense']
      .flatMap((k) => layer[k]?.trainableWeights ?? [])
      .map((w) => w.read());
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
  }
}

// ------------------------------------------------------------------ plain tf.matMul attention

/** `[T, S]` additive causal mask for queries at positions `offset..offset+T-1` (built in JS). */
function causalMask(t: number, s: number, offset: number): tf.Tensor2D {
  const data = new Float32Array(t * s);
  for (let i = 0; i < t; i++) for (let j = offset + i + 1; j < s; j++) data[i * s + j] = -1e9;
  return tf.tensor2d(data, [t, s]);
}

export interface PlainCache {
  k: tf.Tensor4D; // [B, H, S, Dh]
  v: tf.Tensor4D; // [B, H, S, Dh]
}

/** RoPE the way an app developer writes it: `x * cos + rotateHalf(x) * sin`, x `[B, H, T, Dh]`. */
function appRope(x: tf.Tensor, offset: number): tf.Tensor {
  const [, , t, dh] = x.shape as number[];
  const half = dh / 2;
  const cos = new Float32Array(t * dh);
  const sin = new Float32Array(t * dh);
  for (let p = 0; p < t; p++) {
    for (let j = 0; j < half; j++) {
      const angle = (offset + p) * Math.pow(10000, (-2 * j) / dh);
      cos[p * dh + j] = cos[p * dh + j + half] = Math.cos(angle);
      sin[p * dh + j] = sin[p * dh + j + half] = Math.sin(angle);
    }
  }
  const [x1, x2] = tf.split(x, 2, -1); // [B, H, T, Dh/2] x 2
  const rotated = tf.concat([tf.neg(x2), x1], -1); // [B, H, T, Dh]
  return tf.add(tf.mul(x, tf.tensor2d(cos, [t, dh])), tf.mul(rotated, tf.tensor2d(sin, [t, dh])));
}

export class PlainAttentionPeer {
  readonly h: number;
  readonly d: number;
  readonly rope: boolean;
  readonly wq: tf.Variable;
  readonly wk: tf.Variable;
  readonly wv: tf.Variable;
  readonly wo: tf.Variable;

  constructor(d: number, rope = false, seed = 3) {
    this.d = d;
    this.h = heads(d);
    this.rope = rope;
    const init = (i: number) => tf.tidy(() => tf.variable(tf.randomNormal([d, d], 0, 1 / Math.sqrt(d), 'float32', seed + i)));
    this.wq = init(0);
    this.wk = init(1);
    this.wv = init(2);
    this.wo = init(3);
  }

  /** `x [B, T, D]` attending over `past` (if any) plus itself; returns the output and the grown cache. */
  forward(x: tf.Tensor, past: PlainCache | null = null): { y: tf.Tensor; cache: PlainCache } {
    const [b, t, d] = x.shape as number[];
    const { h } = this;
    const dh = d / h;
    const x2 = tf.reshape(x, [b * t, d]); // [B*T, D]
    // [B*T, D] @ [D, D] -> [B, T, H, Dh] -> [B, H, T, Dh]
    const split = (w: tf.Tensor) => tf.transpose(tf.reshape(tf.matMul(x2, w), [b, t, h, dh]), [0, 2, 1, 3]) as tf.Tensor4D;
    const offset = past === null ? 0 : past.k.shape[2];
    const q = this.rope ? appRope(split(this.wq), offset) : split(this.wq);
    let k = this.rope ? (appRope(split(this.wk), offset) as tf.Tensor4D) : split(this.wk);
    let v = split(this.wv);
    if (past !== null) {
      k = tf.concat([past.k, k], 2); // [B, H, S, Dh]
      v = tf.concat([past.v, v], 2); // [B, H, S, Dh]
    }
    const s = k.shape[2];
    let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)); // [B, H, T, Dh] @ [B, H, S, Dh]^T -> [B, H, T, S]
    if (t > 1) scores = tf.add(scores, causalMask(t, s, s - t)); // + [T, S]
    const out = tf.matMul(tf.softmax(scores), v); // [B, H, T, S] @ [B, H, S, Dh] -> [B, H, T, Dh]
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * t, d]); // [B, H, T, Dh] -> [B, T, H, Dh] -> [B*T, D]
    const y = tf.reshape(tf.matMul(merged, this.wo), [b, t, d]); // [B*T, D] @ [D, D] -> [B, T, D]
    return { y, cache: { k, v } };
  }

  variables(): tf.Variable[] {
    return [this.wq, this.wk, this.wv, this.wo];
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
  }
}
