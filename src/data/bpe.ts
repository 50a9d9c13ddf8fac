/**
 * A byte-level BPE (as in GPT-2) trained in plain TypeScript: no native code, no network.
 *
 * Text is first split into pieces by a GPT-2-style pattern (a word with its leading space, a number,
 * a run of punctuation, a run of whitespace); merges never cross pieces. Ids 0..255 are the bytes of
 * UTF-8, id 256 + r is the r-th merge. Training repeatedly merges the most frequent adjacent pair
 * (ties broken by the smaller pair of ids, so the result depends only on the text); encoding applies
 * the learned merges in order, which reproduces the training segmentation, and decoding concatenates
 * bytes, so `decode(encode(s)) === s` for every well-formed string.
 */
import type { Tokenizer } from './tokenizer_api.js';
import { checkIds, checkText } from './ids.js';
import { ValueError } from '../utils/errors.js';

/** The default pre-tokenizer's pattern: GPT-2's without the English contraction cases. */
export const BPE_PATTERN = String.raw` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/**
 * The pre-tokenizers a BPE tokenizer may use, by name. Patterns are never taken from files or callers
 * (a user-supplied regular expression such as `(a+)+$` can take exponential time), only chosen from
 * this set: `gpt2-no-contractions` (the default, `BPE_PATTERN`) and `gpt2` (GPT-2's pattern with the
 * English contractions `'s 't 're 've 'm 'll 'd`). Both match in time linear in the piece length.
 */
export const BPE_PRE_TOKENIZERS: Readonly<Record<string, string>> = Object.freeze({
  'gpt2-no-contractions': BPE_PATTERN,
  gpt2: String.raw`'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
});

/** The name of the default pre-tokenizer. */
export const DEFAULT_PRE_TOKENIZER = 'gpt2-no-contractions';

/**
 * Longest token, in bytes, that a merge may make (256). Checked when a tokenizer is built or loaded,
 * so a file of a few hundred bytes cannot describe tokens of gigabytes; training never makes longer ones.
 */
export const MAX_TOKEN_BYTES = 256;

/** `toJSON()` of a BPE tokenizer (version 2): the pre-tokenizer by name and the merges. */
export interface BpeTokenizerJSON {
  kind: 'bpe';
  version: 2;
  /** A name from `BPE_PRE_TOKENIZERS`. */
  preTokenizer: string;
  /** `merges[r] = [left, right]`: the pair of ids that merge into id `256 + r`. */
  merges: Array<[number, number]>;
}

/** Version 1 files: the pre-tokenizer as pattern text, read only when it is one of `BPE_PRE_TOKENIZERS`. */
export interface BpeTokenizerJSONv1 {
  kind: 'bpe';
  version: 1;
  pattern: string;
  merges: Array<[number, number]>;
}

export interface BpeTrainOptions {
  /** Pairs seen fewer times than this are never merged (training may stop below `vocabSize`). Default 2. */
  minFrequency?: number;
  /** Pre-tokenizer: a name from `BPE_PRE_TOKENIZERS`. Default `DEFAULT_PRE_TOKENIZER`. */
  preTokenizer?: string;
  /** Deprecated: the pattern text of one of `BPE_PRE_TOKENIZERS` (other patterns are rejected). */
  pattern?: string;
}

/** Pieces of at most this many UTF-16 units are memoized by `encode` (so the memo stays small). */
const MAX_CACHED_PIECE = 64;

/** Largest vocabulary: pair keys are `left * 2^21 + right`, exact in a double. */
const KEY = 2 ** 21;
const OWNER = 'BpeTokenizer';

/** Splits `text` into pieces with `re`; any gap the pattern does not match becomes its own piece. */
function splitPieces(text: string, re: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const at = m.index!;
    if (at > last) pieces.push(text.slice(last, at));
    if (m[0].length > 0) pieces.push(m[0]);
    last = at + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

const compiled = new Map<string, RegExp>();

/** The name of a known pre-tokenizer given its name or its exact pattern text; anything else is an error. */
export function resolvePreTokenizer(nameOrPattern: unknown, owner = OWNER): string {
  if (typeof nameOrPattern === 'string') {
    if (Object.hasOwn(BPE_PRE_TOKENIZERS, nameOrPattern)) return nameOrPattern;
    for (const [name, pattern] of Object.entries(BPE_PRE_TOKENIZERS)) if (pattern === nameOrPattern) return name;
  }
  const shown = typeof nameOrPattern === 'string' && nameOrPattern.length > 80 ? `${nameOrPattern.slice(0, 80)}...` : nameOrPattern;
  throw new ValueError(
    `${owner}: unknown pre-tokenizer ${JSON.stringify(shown)}; known pre-tokenizers: ` +
      `${Object.keys(BPE_PRE_TOKENIZERS).join(', ')} (custom regular expressions are not accepted).`,
  );
}

/** The compiled regular expression of a known pre-tokenizer (flags `gu`), compiled once. */
function preTokenizerRegExp(name: string): RegExp {
  let re = compiled.get(name);
  if (re === undefined) compiled.set(name, (re = new RegExp(BPE_PRE_TOKENIZERS[name], 'gu')));
  return re;
}

/** A binary max-heap of (count, key): larger count first, then smaller key. Stale entries are skipped by the caller. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  peekCount(): number {
    return this.counts[0];
  }

  peekKey(): number {
    return this.keys[0];
  }

  pop(): void {
    const n = this.counts.length - 1;
    this.swap(0, n);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.above(l, best)) best = l;
      if (r < n && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }
}

export class BpeTokenizer implements Tokenizer {
  readonly kind = 'bpe';
  readonly vocabSize: number;
  /** `merges[r]` is the pair that makes id `256 + r`. */
  readonly merges: ReadonlyArray<readonly [number, number]>;
  /** The pre-tokenizer's name (a key of `BPE_PRE_TOKENIZERS`). */
  readonly preTokenizer: string;
  /** The pre-tokenizer's pattern text. */
  readonly pattern: string;
  private readonly re: RegExp;
  private readonly mergeId = new Map<number, number>();
  /** Byte length of every id (at most `MAX_TOKEN_BYTES`); bytes are expanded from the merges when decoding. */
  private readonly lengths: Int32Array;
  private readonly cache = new Map<string, Int32Array>();

  /**
   * Learns up to `vocabSize - 256` merges from `text`. Deterministic: the same text and options give
   * the same merges. The result has fewer ids than asked when no pair occurs `minFrequency` times.
   */
  static train(text: string, vocabSize: number, options: BpeTrainOptions = {}): BpeTokenizer {
    if (typeof text !== 'string' || text.length === 0) throw new ValueError(`${OWNER}.train: text must be a non-empty string.`);
    if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > KEY) {
      throw new ValueError(`${OWNER}.train: vocabSize must be an integer in [256, ${KEY}] (256 byte ids plus merges), got ${vocabSize}.`);
    }
    const minFrequency = options.minFrequency ?? 2;
    if (!Number.isInteger(minFrequency) || minFrequency < 1) {
      throw new ValueError(`${OWNER}.train: minFrequency must be a positive integer, got ${minFrequency}.`);
    }
    if (options.pattern !== undefined && options.preTokenizer !== undefined) {
      throw new ValueError(`${OWNER}.train: pass preTokenizer or pattern, not both.`);
    }
    const preTokenizer = resolvePreTokenizer(options.preTokenizer ?? options.pattern ?? DEFAULT_PRE_TOKENIZER, `${OWNER}.train`);
    const re = preTokenizerRegExp(preTokenizer);

    // Distinct pieces with their counts, in order of first appearance.
    const counts = new Map<string, number>();
    for (const p of splitPieces(text, re)) counts.set(p, (counts.get(p) ?? 0) + 1);
    const encoder = new TextEncoder();
    const words: number[][] = [];
    const freq: number[] = [];
    for (const [p, c] of counts) {
      words.push(Array.from(encoder.encode(p)));
      freq.push(c);
    }

    const pairCount = new Map<number, number>();
    const pairWords = new Map<number, number[]>();
    for (let w = 0; w < words.length; w++) {
      const ids = words[w];
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = ids[i] * KEY + ids[i + 1];
        pairCount.set(k, (pairCount.get(k) ?? 0) + freq[w]);
        let list = pairWords.get(k);
        if (!list) pairWords.set(k, (list = []));
        list.push(w);
      }
    }
    const heap = new PairHeap();
    for (const [k, c] of pairCount) heap.push(c, k);

    const merges: Array<[number, number]> = [];
    const lengths: number[] = new Array<number>(256).fill(1); // bytes per id
    const tooLong = new Set<number>(); // pairs whose merge would exceed MAX_TOKEN_BYTES: never merged
    const stamp = new Int32Array(words.length).fill(-1);
    const touched = new Set<number>();
    const add = (k: number, delta: number): void => {
      const c = (pairCount.get(k) ?? 0) + delta;
      if (c === 0) pairCount.delete(k);
      else pairCount.set(k, c);
      touched.add(k);
    };

    while (merges.length < vocabSize - 256 && heap.size > 0) {
      const count = heap.peekCount();
      const key = heap.peekKey();
      heap.pop();
      if (pairCount.get(key) !== count || tooLong.has(key)) continue; // stale entry
      if (count < minFrequency) break;
      const a = Math.floor(key / KEY);
      const b = key - a * KEY;
      if (lengths[a] + lengths[b] > MAX_TOKEN_BYTES) {
        tooLong.add(key);
        continue;
      }
      const id = 256 + merges.length;
      merges.push([a, b]);
      lengths.push(lengths[a] + lengths[b]);
      touched.clear();
      const list = pairWords.get(key)!;
      pairWords.delete(key);
      for (const w of list) {
        if (stamp[w] === id) continue; // listed twice
        stamp[w] = id;
        const ids = words[w];
        let has = false;
        for (let i = 0; i + 1 < ids.length; i++)
          if (ids[i] === a && ids[i + 1] === b) {
            has = true;
            break;
          }
        if (!has) continue; // an earlier merge already consumed the pair in this word
        const f = freq[w];
        for (let i = 0; i + 1 < ids.length; i++) add(ids[i] * KEY + ids[i + 1], -f);
        const next: number[] = [];
        for (let i = 0; i < ids.length;) {
          if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
            next.push(id);
            i += 2;
          } else next.push(ids[i++]);
        }
        for (let i = 0; i + 1 < next.length; i++) {
          const k = next[i] * KEY + next[i + 1];
          add(k, f);
          if (next[i] === id || next[i + 1] === id) {
            let l = pairWords.get(k);
            if (!l) pairWords.set(k, (l = []));
            l.push(w);
          }
        }
        words[w] = next;
      }
      for (const k of touched) {
        const c = pairCount.get(k);
        if (c !== undefined && k !== key && !tooLong.has(k)) heap.push(c, k);
      }
    }
    return new BpeTokenizer(merges, preTokenizer);
  }

  /**
   * Rebuilds a tokenizer from `toJSON()` (version 2), or from a version 1 file whose `pattern` is the text
   * of a known pre-tokenizer. Any other pattern is an error: patterns are never compiled from files.
   */
  static fromJSON(json: BpeTokenizerJSON | BpeTokenizerJSONv1): BpeTokenizer {
    if (json === null || typeof json !== 'object' || json.kind !== 'bpe') {
      throw new ValueError(`${OWNER}.fromJSON: expected {kind: "bpe", ...} from toJSON().`);
    }
    if (!Array.isArray(json.merges)) throw new ValueError(`${OWNER}.fromJSON: merges must be an array of [left, right] id pairs.`);
    let preTokenizer: string;
    if (json.version === 2) preTokenizer = resolvePreTokenizer(json.preTokenizer, `${OWNER}.fromJSON`);
    else if (json.version === 1) preTokenizer = resolvePreTokenizer(json.pattern ?? BPE_PATTERN, `${OWNER}.fromJSON`);
    else
      throw new ValueError(`${OWNER}.fromJSON: unsupported version ${JSON.stringify((json as { version?: unknown }).version)} (1 or 2).`);
    return new BpeTokenizer(json.merges, preTokenizer);
  }

  /**
   * `merges[r] = [left, right]` makes id `256 + r`; each side must be an id defined before it, and the
   * token it makes at most `MAX_TOKEN_BYTES` long. `preTokenizer` is a name from `BPE_PRE_TOKENIZERS`
   * (or, for older callers, the exact pattern text of one).
   */
  constructor(merges: ReadonlyArray<readonly [number, number]>, preTokenizer: string = DEFAULT_PRE_TOKENIZER) {
    this.preTokenizer = resolvePreTokenizer(preTokenizer);
    this.pattern = BPE_PRE_TOKENIZERS[this.preTokenizer];
    this.re = preTokenizerRegExp(this.preTokenizer);
    if (!Array.isArray(merges)) throw new ValueError(`${OWNER}: merges must be an array of [left, right] id pairs.`);
    if (256 + merges.length > KEY) throw new ValueError(`${OWNER}: at most ${KEY - 256} merges, got ${merges.length}.`);
    this.lengths = new Int32Array(256 + merges.length);
    this.lengths.fill(1, 0, 256);
    merges.forEach((m, r) => this.addMerge(m, r));
    this.merges = Object.freeze(merges.map((m) => Object.freeze([m[0], m[1]] as const)));
    this.vocabSize = 256 + merges.length;
  }

  /** Checks and records merge `r`: ids defined before it, a new pair, a token of at most MAX_TOKEN_BYTES. */
  private addMerge(m: readonly [number, number], r: number): void {
    const id = 256 + r;
    if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && x >= 0 && x < id)) {
      throw new ValueError(`${OWNER}: merges[${r}] must be a pair of ids below ${id}, got ${JSON.stringify(m)}.`);
    }
    const k = m[0] * KEY + m[1];
    if (this.mergeId.has(k)) throw new ValueError(`${OWNER}: merges[${r}] repeats the pair ${JSON.stringify(m)}.`);
    const length = this.lengths[m[0]] + this.lengths[m[1]];
    if (length > MAX_TOKEN_BYTES) {
      throw new ValueError(
        `${OWNER}: merges[${r}] makes a token of ${length} bytes; tokens are at most MAX_TOKEN_BYTES (${MAX_TOKEN_BYTES}) bytes.`,
      );
    }
    this.mergeId.set(k, id);
    this.lengths[id] = length;
  }

  /** Writes the bytes of `id` into `out` at `at` (expanding merges with an explicit stack); returns the end. */
  private writeBytes(id: number, out: Uint8Array, at: number): number {
    const stack = [id];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (t < 256) {
        out[at++] = t;
      } else {
        const [a, b] = this.merges[t - 256];
        stack.push(b, a);
      }
    }
    return at;
  }

  private encodePiece(piece: string, encoder: TextEncoder): Int32Array {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    let ids: number[] = Array.from(encoder.encode(piece));
    while (ids.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = this.mergeId.get(ids[i] * KEY + ids[i + 1]);
        if (m !== undefined && (best < 0 || m < best)) best = m;
      }
      if (best < 0) break;
      const [a, b] = this.merges[best - 256];
      const next: number[] = [];
      for (let i = 0; i < ids.length;) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(best);
          i += 2;
        } else next.push(ids[i++]);
      }
      ids = next;
    }
    const out = Int32Array.from(ids);
    if (piece.length <= MAX_CACHED_PIECE) {
      if (this.cache.size >= 100_000) this.cache.clear();
      this.cache.set(piece, out);
    }
    return out;
  }

  encode(text: string): Int32Array {
    checkText(`${OWNER}.encode`, text);
    const encoder = new TextEncoder();
    let out = new Int32Array(Math.max(16, text.length));
    let n = 0;
    for (const piece of splitPieces(text, this.re)) {
      const ids = this.encodePiece(piece, encoder);
      if (n + ids.length > out.length) {
        const grown = new Int32Array(Math.max(out.length * 2, n + ids.length));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      out.set(ids, n);
      n += ids.length;
    }
    return out.slice(0, n);
  }

  /** Concatenates the bytes of the ids and decodes them as UTF-8 (invalid sequences become U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    checkIds(`${OWNER}.decode`, ids, this.vocabSize);
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.lengths[ids[i]];
    const bytes = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) at = this.writeBytes(ids[i], bytes, at);
    return new TextDecoder('utf-8').decode(bytes);
  }

  /** The UTF-8 bytes of one id. */
  tokenBytes(id: number): Uint8Array {
    checkIds(`${OWNER}.tokenBytes`, [id], this.vocabSize);
    const out = new Uint8Array(this.lengths[id]);
    this.writeBytes(id, out, 0);
    return out;
  }

  toJSON(): BpeTokenizerJSON {
    return { kind: 'bpe', version: 2, preTokenizer: this.preTokenizer, merges: this.merges.map((m) => [m[0], m[1]]) };
  }
}
