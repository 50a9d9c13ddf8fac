import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { RotaryEmbedding, rotaryEmbedding } from '../../src/layers/rotary_embedding.js';
import { applyRotary, rotaryAt, rotaryRange } from '../../src/ops/rope.js';
import { describeBackends, expectClose, expectThrows, it, randomTensor } from '../kit/index.js';
import { rope } from '../kit/reference.js';

describeBackends('RotaryEmbedding', ({ tol }) => {
  it('rotates pairs (j, j + d/2) by position * base^(-2j/d) (rotate-half layout)', () => {
    const layer = new RotaryEmbedding({ maxWavelength: 500 });
    tf.tidy(() => {
      const x = randomTensor([1, 7, 2, 8], 3); // [B, T, heads, d]
      const out = layer.apply(x, { startIndex: 5 }) as tf.Tensor;
      const data = x.dataSync();
      for (let h = 0; h < 2; h++) {
        const rows = Array.from({ length: 7 }, (_, t) => Array.from(data.slice((t * 2 + h) * 8, (t * 2 + h + 1) * 8)));
        const ref = rope(
          rows,
          rows.map((_, t) => t + 5),
          500,
        );
        const got = Array.from({ length: 7 }, (_, t) => Array.from(out.dataSync().slice((t * 2 + h) * 8, (t * 2 + h + 1) * 8)));
        expectClose(got.flat(), ref.flat(), tol.output, `head ${h}`);
      }
    });
  });

  it('exports the same rotation as functions (applyRotary with rotaryRange / rotaryAt angles)', () => {
    const layer = new RotaryEmbedding({ maxWavelength: 500 });
    tf.tidy(() => {
      for (const shape of [
        [2, 5, 8],
        [2, 5, 3, 8],
        [1, 5, 2, 2, 8],
      ]) {
        const x = randomTensor(shape, 11);
        const viaLayer = layer.apply(x, { startIndex: 2 }) as tf.Tensor;
        const range = rotaryRange(8, 500, 1, 2, 5);
        expectClose(applyRotary(x, range), viaLayer, tol.same, `rotaryRange, rank ${shape.length}`);
        const positions = tf.tensor2d(
          Array.from({ length: shape[0] }, () => [2, 3, 4, 5, 6]),
          [shape[0], 5],
          'int32',
        );
        expectClose(applyRotary(x, rotaryAt(8, 500, 1, positions, 7)), viaLayer, tol.same, `rotaryAt, rank ${shape.length}`);
      }
    });
  });

  it('makes q.k depend only on the relative position', () => {
    const layer = rotaryEmbedding();
    tf.tidy(() => {
      const q = tf.tile(randomTensor([1, 1, 16], 1), [1, 40, 1]);
      const k = tf.tile(randomTensor([1, 1, 16], 2), [1, 40, 1]);
      const rq = layer.apply(q) as tf.Tensor;
      const rk = layer.apply(k) as tf.Tensor;
      const dot = (i: number, j: number) => tf.sum(tf.mul(rq.slice([0, i, 0], [1, 1, 16]), rk.slice([0, j, 0], [1, 1, 16]))).dataSync()[0];
      expect(dot(30, 27)).to.be.closeTo(dot(3, 0), 1e-4);
      expect(dot(12, 12)).to.be.closeTo(dot(0, 0), 1e-4);
    });
  });

  it('accepts per-row positions and equals startIndex for consecutive positions', () => {
    const layer = new RotaryEmbedding();
    tf.tidy(() => {
      const x = randomTensor([2, 4, 6], 5);
      const byStart = layer.apply(x, { startIndex: 3 }) as tf.Tensor;
      const byPos = layer.apply(x, {
        positions: tf.tensor2d(
          [
            [3, 4, 5, 6],
            [3, 4, 5, 6],
          ],
          [2, 4],
          'int32',
        ),
      }) as tf.Tensor;
      expectClose(byPos, byStart, tol.same, 'positions vs startIndex');
    });
    const config = layer.getConfig();
    expect(config.maxWavelength).to.equal(10000);
  });

  it('rejects odd feature sizes, low ranks and bad arguments', () => {
    const layer = new RotaryEmbedding();
    tf.tidy(() => {
      expectThrows(() => layer.apply(tf.zeros([1, 2, 5])), /must be even/);
      expectThrows(() => layer.apply(tf.zeros([2, 4])), /rank >= 3/);
      expectThrows(() => layer.apply(tf.zeros([1, 2, 4]), { startIndex: -1 }), /startIndex must be a non-negative integer/);
    });
    expectThrows(() => new RotaryEmbedding({ maxWavelength: -3 }), /maxWavelength must be a finite number > 0/);
  });
});
