// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: corpora (missing, empty, non-UTF-8 and FIFO paths, bad inline text) and batches
 * (splitTokens, Batcher and its restore, evaluation batches, the unigram baseline).
 */
import { corpusAndBatchCases } from './cases/corpus.js';
import { removeTempDirs } from './cases/common.js';
import { caseTests } from './suite.js';

after(removeTempDirs);

describe('robustness: corpus and batches', () => {
  caseTests(corpusAndBatchCases(), { module: new URL('./cases/corpus.ts', import.meta.url), exportName: 'corpusAndBatchCases' });
});
