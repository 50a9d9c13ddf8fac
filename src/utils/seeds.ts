/**
 * Seed strides for seeded dropout. A layer built with `seed` draws call n's dropout mask from
 * `seed + STRIDE * n`, so every call gets a new mask and the run stays reproducible. The strides are
 * different primes, so the attention-weight dropout and the decoder block's residual dropout of one
 * layer (which share the layer's seed) never draw the same mask.
 */
/** Stride of the attention layers' dropout seeds (dropout on the attention weights). */
export const ATTENTION_DROPOUT_SEED_STRIDE = 7919;
/** Stride of the decoder block's residual dropout seeds. */
export const RESIDUAL_DROPOUT_SEED_STRIDE = 15485863;
