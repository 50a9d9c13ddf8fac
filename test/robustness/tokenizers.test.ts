// browser-tests: node-only: spawns child processes (isolated cases) and writes the summary file
/**
 * Robustness: tokenizers (hostile tokenizer JSON, non-string text, bad ids to decode, bad training
 * options), in a child process that is killed if a case hangs or exhausts memory.
 */
import { tokenizerCases } from './cases/tokenizers.js';
import { caseTests } from './suite.js';

describe('robustness: tokenizers', () => {
  caseTests(tokenizerCases(), { module: new URL('./cases/tokenizers.ts', import.meta.url), exportName: 'tokenizerCases' });
});
