/**
 * Corpora and batches: `loadCorpus` given missing, empty, non-UTF-8, FIFO and odd paths; inline text
 * that is empty or not a string; `splitTokens`, `Batcher` (and its `restore`), `evaluationBatches` and
 * `unigramBaseline` given bad sizes, fractions, seeds, states and ids.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Case } from '../classify.js';
import { once, sweepCases, tempDir } from './common.js';
import { loadCorpus } from '../../../src/data/corpus_files.js';
import { corpusFromText } from '../../../src/data/corpus.js';
import { Batcher, evaluationBatchArrays, splitTokens } from '../../../src/data/dataset.js';
import { unigramBaseline } from '../../../src/data/baseline.js';

const CORPUS = 'corpus errors';
const BATCHES = 'batches';

/** A folder of corpus files: good, empty, BOM-only, Latin-1, a FIFO, hidden files, a symlink. */
const corpusDir = once(() => {
  const dir = tempDir('corpus');
  writeFileSync(join(dir, 'text.txt'), 'Call me Ishmael. '.repeat(10));
  writeFileSync(join(dir, 'empty.txt'), '');
  writeFileSync(join(dir, 'bom.txt'), Buffer.from([0xef, 0xbb, 0xbf]));
  writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  symlinkSync(join(dir, 'text.txt'), join(dir, 'link.txt'));
  mkdirSync(join(dir, 'hidden-only'));
  writeFileSync(join(dir, 'hidden-only', '.secret'), 'text');
  mkdirSync(join(dir, 'empty-dir'));
  mkdirSync(join(dir, 'with-fifo'));
  writeFileSync(join(dir, 'with-fifo', 'a.txt'), 'some text');
  execFileSync('mkfifo', [join(dir, 'with-fifo', 'pipe.txt')]);
  mkdirSync(join(dir, 'with-latin1'));
  writeFileSync(join(dir, 'with-latin1', 'a.txt'), 'some text');
  writeFileSync(join(dir, 'with-latin1', 'b.txt'), Buffer.from([0xe9]));
  return dir;
});

function corpusCase(name: string, source: (dir: string) => unknown, expect: 'error' | 'ok', mentions?: RegExp): Case {
  const run = async () => (await loadCorpus(source(await corpusDir()) as string)).characters;
  return { category: CORPUS, name, run, expect, ...(mentions ? { mentions } : {}) };
}

function loadCases(): Case[] {
  const inline = (name: string, text: unknown, mentions: RegExp): Case => ({
    category: CORPUS,
    name,
    run: () => corpusFromText(text as string),
    expect: 'error',
    mentions,
  });
  return [
    corpusCase('missing file', (d) => join(d, 'missing.txt'), 'error', /missing\.txt.*does not exist/),
    corpusCase('empty path', () => '', 'error', /non-empty path/),
    corpusCase('a number as path', () => 5, 'error', /source/),
    corpusCase('inline {text: ""}', () => ({ text: '' }), 'error', /empty/),
    corpusCase('inline {text: 5}', () => ({ text: 5 }), 'error', /text/),
    corpusCase('inline {} (no text)', () => ({}), 'error', /text/),
    corpusCase('empty file', (d) => join(d, 'empty.txt'), 'error', /empty\.txt.*empty/),
    corpusCase('file holding only a byte-order mark', (d) => join(d, 'bom.txt'), 'error', /bom\.txt/),
    corpusCase('Latin-1 file', (d) => join(d, 'latin1.txt'), 'error', /latin1\.txt.*UTF-8/),
    corpusCase('a FIFO', (d) => join(d, 'fifo'), 'error', /fifo.*neither a regular file nor a directory/),
    corpusCase('folder of hidden files only', (d) => join(d, 'hidden-only'), 'error', /hidden-only.*no readable text files/),
    corpusCase('empty folder', (d) => join(d, 'empty-dir'), 'error', /empty-dir.*no readable text files/),
    corpusCase('folder with a non-UTF-8 file', (d) => join(d, 'with-latin1'), 'error', /b\.txt.*UTF-8/),
    corpusCase('folder with a FIFO beside a text file (the FIFO is skipped)', (d) => join(d, 'with-fifo'), 'ok'),
    corpusCase('a symlink to a text file', (d) => join(d, 'link.txt'), 'ok'),
    corpusCase('a folder path with a trailing slash', (d) => `${join(d, 'with-fifo')}/`, 'ok'),
    inline('corpusFromText("")', '', /empty/),
    inline('corpusFromText(5)', 5, /text/),
    inline('corpusFromText(null)', null, /text/),
  ];
}

const IDS = Int32Array.from({ length: 40 }, (_, i) => i % 7);

function batchCase(name: string, run: () => unknown, expect: 'error' | 'ok', mentions?: RegExp): Case {
  return { category: BATCHES, name, run, expect, ...(mentions ? { mentions } : {}) };
}

function batcherCases(): Case[] {
  const make = (o: Record<string, unknown>) => new Batcher(IDS, { batchSize: 2, sequenceLength: 4, ...o } as never);
  const next = (o: Record<string, unknown>) => make(o).nextArrays().inputs;
  const restored = (change: Record<string, unknown>) => () => {
    const b = make({});
    b.nextArrays();
    return make({})
      .restore({ ...b.state(), ...change } as never)
      .nextArrays().inputs;
  };
  return [
    ...sweepCases(BATCHES, 'Batcher', 'batchSize', 'int', (v) => next({ batchSize: v })),
    ...sweepCases(BATCHES, 'Batcher', 'sequenceLength', 'int', (v) => next({ sequenceLength: v })),
    ...sweepCases(BATCHES, 'Batcher', 'seed', 'seed', (v) => next({ seed: v })),
    batchCase('Batcher options null', () => new Batcher(IDS, null as never), 'error', /options/),
    batchCase(
      'Batcher ids shorter than one window',
      () => new Batcher(IDS.slice(0, 4), { batchSize: 1, sequenceLength: 4 }),
      'error',
      /window/,
    ),
    batchCase('Batcher ids holding 1.5', () => new Batcher([1, 1.5, 2, 3, 4, 5], { batchSize: 1, sequenceLength: 2 }), 'error', /ids\[1\]/),
    batchCase('Batcher ids a string', () => new Batcher('abc' as never, { batchSize: 1, sequenceLength: 2 }), 'error', /ids/),
    batchCase('Batcher tensors of a batch', () => make({}).next(), 'ok'),
    batchCase('Batcher.restore of null', () => make({}).restore(null as never), 'error', /state/),
    batchCase('Batcher.restore of another kind', restored({ kind: 'xorshift' }), 'error', /mulberry32/),
    batchCase('Batcher.restore with another batchSize', restored({ batchSize: 3 }), 'error', /batchSize/),
    batchCase('Batcher.restore with another stream length', restored({ tokens: 41 }), 'error', /token stream/),
    batchCase('Batcher.restore step -1', restored({ step: -1 }), 'error', /step/),
    batchCase('Batcher.restore step 1.5', restored({ step: 1.5 }), 'error', /step/),
    batchCase('Batcher.restore rng -1', restored({ rng: -1 }), 'error', /state/),
    batchCase('Batcher.restore rng 1.5', restored({ rng: 1.5 }), 'error', /state/),
    batchCase('Batcher.restore rng "5"', restored({ rng: '5' }), 'error', /state/),
    batchCase('Batcher.restore rng 2^32', restored({ rng: 2 ** 32 }), 'error', /state/),
    batchCase('Batcher.restore of its own state', restored({}), 'ok'),
  ];
}

function splitCases(): Case[] {
  const split = (o: Record<string, unknown>) => splitTokens(IDS, { sequenceLength: 2, ...o } as never).train.length;
  return [
    ...sweepCases(BATCHES, 'splitTokens', 'validationFraction', new Set(['null']), (v) => split({ validationFraction: v })),
    ...sweepCases(BATCHES, 'splitTokens', 'sequenceLength', 'optInt', (v) => split({ sequenceLength: v })),
    batchCase('splitTokens ids holding NaN', () => splitTokens([1, 2, NaN, 4]), 'error', /ids\[2\]/),
    batchCase(
      'splitTokens validation part shorter than a window',
      () => splitTokens(IDS, { sequenceLength: 4, validationFraction: 0.05 }),
      'error',
      /validation part/,
    ),
    batchCase('evaluationBatches batchSize 0', () => evaluationBatchArrays(IDS, 0, 4), 'error', /batchSize/),
    batchCase('evaluationBatches maxBatches 0', () => evaluationBatchArrays(IDS, 2, 4, 0), 'error', /maxBatches/),
    batchCase('evaluationBatches maxBatches 1.5', () => evaluationBatchArrays(IDS, 2, 4, 1.5), 'error', /maxBatches/),
    batchCase('evaluationBatches window longer than the ids', () => evaluationBatchArrays(IDS, 2, 40), 'error', /window/),
    batchCase('evaluationBatches exactly one window', () => evaluationBatchArrays(IDS, 2, 39), 'ok'),
    batchCase('unigramBaseline vocabSize 0', () => unigramBaseline(IDS, IDS, 0), 'error', /vocabSize/),
    batchCase('unigramBaseline ids beyond the vocabulary', () => unigramBaseline(IDS, [9], 7), 'error', /validIds/),
    batchCase('unigramBaseline negative train id', () => unigramBaseline([-1], IDS, 7), 'error', /trainIds/),
    batchCase('unigramBaseline no validation ids', () => unigramBaseline(IDS, [], 7), 'error', /validIds is empty/),
    batchCase('unigramBaseline no training ids', () => unigramBaseline([], IDS, 7), 'ok'),
  ];
}

/** Every corpus and batch case. */
export function corpusAndBatchCases(): Case[] {
  return [...loadCases(), ...batcherCases(), ...splitCases()];
}
