import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../src/index.js';
import {
  Batcher,
  evaluationBatchArrays,
  evaluationBatches,
  evaluationWindowStarts,
  splitTokens,
  type BatcherState,
} from '../../src/data/index.js';
import { expectThrows, it } from '../kit/index.js';

const stream = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => (i * 7919) % 1000);

describe('data/dataset', () => {
  describe('splitTokens', () => {
    it('keeps the last fraction for validation, contiguously and deterministically', () => {
      const ids = stream(1000);
      const { train, validation } = splitTokens(ids, { validationFraction: 0.1 });
      expect(train.length).to.equal(900);
      expect(validation.length).to.equal(100);
      expect([...train, ...validation]).to.deep.equal([...ids]);
      const again = splitTokens([...ids]);
      expect([...again.validation]).to.deep.equal([...validation]);
      train[0] = -5; // copies, not views
      expect(ids[0]).to.equal(0);
    });

    it('rejects parts shorter than one window, naming the sizes', () => {
      const e = expectThrows(
        () => splitTokens(stream(100), { validationFraction: 0.1, sequenceLength: 10 }),
        /validation part \(last 10 of 100 tokens/,
        /10 token\(s\), shorter than one window of sequenceLength \+ 1 = 11/,
      );
      expect(e).to.be.instanceOf(ValueError);
      expectThrows(() => splitTokens(stream(100), { validationFraction: 0.95, sequenceLength: 10 }), /training part \(first 5 of 100/);
      expectThrows(() => splitTokens(stream(100), { validationFraction: 0 }), /validationFraction must be a number in \(0, 1\)/);
      expectThrows(() => splitTokens(stream(100), { validationFraction: 1 }), /validationFraction/);
      expectThrows(() => splitTokens([1, 2.5, 3]), /ids\[1\] must be an integer/);
    });
  });

  describe('Batcher', () => {
    it('yields int32 [B, T] inputs and targets shifted by one', () => {
      const ids = stream(500);
      const b = new Batcher(ids, { batchSize: 4, sequenceLength: 16, seed: 1 });
      const arrays = b.nextArrays();
      const { inputs, targets } = new Batcher(ids, { batchSize: 4, sequenceLength: 16, seed: 1 }).next();
      expect(inputs.shape).to.deep.equal([4, 16]);
      expect(targets.shape).to.deep.equal([4, 16]);
      expect(inputs.dtype).to.equal('int32');
      expect(targets.dtype).to.equal('int32');
      expect([...inputs.dataSync()]).to.deep.equal([...arrays.inputs]);
      expect([...targets.dataSync()]).to.deep.equal([...arrays.targets]);
      arrays.starts.forEach((s, r) => {
        expect(s).to.be.within(0, 500 - 17);
        expect([...arrays.inputs.subarray(r * 16, r * 16 + 16)]).to.deep.equal([...ids.subarray(s, s + 16)]);
        expect([...arrays.targets.subarray(r * 16, r * 16 + 16)]).to.deep.equal([...ids.subarray(s + 1, s + 17)]);
      });
      tf.dispose([inputs, targets]);
    });

    it('gives the same batches for the same seed and different ones for another', () => {
      const ids = stream(10_000);
      const starts = (seed: number): number[][] => {
        const b = new Batcher(ids, { batchSize: 8, sequenceLength: 32, seed });
        return Array.from({ length: 5 }, () => b.nextArrays().starts);
      };
      expect(starts(42)).to.deep.equal(starts(42));
      expect(starts(42)).not.to.deep.equal(starts(43));
    });

    it('resumes from state() with exactly the same data order, also after a JSON round trip', () => {
      const ids = stream(5000);
      const opts = { batchSize: 3, sequenceLength: 8, seed: 123 };
      const a = new Batcher(ids, opts);
      for (let i = 0; i < 7; i++) a.nextArrays();
      const saved: BatcherState = JSON.parse(JSON.stringify(a.state()));
      expect(saved.step).to.equal(7);
      const rest = Array.from({ length: 10 }, () => a.nextArrays().starts);
      const b = new Batcher(ids, opts).restore(saved);
      expect(b.step).to.equal(7);
      expect(Array.from({ length: 10 }, () => b.nextArrays().starts)).to.deep.equal(rest);
      expect(b.step).to.equal(17);
      // The whole uninterrupted run matches too.
      const c = new Batcher(ids, opts);
      const all = Array.from({ length: 17 }, () => c.nextArrays().starts);
      expect(all.slice(7)).to.deep.equal(rest);
    });

    it('produces tensors through batches() without leaking when disposed', () => {
      const b = new Batcher(stream(300), { batchSize: 2, sequenceLength: 5, seed: 9 });
      let n = 0;
      for (const batch of b.batches(3)) {
        expect(batch.inputs.shape).to.deep.equal([2, 5]);
        tf.dispose([batch.inputs, batch.targets]);
        n++;
      }
      expect(n).to.equal(3);
      expect(b.step).to.equal(3);
    });

    it('rejects a stream shorter than one window, naming the sizes', () => {
      const e = expectThrows(
        () => new Batcher(stream(16), { batchSize: 2, sequenceLength: 16 }),
        /Batcher: the token stream has 16 token\(s\), shorter than one window of sequenceLength \+ 1 = 17 tokens/,
      );
      expect(e).to.be.instanceOf(ValueError);
      expect(new Batcher(stream(17), { batchSize: 2, sequenceLength: 16 }).nextArrays().starts).to.deep.equal([0, 0]);
      expectThrows(() => new Batcher(stream(50), { batchSize: 0, sequenceLength: 4 }), /batchSize must be a positive integer/);
      expectThrows(() => new Batcher(stream(50), { batchSize: 2, sequenceLength: 4, seed: 0.5 }), /seed must be an integer/);
    });

    it('rejects a state saved for another configuration', () => {
      const saved = new Batcher(stream(100), { batchSize: 2, sequenceLength: 4, seed: 1 }).state();
      expectThrows(() => new Batcher(stream(100), { batchSize: 3, sequenceLength: 4 }).restore(saved), /batchSize 2, this Batcher has 3/);
      expectThrows(() => new Batcher(stream(101), { batchSize: 2, sequenceLength: 4 }).restore(saved), /length 100, this Batcher has 101/);
      expectThrows(() => new Batcher(stream(100), { batchSize: 2, sequenceLength: 4 }).restore({ ...saved, rng: -1 }), /uint32/);
    });
  });

  describe('evaluationBatches', () => {
    it('cover the stream with non-overlapping windows, in order, the last batch smaller', () => {
      const ids = stream(103);
      const t = 10;
      const batches = evaluationBatchArrays(ids, 4, t);
      expect(evaluationWindowStarts(103, t)).to.deep.equal([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
      expect(batches.map((b) => b.batchSize)).to.deep.equal([4, 4, 2]);
      const inputs = batches.flatMap((b) => [...b.inputs]);
      const targets = batches.flatMap((b) => [...b.targets]);
      expect(inputs).to.deep.equal([...ids.subarray(0, 100)]);
      expect(targets).to.deep.equal([...ids.subarray(1, 101)]);
      expect(evaluationBatchArrays(ids, 4, t, 2).length).to.equal(2);
      expect(evaluationBatchArrays(ids, 4, t)).to.deep.equal(batches);
    });

    it('yield int32 tensors matching the arrays', () => {
      const ids = stream(64);
      const arrays = evaluationBatchArrays(ids, 3, 7);
      let i = 0;
      for (const { inputs, targets } of evaluationBatches(ids, 3, 7)) {
        expect(inputs.dtype).to.equal('int32');
        expect(inputs.shape).to.deep.equal([arrays[i].batchSize, 7]);
        expect([...inputs.dataSync()]).to.deep.equal([...arrays[i].inputs]);
        expect([...targets.dataSync()]).to.deep.equal([...arrays[i].targets]);
        tf.dispose([inputs, targets]);
        i++;
      }
      expect(i).to.equal(arrays.length);
    });

    it('reject a stream shorter than one window when called, not at the first batch', () => {
      expectThrows(() => evaluationBatches(stream(8), 2, 8), /8 token\(s\), shorter than one window of sequenceLength \+ 1 = 9/);
      expectThrows(() => evaluationBatches(stream(80), 2, 8, 0), /maxBatches must be a positive integer/);
    });
  });
});
