/**
 * A tiny seeded PRNG (mulberry32) for reproducible data order. Its whole state is one uint32, so a
 * training run can save it and resume with exactly the same sequence. Not for cryptography.
 */
import { ValueError } from '../utils/errors.js';

export class Mulberry32 {
  private s: number;

  /** `seed` is any integer; it is reduced to uint32. */
  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isInteger(seed)) {
      throw new ValueError(`Mulberry32: seed must be an integer, got ${String(seed)}.`);
    }
    this.s = seed >>> 0;
  }

  /** The next uint32. */
  nextUint32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, n) for 1 <= n <= 2^32 (bias below n / 2^32, negligible for token counts). */
  nextInt(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** The internal state (uint32); `new Mulberry32(0).setState(s)` continues the same sequence. */
  getState(): number {
    return this.s;
  }

  setState(state: number): this {
    if (typeof state !== 'number' || !Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new ValueError(`Mulberry32: state must be a uint32 integer, got ${String(state)}.`);
    }
    this.s = state >>> 0;
    return this;
  }
}
