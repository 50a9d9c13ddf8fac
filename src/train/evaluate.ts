/** Validation loss of a `CausalLM` over deterministic, non-overlapping windows. */
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../models/causal_lm.js';
import { sparseCrossEntropyFromLogits } from '../models/losses.js';
import { evaluationBatches } from '../data/dataset.js';
import { RotaryStep } from '../ops/rope.js';
import type { TokenIds } from '../data/ids.js';

export interface EvaluateOptions {
  batchSize: number;
  sequenceLength: number;
  /** Limit the number of batches (default: all windows). */
  maxBatches?: number;
}

export interface EvaluateResult {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  perplexity: number;
  /** Loss in bits per token. */
  bitsPerToken: number;
  /** Tokens scored. */
  tokens: number;
}

/** The mean loss of each evaluation batch (a scalar the consumer disposes) and the tokens it scores. */
function* batchLosses(lm: CausalLM, ids: TokenIds, o: EvaluateOptions): Generator<{ loss: tf.Scalar; tokens: number }> {
  for (const batch of evaluationBatches(ids, o.batchSize, o.sequenceLength, o.maxBatches)) {
    const tokens = batch.targets.size;
    const rope = new RotaryStep({ start: 0, length: batch.inputs.shape[1] as number }); // RoPE factors built once for all blocks
    try {
      const loss = tf.tidy(() =>
        sparseCrossEntropyFromLogits(batch.targets, lm.model.apply(batch.inputs, { training: false, rope }) as tf.Tensor),
      );
      rope.dispose();
      yield { tokens, loss };
    } finally {
      rope.dispose();
      tf.dispose([batch.inputs, batch.targets]);
    }
  }
}

function summary(total: number, tokens: number): EvaluateResult {
  const mean = total / Math.max(1, tokens);
  return { loss: mean, perplexity: Math.exp(mean), bitsPerToken: mean / Math.LN2, tokens };
}

/**
 * Mean validation loss over deterministic windows. Reads each batch's loss synchronously (`dataSync`),
 * which tfjs's webgpu backend cannot do in Node: use `evaluateAsync` there (same result).
 */
export function evaluate(lm: CausalLM, ids: TokenIds, o: EvaluateOptions): EvaluateResult {
  let total = 0;
  let tokens = 0;
  for (const b of batchLosses(lm, ids, o)) {
    try {
      total += b.loss.dataSync()[0] * b.tokens;
    } finally {
      b.loss.dispose();
    }
    tokens += b.tokens;
  }
  return summary(total, tokens);
}

/** `evaluate` with asynchronous reads: works on every backend (webgpu in Node included), same numbers. */
export async function evaluateAsync(lm: CausalLM, ids: TokenIds, o: EvaluateOptions): Promise<EvaluateResult> {
  let total = 0;
  let tokens = 0;
  for (const b of batchLosses(lm, ids, o)) {
    try {
      total += (await b.loss.data())[0] * b.tokens;
    } finally {
      b.loss.dispose();
    }
    tokens += b.tokens;
  }
  return summary(total, tokens);
}
