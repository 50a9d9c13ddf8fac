/**
 * What the package knows about one attention mechanism, in one object: how to build its layer from a
 * config, the analytic view of that config (`spec`: the sizes the cost formulas and the cache use), the
 * cache it keeps, its parameter and MAC counts, and a sentence describing its head layout. Each
 * mechanism file (`gqa.ts`, `gta.ts`, `mla.ts`) exports one `Mechanism`; `registry.ts` maps kinds to them.
 */
import type { AttentionLayer } from '../layers/attention_base.js';
import type { AttentionKind } from './kinds.js';

/** Layer arguments that a decoder block sets itself, so an attention config leaves them out. */
export type BlockManagedKeys =
  'name' | 'trainable' | 'inputShape' | 'batchInputShape' | 'batchSize' | 'dtype' | 'weights' | 'inputDType' | 'useCausalMask';

/** Arguments a block passes to the attention layer it creates, beside the config. */
export interface CreateExtras {
  name?: string;
  useCausalMask?: boolean;
}

/** One tensor of a mechanism's KV cache, as the layer stores it (S = cached tokens). */
export interface CacheTensorLayout {
  /** The entry's name in `AttentionCache.entries`. */
  name: string;
  /** The axis that grows with the sequence. */
  seqAxis: number;
  /** Elements stored per token per sequence. */
  elementsPerToken: number;
}

/**
 * One mechanism. `Spec` is the mechanism's analytic config (its sizes, with the layer's defaults applied
 * and `kind` set); `Config` its `AttentionConfig` member (`kind` plus the layer's arguments).
 */
export interface Mechanism<
  Spec extends { kind: AttentionKind },
  Config extends { kind: AttentionKind },
  Layer extends AttentionLayer = AttentionLayer,
> {
  readonly kind: Spec['kind'];
  /** Upper-case short name used in reports, e.g. `'GTA'`. */
  readonly label: string;
  /** The layer class (for `instanceof`). */
  readonly layerClass: abstract new (...args: never[]) => Layer;
  /** A new, unbuilt layer for `config` (its arguments are checked by the layer). */
  create(config: Config, extras?: CreateExtras): Layer;
  /** The analytic spec of a config, with defaults as the layer applies them (no checks, no layer). */
  specOfConfig(config: Config): Spec;
  /** The analytic spec of a constructed layer. */
  specOfLayer(layer: Layer): Spec;
  /** The cache tensors, in the order the layer stores them. */
  cacheLayout(spec: Spec): CacheTensorLayout[];
  /** Attention MACs per (query, key) pair (the coefficient of T x S). */
  attentionCoefficient(spec: Spec, absorbed: boolean): number;
  /** Extra attention MACs per cached token of a call (MLA's naive re-expansion); 0 for most mechanisms. */
  cachedTokenMacs(spec: Spec, absorbed: boolean): number;
  /** Projection MACs per token for a layer of width `hiddenSize`. */
  linearMacsPerToken(spec: Spec, hiddenSize: number, absorbed: boolean): number;
  /** Trainable parameters of one layer of width `hiddenSize` (the built layer's `countParams()`). */
  params(spec: Spec, hiddenSize: number): number;
  /** The head layout in words, e.g. "12 query heads of 16, 3 key/value heads". */
  describe(spec: Spec): string;
}

/** `n` followed by `noun`, with an `s` unless `n` is 1. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
