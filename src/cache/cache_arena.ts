/**
 * A cache arena: the storage that lets a decode step append its token to the KV cache in place, on backends
 * with a fused decode kernel (webgpu). Without it every step concatenates the whole cache into a new tensor.
 *
 * Notation: B batch, C capacity (positions the arena has room for), L filled positions, and per region
 * (one per cache tensor of the mechanism, e.g. GQA's `key` and `value`) H heads of D values.
 *
 * Layout: one flat float32 tensor. Each region is `[B, H, C, D]` at an element offset; after the regions,
 * the query scratch `[B, Hq, 1, Dq]`, which each decode step overwrites with its rotated query.
 *
 *   | key [B, Hk, C, Dk] | value (or latent) [B, Hv, C, Dv] | query scratch [B, Hq, 1, Dq] |
 *
 * Sharing: the caches of consecutive steps share one arena (`AttentionCache.fromArena`); a cache of length
 * L sees positions 0..L-1, which are never written again. A step appends in place only to the newest
 * cache (L = filled) when there is room; a step from an older cache (a branch), or with the arena full,
 * copies the first L positions into a new arena first (copy on write), so caches stay immutable. The
 * arena is freed when the last cache holding it is disposed.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';

/** A region's place in the arena: `[B, heads, capacity, dim]` at element `offset`. */
export interface ArenaRegion {
  heads: number;
  dim: number;
  offset: number;
}

/** What a mechanism keeps in an arena: its cache tensors (in order) and its query. */
export interface ArenaSpec {
  /**
   * Cache tensors by name, `[B, heads, S, dim]` each (sequence axis 2), or with `seqAxis: 1` and one head
   * `[B, S, dim]` (MLA's latent and RoPE key; the same memory layout).
   */
  regions: Array<{ name: string; heads: number; dim: number; seqAxis?: 1 | 2 }>;
  /** The rotated query of one step, `[B, heads, 1, dim]`. */
  query: { heads: number; dim: number };
}

/** Growth of new arenas (internal; tests lower it to exercise growth in a few steps). */
export const CACHE_ARENA_TUNING = {
  /** Capacity comes in multiples of this many positions, and at least this many are spare. */
  step: 64,
};

/** Positions an arena gets room for when it must hold `needed`: half as much again, at least one step more. */
export function arenaCapacity(needed: number): number {
  const { step } = CACHE_ARENA_TUNING;
  return Math.ceil((needed + Math.max(step, needed / 2)) / step) * step;
}

/** Where each region of `spec` lies in an arena for batch `batch` and capacity `capacity`, and its size. */
export function arenaLayout(
  spec: ArenaSpec,
  batch: number,
  capacity: number,
): { regions: Record<string, ArenaRegion>; query: ArenaRegion; elements: number } {
  const regions: Record<string, ArenaRegion> = {};
  let offset = 0;
  for (const r of spec.regions) {
    regions[r.name] = { heads: r.heads, dim: r.dim, offset };
    offset += batch * r.heads * capacity * r.dim;
  }
  const query = { heads: spec.query.heads, dim: spec.query.dim, offset };
  return { regions, query, elements: offset + batch * query.heads * query.dim };
}

export class CacheArena {
  /** The flat storage `[elements]`. */
  readonly tensor: tf.Tensor1D;
  readonly batch: number;
  readonly capacity: number;
  readonly spec: ArenaSpec;
  /** Regions by name. */
  readonly regions: Readonly<Record<string, ArenaRegion>>;
  /** The query scratch `[B, Hq, 1, Dq]`. */
  readonly query: ArenaRegion;
  /** Positions written so far; a cache of this length may append in place. */
  filled: number;
  private holders = 0;

  /** Takes ownership of `tensor` (kept; disposed with the last holder), which holds `filled` positions. */
  constructor(tensor: tf.Tensor1D, spec: ArenaSpec, batch: number, capacity: number, filled: number) {
    const layout = arenaLayout(spec, batch, capacity);
    if (tensor.rank !== 1 || tensor.size !== layout.elements) {
      throw new ValueError(`CacheArena: a tensor of ${tensor.size} elements does not hold batch ${batch} at capacity ${capacity}.`);
    }
    this.tensor = tensor;
    this.spec = spec;
    this.batch = batch;
    this.capacity = capacity;
    this.filled = filled;
    this.regions = layout.regions;
    this.query = layout.query;
  }

  /** Whether a cache of `length` positions may append `count` positions in place. */
  appendsInPlace(length: number, count = 1): boolean {
    return !this.tensor.isDisposed && length === this.filled && length + count <= this.capacity;
  }

  /** Elements per cached position per sequence. */
  elementsPerToken(): number {
    return this.spec.regions.reduce((n, r) => n + r.heads * r.dim, 0);
  }

  /** Sequence axis of region `name`'s cache tensor (2, or 1 for a `[B, S, D]` region). */
  seqAxis(name: string): 1 | 2 {
    return this.spec.regions.find((r) => r.name === name)?.seqAxis ?? 2;
  }

  /** The first `length` positions of region `name` as a new tensor `[B, H, length, D]` (`[B, length, D]` on sequence axis 1). */
  slice(name: string, length: number): tf.Tensor {
    const r = this.regions[name];
    if (r === undefined) throw new ValueError(`CacheArena: no region named ${JSON.stringify(name)}.`);
    const flat = this.seqAxis(name) === 1;
    return tf.tidy(() => {
      const region = tf.slice(this.tensor, [r.offset], [this.batch * r.heads * this.capacity * r.dim]);
      const shaped = tf.reshape(region, [this.batch, r.heads, this.capacity, r.dim]);
      const rows = tf.slice(shaped, [0, 0, 0, 0], [this.batch, r.heads, length, r.dim]);
      return flat ? tf.reshape(rows, [this.batch, length, r.dim]) : rows;
    });
  }

  /** A cache starts holding the arena. */
  retain(): void {
    this.holders += 1;
  }

  /** A cache lets go of the arena; the last one frees it. */
  release(): void {
    this.holders -= 1;
    if (this.holders <= 0) this.tensor.dispose();
  }
}
