/**
 * Scaled dot-product attention with grouped heads, shared by GQA, GTA and MLA.
 *
 * Notation: B batch, T query length, S key length, nQ query heads (attention maps), nK key heads,
 * nV value heads, Dk query/key dim, Dv value dim. Query head i reads key head floor(i / (nQ/nK)) and
 * value head floor(i / (nQ/nV)): contiguous blocks, the Hugging Face `repeat_kv` convention.
 *
 * Instead of repeating K/V per query head (copies) or broadcasting matMul (broken gradient in tfjs),
 * the query heads that share a key head are folded into the row axis:
 * `[B, nQ, T, Dk] -> [B, nK, (nQ/nK)*T, Dk]`, one batched matMul per product (equal batch dims).
 *
 * Long sequences are processed in blocks of query rows, so that no score tensor exceeds a few MiB
 * (the whole `[B, nQ, T, S]` tensor at T = 4096 is 1 GiB and runs several times slower than the same
 * work in blocks). When the bias masks causally (`causalOffset`), each block also skips the keys after
 * its last query: those are masked to exactly zero weight, so the result is the same up to float
 * rounding order. Blocks are not used when the probabilities are returned or dropout is active.
 *
 * Fused path: where the backend has a fused attention kernel (`hasFusedAttention`, webgpu: see
 * src/kernels/webgpu/fused_attention.ts and docs/KERNELS.md) and neither probabilities nor dropout are
 * asked for, the whole computation is one kernel (two for split decode). Its gradient is, for now, the
 * composed path's gradient (recomputed under a tape in `tf.customGrad`). `implementation` forces either path.
 *
 * Fused score path (webgl, `hasFusedAttentionSoftmax`): the composed path keeps its products, but unless the
 * implementation is 'composed', the UNSCALED folded scores go through one kernel that applies the scale, the
 * bias, the causal mask and the softmax (src/kernels/webgl/attention_softmax.ts), so the Mul of q, the bias
 * Adds, the causal bias and tfjs's softmax kernels disappear; probabilities, dropout and blocks are as before.
 * Inference calls of a few queries (decode) that want neither probabilities nor dropout go one step further: one
 * kernel takes the scores and the values and gives the output (no probabilities tensor, no value product).
 */
import * as tf from '@tensorflow/tfjs';
import {
  fusedAttentionBackward,
  fusedAttentionForward,
  fusedAttentionGradUnsupported,
  fusedAttentionUnsupported,
} from '../kernels/webgpu/fused_attention.js';
import {
  maskedSoftmax,
  maskedSoftmaxUnsupported,
  maskedSoftmaxValues,
  maskedSoftmaxValuesUnsupported,
} from '../kernels/webgl/attention_softmax.js';
import { ValueError } from '../utils/errors.js';
import { hasFusedAttention, hasFusedAttentionSoftmax } from './capabilities.js';
import { batchedMatMul } from './matmul.js';
import { causalBias } from './masks.js';

/** Which implementation computes the attention: 'auto' (fused where available and applicable), or one forced. */
export type AttentionImplementation = 'auto' | 'composed' | 'fused';

export interface GroupedAttentionOptions {
  /** Multiplies the scores (applied to the queries, which is cheaper and equal up to rounding); 1 = none. */
  scale: number;
  /** Additive bias broadcastable to `[B, nQ, T, S]`: `[B|1, 1, T|1, S]` (padding and attention masks) or `[T, S]`. */
  bias?: tf.Tensor | null;
  /** Dropout on the attention probabilities (training only). */
  dropoutRate?: number;
  dropoutSeed?: number;
  /**
   * Causal masking: the key index of the first query (the cache length); query t may see keys up to
   * `causalOffset + t`. Later keys get MASK_VALUE (built per block, `causalBias`), and query blocks skip
   * the keys after their last query. null = not causal.
   */
  causalOffset?: number | null;
  /** Also return the probabilities `[B, nQ, T, S]`. Default true. */
  returnProbs?: boolean;
  /**
   * A second query/key pair whose scores are added: `query [B, nQ, T, De]`, `key [B, nE, S, De]` with its
   * own number of key heads nE (MLA's decoupled RoPE part, one key shared by all heads). Saves
   * concatenating (and repeating) keys.
   */
  extra?: { query: tf.Tensor4D; key: tf.Tensor4D } | null;
  /**
   * 'auto' (default): the fused kernel when the backend has one (`hasFusedAttention()`), `returnProbs` is
   * false and no dropout is active; else the composed ops. 'composed' always composes; 'fused' requires
   * the fused kernel and throws a `ValueError` saying why when it cannot be used. On webgl (no fused kernel),
   * 'auto' composes with the fused score kernel (`hasFusedAttentionSoftmax()`) and 'composed' without it.
   */
  implementation?: AttentionImplementation;
}

export interface GroupedAttentionResult {
  output: tf.Tensor4D; // [B, nQ, T, Dv]
  probs: tf.Tensor4D | null; // [B, nQ, T, S], null unless requested
}

/** Block sizing (internal; exported for experiments). */
export const BLOCKING = {
  /** Score elements per block outside a gradient tape. */
  elements: 2 ** 23,
  /** Score elements per block under a gradient tape (fewer, larger blocks: slices cost pads in backward). */
  tapeElements: 2 ** 25,
  /** Minimum folded rows ((nQ/nK) * block rows) per block. */
  minFoldedRows: 128,
  /**
   * Maximum query rows per causal block outside a gradient tape. Causal blocks skip the keys after their last
   * query, so splitting a mid-length sequence saves score work: MHA D=512, B=4, T=512 prefill took 26.0 ms
   * in two blocks of 256 rows against 28.5 ms in one (tensorflow); D=1024, T=1024: 47.1 (4 blocks) against
   * 50.1 ms (2 blocks); at T=2048, 8 blocks of 256 rows beat 16 of 128 (120 against 136 ms). Longer
   * sequences allow T/8 rows (GTA D=1024, T=4096: 154 ms in blocks of 512 rows, 170 ms in blocks of 256).
   */
  maxRows: 256,
  /**
   * Score elements from which `maxRows` applies: below, the skipped work is smaller than the extra kernel
   * launches (GTA with 2 maps, T=512 in the small preset LM: 27.8 ms split against 25.8 ms whole; GQA with
   * 8 heads: 29.7 against 31.8 ms).
   */
  minSplitElements: 2 ** 21,
};

/** Query rows per block (a multiple of 16), or `t` for a single block. */
function blockRows(b: number, nQ: number, nK: number, t: number, s: number, causal: boolean): number {
  const taping = tf.engine().isTapeOn();
  const budget = taping ? BLOCKING.tapeElements : BLOCKING.elements;
  let rows = Math.floor(budget / (b * nQ * s));
  if (!taping && causal && b * nQ * t * s >= BLOCKING.minSplitElements) rows = Math.min(rows, Math.max(BLOCKING.maxRows, t / 8));
  rows = Math.max(rows, Math.ceil(BLOCKING.minFoldedRows / (nQ / nK)), 16);
  if (rows >= t) return t;
  return rows - (rows % 16);
}

/** `q [B, nQ, T, D] @ k [B, nK, S, D]^T` with query heads folded per key head: `[B, nK, (nQ/nK)*T, S]`. */
function foldedScores(q: tf.Tensor, k: tf.Tensor): tf.Tensor {
  const [b, nQ, t, dk] = q.shape;
  const nK = k.shape[1] as number;
  const qf = nQ === nK ? q : tf.reshape(q, [b, nK, (nQ / nK) * t, dk]); // [B, nQ, T, D] -> [B, nK, (nQ/nK)*T, D]
  return batchedMatMul(qf, k, true); // [B, nK, (nQ/nK)*T, D] @ [B, nK, S, D]^T -> [B, nK, (nQ/nK)*T, S]
}

/**
 * Whether the call's softmax takes the fused score kernel (webgl): the implementation is not 'composed', the
 * backend has it and the kernel takes scores `[B, nK, (nQ/nK)*T, S]` with this bias.
 */
function takesFusedSoftmax(implementation: AttentionImplementation, query: tf.Tensor, key: tf.Tensor, bias: tf.Tensor | null): boolean {
  if (implementation === 'composed' || !hasFusedAttentionSoftmax()) return false;
  const [b, nQ, t] = query.shape;
  const [, nK, s] = key.shape;
  return maskedSoftmaxUnsupported([b, nK, (nQ / nK) * t, s], bias, t) === null;
}

/** The folded scores `[B, nK, rk*T, S]` plus the bias and the causal bias (MASK_VALUE after `causalFrom + t`). */
function addBiases(scores: tf.Tensor, bias: tf.Tensor | null | undefined, causalFrom: number | null, t: number): tf.Tensor {
  const [b, nK, rows, s] = scores.shape;
  const rk = rows / t;
  for (const m of [bias, causalFrom === null ? null : causalBias(t, s, causalFrom)]) {
    if (!m) continue;
    if (rk === 1 || (m.rank === 4 && m.shape[2] === 1)) {
      scores = tf.add(scores, m); // [B, nK, rk*T, S] + [B|1, 1, T|1, S] or [T, S]
    } else if (m.rank === 2) {
      // [B, nK, rk, T, S] + [T, S] -> [B, nK, rk*T, S]
      scores = tf.reshape(tf.add(tf.reshape(scores, [b, nK, rk, t, s]), m), [b, nK, rk * t, s]);
    } else {
      // Rows of a folded block are (head in group, t): view them as [B, nK, rk, T, S] to broadcast.
      const [mb, , mt, ms] = m.shape;
      // [B, nK, rk, T, S] + [B|1, 1, 1, T, S] -> [B, nK, rk*T, S]
      scores = tf.reshape(tf.add(tf.reshape(scores, [b, nK, rk, t, s]), tf.reshape(m, [mb, 1, 1, mt, ms])), [b, nK, rk * t, s]);
    }
  }
  return scores;
}

/**
 * One block: queries `q [B, nQ, Tq, Dk]` over keys `[B, nK, Sk, Dk]`, bias `[B|1, 1, Tq|1, Sk]`, optional
 * extra pair `{query [B, nQ, Tq, De], key [B, nE, Sk, De]}`. With `softmaxScale` (a number: the fused score
 * kernel, webgl) q and the extra query come unscaled and the kernel scales, masks and normalises; null:
 * they come scaled and the composed ops add the biases and take the softmax.
 */
function attendBlock(
  q: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  bias: tf.Tensor | null | undefined,
  causalFrom: number | null,
  extra: { query: tf.Tensor; key: tf.Tensor } | null | undefined,
  options: GroupedAttentionOptions,
  wantProbs: boolean,
  softmaxScale: number | null,
): { output: tf.Tensor; probs: tf.Tensor | null } {
  const [b, nQ, t] = q.shape;
  const [, nK, s] = key.shape;
  const [, nV, , dv] = value.shape;
  const rk = nQ / nK;
  const rv = nQ / nV;
  let scores = foldedScores(q, key); // [B, nK, rk*T, S]
  if (extra) {
    const more = foldedScores(extra.query, extra.key); // [B, nE, (nQ/nE)*T, S]
    scores = tf.add(scores, more.shape[1] === nK ? more : tf.reshape(more, [b, nK, rk * t, s])); // rows (head, t) in both
  }
  const dropoutRate = options.dropoutRate ?? 0;
  if (softmaxScale !== null && !wantProbs && dropoutRate === 0) {
    // Few queries at inference (decode, webgl): the softmax and the value product in one kernel.
    const byValueHead = [b, nV, rv * t, s];
    if (maskedSoftmaxValuesUnsupported(byValueHead, value.shape, bias ?? null, t) === null) {
      const sv = rv === rk ? scores : tf.reshape(scores, byValueHead); // [B, nK, rk*T, S] -> [B, nV, rv*T, S]
      const softmax = { scale: softmaxScale, causalOffset: causalFrom, t };
      const out = maskedSoftmaxValues(sv as tf.Tensor4D, value as tf.Tensor4D, bias ?? null, softmax); // [B, nV, rv*T, Dv]
      return { output: rv === 1 ? out : tf.reshape(out, [b, nQ, t, dv]), probs: null }; // -> [B, nQ, T, Dv]
    }
  }
  const probs =
    softmaxScale === null
      ? tf.softmax(addBiases(scores, bias, causalFrom, t)) // [B, nK, rk*T, S]
      : maskedSoftmax(scores as tf.Tensor4D, bias ?? null, { scale: softmaxScale, causalOffset: causalFrom, t }); // [B, nK, rk*T, S]
  let weights: tf.Tensor = probs;
  if (dropoutRate > 0) {
    weights = tf.dropout(probs, dropoutRate, undefined, options.dropoutSeed); // same elements, same order as [B, nQ, T, S]
  }
  const pf = rv === rk ? weights : tf.reshape(weights, [b, nV, rv * t, s]); // [B, nK, rk*T, S] -> [B, nV, rv*T, S]
  const out = batchedMatMul(pf, value); // [B, nV, rv*T, S] @ [B, nV, S, Dv] -> [B, nV, rv*T, Dv]
  return {
    output: rv === 1 ? out : tf.reshape(out, [b, nQ, t, dv]), // [B, nV, rv*T, Dv] -> [B, nQ, T, Dv]
    probs: wantProbs ? (rk === 1 ? probs : tf.reshape(probs, [b, nQ, t, s])) : null, // -> [B, nQ, T, S]
  };
}

const IMPLEMENTATIONS: readonly AttentionImplementation[] = ['auto', 'composed', 'fused'];

/**
 * The implementation used when a call does not name one (the layers do not): 'auto'. Benchmarks and tests
 * set it to 'composed' to measure or check the composed path through whole layers; restore it afterwards.
 */
export const ATTENTION_DEFAULTS: { implementation: AttentionImplementation } = { implementation: 'auto' };

/** Why the fused kernel cannot compute this call, or null when it can. */
function fusedUnavailable(query: tf.Tensor4D, key: tf.Tensor4D, value: tf.Tensor4D, options: GroupedAttentionOptions): string | null {
  if (!hasFusedAttention()) return `needs a backend with a fused attention kernel (webgpu); the active backend is ${tf.getBackend()}`;
  if (options.returnProbs !== false) return 'cannot return the probabilities (pass returnProbs: false)';
  if ((options.dropoutRate ?? 0) > 0) return 'does not apply dropout (dropoutRate must be 0)';
  const why = fusedAttentionUnsupported(query, key, value, options.bias ?? null, options.extra ?? null);
  return why === null ? null : `cannot take these inputs: ${why}`;
}

/** The engine's tape, which tfjs keeps in its private state. */
interface EngineTapeState {
  state: { activeTape: unknown[] | null; gradientDepth: number };
}

/** Whether a gradient tape is recording (inside tf.grads, tf.variableGrads, an optimizer's minimize or fit). */
function underTape(): boolean {
  return (tf.engine() as unknown as EngineTapeState).state.gradientDepth > 0;
}

/**
 * `tf.grads(f)(xs, dy)` called from inside a gradient function. tfjs's `gradients` replaces the engine's
 * active tape with its own and clears it when done, which would leave the enclosing backward pass (still
 * running, it frees its saved tensors from that tape at the end) without a tape; the enclosing tape is
 * restored afterwards.
 */
function nestedGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine() as unknown as EngineTapeState;
  const outer = engine.state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    engine.state.activeTape = outer;
  }
}

/**
 * The fused forward under `tf.customGrad`. Backward: without a bias, the fused backward kernels
 * (src/kernels/webgpu/flash_attention_backward.ts: scores recomputed from the forward's saved log-sum-exp,
 * which the forward keeps only when a tape is recording); with a bias, or dims the backward does not fit,
 * the composed path recomputed under a tape, which also gives the bias its gradient.
 */
function fusedGroupedAttention(query: tf.Tensor4D, key: tf.Tensor4D, value: tf.Tensor4D, options: GroupedAttentionOptions): tf.Tensor4D {
  const hasBias = options.bias !== undefined && options.bias !== null;
  const hasExtra = options.extra !== undefined && options.extra !== null;
  const inputs: tf.Tensor[] = [query, key, value];
  if (hasBias) inputs.push(options.bias!);
  if (hasExtra) inputs.push(options.extra!.query, options.extra!.key);
  const unpack = (xs: tf.Tensor[]) => ({
    q: xs[0] as tf.Tensor4D,
    k: xs[1] as tf.Tensor4D,
    v: xs[2] as tf.Tensor4D,
    bias: hasBias ? xs[3] : null,
    extra: hasExtra ? { query: xs[3 + (hasBias ? 1 : 0)] as tf.Tensor4D, key: xs[4 + (hasBias ? 1 : 0)] as tf.Tensor4D } : null,
  });
  const composed = (xs: tf.Tensor[]): tf.Tensor4D => {
    const u = unpack(xs);
    return groupedAttention(u.q, u.k, u.v, { ...options, bias: u.bias, extra: u.extra, implementation: 'composed', returnProbs: false })
      .output;
  };
  const causalOffset = options.causalOffset ?? null;
  const fusedBackward = underTape() && fusedAttentionGradUnsupported(query, value, options.bias ?? null, options.extra ?? null) === null;
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args.pop() as tf.GradSaveFunc;
    const xs = args as tf.Tensor[];
    const u = unpack(xs);
    const { output, packed } = fusedAttentionForward(u.q, u.k, u.v, {
      scale: options.scale,
      bias: u.bias,
      causalOffset,
      extra: u.extra,
      packed: fusedBackward,
    });
    save(packed ? [...xs, packed] : xs);
    return {
      value: output,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        if (!fusedBackward) return nestedGrads((...ys: tf.Tensor[]) => composed(ys), saved, dy);
        const s = unpack(saved);
        const g = fusedAttentionBackward(s.q, s.k, s.v, s.extra, saved[saved.length - 1] as tf.Tensor4D, dy as tf.Tensor4D, {
          scale: options.scale,
          causalOffset,
        });
        return hasExtra ? [g.query, g.key, g.value, g.extraQuery!, g.extraKey!] : [g.query, g.key, g.value];
      },
    };
  });
  return run(...inputs) as tf.Tensor4D;
}

/**
 * `softmax(scale * Q K^T + bias) V` with grouped key/value heads; one fused kernel where the backend has it
 * (see `GroupedAttentionOptions.implementation`).
 */
export function groupedAttention(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  options: GroupedAttentionOptions,
): GroupedAttentionResult {
  const implementation = options.implementation ?? ATTENTION_DEFAULTS.implementation;
  if (!IMPLEMENTATIONS.includes(implementation)) {
    throw new ValueError(
      `groupedAttention: implementation must be one of ${IMPLEMENTATIONS.map((x) => `'${x}'`).join(', ')}; ` +
        `received ${JSON.stringify(implementation)}.`,
    );
  }
  if (implementation !== 'composed') {
    const why = fusedUnavailable(query, key, value, options);
    if (why === null) return { output: fusedGroupedAttention(query, key, value, options), probs: null };
    if (implementation === 'fused') throw new ValueError(`groupedAttention: implementation 'fused' ${why}.`);
  }
  const [b, nQ, t, dk] = query.shape;
  const [, nK, s] = key.shape;
  const [, nV, , dv] = value.shape;
  // The fused score kernel (webgl) scales the scores itself: q and the extra query stay unscaled.
  const softmaxScale = takesFusedSoftmax(implementation, query, key, options.bias ?? null) ? options.scale : null;
  const scaleQueries = options.scale !== 1 && softmaxScale === null;
  const q = scaleQueries ? tf.mul(query, options.scale) : query;
  const wantProbs = options.returnProbs !== false;
  const dropping = (options.dropoutRate ?? 0) > 0;
  const offset = options.causalOffset ?? null;
  const rows = wantProbs || dropping ? t : blockRows(b, nQ, nK, t, s, offset !== null);
  const extra = options.extra
    ? { query: scaleQueries ? tf.mul(options.extra.query, options.scale) : options.extra.query, key: options.extra.key }
    : null;
  if (rows >= t) {
    const r = attendBlock(q, key, value, options.bias, offset, extra, options, wantProbs, softmaxScale);
    return { output: r.output as tf.Tensor4D, probs: r.probs as tf.Tensor4D | null };
  }
  const bias = options.bias ?? null;
  const outputs: tf.Tensor[] = [];
  for (let t0 = 0; t0 < t; t0 += rows) {
    const tb = Math.min(rows, t - t0);
    const keys = offset === null ? s : Math.min(s, offset + t0 + tb); // keys after the block's last query are masked
    const qb = tf.slice(q, [0, 0, t0, 0], [b, nQ, tb, dk]); // [B, nQ, Tb, Dk]
    const kb = keys === s ? key : tf.slice(key, [0, 0, 0, 0], [b, nK, keys, dk]); // [B, nK, Sb, Dk]
    const vb = keys === s ? value : tf.slice(value, [0, 0, 0, 0], [b, nV, keys, dv]); // [B, nV, Sb, Dv]
    let biasb: tf.Tensor | null = null;
    if (bias !== null && bias.rank === 2) {
      const [bt, bs] = bias.shape;
      biasb = tf.slice(bias, [bt === 1 ? 0 : t0, 0], [bt === 1 ? 1 : tb, bs === 1 ? 1 : keys]); // [Tb|1, Sb|1]
    } else if (bias !== null) {
      const [bb, , bt, bs] = bias.shape;
      const rowsOf = bt === 1 ? [0, 1] : [t0, tb];
      biasb = tf.slice(bias, [0, 0, rowsOf[0], 0], [bb, 1, rowsOf[1], bs === 1 ? 1 : keys]); // [B|1, 1, Tb|1, Sb]
    }
    let extrab: { query: tf.Tensor; key: tf.Tensor } | null = null;
    if (extra !== null) {
      const [, , , de] = extra.query.shape;
      const nE = extra.key.shape[1];
      extrab = {
        query: tf.slice(extra.query, [0, 0, t0, 0], [b, nQ, tb, de]), // [B, nQ, Tb, De]
        key: keys === s ? extra.key : tf.slice(extra.key, [0, 0, 0, 0], [b, nE, keys, de]), // [B, nE, Sb, De]
      };
    }
    // Each block in its own scope, so that its scores and probabilities are freed before the next block.
    // [B, nQ, Tb, Dv]
    outputs.push(
      tf.tidy(() => attendBlock(qb, kb, vb, biasb, offset === null ? null : offset + t0, extrab, options, false, softmaxScale).output),
    );
  }
  return { output: tf.concat(outputs, 2) as tf.Tensor4D, probs: null }; // [B, nQ, T, Dv]
}
