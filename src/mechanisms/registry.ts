/**
 * The registry of attention mechanisms: kind string -> `Mechanism` descriptor. Every place that depends
 * on the mechanism (building a layer from a config, specs, cache sizes, costs, report text) looks it up
 * here instead of matching kind strings.
 *
 * Adding a fourth mechanism `xyz` takes:
 * 1. its layer file `src/layers/xyz_attention.ts` (a subclass of `AttentionLayer` with `kind = 'xyz'`);
 * 2. one mechanism file `src/mechanisms/xyz.ts` exporting its spec and config types and a `Mechanism`;
 * 3. one registry entry: `'xyz'` in `ATTENTION_KINDS` (`kinds.ts`, a leaf so that the cache and the layers
 *    can name kinds without importing this file) and `xyz: XYZ` in `MECHANISMS` below (with its spec and
 *    config types added to the two unions);
 * 4. interop tables, which live beside their importers (layers and mechanisms know no torch names): its
 *    torch names in `src/io/torch_names.ts` (`ATTENTION_TORCH`), its Hugging Face config keys in
 *    `src/io/hf_mechanisms.ts` (`HF_MECHANISMS`) and its reference-case keys in
 *    `src/conformance/reference_vectors.ts` (`CASE_CONFIGS`). All three are typed over `AttentionKind`,
 *    so TypeScript lists the missing entries once step 3 is done.
 * Nothing else switches on kinds: costs (`analysis/costs.ts`), `attentionSpec`, `createAttention`, the
 * report's head layouts and the cache sizes all go through this registry.
 */
import type { AttentionLayer } from '../layers/attention_base.js';
import { ValueError } from '../utils/errors.js';
import { ATTENTION_KINDS, AttentionKind, isAttentionKind } from './kinds.js';
import type { Mechanism } from './mechanism.js';
import { GQA, GqaAttentionConfig, GqaSpec } from './gqa.js';
import { GTA, GtaAttentionConfig, GtaSpec } from './gta.js';
import { MLA, MlaAttentionConfig, MlaSpec } from './mla.js';

/** The analytic config of any attention layer of this package. */
export type AttentionSpec = GqaSpec | GtaSpec | MlaSpec;

/** Attention by config: `kind` plus the mechanism's arguments (causal masking is always on in a block). */
export type AttentionConfig = GqaAttentionConfig | GtaAttentionConfig | MlaAttentionConfig;

/** A mechanism seen through the unions (what a lookup by a kind known only at run time gives). */
export type AnyMechanism = Mechanism<AttentionSpec, AttentionConfig>;

/** Kind -> mechanism. */
export const MECHANISMS = { gqa: GQA, gta: GTA, mla: MLA } as const satisfies { readonly [K in AttentionKind]: { kind: K } };

/** The kinds as the error messages list them: `'gqa', 'gta' or 'mla'`. */
export function kindList(): string {
  const quoted = ATTENTION_KINDS.map((k) => `'${k}'`);
  return quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
}

/** The mechanism of `kind`; a `ValueError` naming the known kinds when there is none. */
export function mechanismOf(kind: unknown): AnyMechanism {
  if (!isAttentionKind(kind)) throw new ValueError(`attention kind must be ${kindList()}, got ${JSON.stringify(kind)}.`);
  // Each entry's types match its kind, so seeing it through the unions is safe.
  return MECHANISMS[kind] as unknown as AnyMechanism;
}

/** The mechanism whose layer class `layer` is an instance of, or null. */
export function mechanismOfLayer(layer: unknown): AnyMechanism | null {
  for (const kind of ATTENTION_KINDS) {
    const m = mechanismOf(kind);
    if (layer instanceof m.layerClass) return m;
  }
  return null;
}

/** The mechanism of an `AttentionConfig`, checking that the config is an object with a known kind. */
export function mechanismOfConfig(config: unknown): AnyMechanism {
  if (config === null || typeof config !== 'object') {
    throw new ValueError(`attention config must be an object with a "kind" (${kindList()}), got ${JSON.stringify(config)}.`);
  }
  return mechanismOf((config as { kind?: unknown }).kind);
}

/** Builds the attention layer an `AttentionConfig` describes (no weights are created). */
export function createAttentionLayer(config: AttentionConfig, extras: { name?: string; useCausalMask?: boolean } = {}): AttentionLayer {
  return mechanismOfConfig(config).create(config, extras);
}

/** KV-cache elements stored per token per layer: the sum over the mechanism's cache tensors. */
export function cacheElementsPerToken(spec: AttentionSpec): number {
  return mechanismOf(spec.kind)
    .cacheLayout(spec)
    .reduce((sum, t) => sum + t.elementsPerToken, 0);
}
