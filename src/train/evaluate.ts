/** Validation loss of a `CausalLM` over deterministic, non-overlapping windows. */
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../models/causal_lm.js';
import { sparseCrossEntropyFromLogits } from '../models/losses.js';
import { evaluationBatches } from '../data/dataset.js';
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

export function evaluate(lm: CausalLM, ids: TokenIds, o: EvaluateOptions): EvaluateResult {
  let total = 0;
  let tokens = 0;
  for (const batch of evaluationBatches(ids, o.batchSize, o.sequenceLength, o.maxBatches)) {
    const n = batch.targets.size;
    const loss = tf.tidy(() => sparseCrossEntropyFromLogits(batch.targets, lm.model.apply(batch.inputs, { training: false }) as tf.Tensor));
    total += loss.dataSync()[0] * n;
    tokens += n;
    tf.dispose([loss, batch.inputs, batch.targets]);
  }
  const mean = total / Math.max(1, tokens);
  return { loss: mean, perplexity: Math.exp(mean), bitsPerToken: mean / Math.LN2, tokens };
}
