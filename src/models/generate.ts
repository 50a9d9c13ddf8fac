/**
 * Text generation with a `CausalLM`: prefill once, then decode with the KV cache. Greedy by default;
 * temperature, top-k and top-p sampling with a seed for reproducibility; stop tokens; a per-token
 * callback for streaming. Prompts of different lengths are left-padded and masked.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { Mulberry32 } from '../data/prng.js';
import type { CausalLM } from './causal_lm.js';
import type { ModelCache } from './model_cache.js';

export interface GenerateOptions {
  /** Tokens to generate per prompt (>= 1). */
  maxNewTokens: number;
  /** Softmax temperature; 0 (default) picks the argmax (greedy). */
  temperature?: number;
  /** Sample only among the k most likely tokens. */
  topK?: number;
  /** Sample from the smallest set of tokens whose probability reaches p (nucleus). */
  topP?: number;
  /** Seed of the sampler (default 0): the same seed gives the same tokens. */
  seed?: number;
  /** A sequence ends when it produces one of these (the stop token is kept in the output). */
  stopTokens?: number[];
  /** Called after every step with the token chosen for each sequence (-1 for finished ones). */
  onToken?: (event: { step: number; tokens: number[]; finished: boolean[] }) => void | Promise<void>;
  /** Token id used to left-pad shorter prompts (masked out). Default 0. */
  padTokenId?: number;
}

export interface GenerateResult {
  /** New tokens per sequence (up to and including a stop token). */
  tokens: number[][];
  /** Prompt followed by the new tokens, per sequence (without padding). */
  sequences: number[][];
  finishReasons: Array<'stop' | 'length'>;
  prefillMs: number;
  /** Wall time of the decode steps after the prefill. */
  decodeMs: number;
  /** Generated tokens (all sequences) per second of decoding. */
  decodeTokensPerSecond: number;
}

function checkOptions(lm: CausalLM, longest: number, o: GenerateOptions): void {
  const v = lm.config.vocabSize;
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new ValueError(`generate: maxNewTokens must be a positive integer, got ${o.maxNewTokens}.`);
  }
  if (longest + o.maxNewTokens > lm.config.maxSequenceLength) {
    throw new ValueError(`generate: the longest prompt (${longest} tokens) plus maxNewTokens (${o.maxNewTokens}) exceeds ` +
      `maxSequenceLength ${lm.config.maxSequenceLength}.`);
  }
  if (o.temperature !== undefined && !(o.temperature >= 0)) throw new ValueError(`generate: temperature must be >= 0, got ${o.temperature}.`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) throw new ValueError(`generate: topK must be a positive integer, got ${o.topK}.`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new ValueError(`generate: topP must be in (0, 1], got ${o.topP}.`);
  for (const s of o.stopTokens ?? []) {
    if (!Number.isInteger(s) || s < 0 || s >= v) throw new ValueError(`generate: stop token ${s} is not in [0, ${v}).`);
  }
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, o: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>,
  rng: Mulberry32): number {
  const temperature = o.temperature ?? 0;
  if (temperature === 0 && o.topK === undefined && o.topP === undefined) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const t = temperature === 0 ? 1 : temperature;
  let order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  if (o.topK !== undefined) order = order.slice(0, o.topK);
  const max = logits[order[0]];
  let probs = order.map((i) => Math.exp((logits[i] - max) / t));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (o.topP !== undefined) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && cum < o.topP) cum += probs[keep++];
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  let u = rng.next();
  for (let i = 0; i < order.length; i++) {
    u -= probs[i];
    if (u < 0) return order[i];
  }
  return order[order.length - 1];
}

/** Reads the last position's logits `[B, V]` of `[B, T, V]` into JS rows. */
async function lastLogits(logits: tf.Tensor3D): Promise<Float32Array[]> {
  const [b, t, v] = logits.shape;
  const last = tf.tidy(() => tf.reshape(tf.slice(logits, [0, t - 1, 0], [b, 1, v]), [b, v]));
  const data = (await last.data()) as Float32Array;
  last.dispose();
  return Array.from({ length: b }, (_, r) => data.subarray(r * v, (r + 1) * v));
}

export async function generate(lm: CausalLM, promptsIn: number[] | number[][], options: GenerateOptions): Promise<GenerateResult> {
  const prompts = (promptsIn.length > 0 && Array.isArray(promptsIn[0]) ? promptsIn : [promptsIn]) as number[][];
  if (prompts.length === 0 || prompts.some((p) => !Array.isArray(p) || p.length === 0)) {
    throw new ValueError('generate: every prompt must be a non-empty array of token ids.');
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  checkOptions(lm, longest, options);
  const pad = options.padTokenId ?? 0;
  const ragged = prompts.some((p) => p.length !== longest);
  const ids = prompts.map((p) => [...new Array<number>(longest - p.length).fill(pad), ...p]);
  const mask = ragged ? prompts.map((p) => [...new Array<number>(longest - p.length).fill(0), ...new Array<number>(p.length).fill(1)]) : null;
  const rng = new Mulberry32(options.seed ?? 0);
  const stop = new Set(options.stopTokens ?? []);
  const tokens: number[][] = prompts.map(() => []);
  const finished = prompts.map(() => false);
  const finishReasons: Array<'stop' | 'length'> = prompts.map(() => 'length');

  let t0 = performance.now();
  let { logits, cache } = lm.callWithCache(ids, null, { paddingMask: mask });
  let rows = await lastLogits(logits);
  logits.dispose();
  const prefillMs = performance.now() - t0;
  t0 = performance.now();
  let generated = 0;
  let current: ModelCache = cache;
  try {
    for (let step = 0; step < options.maxNewTokens; step++) {
      const chosen = rows.map((row, r) => (finished[r] ? -1 : sampleToken(row, options, rng)));
      chosen.forEach((tok, r) => {
        if (tok < 0) return;
        tokens[r].push(tok);
        generated += 1;
        if (stop.has(tok)) {
          finished[r] = true;
          finishReasons[r] = 'stop';
        }
      });
      if (options.onToken) await options.onToken({ step, tokens: chosen, finished: [...finished] });
      if (step === options.maxNewTokens - 1 || finished.every(Boolean)) break;
      // Finished sequences keep decoding a pad token (their outputs are ignored) so the batch stays aligned.
      const next = chosen.map((tok) => [tok < 0 ? pad : tok]);
      const r = lm.callWithCache(next, current);
      current.dispose();
      current = r.cache;
      rows = await lastLogits(r.logits);
      r.logits.dispose();
    }
  } finally {
    current.dispose();
  }
  const decodeMs = performance.now() - t0;
  return {
    tokens,
    sequences: prompts.map((p, r) => [...p, ...tokens[r]]),
    finishReasons,
    prefillMs,
    decodeMs,
    decodeTokensPerSecond: decodeMs > 0 ? (1000 * Math.max(0, generated - prompts.length)) / decodeMs : 0,
  };
}
