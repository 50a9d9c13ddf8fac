/**
 * Tokenizers for small causal language models: characters (code points) and raw UTF-8 bytes here,
 * a byte-level BPE in `bpe.ts`. All are deterministic, serialise with `toJSON()` and come back with
 * `tokenizerFromJSON()`.
 */
import { ValueError } from '../utils/errors.js';
import { BpeTokenizer, type BpeTokenizerJSON, type BpeTokenizerJSONv1 } from './bpe.js';
import { checkIds, checkText } from './ids.js';
import type { Tokenizer } from './tokenizer_api.js';

export type { Tokenizer } from './tokenizer_api.js';

export interface CharTokenizerJSON {
  kind: 'char';
  version: 1;
  symbols: string[];
}
export interface ByteTokenizerJSON {
  kind: 'byte';
  version: 1;
}
/** What `toJSON()` returns (and `tokenizerFromJSON` reads; BPE also from its version 1 files). */
export type TokenizerJSON = CharTokenizerJSON | ByteTokenizerJSON | BpeTokenizerJSON;

/**
 * One id per Unicode code point seen in the training text, ordered by code point, plus id 0 for any
 * character not seen (decoded as U+FFFD). Astral characters (emoji) are single symbols.
 */
export class CharTokenizer implements Tokenizer {
  static readonly UNKNOWN_ID = 0;
  readonly kind = 'char';
  readonly vocabSize: number;
  /** `symbols[i]` is the character of id `i + 1`. */
  readonly symbols: readonly string[];
  private readonly bmp = new Int32Array(0x10000);
  private readonly astral = new Map<number, number>();

  /** The sorted set of code points of `text`. */
  static fromText(text: string): CharTokenizer {
    checkText('CharTokenizer.fromText', text);
    const seen = new Set<number>();
    for (const ch of text) seen.add(ch.codePointAt(0)!);
    const cps = [...seen].sort((a, b) => a - b);
    return new CharTokenizer(cps.map((c) => String.fromCodePoint(c)));
  }

  /** `symbols`: distinct single code points in increasing order (as `fromText` makes them). */
  constructor(symbols: readonly string[]) {
    if (!Array.isArray(symbols))
      throw new ValueError(`CharTokenizer: symbols must be an array of single code points, got ${typeof symbols}.`);
    let prev = -1;
    symbols.forEach((s, i) => {
      const cp = typeof s === 'string' ? s.codePointAt(0) : undefined;
      if (cp === undefined || String.fromCodePoint(cp) !== s) {
        throw new ValueError(`CharTokenizer: symbols[${i}] must be exactly one code point, got ${JSON.stringify(s)}.`);
      }
      if (cp <= prev) {
        throw new ValueError(`CharTokenizer: symbols must be distinct and sorted by code point; symbols[${i}] is not.`);
      }
      prev = cp;
    });
    this.symbols = Object.freeze([...symbols]);
    this.vocabSize = symbols.length + 1;
    this.symbols.forEach((s, i) => {
      const cp = s.codePointAt(0)!;
      if (cp < 0x10000) this.bmp[cp] = i + 1;
      else this.astral.set(cp, i + 1);
    });
  }

  encode(text: string): Int32Array {
    checkText('CharTokenizer.encode', text);
    const out = new Int32Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const lo = text.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = (cp - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000;
          i++;
        }
      }
      out[n++] = cp < 0x10000 ? this.bmp[cp] : (this.astral.get(cp) ?? CharTokenizer.UNKNOWN_ID);
    }
    return out.slice(0, n);
  }

  decode(ids: ArrayLike<number>): string {
    checkIds('CharTokenizer.decode', ids, this.vocabSize);
    const parts = new Array<string>(ids.length);
    for (let i = 0; i < ids.length; i++) parts[i] = ids[i] === 0 ? '\uFFFD' : this.symbols[ids[i] - 1];
    return parts.join('');
  }

  toJSON(): CharTokenizerJSON {
    return { kind: 'char', version: 1, symbols: [...this.symbols] };
  }
}

/** The 256 byte values of the UTF-8 encoding; decoding replaces invalid sequences with U+FFFD. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte';
  readonly vocabSize = 256;

  encode(text: string): Int32Array {
    checkText('ByteTokenizer.encode', text);
    return Int32Array.from(new TextEncoder().encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    checkIds('ByteTokenizer.decode', ids, 256);
    return new TextDecoder('utf-8').decode(Uint8Array.from(ids as ArrayLike<number>));
  }

  toJSON(): ByteTokenizerJSON {
    return { kind: 'byte', version: 1 };
  }
}

/** The parsed object of `json` (an object, or JSON text of one). */
function jsonObject(json: unknown): Record<string, unknown> {
  let j = json;
  if (typeof json === 'string') {
    try {
      j = JSON.parse(json);
    } catch (e) {
      throw new ValueError(`tokenizerFromJSON: the text is not valid JSON (${(e as Error).message}).`);
    }
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) {
    throw new ValueError(
      `tokenizerFromJSON: expected an object from tokenizer.toJSON(), got ${j === null ? 'null' : Array.isArray(j) ? 'an array' : typeof j}.`,
    );
  }
  return j as Record<string, unknown>;
}

/**
 * Rebuilds a tokenizer from `tokenizer.toJSON()` (or its JSON text). A BPE tokenizer's pre-tokenizer is
 * chosen by name among `BPE_PRE_TOKENIZERS`; files never supply a regular expression.
 */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const j = jsonObject(json);
  const known = ['char', 'byte', 'bpe'];
  if (!known.includes(j.kind as string)) {
    throw new ValueError(`tokenizerFromJSON: unknown kind ${JSON.stringify(j.kind)}; known kinds: ${known.join(', ')}.`);
  }
  if (j.kind === 'bpe') {
    if (j.version !== 1 && j.version !== 2) {
      throw new ValueError(
        `tokenizerFromJSON: unsupported version ${JSON.stringify(j.version)} of a "bpe" tokenizer (this library reads 1 and 2).`,
      );
    }
    return BpeTokenizer.fromJSON(j as unknown as BpeTokenizerJSON | BpeTokenizerJSONv1);
  }
  if (j.version !== 1) {
    throw new ValueError(`tokenizerFromJSON: unsupported version ${JSON.stringify(j.version)} (this library reads version 1).`);
  }
  if (j.kind === 'byte') return new ByteTokenizer();
  if (!Array.isArray(j.symbols)) throw new ValueError('tokenizerFromJSON: a "char" tokenizer needs a symbols array.');
  return new CharTokenizer(j.symbols as string[]);
}
