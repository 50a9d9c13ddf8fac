/**
 * The KV cache of a whole `CausalLM`: one `AttentionCache` per block plus the next RoPE position of
 * each sequence (sequences of a batch may hold different numbers of real tokens when prompts were
 * left-padded). Immutable like the layer caches: a cached call returns a new `ModelCache`.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../cache/attention_cache.js';

export class ModelCache {
  /** Identity of the model that wrote the cache. */
  readonly owner: string;
  readonly layers: readonly AttentionCache[];
  /** Next RoPE position per sequence (= real tokens so far). */
  readonly positions: readonly number[];
  /** Whether any cached key is padding (then positions differ from `length`). */
  readonly padded: boolean;
  private disposed = false;

  constructor(owner: string, layers: AttentionCache[], positions: number[], padded: boolean) {
    this.owner = owner;
    this.layers = layers;
    this.positions = positions;
    this.padded = padded;
  }

  /** Cached positions (including padding). */
  get length(): number {
    return this.layers[0]?.length ?? 0;
  }

  get batchSize(): number {
    return this.layers[0]?.batchSize ?? 0;
  }

  /** Bytes of all layers' cache tensors (float32). */
  bytes(): number {
    return this.layers.reduce((s, c) => s + c.bytes(), 0);
  }

  /** Bytes per token per sequence over all layers. */
  bytesPerToken(): number {
    return this.layers.reduce((s, c) => s + c.bytesPerToken(), 0);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** All tensors held (for tf.keep/tf.dispose). */
  tensors(): tf.Tensor[] {
    return this.layers.flatMap((c) => c.tensors());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of this.layers) c.dispose();
  }
}
