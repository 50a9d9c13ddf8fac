/**
 * What every tokenizer offers (character, byte and BPE tokenizers implement it). In a module of its own so
 * that the tokenizers and `tokenizerFromJSON`, which reads all of them, import it without a cycle.
 */
export interface Tokenizer {
  /** Number of ids; every id is an integer in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** `"char"`, `"byte"` or `"bpe"`; the `kind` of `toJSON()`. */
  readonly kind: string;
  encode(text: string): Int32Array | number[];
  decode(ids: ArrayLike<number>): string;
  toJSON(): object;
}
