import { expect } from 'chai';
import { ValueError } from '../../src/index.js';
import { BpeTokenizer, ByteTokenizer, CharTokenizer, tokenizerFromJSON } from '../../src/data/index.js';
import { expectThrows } from '../kit/index.js';

const SAMPLES = [
  'Call me Ishmael.',
  'naïve café — “quotes” … ½',
  '鯨は大きい。',
  'whale 🐋 spout 🐳!',
  'family 👩‍👩‍👧 and flags 🇳🇴, skin tone 👍🏽',
  'e\u0301 combining, tab\tnew\nline\r\n',
  '𝔐𝔬𝔟𝔶 𝕯𝖎𝖈𝖐',
];

describe('data/tokenizer', () => {
  describe('CharTokenizer', () => {
    it('round-trips every sample, one id per code point, astral characters included', () => {
      const all = SAMPLES.join(' ');
      const tok = CharTokenizer.fromText(all);
      for (const s of SAMPLES) {
        const ids = tok.encode(s);
        expect(ids).to.be.instanceOf(Int32Array);
        expect(ids.length, s).to.equal([...s].length);
        expect(tok.decode(ids)).to.equal(s);
        expect([...ids].every((id) => id > 0)).to.equal(true);
      }
      expect(tok.encode('🐋').length).to.equal(1);
    });

    it('orders symbols by code point, after the unknown id 0, deterministically', () => {
      const tok = CharTokenizer.fromText('cab🐋ac');
      expect(tok.symbols).to.deep.equal(['a', 'b', 'c', '🐋']);
      expect(tok.vocabSize).to.equal(5);
      expect([...tok.encode('abc🐋')]).to.deep.equal([1, 2, 3, 4]);
      expect(CharTokenizer.fromText('🐋acb').toJSON()).to.deep.equal(tok.toJSON());
    });

    it('maps unseen characters to id 0, decoded as U+FFFD', () => {
      const tok = CharTokenizer.fromText('ab');
      expect([...tok.encode('axb🐳')]).to.deep.equal([1, 0, 2, 0]);
      expect(tok.decode([1, 0, 2])).to.equal('a\uFFFDb');
    });

    it('round-trips a lone surrogate it has seen', () => {
      const s = 'a\uD800b\uDC00';
      const tok = CharTokenizer.fromText(s);
      expect(tok.decode(tok.encode(s))).to.equal(s);
    });

    it('serialises through JSON', () => {
      const tok = CharTokenizer.fromText(SAMPLES.join(''));
      const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok)));
      expect(back).to.be.instanceOf(CharTokenizer);
      expect(back.vocabSize).to.equal(tok.vocabSize);
      for (const s of SAMPLES) expect([...back.encode(s)]).to.deep.equal([...tok.encode(s)]);
    });

    it('rejects ids outside the vocabulary and malformed symbols', () => {
      const tok = CharTokenizer.fromText('ab');
      const e = expectThrows(() => tok.decode([1, 3]), /id 3 at position 1/, /\[0, 3\)/);
      expect(e).to.be.instanceOf(ValueError);
      expectThrows(() => tok.decode([0.5]), /id 0.5/);
      expectThrows(() => new CharTokenizer(['b', 'a']), /sorted/);
      expectThrows(() => new CharTokenizer(['ab']), /exactly one code point/);
    });
  });

  describe('ByteTokenizer', () => {
    it('round-trips every sample through UTF-8 bytes', () => {
      const tok = new ByteTokenizer();
      expect(tok.vocabSize).to.equal(256);
      for (const s of SAMPLES) {
        const ids = tok.encode(s);
        expect(ids.length, s).to.equal(new TextEncoder().encode(s).length);
        expect(tok.decode(ids)).to.equal(s);
      }
      expect([...tok.encode('é🐋')]).to.deep.equal([0xc3, 0xa9, 0xf0, 0x9f, 0x90, 0x8b]);
    });

    it('decodes invalid byte sequences to U+FFFD and rejects ids above 255', () => {
      const tok = new ByteTokenizer();
      expect(tok.decode([0x61, 0xc3])).to.equal('a\uFFFD');
      expectThrows(() => tok.decode([256]), /id 256/, /\[0, 256\)/);
      expect(tokenizerFromJSON(tok.toJSON())).to.be.instanceOf(ByteTokenizer);
    });
  });

  describe('tokenizerFromJSON', () => {
    it('rebuilds every kind, also from a JSON string', () => {
      const bpe = BpeTokenizer.train('the cat the hat the bat', 260);
      const back = tokenizerFromJSON(JSON.stringify(bpe));
      expect(back.kind).to.equal('bpe');
      expect([...back.encode('the hat')]).to.deep.equal([...bpe.encode('the hat')]);
    });

    it('rejects unknown kinds and versions', () => {
      expectThrows(() => tokenizerFromJSON({ kind: 'word', version: 1 }), /unknown kind "word"/);
      expectThrows(() => tokenizerFromJSON({ kind: 'char', version: 2, symbols: [] }), /unsupported version 2/);
      expectThrows(() => tokenizerFromJSON(null), /expected an object/);
    });
  });
});
