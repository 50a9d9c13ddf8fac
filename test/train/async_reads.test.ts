/**
 * The training loop, evaluation, gradient clipping and the optimizer state read tensors asynchronously
 * (`await data()`), because tfjs's webgpu backend in Node cannot read synchronously. The asynchronous
 * variants give the same numbers as the synchronous ones, and `train` runs (with evaluations and a
 * checkpoint) while every synchronous read throws.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { AdamW, clipByGlobalNorm, clipByGlobalNormAsync } from '../../src/train/adamw.js';
import { evaluate, evaluateAsync } from '../../src/train/evaluate.js';
import { train, type CheckpointStore, type TrainingCheckpoint } from '../../src/train/trainer.js';
import { describeBackends, it, randomTensor } from '../kit/index.js';

const V = 11;
const stream = Int32Array.from({ length: 2000 }, (_, i) => ((i * 7) % 13 < 11 ? (i * 3) % V : (i * 5) % V));
const trainIds = stream.subarray(0, 1600);
const validIds = stream.subarray(1600);
const tiny = () => CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 5 });

type Method = 'dataSync' | 'arraySync' | 'bufferSync';
const SYNC_READS: Method[] = ['dataSync', 'arraySync', 'bufferSync'];

/** Runs `fn` with every synchronous tensor read throwing (as on webgpu in Node); counts the attempts. */
async function withoutSyncReads<T>(fn: () => Promise<T>): Promise<{ value: T; attempts: string[] }> {
  const proto = tf.Tensor.prototype as unknown as Record<Method, (...a: unknown[]) => unknown>;
  const saved = SYNC_READS.map((m) => proto[m]);
  const attempts: string[] = [];
  for (const m of SYNC_READS) {
    proto[m] = function () {
      attempts.push(`${m}: ${new Error().stack?.split('\n')[2]?.trim() ?? ''}`);
      throw new Error(`synchronous read (${m}) during a test of asynchronous reads`);
    };
  }
  try {
    return { value: await fn(), attempts };
  } finally {
    SYNC_READS.forEach((m, i) => {
      proto[m] = saved[i];
    });
  }
}

/** A checkpoint store in memory: the model's weights (through tfjs's save path) and the optimizer state. */
function memoryStore(): CheckpointStore & { saved: Array<{ weights: number; state: TrainingCheckpoint['optimizer']; step: number }> } {
  const saved: Array<{ weights: number; state: TrainingCheckpoint['optimizer']; step: number }> = [];
  return {
    location: 'memory',
    saved,
    async save(c) {
      let bytes = 0;
      await c.lm.model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          bytes = (artifacts.weightData as ArrayBuffer).byteLength;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      saved.push({ weights: bytes, state: c.optimizer, step: c.state.step });
    },
    async load() {
      throw new Error('not used');
    },
  };
}

describeBackends('asynchronous reads', () => {
  it('clipByGlobalNormAsync returns what clipByGlobalNorm returns, clipped or not', async () => {
    const grads = [randomTensor([3, 4], 1), randomTensor([5], 2, 3)];
    for (const maxNorm of [0.5, 100, 0]) {
      const a = clipByGlobalNorm(grads, maxNorm);
      const b = await clipByGlobalNormAsync(grads, maxNorm);
      expect(b.norm).to.equal(a.norm);
      for (let i = 0; i < grads.length; i++) expect(Array.from(await b.grads[i].data())).to.deep.equal(Array.from(await a.grads[i].data()));
      if (maxNorm === 0.5) {
        const squared = b.grads.reduce((s, g) => s + Array.from(g.dataSync()).reduce((t, x) => t + x * x, 0), 0);
        expect(Math.sqrt(squared)).to.be.closeTo(0.5, 1e-5);
      }
      tf.dispose([...a.grads, ...b.grads]);
    }
    tf.dispose(grads);
  });

  it('the global norm of 33 gradients (more inputs than one webgpu shader may bind) is their true norm', async () => {
    const grads = Array.from({ length: 33 }, (_, i) => randomTensor([(i % 5) + 1, 3], 100 + i));
    let squared = 0;
    for (const g of grads) for (const x of await g.data()) squared += x * x;
    const r = await clipByGlobalNormAsync(grads, 1e9);
    expect(r.norm).to.be.closeTo(Math.sqrt(squared), 1e-6 * Math.sqrt(squared));
    tf.dispose([...grads, ...r.grads]);
  });

  it('evaluateAsync gives exactly the numbers of evaluate', async () => {
    const lm = tiny();
    const o = { batchSize: 3, sequenceLength: 16, maxBatches: 4 };
    const a = evaluate(lm, validIds, o);
    const { value: b, attempts } = await withoutSyncReads(() => evaluateAsync(lm, validIds, o));
    expect(attempts).to.deep.equal([]);
    expect(b).to.deep.equal(a);
    expect(b.tokens).to.equal(4 * 3 * 16);
    lm.dispose();
  });

  it('AdamW.getStateAsync equals getState', async () => {
    const w = tf.tidy(() => tf.variable(randomTensor([2, 3], 4)));
    const opt = new AdamW([w]);
    const g = randomTensor([2, 3], 5);
    opt.apply([g], 0.01);
    opt.apply([g], 0.01);
    const { value: state } = await withoutSyncReads(() => opt.getStateAsync());
    expect(state).to.deep.equal(opt.getState());
    expect(state.step).to.equal(2);
    opt.dispose();
    tf.dispose([w, g]);
  });

  it('train runs steps, evaluations and checkpoints without one synchronous read, with the same losses', async () => {
    const common = {
      train: trainIds,
      validation: validIds,
      batchSize: 4,
      sequenceLength: 16,
      steps: 6,
      evalEvery: 3,
      evalBatches: 2,
      learningRate: 5e-3,
      seed: 2,
    };
    const reference = tiny();
    const plain = await train({ ...common, model: reference });
    reference.dispose();
    const lm = tiny();
    const store = memoryStore();
    const { value: r, attempts } = await withoutSyncReads(() => train({ ...common, model: lm, checkpoint: store, checkpointEvery: 2 }));
    expect(attempts).to.deep.equal([]);
    expect(r.history.map((h) => h.loss)).to.deep.equal(plain.history.map((h) => h.loss));
    expect(r.history.map((h) => h.gradNorm)).to.deep.equal(plain.history.map((h) => h.gradNorm));
    expect(r.evals).to.deep.equal(plain.evals);
    expect(store.saved.map((s) => s.step)).to.deep.equal([2, 4, 6]);
    expect(store.saved.every((s) => s.weights === 4 * lm.countParams())).to.equal(true);
    expect(store.saved[2].state.step).to.equal(6);
    lm.dispose();
  });

  it('a non-finite loss stops train before the update: the weights keep their values', async () => {
    const lm = tiny();
    const first = lm.embedding.trainableWeights[0].read() as tf.Variable;
    // NaN in one embedding row makes the loss NaN for every batch that uses that token.
    tf.tidy(() =>
      first.assign(
        tf.where(
          tf.equal(
            tf
              .range(0, first.shape[0])
              .reshape([-1, 1])
              .tile([1, first.shape[1] as number]),
            1,
          ),
          tf.fill(first.shape, Number.NaN),
          first,
        ),
      ),
    );
    const before = lm.model.getWeights().map((w) => Array.from(w.dataSync()));
    let error: Error | null = null;
    try {
      await train({ train: trainIds, validation: validIds, batchSize: 4, sequenceLength: 16, steps: 3, model: lm });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.match(/^train: at step 1 the loss became NaN; the update was not applied, so the model keep step 0\./);
    const after = lm.model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(after).to.deep.equal(before);
    lm.dispose();
  });
});
