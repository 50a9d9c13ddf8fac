/**
 * The data pipeline for training small causal language models: corpus, tokenizers, batches, baseline
 * (browser-safe; files are read by `loadCorpus` in `corpus_files.ts`).
 */
export {
  corpusFromText,
  countCodePoints,
  utf8Length,
  firstInvalidUtf8Offset,
  decodeUtf8Strict,
  CORPUS_SEPARATOR,
  DEFAULT_CORPUS_PACKAGE,
  type Corpus,
} from './corpus.js';
export {
  CharTokenizer,
  ByteTokenizer,
  tokenizerFromJSON,
  type Tokenizer,
  type TokenizerJSON,
  type CharTokenizerJSON,
  type ByteTokenizerJSON,
} from './tokenizer.js';
export {
  BpeTokenizer,
  BPE_PATTERN,
  BPE_PRE_TOKENIZERS,
  DEFAULT_PRE_TOKENIZER,
  MAX_TOKEN_BYTES,
  type BpeTokenizerJSON,
  type BpeTrainOptions,
} from './bpe.js';
export {
  splitTokens,
  Batcher,
  evaluationBatches,
  evaluationBatchArrays,
  evaluationWindowStarts,
  windowArrays,
  batchTensors,
  type SplitOptions,
  type BatcherOptions,
  type BatcherState,
  type TokenBatch,
  type TokenBatchArrays,
} from './dataset.js';
export { unigramBaseline } from './baseline.js';
export { Mulberry32 } from './prng.js';
export { checkIds, toInt32, type TokenIds as TokenIdArray } from './ids.js';
