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
 *
 * On backends with a fused decode (webgpu), one-token steps keep the tensors in a shared cache arena
 * (src/cache/cache_arena.ts) and append in place; such a cache (`fromArena`) builds its `entries` on first
 * use, as copies of its own positions, and frees the arena with the last cache that holds it.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import type { AttentionKind } from '../mechanisms/kinds.js';
import type { CacheArena } from './cache_arena.js';

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
  /** `[B, S]` 1 for real tokens, 0 for padding; null when every cached token is real. */
  readonly keyMask: tf.Tensor2D | null;
  /** Number of cached positions (also the RoPE position of the next token). */
  readonly length: number;
  readonly batchSize: number;
  /** The arena holding this cache's positions (fused decode), or null for exact tensors. */
  readonly arena: CacheArena | null;
  private exact: Record<string, CacheEntry> | null;
  private readonly seqAxes: Record<string, number>;
  private disposed = false;

  /**
   * A cache of exact tensors `entries` (each with its sequence axis), or, with `view`, of the first `view.length`
   * positions of a cache arena (pass `{}` as `entries`; each region `[B, H, S, D]` on sequence axis 2 or `[B, S, D]`
   * on axis 1, as the arena's spec says; no padding mask), which it holds until disposed (`fromArena`).
   */
  constructor(
    kind: AttentionKind,
    owner: string,
    entries: Record<string, CacheEntry>,
    keyMask: tf.Tensor2D | null,
    view?: { arena: CacheArena; length: number },
  ) {
    this.kind = kind;
    this.owner = owner;
    this.keyMask = keyMask;
    if (view !== undefined) {
      const { arena, length } = view;
      if (Object.keys(entries).length > 0 || keyMask !== null)
        throw new ValueError('AttentionCache: a cache of an arena takes no tensors of its own and no padding mask.');
      if (!Number.isInteger(length) || length < 1 || length > arena.filled) {
        throw new ValueError(
          `AttentionCache: length must be an integer in [1, ${arena.filled}] (the arena's filled positions), got ${length}.`,
        );
      }
      this.arena = arena;
      this.exact = null;
      this.length = length;
      this.batchSize = arena.batch;
      this.seqAxes = Object.fromEntries(arena.spec.regions.map((r) => [r.name, arena.seqAxis(r.name)]));
      arena.retain();
      return;
    }
    const first = Object.values(entries)[0];
    if (first === undefined) throw new ValueError('AttentionCache: at least one cache tensor is required.');
    this.exact = entries;
    this.arena = null;
    this.length = first.tensor.shape[first.seqAxis];
    this.batchSize = first.tensor.shape[0];
    this.seqAxes = Object.fromEntries(Object.entries(entries).map(([name, e]) => [name, e.seqAxis]));
    for (const [name, entry] of Object.entries(entries)) {
      if (entry.tensor.shape[entry.seqAxis] !== this.length || entry.tensor.shape[0] !== this.batchSize) {
        throw new ValueError(
          `AttentionCache: tensor ${name} has shape [${entry.tensor.shape}], ` +
            `inconsistent with length ${this.length} and batch ${this.batchSize}.`,
        );
      }
    }
  }

  /** A cache of the first `length` positions of `arena`, which it holds until disposed. */
  static fromArena(kind: AttentionKind, owner: string, arena: CacheArena, length: number): AttentionCache {
    return new AttentionCache(kind, owner, {}, null, { arena, length });
  }

  /** Named cache tensors (for an arena cache: copies of its positions, made on first use, freed with the cache). */
  get entries(): Readonly<Record<string, CacheEntry>> {
    if (this.exact === null) {
      if (this.disposed) throw new ValueError('AttentionCache: the cache has been disposed.');
      const arena = this.arena!;
      const made: Record<string, CacheEntry> = {};
      for (const r of arena.spec.regions)
        made[r.name] = { tensor: tf.keep(arena.slice(r.name, this.length)), seqAxis: arena.seqAxis(r.name) };
      this.exact = made;
    }
    return this.exact;
  }

  /** The cache tensor called `name`. */
  get(name: string): tf.Tensor {
    if (!(name in this.seqAxes)) throw new ValueError(`AttentionCache: no tensor named ${JSON.stringify(name)}.`);
    return this.entries[name].tensor;
  }

  /** Elements stored per token per sequence (the analytic "KV cache elements per token"). */
  elementsPerToken(): number {
    if (this.arena !== null && this.exact === null) return this.arena.elementsPerToken();
    let total = 0;
    for (const entry of Object.values(this.entries)) {
      total += entry.tensor.size / Math.max(1, entry.tensor.shape[0] * entry.tensor.shape[entry.seqAxis]);
    }
    return total;
  }

  /** Bytes of the cached positions (float32), excluding the small padding mask; the same with or without an arena. */
  bytes(): number {
    return this.batchSize * this.length * this.elementsPerToken() * 4;
  }

  /**
   * Bytes of GPU or CPU memory this cache keeps alive: `bytes()` for exact tensors; for an arena cache the whole
   * arena (its spare capacity and query scratch too, shared with the other caches of the same arena).
   */
  allocatedBytes(): number {
    if (this.arena === null) return this.bytes();
    return this.arena.tensor.size * 4 + (this.exact === null ? 0 : this.bytes());
  }

  /** Bytes per cached token per sequence. */
  bytesPerToken(): number {
    return this.elementsPerToken() * 4;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** All tensors of the cache (for `tf.keep`; free them with `dispose()`, since an arena may be shared). */
  tensors(): tf.Tensor[] {
    const list = this.exact === null ? [] : Object.values(this.exact).map((e) => e.tensor);
    if (this.arena !== null) list.push(this.arena.tensor);
    if (this.keyMask) list.push(this.keyMask);
    return list;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.exact === null ? [] : Object.values(this.exact).map((e) => e.tensor));
    if (this.keyMask) this.keyMask.dispose();
    this.arena?.release();
  }
}
