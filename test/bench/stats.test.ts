// browser-tests: node-only: tests the benchmark's statistics (bench/stats.ts), which only the Node CLI uses
import { expect } from 'chai';
import { percentile, ratioInterval, runValues, summarize } from '../../bench/stats.js';

describe('bench statistics', () => {
  it('summarizes samples with interpolated percentiles', () => {
    const s = summarize([4, 1, 3, 2, 5]);
    expect([s.median, s.min, s.max, s.n, s.mean]).to.deep.equal([3, 1, 5, 5, 3]);
    expect(s.p10).to.be.closeTo(1.4, 1e-12);
    expect(Number.isNaN(percentile([], 0.5))).to.equal(true);
  });

  it('reduces decode runs to their median step and keeps single-sample runs', () => {
    expect(runValues([1, 9, 2, 5, 6, 7], 2)).to.deep.equal([2, 6]);
    expect(runValues([3, 1, 2], 3)).to.deep.equal([3, 1, 2]);
  });

  it('brackets the ratio of medians by a deterministic bootstrap interval', () => {
    const noisy = (center: number, n: number, seed: number) =>
      Array.from({ length: n }, (_, i) => center * (1 + 0.05 * Math.sin(seed + 7.3 * i)));
    const same = ratioInterval(noisy(10, 30, 1), noisy(10, 30, 2))!;
    expect(same[0]).to.be.lessThan(1);
    expect(same[1]).to.be.greaterThan(1);
    expect(ratioInterval(noisy(10, 30, 1), noisy(10, 30, 2))).to.deep.equal(same);
    const slower = ratioInterval(noisy(20, 30, 1), noisy(10, 30, 2))!;
    expect(slower[0]).to.be.greaterThan(1.8);
    expect(slower[1]).to.be.lessThan(2.2);
    expect(ratioInterval([1, 2], [1, 2, 3])).to.equal(null);
  });
});
