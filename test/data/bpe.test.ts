import { expect } from 'chai';
import { IS_NODE } from '../../src/backend.js';
import {
  BPE_PATTERN,
  BPE_PRE_TOKENIZERS,
  BpeTokenizer,
  DEFAULT_PRE_TOKENIZER,
  MAX_TOKEN_BYTES,
  resolvePreTokenizer,
} from '../../src/data/bpe.js';
import { tokenizerFromJSON } from '../../src/data/tokenizer.js';
import { ValueError } from '../../src/utils/errors.js';
import { expectThrows } from '../kit/index.js';

/** Obviously-correct BPE training: recount every pair of every piece at every step. */
function naiveMerges(text: string, vocabSize: number, minFrequency = 2): Array<[number, number]> {
  const counts = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(BPE_PATTERN, 'gu'))) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  let words = [...counts].map(([p, c]) => ({ ids: [...new TextEncoder().encode(p)], c }));
  const merges: Array<[number, number]> = [];
  while (256 + merges.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.ids.length; i++) {
        const k = `${w.ids[i]},${w.ids[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + w.c);
      }
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number);
      if (c > bestCount || (c === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === null || bestCount < minFrequency) break;
    const id = 256 + merges.length;
    merges.push(best);
    words = words.map((w) => {
      const next: number[] = [];
      for (let i = 0; i < w.ids.length;) {
        if (i + 1 < w.ids.length && w.ids[i] === best![0] && w.ids[i + 1] === best![1]) {
          next.push(id);
          i += 2;
        } else next.push(w.ids[i++]);
      }
      return { ids: next, c: w.c };
    });
  }
  return merges;
}

const TEXT = [
  'The whale, the whale! aaaa aaa aa a bbbbbb.',
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.',
  'naïve café 鯨 鯨 鯨 🐋🐋 🐋 1851 1851 1851 —— ——',
]
  .join('\n\n')
  .repeat(3);

describe('data/bpe', () => {
  it('learns exactly the merges of a naive reference trainer', () => {
    for (const v of [256, 270, 320, 400]) {
      const bpe = BpeTokenizer.train(TEXT, v);
      expect(bpe.toJSON().merges, `vocab ${v}`).to.deep.equal(naiveMerges(TEXT, v));
      expect(bpe.vocabSize).to.equal(256 + bpe.merges.length);
    }
  });

  it('stops below the requested size when no pair repeats', () => {
    const bpe = BpeTokenizer.train('ab cd', 1000);
    expect(bpe.vocabSize).to.equal(256);
    expect(BpeTokenizer.train('ab ab', 1000, { minFrequency: 1 }).vocabSize).to.be.greaterThan(256);
  });

  it('round-trips text seen and unseen, non-ASCII and emoji included', () => {
    const bpe = BpeTokenizer.train(TEXT, 400);
    const samples = [TEXT, 'unseen words: zyxw, Ünïcödé, 日本語, 👩‍👩‍👧 🇳🇴 👍🏽', '  spaces \t\n\r\n end ', '', 'a'];
    for (const s of samples) {
      const ids = bpe.encode(s);
      expect(ids).to.be.instanceOf(Int32Array);
      expect(bpe.decode(ids)).to.equal(s);
    }
    expect(bpe.encode(TEXT).length).to.be.lessThan(new TextEncoder().encode(TEXT).length / 2);
  });

  it('is deterministic and serialises through JSON', () => {
    const a = BpeTokenizer.train(TEXT, 350);
    const b = BpeTokenizer.train(TEXT, 350);
    expect(JSON.stringify(a)).to.equal(JSON.stringify(b));
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(a))) as BpeTokenizer;
    expect(back.vocabSize).to.equal(a.vocabSize);
    expect([...back.encode(TEXT)]).to.deep.equal([...a.encode(TEXT)]);
    expect(new TextDecoder().decode(a.tokenBytes(256))).to.equal(new TextDecoder().decode(Uint8Array.from(a.merges[0])));
  });

  // The built-in corpus is read from node_modules: Node only.
  (IS_NODE ? it : it.skip)('trains a 2k vocabulary on Moby-Dick quickly and round-trips the book', async () => {
    const corpusFiles = '../../src/data/corpus_files.js'; // Node-only: a variable keeps it out of the browser bundle
    const { loadCorpus } = (await import(/* @vite-ignore */ corpusFiles)) as typeof import('../../src/data/corpus_files.js');
    const { text } = await loadCorpus();
    const started = performance.now();
    const bpe = BpeTokenizer.train(text, 2048);
    const trainMs = performance.now() - started;
    const ids = bpe.encode(text);
    expect(bpe.vocabSize).to.equal(2048);
    expect(bpe.decode(ids) === text).to.equal(true);
    expect(ids.length).to.be.lessThan(text.length / 2.5);
    expect(trainMs).to.be.lessThan(20_000);
  });

  it('rejects bad arguments and malformed merges', () => {
    expectThrows(() => BpeTokenizer.train('abc', 100), /vocabSize must be an integer in \[256/, /got 100/);
    expectThrows(() => BpeTokenizer.train('', 300), /non-empty/);
    expectThrows(() => BpeTokenizer.train('abc', 300, { minFrequency: 0 }), /minFrequency/);
    expectThrows(() => new BpeTokenizer([[97, 300]]), /merges\[0\]/, /below 256/);
    expectThrows(
      () =>
        new BpeTokenizer([
          [97, 98],
          [97, 98],
        ]),
      /repeats/,
    );
    expectThrows(() => new BpeTokenizer([], '('), /unknown pre-tokenizer "\("/, /custom regular expressions are not accepted/);
    expectThrows(() => BpeTokenizer.train(TEXT, 300).decode([300]), /id 300/);
  });

  it('bounds token lengths: a 300-byte file of doubling merges is rejected at once', () => {
    const merges: Array<[number, number]> = [[97, 97]];
    for (let r = 1; r < 28; r++) merges.push([255 + r, 255 + r]); // token 256 + r = "a" x 2^(r+1)
    const text = JSON.stringify({ kind: 'bpe', version: 1, pattern: BPE_PATTERN, merges });
    expect(text.length).to.be.below(400);
    const arrayBytes = () => (IS_NODE ? process.memoryUsage().arrayBuffers : 0); // Node reports ArrayBuffer memory
    const before = arrayBytes();
    const started = performance.now();
    const e = expectThrows(
      () => tokenizerFromJSON(text),
      /merges\[8\] makes a token of 512 bytes; tokens are at most MAX_TOKEN_BYTES \(256\) bytes/,
    );
    expect(e).to.be.instanceOf(ValueError);
    expect(performance.now() - started, 'ms').to.be.below(200);
    expect(arrayBytes() - before).to.be.below(1 << 20);
    // Seven doublings (tokens of 2..256 bytes) are fine and decode to the expected run of "a".
    const ok = new BpeTokenizer(merges.slice(0, 8));
    expect(ok.decode([263])).to.equal('a'.repeat(256));
    expect(ok.tokenBytes(263).length).to.equal(MAX_TOKEN_BYTES);
  });

  it('never trains a token longer than MAX_TOKEN_BYTES, and still round-trips', () => {
    const text = `${'a'.repeat(700)} `.repeat(4);
    const bpe = BpeTokenizer.train(text, 320, { minFrequency: 1 });
    expect(bpe.vocabSize).to.be.greaterThan(256 + 8);
    let longest = 0;
    for (let id = 0; id < bpe.vocabSize; id++) longest = Math.max(longest, bpe.tokenBytes(id).length);
    expect(longest).to.equal(MAX_TOKEN_BYTES);
    expect(bpe.decode(bpe.encode(text))).to.equal(text);
    expect(tokenizerFromJSON(JSON.stringify(bpe)).encode(text)).to.deep.equal(bpe.encode(text));
  });

  it('takes pre-tokenizers by name only: "(a+)+$" and other patterns are errors, never compiled', () => {
    const started = performance.now();
    const evil = { kind: 'bpe', version: 1, pattern: '(a+)+$', merges: [] };
    expectThrows(() => tokenizerFromJSON(evil), /unknown pre-tokenizer "\(a\+\)\+\$"; known pre-tokenizers: gpt2-no-contractions, gpt2/);
    expectThrows(() => tokenizerFromJSON({ kind: 'bpe', version: 2, preTokenizer: '(a+)+$', merges: [] }), /unknown pre-tokenizer/);
    expectThrows(
      () => tokenizerFromJSON({ kind: 'bpe', version: 2, preTokenizer: 'constructor', merges: [] }),
      /unknown pre-tokenizer "constructor"/,
    );
    expectThrows(() => new BpeTokenizer([], '(a+)+$'), /unknown pre-tokenizer/);
    expectThrows(() => BpeTokenizer.train(TEXT, 300, { pattern: '(a+)+$' }), /BpeTokenizer\.train: unknown pre-tokenizer/);
    expectThrows(() => BpeTokenizer.train(TEXT, 300, { preTokenizer: 'gpt2', pattern: BPE_PATTERN }), /not both/);
    expectThrows(() => tokenizerFromJSON({ kind: 'bpe', version: 3, merges: [] }), /unsupported version 3/);
    expect(performance.now() - started, 'ms').to.be.below(500);
    expect(resolvePreTokenizer(BPE_PATTERN)).to.equal(DEFAULT_PRE_TOKENIZER);
    expect(resolvePreTokenizer(BPE_PRE_TOKENIZERS.gpt2)).to.equal('gpt2');
  });

  it('reads version 1 files carrying the default pattern text, and writes the name', () => {
    const bpe = BpeTokenizer.train(TEXT, 300);
    const json = bpe.toJSON();
    expect(json).to.deep.include({ kind: 'bpe', version: 2, preTokenizer: DEFAULT_PRE_TOKENIZER });
    expect(JSON.stringify(json)).to.not.contain('\\p{L}');
    const v1 = tokenizerFromJSON({ kind: 'bpe', version: 1, pattern: BPE_PATTERN, merges: json.merges }) as BpeTokenizer;
    expect(v1.preTokenizer).to.equal(DEFAULT_PRE_TOKENIZER);
    expect([...v1.encode(TEXT)]).to.deep.equal([...bpe.encode(TEXT)]);
    const noPattern = tokenizerFromJSON({ kind: 'bpe', version: 1, merges: json.merges }) as BpeTokenizer;
    expect(noPattern.preTokenizer).to.equal(DEFAULT_PRE_TOKENIZER);
  });

  it("offers GPT-2's pattern with contractions as a second named pre-tokenizer", () => {
    const text = "it's what we've done, isn't it's ".repeat(4);
    const gpt2 = BpeTokenizer.train(text, 300, { preTokenizer: 'gpt2' });
    const plain = BpeTokenizer.train(text, 300);
    const hasPair = (t: BpeTokenizer, a: number, b: number) => t.merges.some((m) => m[0] === a && m[1] === b);
    expect(hasPair(gpt2, 39, 115), "gpt2 keeps 's together").to.equal(true); // "'" + "s"
    expect(hasPair(plain, 39, 115), 'the default splits the apostrophe from letters').to.equal(false);
    expect(gpt2.decode(gpt2.encode(text))).to.equal(text);
    const back = tokenizerFromJSON(JSON.stringify(gpt2)) as BpeTokenizer;
    expect(back.preTokenizer).to.equal('gpt2');
    expect([...back.encode(text)]).to.deep.equal([...gpt2.encode(text)]);
  });
});
