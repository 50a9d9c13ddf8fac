/**
 * Tensors the layers derive from their weights (scaled, fused and 2-D kernels, GTA's folded decoder,
 * MLA's absorbed W_UK/W_UV) are kept between inference calls and must never stand in for the weights
 * under a gradient tape: gradients through cached decoding reach every weight and equal those of the
 * full-sequence call, and a weight changed by `assign` or `setWeights` is seen by the next cached call.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { AttentionLayer } from '../../src/layers/attention_base.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { GroupedQueryAttention, multiHeadAttention, multiQueryAttention } from '../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../../src/layers/mla_attention.js';
import { describeBackends, expectClose, it, normRelativeError, randomTensor } from '../kit/index.js';
import { randomizeWeights } from '../kit/layers.js';

const D = 16;

interface Case {
  name: string;
  make: () => AttentionLayer;
}

const causal = { useCausalMask: true };
const CASES: Case[] = [
  { name: 'GQA', make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, ...causal }) },
  { name: 'MHA', make: () => multiHeadAttention({ numHeads: 4, headDim: 4, ...causal }) },
  { name: 'MQA', make: () => multiQueryAttention({ numHeads: 4, headDim: 4, ...causal }) },
  {
    name: 'MHA without RoPE',
    make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 2, numKeyValueHeads: 2, useRope: false, ...causal }),
  },
  {
    name: 'GTA',
    make: () =>
      new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 4,
        ...causal,
      }),
  },
  {
    name: 'GTA with one query group',
    make: () =>
      new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 1,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 8,
        ...causal,
      }),
  },
  {
    name: 'MLA (absorbed decode, biases)',
    make: () =>
      new MultiHeadLatentAttention({
        numHeads: 2,
        kvLoraRank: 6,
        qkNopeHeadDim: 4,
        qkRopeHeadDim: 4,
        vHeadDim: 3,
        useBias: true,
        ...causal,
      }),
  },
  {
    name: 'MLA with query compression',
    make: () =>
      new MultiHeadLatentAttention({
        numHeads: 2,
        qLoraRank: 5,
        kvLoraRank: 6,
        qkNopeHeadDim: 4,
        qkRopeHeadDim: 4,
        vHeadDim: 3,
        ...causal,
      }),
  },
];

/** A built layer with seeded random weights (biases and gains too). */
function makeLayer(c: Case, seed: number): AttentionLayer {
  const layer = c.make();
  buildLayer(layer, [1, 1, D]);
  randomizeWeights(layer, seed, 0.4);
  return layer;
}

function variablesOf(layer: AttentionLayer): tf.Variable[] {
  return layer.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Token `t` of `x [B, T, D]` as `[B, 1, D]`. */
function token(x: tf.Tensor, t: number): tf.Tensor {
  return tf.slice(x, [0, t, 0], [x.shape[0], 1, D]);
}

/** Gradients of `sum(full-sequence output * w)` (the uncached, causal Keras call). */
function fullSequenceGrads(layer: AttentionLayer, x: tf.Tensor, w: tf.Tensor): tf.NamedTensorMap {
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, w)) as tf.Scalar, variablesOf(layer));
  value.dispose();
  return grads;
}

/** The same loss from two cached calls of one token each, the second continuing the first's cache. */
function cachedGrads(layer: AttentionLayer, x: tf.Tensor, w: tf.Tensor): tf.NamedTensorMap {
  const { value, grads } = tf.variableGrads(() => {
    const first = layer.callWithCache(token(x, 0));
    const second = layer.callWithCache(token(x, 1), { cache: first.cache });
    return tf.add(tf.sum(tf.mul(first.output, token(w, 0))), tf.sum(tf.mul(second.output, token(w, 1)))) as tf.Scalar;
  }, variablesOf(layer));
  value.dispose();
  return grads;
}

/**
 * Asserts that `actual` holds a gradient for every variable and equals `expected`: norm-relative over all
 * gradients together, and per weight, relative to the weight's own gradient where that is not negligible
 * (a key bias shifts every score of a query equally, so its gradient is zero up to rounding), else to
 * the norm of all gradients.
 */
function expectSameGrads(actual: tf.NamedTensorMap, expected: tf.NamedTensorMap, vars: tf.Variable[], tol: number, what: string): void {
  for (const v of vars) expect(actual[v.name], `${what}: gradient of ${v.name}`).to.not.equal(undefined);
  const flat = (g: tf.NamedTensorMap) => vars.flatMap((v) => Array.from(g[v.name].dataSync()));
  const all = flat(expected);
  const allNorm = Math.hypot(...all);
  expect(allNorm, `${what}: reference gradient norm`).to.be.greaterThan(0);
  expectClose(flat(actual), all, tol, `${what}: all gradients`);
  for (const v of vars) {
    const a = actual[v.name].dataSync();
    const e = expected[v.name].dataSync();
    const norm = Math.hypot(...e);
    const err = normRelativeError(a, e) * (norm > 1e-3 * allNorm ? 1 : Math.max(norm, 1e-30) / allNorm);
    expect(err, `${what}: gradient of ${v.name} (norm ${norm.toExponential(2)})`).to.be.at.most(tol);
  }
}

/** One cached prefill of all tokens but the last, then the last token decoded; returns the decoded output. */
function prefillThenDecode(layer: AttentionLayer, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const t = x.shape[1] as number;
    const prefill = layer.callWithCache(tf.slice(x, [0, 0, 0], [x.shape[0], t - 1, D]));
    const decoded = layer.callWithCache(token(x, t - 1), { cache: prefill.cache });
    prefill.cache.dispose();
    decoded.cache.dispose();
    return decoded.output;
  });
}

describeBackends('derived weights (kept for inference, never under a tape)', ({ tol }) => {
  for (const c of CASES) {
    it(`${c.name}: gradients through two cached one-token calls equal the full-sequence call's, in two rounds`, () => {
      const layer = makeLayer(c, 3);
      const vars = variablesOf(layer);
      const x = randomTensor([2, 2, D], 21);
      const w = randomTensor([2, 2, D], 22);
      const reference = fullSequenceGrads(layer, x, w);
      const round1 = cachedGrads(layer, x, w); // fresh layer: nothing derived yet
      expectSameGrads(round1, reference, vars, tol.grad, 'round 1');
      // Inference calls in between keep derived tensors; the second taped round must not use them.
      const decoded = prefillThenDecode(layer, x);
      const full = layer.apply(x) as tf.Tensor;
      const last = token(full, 1);
      expectClose(decoded, last, tol.same, 'inference decode');
      const round2 = cachedGrads(layer, x, w);
      expectSameGrads(round2, reference, vars, tol.grad, 'round 2');
      tf.dispose([x, w, decoded, full, last, Object.values(reference), Object.values(round1), Object.values(round2)]);
      layer.dispose();
    });

    it(`${c.name}: keeps derived tensors in inference calls only, and frees them on dispose`, () => {
      const layer = makeLayer(c, 4);
      const x = randomTensor([2, 3, D], 23);
      const w = randomTensor([2, 3, D], 24);
      const start = tf.memory().numTensors;
      tf.dispose(Object.values(cachedGrads(layer, x, w)));
      expect(tf.memory().numTensors, 'tensors kept by a taped call').to.equal(start);
      tf.dispose(prefillThenDecode(layer, x));
      const kept = tf.memory().numTensors - start;
      expect(kept, 'tensors kept by inference calls').to.be.greaterThan(0);
      tf.dispose(prefillThenDecode(layer, x));
      expect(tf.memory().numTensors - start, 'tensors kept after a second inference call').to.equal(kept);
      const vars = layer.weights.length;
      layer.dispose();
      expect(tf.memory().numTensors, 'after dispose (weights and derived tensors freed)').to.equal(start - vars);
      tf.dispose([x, w]);
    });

    it(`${c.name}: a weight changed by assign or setWeights is seen by the next cached call`, () => {
      const layer = makeLayer(c, 5);
      const x = randomTensor([2, 3, D], 25);
      tf.dispose(prefillThenDecode(layer, x)); // derived tensors now kept
      layer.trainableWeights.forEach((lw, i) => {
        if (lw.name.endsWith('key/bias')) return; // shifts every score of a query equally: changes no output
        const before = tf.tidy(() => token(layer.apply(x) as tf.Tensor, 2));
        const changed = tf.tidy(() => tf.add(lw.read(), randomTensor(lw.shape as number[], 100 + i, 0.3)));
        if (i % 2 === 0) lw.write(changed);
        else layer.setWeights(layer.getWeights().map((v, j) => (j === layer.weights.indexOf(lw) ? changed : v)));
        changed.dispose();
        const after = tf.tidy(() => token(layer.apply(x) as tf.Tensor, 2));
        const cached = prefillThenDecode(layer, x);
        expect(normRelativeError(after.dataSync(), before.dataSync()), `${lw.name} changes the output`).to.be.greaterThan(1e-3);
        expectClose(cached, after, tol.same, `cached decode after changing ${lw.name} (${i % 2 === 0 ? 'assign' : 'setWeights'})`);
        tf.dispose([before, after, cached]);
      });
      x.dispose();
      layer.dispose();
    });
  }
});
