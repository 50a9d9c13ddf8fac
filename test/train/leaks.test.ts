/**
 * Training leaves nothing behind: after `train()` and `model.dispose()` the number of live tensors
 * (counted outside any engine scope) is where it was before the model was created, for every mechanism.
 * The counts are taken by the test itself (not only by the kit's leak check), so that the variables the
 * run creates (weights, optimizer moments) are counted too.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { train } from '../../src/train/trainer.js';
import { AdamW } from '../../src/train/adamw.js';
import { usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { describeBackends, it } from '../kit/index.js';

const V = 9;
const stream = Int32Array.from({ length: 600 }, (_, i) => (i * 5) % V);
const trainIds = stream.subarray(0, 480);
const validIds = stream.subarray(480);

/** Live tensors; the test runs outside any scope, so this counts every tensor still allocated. */
function liveTensors(): number {
  return tf.memory().numTensors;
}

describeBackends('training leaks no tensors', () => {
  for (const mechanism of ['gqa', 'gta', 'mla'] as const) {
    it(`${mechanism}: train() for 3 steps, then model.dispose(), leaves the tensor count unchanged`, async () => {
      const before = liveTensors();
      const model = CausalLM.create({ ...smallPreset('tiny', mechanism, V), seed: 5 });
      const weights = liveTensors() - before;
      expect(weights, 'tensors of the new model').to.be.greaterThan(0);
      const result = await train({
        model,
        train: trainIds,
        validation: validIds,
        batchSize: 2,
        sequenceLength: 8,
        steps: 3,
        evalEvery: 2,
        evalBatches: 1,
        seed: 2,
      });
      expect(result.steps).to.equal(3);
      expect(result.history.map((r) => Number.isFinite(r.loss))).to.deep.equal([true, true, true]);
      expect(liveTensors() - before, 'tensors after train(), before model.dispose()').to.equal(weights);
      model.dispose();
      expect(liveTensors(), 'tensors after model.dispose()').to.equal(before);
    });
  }

  it('AdamW holds exactly its two moments per variable (one packed state per group where fused) and frees them on dispose', () => {
    const shapes = [[3, 2], [2], [4], [1, 5], [2, 2], [7], [3]];
    const variables = tf.tidy(() => shapes.map((s) => tf.variable(tf.ones(s))));
    const before = liveTensors();
    const optimizer = new AdamW(variables);
    // The fused update (webgpu) keeps m and v of up to five variables together in one state tensor.
    const stateTensors = usesFusedTrainingKernels() ? 2 : 2 * variables.length;
    expect(liveTensors() - before, 'tensors of a new AdamW').to.equal(stateTensors);
    const grads = shapes.map((s) => tf.ones(s));
    optimizer.apply(grads, 0.1);
    optimizer.setState(optimizer.getState());
    optimizer.apply(grads, 0.1);
    expect(liveTensors() - before, 'after two steps and a state restore').to.equal(stateTensors + grads.length);
    optimizer.dispose();
    tf.dispose([...grads, ...variables]);
    expect(liveTensors()).to.equal(before - variables.length);
  });
});
