// Run (from the repository root): npx tsx examples/evaluate.ts [checkpoint-dir]
// Evaluates a checkpoint written by `npm start -- train` (default checkpoints/train) on the last 5%
// of Moby-Dick and prints loss, perplexity and bits per character, e.g.
//   validation: 1.93 nats/token, perplexity 6.9, 2.79 bits/char over 61,440 tokens
// Without a checkpoint it evaluates a freshly initialised model (about log(vocabulary) nats).
import { existsSync } from 'node:fs';
import {
  CausalLM,
  CharTokenizer,
  evaluate,
  smallPreset,
  splitTokens,
  tokenizerFromJSON,
  useBestBackend,
  type TokenizerJSON,
} from 'tfjs-gta';
import { loadCheckpoint, loadCorpus } from 'tfjs-gta/node';

await useBestBackend();
const dir = process.argv[2] ?? 'checkpoints/train';
const corpus = await loadCorpus();
const checkpoint = existsSync(dir) ? await loadCheckpoint(dir) : null; // the tokenizer is kept in the checkpoint
const trained = checkpoint !== null;
const tokenizer = checkpoint ? tokenizerFromJSON(checkpoint.state.extra?.tokenizer as TokenizerJSON) : CharTokenizer.fromText(corpus.text);
const lm = checkpoint ? checkpoint.lm : CausalLM.create(smallPreset('tiny', 'gta', tokenizer.vocabSize));
const { validation } = splitTokens(Int32Array.from(tokenizer.encode(corpus.text)), { validationFraction: 0.05 });
const r = evaluate(lm, validation, { batchSize: 16, sequenceLength: 64, maxBatches: 60 });
console.log(
  `${trained ? `checkpoint ${dir}` : 'untrained model'} validation: ${r.loss.toFixed(2)} nats/token, perplexity ` +
    `${r.perplexity.toFixed(1)}, ${r.bitsPerToken.toFixed(2)} bits/char over ${r.tokens.toLocaleString('en-US')} tokens`,
);
lm.dispose();
