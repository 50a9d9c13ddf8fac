/**
 * Tokenizers given hostile JSON (unknown kinds and versions, bad symbols, merges that reference later
 * ids, repeat, or double a token's length past MAX_TOKEN_BYTES, user-supplied regular expressions),
 * non-string text, ids to decode that are out of range, fractional or not an array, and bad training
 * options. These cases need no tfjs; they run in a child process (a tokenizer file must never hang or
 * exhaust memory).
 */
import type { Case } from '../classify.js';
import { sweepCases } from './common.js';
import { ByteTokenizer, CharTokenizer, Tokenizer, tokenizerFromJSON } from '../../../src/data/tokenizer.js';
import { BPE_PATTERN, BpeTokenizer } from '../../../src/data/bpe.js';

const CATEGORY = 'tokenizers';

function err(name: string, run: () => unknown, mentions: RegExp): Case {
  return { category: CATEGORY, name, run, expect: 'error', mentions, isolate: true };
}

function ok(name: string, run: () => unknown, check?: (r: unknown) => unknown): Case {
  return { category: CATEGORY, name, run, expect: 'ok', isolate: true, ...(check ? { check } : {}) };
}

/** `merges` whose token r is token r-1 twice: token lengths double at each merge. */
function doublingMerges(n: number): Array<[number, number]> {
  return Array.from({ length: n }, (_, r): [number, number] => (r === 0 ? [97, 97] : [255 + r, 255 + r]));
}

function fromJSONCases(): Case[] {
  const bpe = (extra: Record<string, unknown>) => () =>
    tokenizerFromJSON({ kind: 'bpe', version: 2, preTokenizer: 'gpt2', merges: [], ...extra });
  const char = (symbols: unknown) => () => tokenizerFromJSON({ kind: 'char', version: 1, symbols });
  return [
    err('fromJSON text that is not JSON', () => tokenizerFromJSON('{"kind": "char",'), /not valid JSON/),
    err('fromJSON null', () => tokenizerFromJSON(null), /expected an object/),
    err('fromJSON an array', () => tokenizerFromJSON([]), /array/),
    err('fromJSON a number', () => tokenizerFromJSON(5), /expected an object/),
    err('fromJSON unknown kind', () => tokenizerFromJSON({ kind: 'wordpiece', version: 1 }), /unknown kind "wordpiece"/),
    err('fromJSON char without version', () => tokenizerFromJSON({ kind: 'char', symbols: ['a'] }), /version/),
    err('fromJSON char version 2', () => tokenizerFromJSON({ kind: 'char', version: 2, symbols: ['a'] }), /version/),
    err('fromJSON byte version "1"', () => tokenizerFromJSON({ kind: 'byte', version: '1' }), /version/),
    err('fromJSON char without symbols', () => tokenizerFromJSON({ kind: 'char', version: 1 }), /symbols/),
    err('fromJSON char symbols a string', char('abc'), /symbols/),
    err('fromJSON char symbol of two characters', char(['ab']), /symbols\[0\]/),
    err('fromJSON char symbols unsorted', char(['b', 'a']), /sorted/),
    err('fromJSON char symbols repeated', char(['a', 'a']), /distinct/),
    err('fromJSON char empty symbol', char(['']), /symbols\[0\]/),
    err('fromJSON char numeric symbol', char([5]), /symbols\[0\]/),
    err('fromJSON char null symbol', char([null]), /symbols\[0\]/),
    ok('fromJSON char astral symbols', char(['a', '\u{1F600}'])),
    err('fromJSON bpe version 3', () => tokenizerFromJSON({ kind: 'bpe', version: 3, merges: [] }), /version/),
    err('fromJSON bpe without merges', () => tokenizerFromJSON({ kind: 'bpe', version: 2, preTokenizer: 'gpt2' }), /merges/),
    err('fromJSON bpe merges a string', bpe({ merges: 'ab' }), /merges/),
    err('fromJSON bpe merge of one id', bpe({ merges: [[97]] }), /merges\[0\]/),
    err('fromJSON bpe merge of three ids', bpe({ merges: [[97, 98, 99]] }), /merges\[0\]/),
    err('fromJSON bpe merge referencing its own id', bpe({ merges: [[256, 97]] }), /merges\[0\]/),
    err(
      'fromJSON bpe merge referencing a later id',
      bpe({
        merges: [
          [97, 98],
          [258, 97],
        ],
      }),
      /merges\[1\]/,
    ),
    err('fromJSON bpe merge with a negative id', bpe({ merges: [[-1, 97]] }), /merges\[0\]/),
    err('fromJSON bpe merge with a fractional id', bpe({ merges: [[97.5, 98]] }), /merges\[0\]/),
    err('fromJSON bpe merge with a string id', bpe({ merges: [['97', 98]] }), /merges\[0\]/),
    err('fromJSON bpe null merge', bpe({ merges: [null] }), /merges\[0\]/),
    err(
      'fromJSON bpe repeated merge',
      bpe({
        merges: [
          [97, 98],
          [97, 98],
        ],
      }),
      /merges\[1\] repeats/,
    ),
    err('fromJSON bpe 28 doubling merges (a 2^28-byte token)', bpe({ merges: doublingMerges(28) }), /merges\[8\].*MAX_TOKEN_BYTES/),
    ok('fromJSON bpe 8 doubling merges (a 256-byte token)', bpe({ merges: doublingMerges(8) })),
    err('fromJSON bpe more merges than ids allow', bpe({ merges: new Array(2 ** 21) }), /at most/),
    err(
      'fromJSON bpe v1 pattern "(a+)+$"',
      () => tokenizerFromJSON({ kind: 'bpe', version: 1, pattern: '(a+)+$', merges: [] }),
      /pre-tokenizer/,
    ),
    err('fromJSON bpe unknown preTokenizer', bpe({ preTokenizer: 'whitespace' }), /unknown pre-tokenizer "whitespace"/),
    err('fromJSON bpe preTokenizer "__proto__"', bpe({ preTokenizer: '__proto__' }), /unknown pre-tokenizer/),
    err('fromJSON bpe preTokenizer "constructor"', bpe({ preTokenizer: 'constructor' }), /unknown pre-tokenizer/),
    err('fromJSON bpe preTokenizer a number', bpe({ preTokenizer: 5 }), /pre-tokenizer/),
    ok('fromJSON bpe v1 without a pattern (the default)', () => tokenizerFromJSON({ kind: 'bpe', version: 1, merges: [[97, 98]] })),
    ok('fromJSON bpe v1 with the default pattern text', () =>
      tokenizerFromJSON({ kind: 'bpe', version: 1, pattern: BPE_PATTERN, merges: [] }),
    ),
    err('BpeTokenizer with a custom pattern', () => new BpeTokenizer([[97, 98]], '(a+)+$'), /pre-tokenizer/),
    err('BpeTokenizer merges a string', () => new BpeTokenizer('ab' as never), /merges/),
    err('CharTokenizer symbols a string', () => new CharTokenizer('abc' as never), /symbols/),
    err('CharTokenizer.fromText of a number', () => CharTokenizer.fromText(5 as never), /text/),
    ok(
      'CharTokenizer.fromText of empty text',
      () => CharTokenizer.fromText('').vocabSize,
      (r) => {
        if (r !== 1) throw new Error(`vocabSize ${String(r)}, expected 1 (the unknown id)`);
      },
    ),
  ];
}

const TOKENIZERS: Array<[string, () => Tokenizer]> = [
  ['char', () => CharTokenizer.fromText('hello world')],
  ['byte', () => new ByteTokenizer()],
  ['bpe', () => BpeTokenizer.train('hello hello world world', 260)],
];

function encodeDecodeCases(): Case[] {
  const out: Case[] = [];
  for (const [kind, make] of TOKENIZERS) {
    const encode = (text: unknown) => () => make().encode(text as string);
    const decode = (ids: unknown) => () => make().decode(ids as number[]);
    out.push(
      err(`${kind} encode of a number`, encode(123), /text/),
      err(`${kind} encode of null`, encode(null), /text/),
      err(`${kind} encode of undefined`, encode(undefined), /text/),
      ok(`${kind} encode of empty text`, encode('')),
      ok(`${kind} encode of a lone surrogate`, encode('a\ud800b')),
      err(`${kind} decode [1.5]`, decode([1.5]), /1\.5/),
      err(`${kind} decode [-1]`, decode([-1]), /-1/),
      err(`${kind} decode [NaN]`, decode([NaN]), /NaN/),
      err(`${kind} decode [vocabSize]`, decode([100_000]), /outside the vocabulary/),
      err(`${kind} decode ['1']`, decode(['1']), /outside the vocabulary|id/),
      err(`${kind} decode of a number`, decode(5), /ids/),
      err(`${kind} decode of null`, decode(null), /ids/),
      ok(`${kind} decode []`, decode([]), (r) => {
        if (r !== '') throw new Error(`decoded ${JSON.stringify(r)}`);
      }),
      ok(
        `${kind} decode(encode(text)) round trip`,
        () => {
          const t = make();
          return t.decode(t.encode('hello world'));
        },
        (r) => {
          if (r !== 'hello world') throw new Error(`decoded ${JSON.stringify(r)}`);
        },
      ),
    );
  }
  out.push(
    ok('bpe encode of one 200,000-letter word', () => {
      const t = BpeTokenizer.train('ab abab ababab abababab aab abb ba bab '.repeat(50), 400, { minFrequency: 1 });
      return t.encode('ab'.repeat(100_000)).length;
    }),
  );
  return out;
}

function trainCases(): Case[] {
  const train =
    (vocab: unknown, options: Record<string, unknown> = {}) =>
    () =>
      BpeTokenizer.train('hello world hello', vocab as number, options).vocabSize;
  return [
    ...sweepCases(CATEGORY, 'BpeTokenizer.train', 'vocabSize', 'int', (v) => train(v)(), { isolateHuge: false }),
    ...sweepCases(
      CATEGORY,
      'BpeTokenizer.train',
      'minFrequency',
      new Set(['null', 'huge (1e21)']),
      (v) => train(300, { minFrequency: v })(),
      { isolateHuge: false },
    ),
    err('BpeTokenizer.train vocabSize 255', train(255), /vocabSize/),
    err('BpeTokenizer.train vocabSize 2^22', train(2 ** 22), /vocabSize/),
    err('BpeTokenizer.train empty text', () => BpeTokenizer.train('', 300), /text/),
    err('BpeTokenizer.train text a number', () => BpeTokenizer.train(5 as never, 300), /text/),
    err('BpeTokenizer.train unknown preTokenizer', train(300, { preTokenizer: 'words' }), /pre-tokenizer/),
    err('BpeTokenizer.train pattern and preTokenizer both', train(300, { preTokenizer: 'gpt2', pattern: BPE_PATTERN }), /not both/),
    ok('BpeTokenizer.train vocabSize 256 (no merges)', train(256)),
    ok('BpeTokenizer.train vocabSize far above what the text allows', train(2 ** 21)),
  ].map((c) => ({ ...c, isolate: true }));
}

/** Every tokenizer case. */
export function tokenizerCases(): Case[] {
  return [...fromJSONCases(), ...encodeDecodeCases(), ...trainCases()];
}
