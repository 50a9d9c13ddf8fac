import { hasWebGLDecodeStep } from '../../src/ops/capabilities.js';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { RotaryStep, rotaryFactorBuilds } from '../../src/ops/rope.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectClose, expectThrows, it } from '../kit/index.js';

const V = 29;
const LAYERS = 4;
const KINDS = ['gqa', 'gta', 'mla'] as const;
/** Shared factors hold the same float32 values as per-layer ones: outputs match to rounding at most. */
const SAME = 1e-7;

function model(kind: (typeof KINDS)[number]): CausalLM {
  return CausalLM.create({ ...smallPreset('tiny', kind, V), numLayers: LAYERS, seed: 3 });
}

/** `fn`'s result and the RoPE factor sets/matrices built while it ran. */
function counted<T>(fn: () => T): { value: T; builds: number } {
  const before = rotaryFactorBuilds();
  const value = fn();
  return { value, builds: rotaryFactorBuilds() - before };
}

/**
 * The cached forward pass of `CausalLM.callWithCache` done block by block without a shared `RotaryStep`
 * (each attention layer builds its own factors, as before the hand-over): logits and the new layer caches.
 */
function perLayerCached(
  lm: CausalLM,
  ids: number[][],
  past: readonly AttentionCache[] | null,
  mask: number[][] | null,
  positions: number[][] | null,
): { logits: tf.Tensor; caches: AttentionCache[] } {
  const caches: AttentionCache[] = [];
  const logits = tf.tidy(() => {
    const [b, t] = [ids.length, ids[0].length];
    const paddingMask = mask === null ? null : tf.tensor2d(mask, [b, t], 'float32');
    const pos = positions === null ? null : tf.tensor2d(positions, [b, t], 'int32');
    let h = lm.embedding.call(tf.tensor2d(ids, [b, t], 'int32'), {}) as tf.Tensor;
    lm.blocks.forEach((block, i) => {
      const r = block.callWithCache(h, { cache: past?.[i] ?? null, paddingMask, positions: pos });
      for (const x of r.cache.tensors()) tf.keep(x);
      caches.push(r.cache);
      h = r.output;
    });
    h = lm.finalNorm.call(h, {}) as tf.Tensor;
    return (lm.head ? lm.head.call(h, {}) : lm.embedding.call(h, {})) as tf.Tensor;
  });
  return { logits, caches };
}

const IDS = [
  [3, 14, 1, 5, 9, 2],
  [6, 5, 3, 5, 8, 9],
];
/** Row 0 left-padded by two tokens; its RoPE positions as `CausalLM` counts them (padding stays at 0). */
const MASK = [
  [0, 0, 1, 1, 1, 1],
  [1, 1, 1, 1, 1, 1],
];
const POSITIONS = [
  [0, 0, 0, 1, 2, 3],
  [0, 1, 2, 3, 4, 5],
];

describeBackends('RoPE factors once per model step', () => {
  for (const kind of KINDS) {
    describe(`${kind}, ${LAYERS} layers`, () => {
      it('a forward pass (logits) builds the factors of one layer, with the outputs of the per-layer path', () => {
        const lm = model(kind);
        const ids = tf.tensor2d(IDS, [2, 6], 'int32');
        const perLayer = counted(() => tf.tidy(() => lm.model.apply(ids, { training: false }) as tf.Tensor));
        const shared = counted(() => lm.logits(ids));
        expect(shared.builds, 'builds with the shared step').to.be.at.least(1);
        expect(perLayer.builds, 'builds per layer, without the shared step').to.equal(LAYERS * shared.builds);
        expectClose(shared.value, perLayer.value, SAME, 'logits');
        tf.dispose([ids, perLayer.value, shared.value]);
        lm.dispose();
      });

      it('a decode step builds once for all layers, with the outputs and caches of the per-layer path', () => {
        const lm = model(kind);
        const prefill = lm.callWithCache(IDS, null);
        const next = [[4], [7]];
        const perLayer = counted(() => perLayerCached(lm, next, prefill.cache.layers, null, null));
        const shared = counted(() => lm.callWithCache(next, prefill.cache));
        // webgl's decode step (GQA, GTA) reads the factors of its position from the CPU table as uniforms: no factor tensors.
        if (hasWebGLDecodeStep() && kind !== 'mla') expect(shared.builds, 'factor tensors built by a webgl decode step').to.equal(0);
        else expect(shared.builds).to.be.at.least(1);
        expect(perLayer.builds).to.equal(LAYERS * shared.builds);
        expectClose(shared.value.logits, perLayer.value.logits, SAME, 'decode logits');
        shared.value.cache.layers.forEach((c, i) => {
          Object.keys(c.entries).forEach((name) => {
            expectClose(c.entries[name].tensor, perLayer.value.caches[i].entries[name].tensor, SAME, `layer ${i} cache ${name}`);
          });
        });
        tf.dispose([prefill.logits, shared.value.logits, perLayer.value.logits]);
        [prefill.cache, shared.value.cache, ...perLayer.value.caches].forEach((c) => c.dispose());
        lm.dispose();
      });

      it('left-padded prefill and decode (per-row positions) build once per step too', () => {
        const lm = model(kind);
        const perLayer = counted(() => perLayerCached(lm, IDS, null, MASK, POSITIONS));
        const shared = counted(() => lm.callWithCache(IDS, null, { paddingMask: MASK }));
        expect(shared.builds).to.be.at.least(1);
        expect(perLayer.builds).to.equal(LAYERS * shared.builds);
        expectClose(shared.value.logits, perLayer.value.logits, SAME, 'padded prefill logits');
        const next = [[4], [7]];
        const stepRef = counted(() => perLayerCached(lm, next, perLayer.value.caches, null, [[4], [6]]));
        const step = counted(() => lm.callWithCache(next, shared.value.cache));
        expect(stepRef.builds).to.equal(LAYERS * step.builds);
        expectClose(step.value.logits, stepRef.value.logits, SAME, 'padded decode logits');
        tf.dispose([shared.value.logits, perLayer.value.logits, step.value.logits, stepRef.value.logits]);
        [shared.value.cache, step.value.cache, ...perLayer.value.caches, ...stepRef.value.caches].forEach((c) => c.dispose());
        lm.dispose();
      });
    });
  }

  it('gradients through a shared step equal those of the per-layer path (the factors outlive the forward pass)', () => {
    const lm = model('gqa');
    const ids = tf.tensor2d(IDS, [2, 6], 'int32');
    const vars = lm.model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const grads = (rope: RotaryStep | null) =>
      tf.variableGrads(
        () => tf.sum(lm.model.apply(ids, { training: true, ...(rope === null ? {} : { rope }) }) as tf.Tensor) as tf.Scalar,
        vars,
      );
    const plain = grads(null);
    const rope = new RotaryStep({ start: 0, length: 6 });
    const shared = grads(rope);
    rope.dispose();
    for (const name of Object.keys(plain.grads)) expectClose(shared.grads[name], plain.grads[name], SAME, name);
    tf.dispose([ids, plain.value, shared.value, plain.grads, shared.grads]);
    lm.dispose();
  });

  it('a block or attention layer used alone builds its own factors, and checks a step handed to it', () => {
    const lm = model('gta');
    const block = lm.blocks[0];
    const x = tf.randomUniform([2, 5, lm.config.hiddenSize], -1, 1, 'float32', 4);
    const alone = counted(() => block.call(x, {}));
    const step = new RotaryStep({ start: 0, length: 5 });
    const given = counted(() => block.call(x, { rope: step }));
    expect(alone.builds).to.be.at.least(1);
    expect(given.builds).to.equal(alone.builds); // the first request builds in the step
    expect(counted(() => tf.dispose(block.call(x, { rope: step }))).builds, 'reused').to.equal(0);
    expectClose(given.value, alone.value, SAME, 'block output');
    const attention = block.attention;
    const e = expectThrows(() => attention.call(x, { rope: { start: 0, length: 5 } }), /rope must be a RotaryStep/);
    expect(e).to.be.instanceOf(ValueError);
    expectThrows(
      () => attention.call(x, { rope: new RotaryStep({ start: 1, length: 5 }) }),
      /rope must describe this call's positions/,
      /start 0/,
      /got start 1/,
    );
    const first = attention.callWithCache(x, { rope: step });
    expectThrows(() => attention.callWithCache(x, { cache: first.cache, rope: step }), /start 5 = cached tokens/);
    step.dispose();
    expectThrows(() => attention.call(x, { rope: step }), /rope \(a RotaryStep\) has been disposed/);
    tf.dispose([x, alone.value, given.value, first.output]);
    first.cache.dispose();
    lm.dispose();
  });
});
