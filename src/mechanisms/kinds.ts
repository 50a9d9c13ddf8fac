/**
 * The attention mechanisms' kind strings, in one leaf module: `AttentionCache` and the layers name their
 * mechanism with these, and `registry.ts` maps each to its descriptor. This file imports nothing, so the
 * cache and the layers can use the type without importing the registry (which imports them).
 */

/** Every mechanism kind, in the registry's order. */
export const ATTENTION_KINDS = ['gqa', 'gta', 'mla'] as const;

/** A mechanism's kind string: `'gqa'` (also MHA and MQA), `'gta'` or `'mla'`. */
export type AttentionKind = (typeof ATTENTION_KINDS)[number];

/** Whether `value` is one of `ATTENTION_KINDS`. */
export function isAttentionKind(value: unknown): value is AttentionKind {
  return typeof value === 'string' && (ATTENTION_KINDS as readonly string[]).includes(value);
}
