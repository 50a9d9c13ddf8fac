/**
 * The unigram baseline: the cross-entropy a model gets by predicting every token with its training
 * frequency and ignoring context. A language model that does not beat it has learned nothing.
 */
import { ValueError, positiveInt } from '../utils/errors.js';
import { checkIds, toInt32, type TokenIds } from './ids.js';

/**
 * Cross-entropy in nats per token of `validIds` under the unigram distribution of `trainIds` with
 * add-one (Laplace) smoothing over `vocabSize` ids: `p(v) = (count(v) + 1) / (N + vocabSize)`.
 * Divide by `Math.LN2` for bits per token.
 */
export function unigramBaseline(trainIds: TokenIds, validIds: TokenIds, vocabSize: number): number {
  const owner = 'unigramBaseline';
  const v = positiveInt(owner, 'vocabSize', vocabSize);
  const train = toInt32(owner, 'trainIds', trainIds);
  const valid = toInt32(owner, 'validIds', validIds);
  if (valid.length === 0) throw new ValueError(`${owner}: validIds is empty; there is nothing to score.`);
  checkIds(`${owner} (trainIds)`, train, v);
  checkIds(`${owner} (validIds)`, valid, v);
  const counts = new Float64Array(v);
  for (let i = 0; i < train.length; i++) counts[train[i]]++;
  const logDenominator = Math.log(train.length + v);
  let sum = 0;
  for (let i = 0; i < valid.length; i++) sum += logDenominator - Math.log(counts[valid[i]] + 1);
  return sum / valid.length;
}
