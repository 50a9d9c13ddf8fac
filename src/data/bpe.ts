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
import type { Tokenizer } from './tokenizer.js';
import { checkIds } from './ids.js';
import { ValueError } from '../utils/errors.js';

/** The pre-tokenizer: GPT-2's pattern without the English contraction cases. */
export const BPE_PATTERN = String.raw` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

export interface BpeTokenizerJSON {
  kind: 'bpe';
  version: 1;
  /** Pre-tokenizer regular expression, compiled with flags `gu`. */
  pattern: string;
  /** `merges[r] = [left, right]`: the pair of ids that merge into id `256 + r`. */
  merges: Array<[number, number]>;
}

export interface BpeTrainOptions {
  /** Pairs seen fewer times than this are never merged (training may stop below `vocabSize`). Default 2. */
  minFrequency?: number;
  /** Pre-tokenizer pattern; default `BPE_PATTERN`. */
  pattern?: string;
}

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

function compile(pattern: string): RegExp {
  try {
    return new RegExp(pattern, 'gu');
  } catch (e) {
    throw new ValueError(`${OWNER}: pattern is not a valid regular expression: ${(e as Error).message}`);
  }
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
    const c = this.counts[i]; this.counts[i] = this.counts[j]; this.counts[j] = c;
    const k = this.keys[i]; this.keys[i] = this.keys[j]; this.keys[j] = k;
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
  readonly pattern: string;
  private readonly re: RegExp;
  private readonly mergeId = new Map<number, number>();
  private readonly bytesOf: Uint8Array[] = [];
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
    const pattern = options.pattern ?? BPE_PATTERN;
    const re = compile(pattern);

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
      if (pairCount.get(key) !== count) continue; // stale entry
      if (count < minFrequency) break;
      const a = Math.floor(key / KEY);
      const b = key - a * KEY;
      const id = 256 + merges.length;
      merges.push([a, b]);
      touched.clear();
      const list = pairWords.get(key)!;
      pairWords.delete(key);
      for (const w of list) {
        if (stamp[w] === id) continue; // listed twice
        stamp[w] = id;
        const ids = words[w];
        let has = false;
        for (let i = 0; i + 1 < ids.length; i++) if (ids[i] === a && ids[i + 1] === b) { has = true; break; }
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
        if (c !== undefined && k !== key) heap.push(c, k);
      }
    }
    return new BpeTokenizer(merges, pattern);
  }

  static fromJSON(json: BpeTokenizerJSON): BpeTokenizer {
    if (json === null || typeof json !== 'object' || json.kind !== 'bpe') {
      throw new ValueError(`${OWNER}.fromJSON: expected {kind: "bpe", ...} from toJSON().`);
    }
    if (!Array.isArray(json.merges)) throw new ValueError(`${OWNER}.fromJSON: merges must be an array of [left, right] id pairs.`);
    return new BpeTokenizer(json.merges, typeof json.pattern === 'string' ? json.pattern : BPE_PATTERN);
  }

  /** `merges[r] = [left, right]` makes id `256 + r`; each side must be an id defined before it. */
  constructor(merges: ReadonlyArray<readonly [number, number]>, pattern: string = BPE_PATTERN) {
    this.re = compile(pattern);
    this.pattern = pattern;
    for (let b = 0; b < 256; b++) this.bytesOf.push(Uint8Array.of(b));
    merges.forEach((m, r) => {
      const id = 256 + r;
      if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && x >= 0 && x < id)) {
        throw new ValueError(`${OWNER}: merges[${r}] must be a pair of ids below ${id}, got ${JSON.stringify(m)}.`);
      }
      const k = m[0] * KEY + m[1];
      if (this.mergeId.has(k)) throw new ValueError(`${OWNER}: merges[${r}] repeats the pair ${JSON.stringify(m)}.`);
      this.mergeId.set(k, id);
      const left = this.bytesOf[m[0]];
      const right = this.bytesOf[m[1]];
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left);
      joined.set(right, left.length);
      this.bytesOf.push(joined);
    });
    this.merges = Object.freeze(merges.map((m) => Object.freeze([m[0], m[1]] as const)));
    this.vocabSize = 256 + merges.length;
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
    if (this.cache.size >= 100_000) this.cache.clear();
    this.cache.set(piece, out);
    return out;
  }

  encode(text: string): Int32Array {
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
    for (let i = 0; i < ids.length; i++) total += this.bytesOf[ids[i]].length;
    const bytes = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf[ids[i]];
      bytes.set(b, at);
      at += b.length;
    }
    return new TextDecoder('utf-8').decode(bytes);
  }

  /** The UTF-8 bytes of one id. */
  tokenBytes(id: number): Uint8Array {
    checkIds(`${OWNER}.tokenBytes`, [id], this.vocabSize);
    return this.bytesOf[id].slice();
  }

  toJSON(): BpeTokenizerJSON {
    return { kind: 'bpe', version: 1, pattern: this.pattern, merges: this.merges.map((m) => [m[0], m[1]]) };
  }
}
