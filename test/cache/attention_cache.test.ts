/**
 * Incremental decoding through each attention layer's cache: what is cached, its size, equality with
 * the full-sequence forward pass (token by token for 64 steps, 24 on the GPU backends, batches 1 and 3,
 * chunked prefill),
 * no per-step leaks, and clear errors for caches that do not fit.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { AttentionLayer } from '../../src/layers/attention_base.js';
import { describeBackends, expectClose, expectThrows, it, normRelativeError, randomTensor, stepsOn } from '../kit/index.js';
import { LAYER_CASES, randomizeWeights } from '../kit/layers.js';

const EXPECTED_ENTRIES: Record<string, (l: AttentionLayer) => Record<string, number[]>> = {
  // per-token shapes (batch and sequence axes removed), as the spec's cache table says
  gqa: () => ({ key: [2, 8], value: [2, 8] }),
  gta: () => ({ key: [1, 8], latent: [1, 8] }),
  mla: () => ({ latent: [12], keyRope: [4] }),
};

function decodeAll(
  layer: AttentionLayer,
  x: tf.Tensor,
  prefill: number,
  chunks: number[] = [],
): { outputs: tf.Tensor; cache: AttentionCache } {
  const [b, t, d] = x.shape as number[];
  let r = layer.callWithCache(x.slice([0, 0, 0], [b, prefill, d]));
  const parts = [r.output];
  let pos = prefill;
  const sizes = [...chunks];
  while (pos < t) {
    const n = Math.min(sizes.shift() ?? 1, t - pos);
    const next = layer.callWithCache(x.slice([0, pos, 0], [b, n, d]), { cache: r.cache });
    r.cache.dispose();
    r = next;
    parts.push(r.output);
    pos += n;
  }
  return { outputs: tf.concat(parts, 1), cache: r.cache };
}

/**
 * Decoded steps after an 8-token prefill: 64 on the CPU backends; 16 on webgl and webgpu (kit: stepsOn),
 * whose software renderers (SwiftShader) in the browser suite take about a second per step. 16 one-token
 * steps still grow the cache to three times the prefill; the memory spec below takes
 * 50 steps there instead of 200.
 */
function decodeSteps(backend: string): number {
  return stepsOn(backend, 64, 16);
}

describeBackends('attention caches and incremental decoding', ({ tol, backend }) => {
  const steps = decodeSteps(backend);
  const total = 8 + steps;
  const memorySteps = stepsOn(backend, 200, 50); // a per-step leak shows after a few steps already
  for (const lc of LAYER_CASES) {
    describe(lc.kind, () => {
      it('caches exactly what the mechanism needs, with bytes equal to the analytic formula', () => {
        const layer = lc.make({ useCausalMask: true });
        const x = randomTensor([3, 5, lc.dim], 1);
        const { output, cache } = layer.callWithCache(x);
        const expected = EXPECTED_ENTRIES[lc.kind](layer);
        expect(Object.keys(cache.entries).sort()).to.deep.equal(Object.keys(expected).sort());
        for (const [name, e] of Object.entries(cache.entries)) {
          const perToken = e.tensor.shape.filter((_, i) => i !== 0 && i !== e.seqAxis);
          expect(perToken, name).to.deep.equal(expected[name]);
        }
        expect(cache.length).to.equal(5);
        expect(cache.batchSize).to.equal(3);
        expect(cache.elementsPerToken()).to.equal(layer.kvCacheElementsPerToken());
        expect(cache.bytes()).to.equal(3 * 5 * 4 * layer.kvCacheElementsPerToken());
        expect(cache.bytesPerToken()).to.equal(4 * layer.kvCacheElementsPerToken());
        tf.dispose([x, output]);
        cache.dispose();
        layer.dispose();
      });

      for (const batch of [1, 3]) {
        it(`decodes ${steps} steps token by token equal to the full forward pass (batch ${batch})`, () => {
          const layer = lc.make({ useCausalMask: true });
          tf.tidy(() => {
            const x = randomTensor([batch, total, lc.dim], 7 + batch);
            layer.apply(x.slice([0, 0, 0], [1, 1, lc.dim]));
            randomizeWeights(layer, 3, 0.2);
            const full = layer.apply(x) as tf.Tensor;
            const { outputs, cache } = decodeAll(layer, x, 8);
            expect(cache.length).to.equal(total);
            // One read of each tensor (a synchronous read per position is slow on webgpu), then the error
            // of every decoded position (all rows of the batch) on its own.
            const got = outputs.dataSync();
            const want = full.dataSync();
            const position = (a: ArrayLike<number>, t: number) =>
              Array.from({ length: batch * lc.dim }, (_, i) => a[(Math.floor(i / lc.dim) * total + t) * lc.dim + (i % lc.dim)]);
            let worst = 0;
            for (let t = 8; t < total; t++) worst = Math.max(worst, normRelativeError(position(got, t), position(want, t)));
            expect(worst, 'worst per-position error').to.be.at.most(tol.same);
            cache.dispose();
          });
          layer.dispose();
        });
      }

      it('supports chunked prefill (several tokens at once onto a cache)', () => {
        const layer = lc.make({ useCausalMask: true });
        tf.tidy(() => {
          const x = randomTensor([2, 20, lc.dim], 5);
          const full = layer.apply(x) as tf.Tensor;
          const { outputs, cache } = decodeAll(layer, x, 4, [7, 3, 1, 5]);
          expectClose(outputs, full, tol.same, 'chunked');
          cache.dispose();
        });
        layer.dispose();
      });

      it('masks padded cached keys: a left-padded row decodes like the same row without padding', () => {
        const layer = lc.make({ useCausalMask: true });
        tf.tidy(() => {
          const x = randomTensor([1, 6, lc.dim], 9);
          const pad = tf.concat([randomTensor([1, 3, lc.dim], 77), x], 1); // 3 padding positions first
          const mask = tf.tensor2d([[0, 0, 0, 1, 1, 1, 1, 1, 1]]);
          const positions = tf.tensor2d([[0, 0, 0, 0, 1, 2, 3, 4, 5]], [1, 9], 'int32');
          const padded = layer.callWithCache(pad, { paddingMask: mask, positions });
          const plain = layer.apply(x) as tf.Tensor;
          expectClose(padded.output.slice([0, 3, 0], [1, 6, lc.dim]), plain, tol.same, 'padded prefill');
          const next = randomTensor([1, 1, lc.dim], 10);
          const step = layer.callWithCache(next, { cache: padded.cache, positions: tf.tensor2d([[6]], [1, 1], 'int32') });
          const ref = layer.apply(tf.concat([x, next], 1)) as tf.Tensor;
          expectClose(step.output, ref.slice([0, 6, 0], [1, 1, lc.dim]), tol.same, 'decode after padding');
          padded.cache.dispose();
          step.cache.dispose();
        });
        layer.dispose();
      });

      it(`does not grow memory per step: ${memorySteps} decode steps hold only the cache the caller keeps`, () => {
        const layer = lc.make({ useCausalMask: true });
        const prompt = randomTensor([1, 2, lc.dim], 1);
        let r = layer.callWithCache(prompt);
        const token = randomTensor([1, 1, lc.dim], 2);
        const step = () => {
          const next = layer.callWithCache(token, { cache: r.cache });
          r.cache.dispose();
          r.output.dispose();
          r = next;
        };
        step();
        const afterOne = tf.memory().numTensors;
        for (let i = 1; i < memorySteps; i++) step();
        expect(tf.memory().numTensors).to.equal(afterOne);
        expect(r.cache.length).to.equal(2 + memorySteps);
        r.cache.dispose();
        tf.dispose([prompt, token, r.output]);
        layer.dispose();
      });

      it('rejects a cache from another layer, a batch mismatch or a disposed cache, leaving the cache usable', () => {
        const layer = lc.make({ useCausalMask: true });
        const other = lc.make({ useCausalMask: true });
        tf.tidy(() => {
          const { cache } = layer.callWithCache(randomTensor([2, 3, lc.dim], 1));
          const { cache: otherCache } = other.callWithCache(randomTensor([2, 3, lc.dim], 1));
          expectThrows(() => layer.callWithCache(randomTensor([2, 1, lc.dim], 2), { cache: otherCache }), /belongs to another layer/);
          expectThrows(
            () => layer.callWithCache(randomTensor([1, 1, lc.dim], 2), { cache }),
            /batch size 2 but the input has batch size 1/,
          );
          const ok = layer.callWithCache(randomTensor([2, 1, lc.dim], 2), { cache });
          expect(ok.cache.length).to.equal(4);
          cache.dispose();
          expectThrows(() => layer.callWithCache(randomTensor([2, 1, lc.dim], 2), { cache }), /disposed/);
          ok.cache.dispose();
          otherCache.dispose();
        });
        layer.dispose();
        other.dispose();
      });
    });
  }

  it('GTA folds the decoder tiling into its weight once, not per decoded token', async () => {
    const layer = LAYER_CASES[1].make({ useCausalMask: true });
    const prompt = randomTensor([1, 4, 32], 3);
    const token = randomTensor([1, 1, 32], 4);
    let r = layer.callWithCache(prompt);
    const kernelsOfStep = async () => {
      const profile = await tf.profile(() => {
        r.output.dispose();
        const next = layer.callWithCache(token, { cache: r.cache });
        r.cache.dispose();
        r = next;
        return [] as tf.Tensor[];
      });
      return profile.kernelNames;
    };
    const first = await kernelsOfStep();
    const second = await kernelsOfStep();
    expect(first).to.include('Tile'); // folding R = [I ... I] into the decoder on the first decode step
    expect(second).to.not.include('Tile');
    expect(second).to.not.include('Eye' as never);
    r.cache.dispose();
    tf.dispose([prompt, token, r.output]);
    layer.dispose();
  });
});
