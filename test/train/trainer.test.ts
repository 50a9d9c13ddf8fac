import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { AdamW, clipByGlobalNorm } from '../../src/train/adamw.js';
import { warmupCosine } from '../../src/train/schedule.js';
import { resumeTraining, train } from '../../src/train/trainer.js';
import { evaluate } from '../../src/train/evaluate.js';
import { directoryCheckpoint } from '../../src/train/checkpoint.js';
import { rotaryFactorBuilds } from '../../src/ops/rope.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const V = 11;
// A learnable stream: a repeating pattern with a little seeded noise.
const stream = Int32Array.from({ length: 4000 }, (_, i) => ((i * 7) % 13 < 11 ? (i * 3) % V : (i * 5) % V));
const trainIds = stream.subarray(0, 3600);
const validIds = stream.subarray(3600);
const tiny = () => CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 3 });
const common = {
  train: trainIds,
  validation: validIds,
  batchSize: 4,
  sequenceLength: 16,
  learningRate: 5e-3,
  evalEvery: 100,
  evalBatches: 2,
  seed: 1,
};

describe('learning-rate schedule and optimizer', () => {
  it('warms up linearly, then decays by a cosine to the floor', () => {
    const o = { peakLearningRate: 1, warmupSteps: 10, totalSteps: 110, minLearningRate: 0.1 };
    expect(warmupCosine(0, o)).to.be.closeTo(0.1, 1e-12);
    expect(warmupCosine(9, o)).to.be.closeTo(1, 1e-12);
    expect(warmupCosine(10, o)).to.be.closeTo(1, 1e-12);
    expect(warmupCosine(60, o)).to.be.closeTo(0.55, 1e-12);
    expect(warmupCosine(110, o)).to.be.closeTo(0.1, 1e-12);
  });

  it('AdamW takes the textbook step with decoupled decay on matrices only, and restores its state exactly', () => {
    const [w, b] = tf.tidy(() => [tf.variable(tf.tensor2d([[1, -2]])), tf.variable(tf.tensor1d([0.5]))]);
    const opt = new AdamW([w, b], { beta1: 0.9, beta2: 0.99, epsilon: 0, weightDecay: 0.1 });
    const grads = [tf.tensor2d([[0.5, 0.5]]), tf.tensor1d([-1])];
    opt.apply(grads, 0.01);
    // First step: mhat = g, vhat = g^2, so the update is sign(g) (+ decay on the matrix only).
    expect(Array.from(w.dataSync())[0]).to.be.closeTo(1 - 0.01 * (1 + 0.1 * 1), 1e-6);
    expect(Array.from(w.dataSync())[1]).to.be.closeTo(-2 - 0.01 * (1 + 0.1 * -2), 1e-6);
    expect(b.dataSync()[0]).to.be.closeTo(0.5 + 0.01, 1e-6);
    const state = opt.getState();
    expect(state.step).to.equal(1);
    const twin = new AdamW([w, b], { beta1: 0.9, beta2: 0.99, epsilon: 0, weightDecay: 0.1 });
    twin.setState(state);
    expect(twin.getState()).to.deep.equal(state);
    const one = tf.zeros([1, 2]);
    expectThrows(() => twin.apply([one], 0.1), /got 1 gradients for 2 variables/);
    opt.dispose();
    twin.dispose();
    tf.dispose([...grads, one, w, b]);
  });

  it('clips gradients by their global norm', () => {
    const inputs = [tf.tensor1d([3]), tf.tensor1d([4])];
    const { grads, norm } = clipByGlobalNorm(inputs, 1);
    expect(norm).to.be.closeTo(5, 1e-6);
    expect(grads[0].dataSync()[0]).to.be.closeTo(0.6, 1e-5);
    expect(grads[1].dataSync()[0]).to.be.closeTo(0.8, 1e-5);
    tf.dispose([...inputs, ...grads]);
  });
});

describeBackends('trainer', () => {
  it('builds the RoPE factors once per training and evaluation step, however many blocks the model has', async () => {
    const builds: number[] = [];
    for (const numLayers of [1, 4]) {
      const lm = CausalLM.create({ ...smallPreset('tiny', 'gqa', V), numLayers, seed: 3 });
      const before = rotaryFactorBuilds();
      await train({ ...common, model: lm, steps: 2, evalEvery: 1, evalBatches: 1 });
      builds.push(rotaryFactorBuilds() - before);
      lm.dispose();
    }
    expect(builds[0]).to.be.greaterThan(0);
    expect(builds[1]).to.equal(builds[0]); // 4 blocks share each step's factors
  });

  it('lowers the loss on a tiny run and reports history, evaluations and throughput', async () => {
    const lm = tiny();
    const before = evaluate(lm, validIds, { batchSize: 4, sequenceLength: 16 }).loss;
    const r = await train({ ...common, model: lm, steps: 40, evalEvery: 20 });
    expect(r.steps).to.equal(40);
    expect(r.history).to.have.length(40);
    expect(r.evals.map((e) => e.step)).to.deep.equal([20, 40]);
    expect(r.finalValidationLoss).to.be.lessThan(0.7 * before);
    expect(r.tokensPerSecond).to.be.greaterThan(0);
    expect(r.history[0].learningRate).to.be.lessThan(r.history[4].learningRate); // warm-up
    lm.dispose();
  });

  it('resumes from a checkpoint exactly where an uninterrupted run would be', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-ckpt-'));
    try {
      const straight = tiny();
      const full = await train({ ...common, model: straight, steps: 8 });
      const first = tiny();
      let calls = 0;
      const store = await directoryCheckpoint(join(dir, 'run'));
      const part = await train({ ...common, model: first, steps: 8, checkpoint: store, shouldStop: () => ++calls >= 3 });
      expect(part.stopped).to.equal(true);
      expect(part.steps).to.equal(3);
      first.dispose();
      const { model, result } = await resumeTraining(store, { ...common, steps: 8 });
      expect(result.steps).to.equal(8);
      expect(result.history.map((h) => h.loss)).to.deep.equal(full.history.map((h) => h.loss));
      const a = straight.model.getWeights().map((w) => Array.from(w.dataSync()));
      const b = model.model.getWeights().map((w) => Array.from(w.dataSync()));
      expect(b).to.deep.equal(a);
      straight.dispose();
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad settings clearly', async () => {
    const lm = tiny();
    let err: Error | null = null;
    await train({ ...common, model: lm, steps: 0 }).catch((e: Error) => {
      err = e;
    });
    expect(String(err)).to.match(/steps must be a positive integer/);
    err = null;
    await train({ ...common, model: lm, steps: 2, sequenceLength: 1000 }).catch((e: Error) => {
      err = e;
    });
    expect(String(err)).to.match(/sequenceLength 1000 exceeds the model's maxSequenceLength 256/);
    err = null;
    await train({ ...common, model: lm, steps: 2, train: trainIds.subarray(0, 10) }).catch((e: Error) => {
      err = e;
    });
    expect(String(err)).to.match(/shorter than one window|fewer than/);
    // Ids outside the vocabulary are refused before any step, in either stream, naming the argument and the index.
    const v = lm.config.vocabSize;
    for (const [what, bad] of [
      ['train', v],
      ['validation', -1],
      ['train', 1.5],
    ] as const) {
      const copy = Array.from(what === 'train' ? trainIds : validIds);
      copy[7] = bad;
      err = null;
      await train({ ...common, model: lm, steps: 1, [what]: copy }).catch((e: Error) => {
        err = e;
      });
      expect(String(err)).to.include(
        `train: ${what} must hold integer token ids in [0, ${v}) (the model's vocabSize), got ${bad} at index 7.`,
      );
    }
    lm.dispose();
  });
});
