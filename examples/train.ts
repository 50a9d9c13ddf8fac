// Run (from the repository root): npx tsx examples/train.ts
// Trains a small GTA language model on the built-in Moby-Dick text (character level) for 150 steps
// on the best backend, printing progress lines, then the validation loss against the unigram
// baseline, e.g. "validation loss 2.2 nats/char (unigram baseline 3.07)".
import { CausalLM, CharTokenizer, smallAttention, splitTokens, train, unigramBaseline, useBestBackend } from 'tfjs-gta';
import { loadCorpus } from 'tfjs-gta/node';

const { backend } = await useBestBackend();
const corpus = await loadCorpus(); // or loadCorpus('path/to/text.txt')
const tokenizer = CharTokenizer.fromText(corpus.text);
const ids = Int32Array.from(tokenizer.encode(corpus.text));
const { train: trainIds, validation } = splitTokens(ids, { validationFraction: 0.05 });
const lm = CausalLM.create({
  vocabSize: tokenizer.vocabSize,
  hiddenSize: 128,
  numLayers: 2,
  intermediateSize: 344,
  maxSequenceLength: 256,
  attention: smallAttention('gta', 8, 16),
  seed: 0,
});
console.log(`backend ${backend}, ${lm.countParams()} parameters`);
const result = await train({
  model: lm,
  train: trainIds,
  validation,
  batchSize: 16,
  sequenceLength: 64,
  steps: 150,
  learningRate: 3e-3,
  evalEvery: 50,
  onEval: (e) => console.log(`step ${e.step}: validation loss ${e.loss.toFixed(3)}`),
});
const baseline = unigramBaseline(trainIds, validation, tokenizer.vocabSize);
console.log(
  `validation loss ${result.finalValidationLoss.toFixed(3)} nats/char (unigram baseline ${baseline.toFixed(2)}), ` +
    `${result.tokensPerSecond.toFixed(0)} tokens/s`,
);
lm.dispose();
