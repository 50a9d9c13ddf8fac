import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { RotaryStep, rotaryFactorBuilds, rotaryFactorsAt, rotaryFactorsRange, rotaryMatrix } from '../../src/ops/rope.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

/** Whether two tensors hold the same float32 values, bit for bit. */
function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  const x = a.dataSync();
  const y = b.dataSync();
  return a.shape.join(',') === b.shape.join(',') && x.every((v, i) => Object.is(v, y[i]));
}

describeBackends('RotaryStep (RoPE factors of one model step)', () => {
  it('builds each factor set once and returns the values of rotaryFactorsRange', () => {
    const step = new RotaryStep({ start: 5, length: 3 });
    const before = rotaryFactorBuilds();
    const a = step.factors(8, 10000, 1, 4);
    const again = step.factors(8, 10000, 1, 4);
    expect(again.cos, 'second request: the same tensor').to.equal(a.cos);
    expect(rotaryFactorBuilds() - before, 'one build for two requests').to.equal(1);
    step.factors(8, 10000, 1, 1); // another head repeat: another set
    step.factors(8, 500, 1, 4); // another base: another set
    expect(rotaryFactorBuilds() - before).to.equal(3);
    const direct = rotaryFactorsRange(8, 10000, 1, 5, 3, 4);
    expect(sameValues(a.cos, direct.cos) && sameValues(a.sinSigned, direct.sinSigned)).to.equal(true);
    tf.dispose([direct.cos, direct.sinSigned]);
    step.dispose();
  });

  it('serves per-row positions (rotaryFactorsAt, bound start + length) and ignores the head repeat there', () => {
    const positions = tf.tensor2d(
      [
        [0, 0, 1],
        [2, 3, 4],
      ],
      [2, 3],
      'int32',
    );
    const step = new RotaryStep({ start: 2, length: 3, positions });
    const a = step.factors(6, 10000, 2, 3);
    expect(step.factors(6, 10000, 2, 1).cos).to.equal(a.cos);
    const direct = rotaryFactorsAt(6, 10000, 2, positions, 5);
    expect(sameValues(a.cos, direct.cos) && sameValues(a.sinSigned, direct.sinSigned)).to.equal(true);
    expect(step.matrix(6, 10000, 2), 'no matrix for per-row positions').to.equal(null);
    tf.dispose([direct.cos, direct.sinSigned, positions]);
    step.dispose();
  });

  it('gives the rotaryMatrix of a one-token step, and none for longer steps', () => {
    const one = new RotaryStep({ start: 7, length: 1 });
    const m = one.matrix(4, 10000, 1)!;
    expect(one.matrix(4, 10000, 1)).to.equal(m);
    const direct = rotaryMatrix(4, 10000, 1, 7);
    expect(sameValues(m, direct)).to.equal(true);
    const two = new RotaryStep({ start: 7, length: 2 });
    expect(two.matrix(4, 10000, 1)).to.equal(null);
    direct.dispose();
    one.dispose();
    two.dispose();
  });

  it('keeps its tensors out of tidy scopes until dispose(), and refuses use afterwards', () => {
    const start = tf.memory().numTensors;
    const step = new RotaryStep({ start: 0, length: 4 });
    let f: { cos: tf.Tensor; sinSigned: tf.Tensor } | null = null;
    tf.tidy(() => {
      f = step.factors(8, 10000, 1); // not returned: only the step keeps it
    });
    f = f!;
    expect(f.cos.isDisposed, 'alive after the tidy that built it').to.equal(false);
    expect(tf.memory().numTensors).to.equal(start + 2);
    step.dispose();
    expect(f.cos.isDisposed && f.sinSigned.isDisposed).to.equal(true);
    expect(tf.memory().numTensors).to.equal(start);
    expect(step.isDisposed).to.equal(true);
    expectThrows(() => step.factors(8, 10000, 1), /RotaryStep/, /disposed/);
    step.dispose(); // a second dispose is harmless
  });

  it('tells whether it describes a call (start, length, the same positions tensor)', () => {
    const positions = tf.tensor2d([[0, 1]], [1, 2], 'int32');
    const copy = tf.tensor2d([[0, 1]], [1, 2], 'int32');
    const range = new RotaryStep({ start: 3, length: 2 });
    const rows = new RotaryStep({ start: 0, length: 2, positions });
    expect(range.covers(3, 2, null)).to.equal(true);
    expect(range.covers(2, 2, null)).to.equal(false);
    expect(range.covers(3, 1, null)).to.equal(false);
    expect(range.covers(3, 2, positions)).to.equal(false);
    expect(rows.covers(0, 2, positions)).to.equal(true);
    expect(rows.covers(0, 2, copy), 'another tensor, even with equal values').to.equal(false);
    tf.dispose([positions, copy]);
  });

  it('rejects bad positions with a ValueError naming the argument', () => {
    const e = expectThrows(() => new RotaryStep({ start: -1, length: 2 }), /startIndex/, /non-negative integer/);
    expect(e).to.be.instanceOf(ValueError);
    expectThrows(() => new RotaryStep({ start: 0, length: 1.5 }), /sequence length/, /non-negative integer/);
    const wrong = tf.tensor2d([[0, 1, 2]], [1, 3], 'int32');
    expectThrows(() => new RotaryStep({ start: 0, length: 2, positions: wrong }), /RotaryStep: positions/, /\[batch, 2\]/);
    wrong.dispose();
    expectThrows(
      () => new RotaryStep({ start: 0, length: 2, positions: [[0, 1]] as unknown as tf.Tensor }),
      /RotaryStep: positions must be a tf.Tensor/,
    );
  });
});
