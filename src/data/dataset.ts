/**
 * Train/validation split and batching of a token stream for next-token prediction.
 *
 * A window is `T + 1` consecutive tokens: inputs are its first `T`, targets its last `T` (shifted by
 * one). Training batches take `B` windows at uniformly random offsets from a seeded PRNG, whose state
 * can be saved and restored so a resumed run sees exactly the same batches. Evaluation batches take
 * the windows at offsets 0, T, 2T, ...: every token after the first is a target exactly once (up to a
 * tail shorter than T), with no overlap.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError, positiveInt } from '../utils/errors.js';
import { Mulberry32 } from './prng.js';
import { toInt32, type TokenIds } from './ids.js';

export interface TokenBatch {
  /** int32 `[B, T]`: the first T tokens of each window. */
  inputs: tf.Tensor2D;
  /** int32 `[B, T]`: the last T tokens of each window (inputs shifted left by one). */
  targets: tf.Tensor2D;
}

export interface TokenBatchArrays {
  /** Row-major `[B, T]`. */
  inputs: Int32Array;
  /** Row-major `[B, T]`. */
  targets: Int32Array;
  /** Offset of each window in the token stream. */
  starts: number[];
  batchSize: number;
  sequenceLength: number;
}

function checkWindow(owner: string, what: string, length: number, sequenceLength: number): void {
  if (length < sequenceLength + 1) {
    throw new ValueError(
      `${owner}: ${what} has ${length} token(s), shorter than one window of ` + `sequenceLength + 1 = ${sequenceLength + 1} tokens.`,
    );
  }
}

/** Builds the input/target arrays of windows starting at `starts`. */
export function windowArrays(ids: Int32Array, starts: number[], sequenceLength: number): TokenBatchArrays {
  const t = sequenceLength;
  const inputs = new Int32Array(starts.length * t);
  const targets = new Int32Array(starts.length * t);
  starts.forEach((s, r) => {
    inputs.set(ids.subarray(s, s + t), r * t);
    targets.set(ids.subarray(s + 1, s + 1 + t), r * t);
  });
  return { inputs, targets, starts, batchSize: starts.length, sequenceLength: t };
}

/** Int32 tensors `[B, T]` of batch arrays (the caller disposes them). */
export function batchTensors(a: TokenBatchArrays): TokenBatch {
  return {
    inputs: tf.tensor2d(a.inputs, [a.batchSize, a.sequenceLength], 'int32'),
    targets: tf.tensor2d(a.targets, [a.batchSize, a.sequenceLength], 'int32'),
  };
}

export interface SplitOptions {
  /** Fraction of tokens (the last ones) held out for validation, in (0, 1). Default 0.1. */
  validationFraction?: number;
  /** Both parts must hold one window of `sequenceLength + 1` tokens. Default 1 (a window of 2). */
  sequenceLength?: number;
}

/**
 * Splits the stream contiguously: the first `n - floor(n * validationFraction)` tokens train, the rest
 * validate. Deterministic; the parts are copies.
 */
export function splitTokens(ids: TokenIds, options: SplitOptions = {}): { train: Int32Array; validation: Int32Array } {
  const owner = 'splitTokens';
  const all = toInt32(owner, 'ids', ids);
  const fraction = options.validationFraction ?? 0.1;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
    throw new ValueError(`${owner}: validationFraction must be a number in (0, 1), got ${String(fraction)}.`);
  }
  const t = positiveInt(owner, 'sequenceLength', options.sequenceLength ?? 1);
  const nValid = Math.floor(all.length * fraction);
  const cut = all.length - nValid;
  checkWindow(owner, `the training part (first ${cut} of ${all.length} tokens)`, cut, t);
  checkWindow(owner, `the validation part (last ${nValid} of ${all.length} tokens, validationFraction ${fraction})`, nValid, t);
  return { train: all.slice(0, cut), validation: all.slice(cut) };
}

export interface BatcherOptions {
  batchSize: number;
  sequenceLength: number;
  /** PRNG seed (any integer). Default 0. */
  seed?: number;
}

/** Everything needed to resume a Batcher; plain JSON. */
export interface BatcherState {
  kind: 'mulberry32';
  seed: number;
  /** PRNG state (uint32) after the last batch. */
  rng: number;
  /** Batches drawn so far. */
  step: number;
  batchSize: number;
  sequenceLength: number;
  /** Length of the token stream, checked on restore. */
  tokens: number;
}

/** Random training windows from a token stream, reproducible from a seed and resumable. */
export class Batcher {
  readonly batchSize: number;
  readonly sequenceLength: number;
  readonly seed: number;
  private readonly ids: Int32Array;
  private readonly rng: Mulberry32;
  private steps = 0;

  constructor(ids: TokenIds, options: BatcherOptions) {
    const owner = 'Batcher';
    if (options === null || typeof options !== 'object') {
      throw new ValueError(`${owner}: options {batchSize, sequenceLength, seed?} are required.`);
    }
    this.batchSize = positiveInt(owner, 'batchSize', options.batchSize);
    this.sequenceLength = positiveInt(owner, 'sequenceLength', options.sequenceLength);
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed)) throw new ValueError(`${owner}: seed must be an integer, got ${String(seed)}.`);
    this.seed = seed;
    this.ids = toInt32(owner, 'ids', ids);
    checkWindow(owner, 'the token stream', this.ids.length, this.sequenceLength);
    this.rng = new Mulberry32(seed);
  }

  /** Batches drawn so far. */
  get step(): number {
    return this.steps;
  }

  /** Number of distinct window offsets. */
  get windows(): number {
    return this.ids.length - this.sequenceLength;
  }

  /** The next batch as arrays (advances the state like `next()`). */
  nextArrays(): TokenBatchArrays {
    const starts: number[] = [];
    for (let r = 0; r < this.batchSize; r++) starts.push(this.rng.nextInt(this.windows));
    this.steps++;
    return windowArrays(this.ids, starts, this.sequenceLength);
  }

  /** The next batch as int32 tensors `[B, T]`; the caller disposes them. */
  next(): TokenBatch {
    return batchTensors(this.nextArrays());
  }

  /** `count` batches (endless when omitted). */
  *batches(count = Infinity): Generator<TokenBatch> {
    for (let i = 0; i < count; i++) yield this.next();
  }

  state(): BatcherState {
    return {
      kind: 'mulberry32',
      seed: this.seed,
      rng: this.rng.getState(),
      step: this.steps,
      batchSize: this.batchSize,
      sequenceLength: this.sequenceLength,
      tokens: this.ids.length,
    };
  }

  /** Continues from a saved `state()`; the batch size, window and stream length must match. */
  restore(state: BatcherState): this {
    const owner = 'Batcher.restore';
    if (state === null || typeof state !== 'object' || state.kind !== 'mulberry32') {
      throw new ValueError(`${owner}: expected a state from Batcher.state() (kind "mulberry32").`);
    }
    const mismatch = (name: string, got: unknown, want: unknown): never => {
      throw new ValueError(`${owner}: the state was saved with ${name} ${String(got)}, this Batcher has ${String(want)}.`);
    };
    if (state.batchSize !== this.batchSize) mismatch('batchSize', state.batchSize, this.batchSize);
    if (state.sequenceLength !== this.sequenceLength) mismatch('sequenceLength', state.sequenceLength, this.sequenceLength);
    if (state.tokens !== this.ids.length) mismatch('a token stream of length', state.tokens, this.ids.length);
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new ValueError(`${owner}: step must be a non-negative integer, got ${String(state.step)}.`);
    }
    this.rng.setState(state.rng);
    this.steps = state.step;
    return this;
  }
}

/** Offsets 0, T, 2T, ... of the non-overlapping evaluation windows (`floor((n - 1) / T)` of them). */
export function evaluationWindowStarts(length: number, sequenceLength: number): number[] {
  const count = Math.floor((length - 1) / sequenceLength);
  return Array.from({ length: Math.max(0, count) }, (_, i) => i * sequenceLength);
}

/**
 * Deterministic validation batches: the windows at offsets 0, T, 2T, ... in order, `batchSize` per
 * batch (the last batch may be smaller), at most `maxBatches` batches. Targets never overlap, and
 * together they are every token after the first up to a tail shorter than T. The caller disposes the
 * tensors of each batch.
 */
export function evaluationBatches(ids: TokenIds, batchSize: number, sequenceLength: number, maxBatches?: number): Generator<TokenBatch> {
  const arrays = evaluationBatchArrays(ids, batchSize, sequenceLength, maxBatches); // checks now, not at first next()
  return (function* () {
    for (const a of arrays) yield batchTensors(a);
  })();
}

/** `evaluationBatches` as arrays (with the window offsets). */
export function evaluationBatchArrays(ids: TokenIds, batchSize: number, sequenceLength: number, maxBatches?: number): TokenBatchArrays[] {
  const owner = 'evaluationBatches';
  const all = toInt32(owner, 'ids', ids);
  const b = positiveInt(owner, 'batchSize', batchSize);
  const t = positiveInt(owner, 'sequenceLength', sequenceLength);
  const limit = maxBatches === undefined ? Infinity : positiveInt(owner, 'maxBatches', maxBatches);
  checkWindow(owner, 'the token stream', all.length, t);
  const starts = evaluationWindowStarts(all.length, t);
  const out: TokenBatchArrays[] = [];
  for (let i = 0; i < starts.length && out.length < limit; i += b) {
    out.push(windowArrays(all, starts.slice(i, i + b), t));
  }
  return out;
}
