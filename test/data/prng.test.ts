import { expect } from 'chai';
import { Mulberry32 } from '../../src/data/index.js';
import { expectThrows } from '../kit/index.js';

describe('data/prng', () => {
  it('is reproducible from a seed and continues from a saved state', () => {
    const a = new Mulberry32(2024);
    const first = Array.from({ length: 5 }, () => a.nextUint32());
    expect(
      Array.from(
        { length: 5 },
        (
          (b) => () =>
            b.nextUint32()
        )(new Mulberry32(2024)),
      ),
    ).to.deep.equal(first);
    const s = a.getState();
    const next = Array.from({ length: 5 }, () => a.next());
    const c = new Mulberry32(0).setState(s);
    expect(Array.from({ length: 5 }, () => c.next())).to.deep.equal(next);
  });

  it('draws integers in range, roughly uniformly', () => {
    const rng = new Mulberry32(1);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 20_000; i++) {
      const k = rng.nextInt(10);
      expect(k >= 0 && k < 10 && Number.isInteger(k)).to.equal(true);
      counts[k]++;
    }
    for (const c of counts) expect(c).to.be.within(1800, 2200);
  });

  it('rejects non-integer seeds and bad states', () => {
    expectThrows(() => new Mulberry32(1.5), /seed must be an integer/);
    expectThrows(() => new Mulberry32(1).setState(2 ** 32), /uint32/);
  });
});
