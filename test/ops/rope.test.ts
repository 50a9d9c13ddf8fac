import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import {
  MAX_ROPE_POSITIONS,
  ROPE_TABLE_POSITIONS,
  cachedRotaryPositions,
  rotaryAt,
  rotaryFactorsAt,
  rotaryMatrix,
  rotaryRange,
} from '../../src/ops/rope.js';
import { RotaryEmbedding } from '../../src/layers/rotary_embedding.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';

/** cos and sin rows `[positions.length, dim]` in float64, straight from the definition. */
function referenceRows(dim: number, base: number, positions: number[]): { cos: number[]; sin: number[] } {
  const cos: number[] = [];
  const sin: number[] = [];
  for (const p of positions) {
    for (let k = 0; k < dim; k++) {
      const j = k % (dim / 2);
      cos.push(Math.cos(p * base ** ((-2 * j) / dim)));
      sin.push(Math.sin(p * base ** ((-2 * j) / dim)));
    }
  }
  return { cos, sin };
}

let freshBase = 4321; // each run takes a (dim, base) pair no other test uses: a table of its own

describeBackends('RoPE position bounds', () => {
  it('rejects startIndex 2e6 at once, naming the argument, without growing the table', () => {
    const layer = new RotaryEmbedding({ maxWavelength: 777 });
    const x = randomTensor([1, 3, 8], 1);
    const cached = cachedRotaryPositions();
    const started = performance.now();
    const e = expectThrows(
      () => layer.apply(x, { startIndex: 2e6 }),
      /startIndex \+ sequence length must be at most MAX_ROPE_POSITIONS \(1048576\), got 2000000 \+ 3/,
    );
    expect(e).to.be.instanceOf(ValueError);
    expect(performance.now() - started, 'ms').to.be.below(500);
    expect(cachedRotaryPositions()).to.equal(cached);
    x.dispose();
  });

  it('serves positions past the cached table exactly, without caching them', () => {
    const dim = 16;
    const base = freshBase++;
    const before = cachedRotaryPositions();
    for (const start of [ROPE_TABLE_POSITIONS - 3, 200_000, MAX_ROPE_POSITIONS - 4]) {
      const positions = [0, 1, 2, 3].map((i) => start + i);
      const ref = referenceRows(dim, base, positions);
      const got = rotaryRange(dim, base, 1, start, 4);
      expect(normRelativeError(got.cos.dataSync(), ref.cos), `cos at ${start}`).to.be.below(1e-7);
      expect(normRelativeError(got.sin.dataSync(), ref.sin), `sin at ${start}`).to.be.below(1e-7);
      tf.dispose([got.cos, got.sin]);
    }
    const grown = cachedRotaryPositions() - before;
    expect(grown, 'rows cached for the new table').to.be.at.most(ROPE_TABLE_POSITIONS);
    expect(grown).to.be.greaterThan(0);
    // A far position through every entry point leaves the cache as it is.
    const cached = cachedRotaryPositions();
    const far = MAX_ROPE_POSITIONS - 1;
    const m = rotaryMatrix(dim, base, 1, far);
    const ref = referenceRows(dim, base, [far]);
    expect(normRelativeError([m.dataSync()[0], m.dataSync()[dim + 1]], [ref.cos[0], ref.cos[1]])).to.be.below(1e-7);
    const pos = tf.tensor2d([[far, 3]], [1, 2], 'int32');
    const at = rotaryAt(dim, base, 1, pos, MAX_ROPE_POSITIONS);
    const refAt = referenceRows(dim, base, [far, 3]);
    expect(normRelativeError(at.cos.dataSync(), refAt.cos)).to.be.below(1e-7);
    expect(normRelativeError(at.sin.dataSync(), refAt.sin)).to.be.below(1e-7);
    expect(cachedRotaryPositions()).to.equal(cached);
    tf.dispose([m, pos, at.cos, at.sin]);
  });

  it('rejects positions past MAX_ROPE_POSITIONS in every entry point', () => {
    const pos = tf.tensor2d([[0, MAX_ROPE_POSITIONS]], [1, 2], 'int32');
    expectThrows(() => rotaryRange(8, 10000, 1, MAX_ROPE_POSITIONS - 1, 2), /must be at most MAX_ROPE_POSITIONS/);
    expectThrows(() => rotaryMatrix(8, 10000, 1, MAX_ROPE_POSITIONS), /must be at most MAX_ROPE_POSITIONS/);
    expectThrows(() => rotaryMatrix(8, 10000, 1, -1), /startIndex must be a non-negative integer, got -1/);
    expectThrows(
      () => rotaryAt(8, 10000, 1, pos, 2 * MAX_ROPE_POSITIONS),
      /positions must be below MAX_ROPE_POSITIONS \(1048576\), got 1048576/,
    );
    const x = randomTensor([1, 2, 8], 2);
    expectThrows(() => new RotaryEmbedding().apply(x, { positions: pos }), /positions must be below MAX_ROPE_POSITIONS/);
    tf.dispose([pos, x]);
  });

  it('rejects fractional, negative and out-of-range positions with an error naming them', () => {
    const layer = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 2, numKeyValueHeads: 1, seed: 1 });
    const x = randomTensor([1, 3, 16], 3);
    const cases: Array<[tf.Tensor, RegExp]> = [
      [tf.tensor2d([[0, 1.5, 2]], [1, 3], 'float32'), /RoPE: positions must be non-negative integers, got 1\.5/],
      [tf.tensor2d([[0, NaN, 2]], [1, 3], 'float32'), /positions must be non-negative integers, got NaN/],
      [tf.tensor2d([[0, -1, 2]], [1, 3], 'int32'), /positions must be non-negative integers, got -1/],
      [tf.tensor2d([[0, 1, 3]], [1, 3], 'int32'), /positions must be below 3 \(.*cached \+ new tokens\), got 3/],
      [tf.tensor2d([[0, 1, 2]], [1, 3], 'bool'), /positions must be an int32 .* tensor, got dtype bool/],
    ];
    for (const [positions, pattern] of cases) {
      expect(expectThrows(() => layer.callWithCache(x, { positions }), pattern)).to.be.instanceOf(ValueError);
    }
    const integral = tf.tensor2d([[0, 1, 2]], [1, 3], 'float32'); // integer-valued float32 positions are accepted
    const ok = layer.callWithCache(x, { positions: integral });
    const same = layer.callWithCache(x);
    expect(normRelativeError(ok.output.dataSync(), same.output.dataSync())).to.be.below(1e-6);
    expectThrows(() => rotaryFactorsAt(8, 10000, 1, cases[2][0], 0), /positions must be non-negative integers/);
    const zero = tf.tensor2d([[0]], [1, 1], 'int32');
    expectThrows(() => rotaryAt(8, 10000, 1, zero, 0), /positions bound must be a positive integer, got 0/);
    zero.dispose();
    tf.dispose([x, integral, ok.output, same.output, ...cases.map((c) => c[0])]);
    ok.cache.dispose();
    same.cache.dispose();
    layer.dispose();
  });
});
