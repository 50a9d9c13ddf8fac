import { expect } from 'chai';
import { IS_NODE } from '../../src/backend.js';
import { BPE_PATTERN, BpeTokenizer, tokenizerFromJSON } from '../../src/data/index.js';
import { expectThrows } from '../kit/index.js';

/** Obviously-correct BPE training: recount every pair of every piece at every step. */
function naiveMerges(text: string, vocabSize: number, minFrequency = 2): Array<[number, number]> {
  const counts = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(BPE_PATTERN, 'gu'))) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  let words = [...counts].map(([p, c]) => ({ ids: [...new TextEncoder().encode(p)], c }));
  const merges: Array<[number, number]> = [];
  while (256 + merges.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.ids.length; i++) {
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
        if (i + 1 < w.ids.length && w.ids[i] === best![0] && w.ids[i + 1] === best![1]) { next.push(id); i += 2; } else next.push(w.ids[i++]);
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
].join('\n\n').repeat(3);

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
    const { loadCorpus } = await import('../../src/data/corpus_files.js'); // Node-only module
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
    expectThrows(() => new BpeTokenizer([[97, 98], [97, 98]]), /repeats/);
    expectThrows(() => new BpeTokenizer([], '('), /not a valid regular expression/);
    expectThrows(() => BpeTokenizer.train(TEXT, 300).decode([300]), /id 300/);
  });
});
