import { expect } from 'chai';
import { unigramBaseline } from '../../src/data/index.js';
import { expectThrows } from '../kit/index.js';

describe('data/baseline', () => {
  it('is log(V) when every id is equally frequent in training', () => {
    for (const v of [2, 7, 256]) {
      const train = Array.from({ length: 5 * v }, (_, i) => i % v);
      expect(unigramBaseline(train, [0, v - 1, 1 % v], v)).to.be.closeTo(Math.log(v), 1e-12);
    }
  });

  it('uses add-one smoothing: p(v) = (count + 1) / (N + V)', () => {
    // train counts over V = 3: [3, 1, 0], N = 4; p = [4/7, 2/7, 1/7].
    const ce = unigramBaseline(Int32Array.from([0, 0, 1, 0]), [0, 2], 3);
    expect(ce).to.be.closeTo(-(Math.log(4 / 7) + Math.log(1 / 7)) / 2, 1e-12);
  });

  it('is lower on skewed text than the uniform log(V)', () => {
    const train = Array.from({ length: 1000 }, (_, i) => (i % 10 === 0 ? 1 : 0));
    expect(unigramBaseline(train, train, 50)).to.be.lessThan(Math.log(50) / 5);
  });

  it('rejects ids outside the vocabulary and empty validation', () => {
    expectThrows(() => unigramBaseline([0, 4], [0], 4), /trainIds/, /id 4 at position 1/);
    expectThrows(() => unigramBaseline([0], [-1], 4), /validIds/, /id -1/);
    expectThrows(() => unigramBaseline([0], [], 4), /validIds is empty/);
    expectThrows(() => unigramBaseline([0], [0], 0), /vocabSize must be a positive integer/);
  });
});
