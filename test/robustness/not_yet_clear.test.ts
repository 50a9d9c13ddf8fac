// browser-tests: node-only: the robustness cases reach Node built-ins
/** Every entry of NOT_YET_CLEAR names a case of the robustness suite (a renamed or fixed case is noticed). */
import { expect } from 'chai';
import { it } from '../kit/index.js';
import { NOT_YET_CLEAR } from './not_yet_clear.js';
import { layerCases } from './cases/layers.js';
import { cacheCases } from './cases/cache.js';
import { generateCases } from './cases/generate.js';
import { tokenizerCases } from './cases/tokenizers.js';
import { corpusAndBatchCases } from './cases/corpus.js';
import { loaderCases } from './cases/loaders.js';
import { checkpointCases } from './cases/checkpoints.js';
import { cliCases } from './cases/cli.js';

describe('robustness: the list of cases that are not clear errors yet', () => {
  it('names only cases that exist', () => {
    const all = [layerCases, cacheCases, generateCases, tokenizerCases, corpusAndBatchCases, loaderCases, checkpointCases, cliCases]
      .flatMap((build) => build())
      .map((c) => `${c.category} / ${c.name}`);
    const known = new Set(all);
    expect([...NOT_YET_CLEAR].filter((k) => !known.has(k))).to.deep.equal([]);
  });
});
