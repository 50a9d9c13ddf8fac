/**
 * Text generation with a `CausalLM`: prefill once, then decode with the KV cache. Greedy by default;
 * temperature, top-k and top-p sampling with a seed for reproducibility; stop tokens; a per-token
 * callback for streaming. Prompts of different lengths are left-padded and masked.
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { Mulberry32 } from '../data/prng.js';
import type { ModelCache } from './model_cache.js';

/**
 * What generation needs of a model (a `CausalLM` is one): its sizes and cached calls. Declared here so
 * that this module does not import the model class that imports it.
 */
export interface GenerativeModel {
  readonly config: { readonly vocabSize: number; readonly maxSequenceLength: number };
  callWithCache(
    ids: tf.Tensor | number[][],
    cache: ModelCache | null,
    options?: { paddingMask?: number[][] | null },
  ): { logits: tf.Tensor3D; cache: ModelCache };
}

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

/** The keys `GenerateOptions` knows; any other key (a misspelt `topp`) is an error. */
const OPTION_KEYS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stopTokens', 'onToken', 'padTokenId'] as const;

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map(show).join(', ')}]` : String(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** Checks the sampling options (types and ranges); `undefined` means "use the default". */
function checkSampling(o: GenerateOptions): void {
  const { temperature, topK, topP, seed } = o;
  if (temperature !== undefined && (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)) {
    throw new ValueError(`generate: temperature must be a finite number >= 0 (0 = greedy), got ${show(temperature)}.`);
  }
  if (topK !== undefined && (!isInt(topK) || topK < 1))
    throw new ValueError(`generate: topK must be a positive integer, got ${show(topK)}.`);
  if (topP !== undefined && (typeof topP !== 'number' || !(topP > 0 && topP <= 1))) {
    throw new ValueError(`generate: topP must be a number in (0, 1], got ${show(topP)}.`);
  }
  if (seed !== undefined && !isInt(seed)) throw new ValueError(`generate: seed must be an integer, got ${show(seed)}.`);
}

function checkOptions(lm: GenerativeModel, longest: number, o: GenerateOptions): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new ValueError(`generate: options must be an object such as {maxNewTokens: 16}, got ${show(o)}.`);
  }
  check.knownKeys('generate', o, OPTION_KEYS);
  const v = lm.config.vocabSize;
  if (!isInt(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new ValueError(`generate: maxNewTokens must be a positive integer, got ${show(o.maxNewTokens)}.`);
  }
  if (longest + o.maxNewTokens > lm.config.maxSequenceLength) {
    throw new ValueError(
      `generate: the longest prompt (${longest} tokens) plus maxNewTokens (${o.maxNewTokens}) exceeds ` +
        `maxSequenceLength ${lm.config.maxSequenceLength}.`,
    );
  }
  checkSampling(o);
  if (o.stopTokens !== undefined && !Array.isArray(o.stopTokens)) {
    throw new ValueError(`generate: stopTokens must be an array of token ids, got ${show(o.stopTokens)}.`);
  }
  for (const s of o.stopTokens ?? []) {
    if (!isInt(s) || s < 0 || s >= v) throw new ValueError(`generate: stop token ${show(s)} is not an integer in [0, ${v}).`);
  }
  if (o.padTokenId !== undefined && (!isInt(o.padTokenId) || o.padTokenId < 0 || o.padTokenId >= v)) {
    throw new ValueError(`generate: padTokenId must be an integer in [0, ${v}), got ${show(o.padTokenId)}.`);
  }
  if (o.onToken !== undefined && typeof o.onToken !== 'function') {
    throw new ValueError(`generate: onToken must be a function, got ${show(o.onToken)}.`);
  }
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, o: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rng: Mulberry32): number {
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

/**
 * Generates after each prompt (token ids; one prompt or a batch); see `CausalLM.generate`. Options are
 * checked first: unknown keys, wrong types and out-of-range values are a `ValueError`.
 */
export async function generate(lm: GenerativeModel, promptsIn: number[] | number[][], options: GenerateOptions): Promise<GenerateResult> {
  if (!Array.isArray(promptsIn)) throw new ValueError('generate: prompts must be an array of token ids or an array of such arrays.');
  const prompts = (promptsIn.length > 0 && Array.isArray(promptsIn[0]) ? promptsIn : [promptsIn]) as number[][];
  if (prompts.length === 0 || prompts.some((p) => !Array.isArray(p) || p.length === 0)) {
    throw new ValueError('generate: every prompt must be a non-empty array of token ids.');
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  checkOptions(lm, longest, options);
  const pad = options.padTokenId ?? 0;
  const ragged = prompts.some((p) => p.length !== longest);
  const ids = prompts.map((p) => [...new Array<number>(longest - p.length).fill(pad), ...p]);
  const mask = ragged
    ? prompts.map((p) => [...new Array<number>(longest - p.length).fill(0), ...new Array<number>(p.length).fill(1)])
    : null;
  const rng = new Mulberry32(options.seed ?? 0);
  const stop = new Set(options.stopTokens ?? []);
  const tokens: number[][] = prompts.map(() => []);
  const finished = prompts.map(() => false);
  const finishReasons: Array<'stop' | 'length'> = prompts.map(() => 'length');

  let t0 = performance.now();
  const { logits, cache } = lm.callWithCache(ids, null, { paddingMask: mask });
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
