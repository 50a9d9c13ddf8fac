/**
 * The KV cache of one attention layer: exactly the tensors its mechanism needs, never the expanded
 * keys/values.
 *
 * | mechanism | tensors (S = cached tokens) |
 * |---|---|
 * | GQA/MHA/MQA | `key [B, Hkv, S, Dh]` (post-RoPE), `value [B, Hkv, S, Dh]` |
 * | GTA | `key [B, Hk, S, Dh]` (post-RoPE), `latent [B, Hc, S, Dl]` (the value latent) |
 * | MLA | `latent [B, S, Dc]` (post-RMSNorm), `keyRope [B, S, Dr]` (post-RoPE, shared by all heads) |
 *
 * Which tensors each mechanism keeps, and their sizes per token, is declared by its `cacheLayout` in
 * `src/mechanisms/` (a test checks it against the caches the layers write).
 *
 * A cache is immutable: a cached call returns a new cache and leaves the one passed in untouched,
 * so the caller disposes the old one when it no longer needs it.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import type { AttentionKind } from '../mechanisms/kinds.js';

export type { AttentionKind } from '../mechanisms/kinds.js';

export interface CacheEntry {
  tensor: tf.Tensor;
  /** Axis that grows with the sequence. */
  seqAxis: number;
}

export class AttentionCache {
  /** Which mechanism wrote the cache. */
  readonly kind: AttentionKind;
  /** Identity of the layer that owns the cache (its unique name). */
  readonly owner: string;
  /** Named cache tensors. */
  readonly entries: Readonly<Record<string, CacheEntry>>;
  /** `[B, S]` 1 for real tokens, 0 for padding; null when every cached token is real. */
  readonly keyMask: tf.Tensor2D | null;
  /** Number of cached positions (also the RoPE position of the next token). */
  readonly length: number;
  readonly batchSize: number;
  private disposed = false;

  constructor(kind: AttentionKind, owner: string, entries: Record<string, CacheEntry>, keyMask: tf.Tensor2D | null) {
    const first = Object.values(entries)[0];
    if (first === undefined) throw new ValueError('AttentionCache: at least one cache tensor is required.');
    this.kind = kind;
    this.owner = owner;
    this.entries = entries;
    this.keyMask = keyMask;
    this.length = first.tensor.shape[first.seqAxis];
    this.batchSize = first.tensor.shape[0];
    for (const [name, entry] of Object.entries(entries)) {
      if (entry.tensor.shape[entry.seqAxis] !== this.length || entry.tensor.shape[0] !== this.batchSize) {
        throw new ValueError(
          `AttentionCache: tensor ${name} has shape [${entry.tensor.shape}], ` +
            `inconsistent with length ${this.length} and batch ${this.batchSize}.`,
        );
      }
    }
  }

  /** The cache tensor called `name`. */
  get(name: string): tf.Tensor {
    const entry = this.entries[name];
    if (entry === undefined) throw new ValueError(`AttentionCache: no tensor named ${JSON.stringify(name)}.`);
    return entry.tensor;
  }

  /** Elements stored per token per sequence (the analytic "KV cache elements per token"). */
  elementsPerToken(): number {
    let total = 0;
    for (const entry of Object.values(this.entries)) {
      total += entry.tensor.size / Math.max(1, entry.tensor.shape[0] * entry.tensor.shape[entry.seqAxis]);
    }
    return total;
  }

  /** Bytes held by the cache tensors (float32), excluding the small padding mask. */
  bytes(): number {
    let total = 0;
    for (const entry of Object.values(this.entries)) total += entry.tensor.size * 4;
    return total;
  }

  /** Bytes per cached token per sequence. */
  bytesPerToken(): number {
    return this.elementsPerToken() * 4;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** All tensors of the cache (for `tf.keep`/`tf.dispose`). */
  tensors(): tf.Tensor[] {
    const list = Object.values(this.entries).map((e) => e.tensor);
    if (this.keyMask) list.push(this.keyMask);
    return list;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.tensors());
  }
}
