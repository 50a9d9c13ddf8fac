import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { compileForSparseTargets, sparseCategoricalCrossentropyFromLogits, sparseCrossEntropyFromLogits } from '../../src/models/losses.js';
import { describeBackends, expectClose, expectThrows, it } from '../kit/index.js';

const V = 29;

/** Deterministic pseudo-random ids in [0, V): `b` rows of `t`. */
function randomIds(b: number, t: number, seed: number): number[][] {
  let s = seed;
  return Array.from({ length: b }, () =>
    Array.from({ length: t }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % V;
    }),
  );
}

/** A short repeating text as ids, so a tiny model can learn it within a few epochs. */
function periodicIds(b: number, t: number): number[][] {
  const period = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];
  return Array.from({ length: b }, (_, r) => Array.from({ length: t }, (_, i) => period[(r * 3 + i) % period.length]));
}

/** Float64 cross-entropy of each token: logsumexp(logits) - logits[id]. */
function referenceLosses(logits: number[][][], ids: number[][]): number[] {
  return logits.flatMap((row, b) =>
    row.map((l, t) => {
      const m = Math.max(...l);
      return m + Math.log(l.reduce((a, x) => a + Math.exp(x - m), 0)) - l[ids[b][t]];
    }),
  );
}

describeBackends('sparse cross-entropy for fit', ({ tol }) => {
  it('matches a float64 reference per token, for ids [B, T] and [B, T, 1], int32 or float32', () => {
    const logits = tf.randomNormal([2, 5, V], 0, 3, 'float32', 7);
    const ids = randomIds(2, 5, 1);
    const expected = referenceLosses(logits.arraySync() as number[][][], ids);
    for (const targets of [
      tf.tensor2d(ids, [2, 5], 'int32'),
      tf.tensor2d(ids, [2, 5], 'float32'),
      tf.tensor3d(
        ids.map((r) => r.map((x) => [x])),
        [2, 5, 1],
      ),
    ]) {
      const perToken = sparseCategoricalCrossentropyFromLogits(targets, logits);
      expect(perToken.shape).to.deep.equal([2, 5]);
      expectClose(perToken, expected, tol.output, `per-token loss, targets [${targets.shape}] ${targets.dtype}`);
      const mean = tf.tidy(() => sparseCrossEntropyFromLogits(targets.reshape([2, 5]), logits));
      expectClose([mean.dataSync()[0]], [expected.reduce((a, x) => a + x, 0) / expected.length], tol.output, 'mean loss');
      tf.dispose([perToken, mean, targets]);
    }
    logits.dispose();
  });

  it('rejects ids outside [0, V), fractional ids, one-hot rows and mismatched shapes, naming the rule', () => {
    const logits = tf.zeros([2, 3, V]);
    const cases: Array<[tf.Tensor, RegExp]> = [
      [
        tf.tensor2d(
          [
            [0, 1, V],
            [0, 0, 0],
          ],
          [2, 3],
          'int32',
        ),
        new RegExp(`integer token ids in \\[0, ${V}\\).*got ${V} at flat index 2`),
      ],
      [
        tf.tensor2d(
          [
            [0, 1, -1],
            [0, 0, 0],
          ],
          [2, 3],
          'int32',
        ),
        /integer token ids in \[0, 29\).*got -1/,
      ],
      [
        tf.tensor2d(
          [
            [0, 1.5, 2],
            [0, 0, 0],
          ],
          [2, 3],
        ),
        /integer token ids.*got 1\.5/,
      ],
      [
        tf.tidy(() =>
          tf.oneHot(
            tf.tensor2d(
              [
                [0, 1, 2],
                [0, 0, 0],
              ],
              [2, 3],
              'int32',
            ),
            V,
          ),
        ),
        /targets must be integer ids shaped \[2,3\].*one-hot rows: use sparseCrossEntropyFromLogits/,
      ],
      [
        tf.zeros([2, 4], 'int32'),
        /targets must be integer ids shaped \[2,3\] \(or \[2,3,1\]\) for logits \[2,3,29\], got \[2,4\].*compileForSparseTargets/,
      ],
    ];
    for (const [targets, pattern] of cases) {
      expectThrows(() => sparseCategoricalCrossentropyFromLogits(targets, logits), /sparseCategoricalCrossentropyFromLogits/, pattern);
      targets.dispose();
    }
    logits.dispose();
  });

  it('lets model.fit() train a CausalLM on integer-id targets [B, T]: the loss falls', async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 3 });
    compileForSparseTargets(lm.model, { optimizer: tf.train.adam(0.01) });
    const ids = periodicIds(8, 17);
    const x = tf.tensor2d(
      ids.map((r) => r.slice(0, 16)),
      [8, 16],
      'int32',
    );
    const y = tf.tensor2d(
      ids.map((r) => r.slice(1)),
      [8, 16],
      'int32',
    );
    const h = await lm.model.fit(x, y, { epochs: 12, batchSize: 4, verbose: 0, shuffle: false });
    const loss = h.history.loss as number[];
    expect(loss.every(Number.isFinite)).to.equal(true);
    expect(loss[0]).to.be.closeTo(Math.log(V), 0.5); // starts near uniform
    expect(loss[loss.length - 1]).to.be.lessThan(0.5 * loss[0]);
    // evaluate() takes the same targets and agrees with the mean loss computed directly.
    const evaluated = lm.model.evaluate(x, y, { batchSize: 8 }) as tf.Scalar;
    const direct = tf.tidy(() => sparseCrossEntropyFromLogits(y, lm.model.predict(x) as tf.Tensor));
    expectClose([evaluated.dataSync()[0]], [direct.dataSync()[0]], 1e-4, 'evaluate vs direct loss');
    tf.dispose([x, y, evaluated, direct]);
    lm.dispose();
  });

  it('fails fit and evaluate on out-of-range ids with a ValueError before training, not a wrong loss', async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gqa', V), seed: 4 });
    compileForSparseTargets(lm.model, { optimizer: 'adam' });
    const x = tf.zeros([2, 8], 'int32');
    const y = tf.fill([2, 8], V, 'int32');
    let err: Error | null = null;
    await lm.model.fit(x, y, { epochs: 1, verbose: 0 }).catch((e: Error) => {
      err = e;
    });
    expect(String(err)).to.match(/fit\/evaluate: targets must be integer token ids in \[0, 29\).*got 29 at flat index 0/);
    expectThrows(() => lm.model.evaluate(x, y), /fit\/evaluate: targets must be integer token ids in \[0, 29\)/);
    tf.dispose([x, y]);
    lm.dispose();
  });
});

describe('compileForSparseTargets', () => {
  it('is needed: a plain compile makes fit refuse [B, T] targets (tfjs checks them against [B, T, V])', async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'mha', V), seed: 5 });
    lm.model.compile({ optimizer: 'sgd', loss: sparseCategoricalCrossentropyFromLogits });
    const x = tf.zeros([2, 4], 'int32');
    const y = tf.zeros([2, 4], 'int32');
    let err: Error | null = null;
    await lm.model.fit(x, y, { epochs: 1, verbose: 0 }).catch((e: Error) => {
      err = e;
    });
    expect(String(err)).to.match(/to have 3 dimension\(s\)/);
    tf.dispose([x, y]);
    lm.dispose();
  });

  it('rejects what is not a logits model, and missing arguments', () => {
    expectThrows(
      () => compileForSparseTargets({} as never, { optimizer: 'adam' }),
      /model must be a tf\.LayersModel \(for a CausalLM pass lm\.model\)/,
    );
    const input = tf.input({ shape: [4] });
    const dense = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3 }).apply(input) as tf.SymbolicTensor });
    expectThrows(
      () => compileForSparseTargets(dense, { optimizer: 'adam' }),
      /one output of logits \[B, T, V\], got output shapes \[\[null,3\]\]/,
    );
    expectThrows(() => compileForSparseTargets(dense, undefined as never), /args must be \{optimizer\}/);
    dense.dispose();
  });
});
