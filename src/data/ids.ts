/** Checks on token-id sequences shared by the tokenizers, the batcher and the baseline. */
import { ValueError } from '../utils/errors.js';

/** A sequence of token ids as accepted by the data pipeline. */
export type TokenIds = Int32Array | ArrayLike<number>;

/** Checks that `text` is a string (what tokenizers encode). */
export function checkText(owner: string, text: unknown): asserts text is string {
  if (typeof text !== 'string') throw new ValueError(`${owner}: text must be a string, got ${text === null ? 'null' : typeof text}.`);
}

/** Checks that `ids` is an array of integers in `[0, vocabSize)`; names the first bad one. */
export function checkIds(owner: string, ids: ArrayLike<number>, vocabSize: number): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new ValueError(`${owner}: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}.`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new ValueError(`${owner}: id ${id} at position ${i} is outside the vocabulary [0, ${vocabSize}).`);
    }
  }
}

/** The ids as an Int32Array (no copy when they already are one); rejects non-integers. */
export function toInt32(owner: string, arg: string, ids: TokenIds): Int32Array {
  if (ids instanceof Int32Array) return ids;
  if (ids === null || typeof ids !== 'object' || typeof (ids as ArrayLike<number>).length !== 'number') {
    throw new ValueError(`${owner}: ${arg} must be an Int32Array or an array of integer token ids.`);
  }
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      throw new ValueError(`${owner}: ${arg}[${i}] must be an integer token id, got ${v}.`);
    }
    out[i] = v;
  }
  return out;
}
