/** Every example runs as its first comment says and prints what it promises. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from '../kit/index.js';

const root = new URL('../..', import.meta.url).pathname;

const EXPECTED: Record<string, RegExp[]> = {
  'layers.ts': [/^GTA {2}\[2,16,256\] params [\d,]+ cache\/token 128 maps \[2,2,16,16\]/m, /^MLA .* cache\/token 160/m],
  'generate.ts': [/^gta: .*\| cache \d+ B\/token \| prefill [\d.]+ ms \| \d+ tokens\/s$/m, /^mha: /m],
  'evaluate.ts': [/validation: [\d.]+ nats\/token, perplexity [\d.]+, [\d.]+ bits\/char over [\d,]+ tokens/],
  'train.ts': [/step 150: validation loss/, /validation loss [\d.]+ nats\/char \(unigram baseline 3\.\d+\)/],
  'compare.ts': [/\| gta \| .*\|/, /\| mha \| .*\|/, /report written to .*report\.md/],
};

describe('examples', function () {
  this.timeout(600000);
  let cwd = '';
  before(() => {
    cwd = mkdtempSync(join(tmpdir(), 'tfjs-gta-examples-'));
  });
  after(() => rmSync(cwd, { recursive: true, force: true }));
  for (const [file, patterns] of Object.entries(EXPECTED)) {
    it(`${file} runs and prints what its header says`, () => {
      const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx/esm'), join(root, 'examples', file)], {
        cwd,
        encoding: 'utf8',
        timeout: 540000,
        // tsx maps 'tfjs-gta' and 'tfjs-gta/node' to the sources through the repository's tsconfig paths
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      });
      expect(r.status, r.stderr).to.equal(0);
      for (const p of patterns) expect(r.stdout).to.match(p);
    });
  }
});
