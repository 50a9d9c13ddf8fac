import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { RMSNormalization, rmsNormalization } from '../../src/layers/rms_normalization.js';
import { describeBackends, expectClose, expectNoLeakedTensors, expectThrows, it, randomTensor } from '../kit/index.js';

describeBackends('RMSNormalization', ({ tol }) => {
  it('computes x * rsqrt(mean(x^2) + eps) * scale with a trainable scale initialised to ones', () => {
    const layer = rmsNormalization({ epsilon: 1e-5 });
    tf.tidy(() => {
      const x = randomTensor([2, 3, 8], 1, 3);
      const out = layer.apply(x) as tf.Tensor;
      const data = x.dataSync();
      const ref: number[] = [];
      for (let r = 0; r < 6; r++) {
        const row = Array.from(data.slice(r * 8, r * 8 + 8));
        const ms = row.reduce((s, v) => s + v * v, 0) / 8;
        ref.push(...row.map((v) => v / Math.sqrt(ms + 1e-5)));
      }
      expectClose(out.dataSync(), ref, tol.output, 'rms norm');
    });
    expect(layer.weights.map((w) => w.name.split('/').pop())).to.deep.equal(['scale']);
    expect(layer.countParams()).to.equal(8);
    layer.dispose();
  });

  it('does not leak and round-trips its config', async () => {
    const layer = new RMSNormalization({ epsilon: 1e-6 });
    const x = randomTensor([2, 3, 8], 2);
    await expectNoLeakedTensors(() => layer.apply(x));
    expect(new RMSNormalization(layer.getConfig() as never).getConfig()).to.deep.equal(layer.getConfig());
    x.dispose();
    layer.dispose();
  });

  it('rejects bad arguments and inputs', () => {
    expectThrows(() => new RMSNormalization({ epsilon: -1 }), /epsilon must be a finite number > 0/);
    expectThrows(() => new RMSNormalization({ axis: 1 }), /axis must be -1/);
    const layer = new RMSNormalization();
    tf.tidy(() => {
      layer.apply(tf.zeros([1, 4]));
      expectThrows(() => layer.apply(tf.zeros([1, 5])), /expected last dimension 4/);
      expectThrows(() => layer.apply(tf.zeros([1, 4], 'int32')), /float32/);
    });
    layer.dispose();
  });
});
