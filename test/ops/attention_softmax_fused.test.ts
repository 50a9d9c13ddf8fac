/**
 * The fused score path on webgl (src/kernels/webgl/attention_softmax.ts: scale, bias, causal mask and softmax
 * in one kernel, `GtaMaskedSoftmax`) against the composed path through `groupedAttention` ('auto' against
 * 'composed'): outputs <= 1e-5 and gradients of q, k, v (and the bias) <= 1e-4 norm-relative for causal
 * masks with and without a cache offset, padding, attention-mask and [T, S] biases, folded GQA heads, MQA,
 * odd sizes, MLA's extra pair, blocks of query rows, fully masked rows, returned probabilities and dropout;
 * the output both outside a tape (few queries: `GtaMaskedSoftmaxValues`, the softmax and the value product in
 * one kernel) and under one (`GtaMaskedSoftmax` and a product); kernels per call under tf.profile; refusals.
 * On every other backend the capability is false and 'auto' equals 'composed' exactly.
 */
import * as tf from '@tensorflow/tfjs';
import {
  MASKED_SOFTMAX_KERNELS,
  maskedSoftmax,
  maskedSoftmaxUnsupported,
  maskedSoftmaxValues,
  maskedSoftmaxValuesUnsupported,
  WEBGL_MASKED_SOFTMAX_MAX_KEYS,
  WEBGL_SOFTMAX_VALUES_MAX_QUERIES,
} from '../../src/kernels/webgl/attention_softmax.js';
import { BLOCKING, groupedAttention, type GroupedAttentionOptions } from '../../src/ops/attention_core.js';
import { hasFusedAttention, hasFusedAttentionSoftmax } from '../../src/ops/capabilities.js';
import { MASK_VALUE } from '../../src/ops/masks.js';
import { describeBackends, expectThrows, it, normRelativeError } from '../kit/index.js';
import { checkError } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

/** One configuration: B, heads, lengths, dims, scale, causal offset (null: none) and bias kind. */
interface Case {
  name: string;
  b: number;
  nQ: number;
  nK: number;
  nV: number;
  t: number;
  s: number;
  dk: number;
  dv: number;
  scale: number;
  causalOffset: number | null;
  /** 'padding' [B,1,1,S]; 'mask' [B,1,T,S] random; 'ts' [T,S] random; 'allPadded' [B,1,1,S] hiding every key of batch 1. */
  bias: 'padding' | 'mask' | 'ts' | 'allPadded' | null;
  extra?: { nE: number; de: number };
  dropoutRate?: number;
}

const base = { b: 2, nQ: 4, nK: 2, nV: 2, dk: 8, dv: 8, scale: 0.35, causalOffset: null, bias: null } as const;

const CASES: Case[] = [
  { ...base, name: 'causal, offset 0 (T=S=6), GQA', t: 6, s: 6, causalOffset: 0 },
  { ...base, name: 'causal with a cache offset (T=3, S=7), GQA', t: 3, s: 7, causalOffset: 4 },
  { ...base, name: 'padding bias [B,1,1,S], GQA, causal', t: 3, s: 7, causalOffset: 4, bias: 'padding' },
  { ...base, name: 'attention-mask bias [B,1,T,S], GQA', t: 4, s: 7, bias: 'mask' },
  { ...base, name: 'attention-mask bias [B,1,T,S], MHA, causal', nK: 4, nV: 4, t: 4, s: 7, causalOffset: 3, bias: 'mask' },
  { ...base, name: '[T,S] bias, GQA', t: 3, s: 7, bias: 'ts' },
  { ...base, name: 'folded GQA heads nQ=4 nK=2, not causal', t: 5, s: 9 },
  { ...base, name: 'MQA nK=nV=1, causal', nK: 1, nV: 1, t: 5, s: 5, causalOffset: 0 },
  { ...base, name: 'odd sizes T=5 S=13, padding, causal', b: 3, t: 5, s: 13, dk: 7, dv: 5, causalOffset: 8, bias: 'padding' },
  { ...base, name: 'GTA-like: one key head, one value head Dv != Dk, causal', nK: 1, nV: 1, t: 4, s: 9, dv: 12, causalOffset: 5 },
  { ...base, name: 'MLA-like extra pair nE=1, causal', nK: 4, nV: 4, t: 3, s: 7, causalOffset: 4, extra: { nE: 1, de: 4 } },
  { ...base, name: 'every key of a batch padded, causal (the composed weights)', t: 3, s: 7, causalOffset: 4, bias: 'allPadded' },
  { ...base, name: 'scale 1, padding', t: 3, s: 7, scale: 1, bias: 'padding' },
  { ...base, name: 'MHA, odd rows (T=5) and keys (S=9), attention mask, causal', nK: 4, nV: 4, t: 5, s: 9, causalOffset: 4, bias: 'mask' },
  { ...base, name: 'MHA, odd rows, [T,S] bias', nK: 4, nV: 4, t: 3, s: 5, bias: 'ts' },
  { ...base, name: 'decode T=1 S=9, GQA, padding', t: 1, s: 9, causalOffset: 8, bias: 'padding' },
  { ...base, name: 'decode T=1 S=9, MHA (one row per head)', nK: 4, nV: 4, t: 1, s: 9, causalOffset: 8 },
  { ...base, name: 'long rows S=4096 (the most keys taken), T=2, causal', b: 1, nQ: 2, nK: 1, nV: 1, t: 2, s: 4096, causalOffset: 4094 },
];

/** Seeded inputs of case `c`. */
function inputsOf(c: Case): tf.Tensor[] {
  return tf.tidy(() => {
    const rnd = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed);
    const xs = [rnd([c.b, c.nQ, c.t, c.dk], 1), rnd([c.b, c.nK, c.s, c.dk], 2), rnd([c.b, c.nV, c.s, c.dv], 3)];
    const masked = (shape: number[], seed: number) =>
      tf.mul(tf.cast(tf.less(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.3), 'float32'), MASK_VALUE);
    if (c.bias === 'padding') {
      const data = new Float32Array(c.b * c.s).map((_, i) => (i >= c.s && i % c.s < 3 ? MASK_VALUE : 0)); // batch 1's first 3 keys
      xs.push(tf.tensor(data, [c.b, 1, 1, c.s]));
    } else if (c.bias === 'allPadded') {
      const data = new Float32Array(c.b * c.s).map((_, i) => (i >= c.s ? MASK_VALUE : 0));
      xs.push(tf.tensor(data, [c.b, 1, 1, c.s]));
    } else if (c.bias === 'mask') xs.push(masked([c.b, 1, c.t, c.s], 4));
    else if (c.bias === 'ts') xs.push(rnd([c.t, c.s], 4));
    if (c.extra) xs.push(rnd([c.b, c.nQ, c.t, c.extra.de], 5), rnd([c.b, c.extra.nE, c.s, c.extra.de], 6));
    return xs;
  });
}

/** `groupedAttention` of case `c` on `xs` (q, k, v, bias?, extra?) with `implementation`. */
function attend(
  c: Case,
  implementation: 'auto' | 'composed',
  xs: tf.Tensor[],
  returnProbs = false,
): { output: tf.Tensor; probs: tf.Tensor | null } {
  const hasBias = c.bias !== null;
  const options: GroupedAttentionOptions = {
    scale: c.scale,
    causalOffset: c.causalOffset,
    bias: hasBias ? xs[3] : null,
    extra: c.extra ? { query: xs[xs.length - 2] as tf.Tensor4D, key: xs[xs.length - 1] as tf.Tensor4D } : null,
    returnProbs,
    dropoutRate: c.dropoutRate,
    dropoutSeed: c.dropoutRate ? 11 : undefined,
    implementation,
  };
  return groupedAttention(xs[0] as tf.Tensor4D, xs[1] as tf.Tensor4D, xs[2] as tf.Tensor4D, options);
}

/** Norm-relative error of `a` against `e`, failing on a shape mismatch or a non-finite value. */
async function errorOf(a: tf.Tensor, e: tf.Tensor): Promise<number> {
  if (a.shape.join(',') !== e.shape.join(',')) throw new Error(`shape [${a.shape}] differs from [${e.shape}]`);
  const [x, y] = await Promise.all([a.data(), e.data()]);
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`non-finite value ${x[i]} at ${i}`);
  return normRelativeError(x, y);
}

/** Errors of 'auto' against 'composed' for case `c`: the output and the gradient of every input. */
async function compare(c: Case): Promise<Record<string, number>> {
  const xs = inputsOf(c);
  const names = ['query', 'key', 'value', ...(c.bias ? ['bias'] : []), ...(c.extra ? ['extraQuery', 'extraKey'] : [])];
  const kept: tf.Tensor[] = [];
  try {
    const auto = tf.tidy(() => attend(c, 'auto', xs).output);
    const composed = tf.tidy(() => attend(c, 'composed', xs).output);
    kept.push(auto, composed);
    const errors: Record<string, number> = { output: await errorOf(auto, composed) };
    const w = tf.randomUniform(auto.shape, -1, 1, 'float32', 7);
    kept.push(w);
    // Under a tape the forward is GtaMaskedSoftmax and a product; outside it, with few queries, it is
    // GtaMaskedSoftmaxValues: the output is compared on both.
    let taped: tf.Tensor | null = null;
    const grads = (implementation: 'auto' | 'composed') =>
      tf.tidy(() =>
        tf.grads((...ys: tf.Tensor[]) => {
          const out = attend(c, implementation, ys).output;
          if (implementation === 'auto') taped = tf.keep(tf.clone(out));
          return tf.sum(tf.mul(out, w));
        })(xs),
      );
    const ga = grads('auto');
    const gc = grads('composed');
    kept.push(...ga, ...gc);
    if (taped === null) throw new Error('the taped forward did not run');
    kept.push(taped);
    errors.outputUnderTape = await errorOf(taped, composed);
    for (let i = 0; i < names.length; i++) errors[names[i]] = await errorOf(ga[i], gc[i]);
    return errors;
  } finally {
    tf.dispose([...kept, ...xs]);
  }
}

/** Registered kernel names that `fn` runs (customGrad's own scopes are recorded too, unregistered). */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => tf.getKernel(n, backend) !== undefined);
}

describeBackends('fused attention scores on webgl (GtaMaskedSoftmax) against the composed path', ({ backend }) => {
  if (backend !== 'webgl') {
    it("has no fused score path: the capability is false and 'auto' equals 'composed' (exactly where nothing is fused)", async () => {
      if (hasFusedAttentionSoftmax()) throw new Error(`hasFusedAttentionSoftmax() is true on ${backend}`);
      // webgpu's 'auto' is its own fused attention kernel (attention_fused.test.ts): equal to the composed path
      // within its tolerance, not bitwise; cpu, wasm and tensorflow run the composed ops themselves.
      const tol = hasFusedAttention() ? 1e-5 : 0;
      for (const c of [CASES[2], CASES[10]]) {
        const xs = inputsOf(c);
        try {
          const [auto, composed] = tf.tidy(() => [attend(c, 'auto', xs).output, attend(c, 'composed', xs).output]);
          const e = await errorOf(auto, composed);
          tf.dispose([auto, composed]);
          checkError(`${c.name}: auto = composed`, e, tol);
        } finally {
          tf.dispose(xs);
        }
      }
    });
    it('refuses the kernel where it is not registered', () => {
      const why = maskedSoftmaxUnsupported([1, 1, 2, 3], null, 2);
      if (why === null || !why.includes(`no ${MASKED_SOFTMAX_KERNELS.forward} kernel on the ${backend} backend`)) {
        throw new Error(`maskedSoftmaxUnsupported gave ${why}`);
      }
      tf.tidy(() => {
        expectThrows(
          () => maskedSoftmax(tf.zeros([1, 1, 2, 3]), null, { scale: 1, causalOffset: null, t: 2 }),
          /maskedSoftmax: no GtaMaskedSoftmax kernel/,
        );
        expectThrows(
          () => maskedSoftmaxValues(tf.zeros([1, 1, 2, 3]), tf.zeros([1, 1, 3, 4]), null, { scale: 1, causalOffset: null, t: 2 }),
          /maskedSoftmaxValues: no GtaMaskedSoftmax kernel/,
        );
      });
    });
    return;
  }

  it('reports the capability', () => {
    if (!hasFusedAttentionSoftmax()) throw new Error('hasFusedAttentionSoftmax() is false on webgl');
  });

  for (const c of CASES) {
    it(`auto = composed: ${c.name}`, async () => {
      const errors = await compare(c);
      checkError(`${c.name}: output`, errors.output, OUTPUT_TOL);
      checkError(`${c.name}: output under a tape`, errors.outputUnderTape, OUTPUT_TOL);
      for (const [name, e] of Object.entries(errors)) {
        if (!name.startsWith('output')) checkError(`${c.name}: grad ${name}`, e, GRAD_TOL);
      }
      if (Object.keys(errors).length < 5) throw new Error('gradients were not compared');
    });
  }

  it('returnProbs: the same probabilities and outputs', async () => {
    for (const c of [CASES[2], CASES[3], CASES[8]]) {
      const xs = inputsOf(c);
      try {
        const [ao, ap, co, cp] = tf.tidy(() => {
          const a = attend(c, 'auto', xs, true);
          const k = attend(c, 'composed', xs, true);
          return [a.output, a.probs!, k.output, k.probs!];
        });
        const errors = [await errorOf(ap, cp), await errorOf(ao, co)];
        tf.dispose([ao, ap, co, cp]);
        checkError(`${c.name}: probs`, errors[0], OUTPUT_TOL);
        checkError(`${c.name}: output with probs`, errors[1], OUTPUT_TOL);
      } finally {
        tf.dispose(xs);
      }
    }
  });

  it('dropout: the same dropped weights (seeded) and gradients', async () => {
    const errors = await compare({ ...CASES[2], name: 'dropout', dropoutRate: 0.3 });
    checkError('dropout: output', errors.output, OUTPUT_TOL);
    for (const name of ['query', 'key', 'value']) checkError(`dropout: grad ${name}`, errors[name], GRAD_TOL);
  });

  it('blocks of query rows: each block masks from its own causal offset', async () => {
    const saved = { ...BLOCKING };
    BLOCKING.elements = 1; // blocks of 16 query rows outside a tape
    BLOCKING.minFoldedRows = 1;
    const c: Case = { ...base, name: 'blocks', b: 1, t: 37, s: 40, causalOffset: 3, bias: 'padding' };
    const xs = inputsOf(c);
    try {
      const names = await kernelNames(backend, () => attend(c, 'auto', xs).output);
      // Blocks of 16, 16 and 5 rows; the last has few enough queries for GtaMaskedSoftmaxValues.
      const count = (n: string) => names.filter((x) => x === n).length;
      if (count(MASKED_SOFTMAX_KERNELS.forward) !== 2 || count(MASKED_SOFTMAX_KERNELS.withValues) !== 1) {
        throw new Error(`expected 3 blocks of the fused kernels, ran [${names}]`);
      }
      const [auto, composed] = tf.tidy(() => [attend(c, 'auto', xs).output, attend(c, 'composed', xs).output]);
      const e = await errorOf(auto, composed);
      tf.dispose([auto, composed]);
      checkError('blocks: output', e, OUTPUT_TOL);
    } finally {
      Object.assign(BLOCKING, saved);
      tf.dispose(xs);
    }
  });

  it('runs fewer kernels than the composed path, GtaMaskedSoftmax among them (one layer call, GQA D=64, 4 heads, T=16, causal)', async () => {
    // GQA D=64: 4 query heads of 16 dims over 2 key heads.
    const c: Case = { ...base, name: 'count', b: 1, nQ: 4, nK: 2, nV: 2, t: 16, s: 16, dk: 16, dv: 16, scale: 0.25, causalOffset: 0 };
    const xs = inputsOf(c);
    try {
      const forward = async (implementation: 'auto' | 'composed') => kernelNames(backend, () => attend(c, implementation, xs).output);
      const step = async (implementation: 'auto' | 'composed') =>
        kernelNames(backend, () => tf.grads((...ys: tf.Tensor[]) => tf.sum(attend(c, implementation, ys).output))(xs.slice(0, 3)));
      const [fa, fc, ga, gc] = [await forward('auto'), await forward('composed'), await step('auto'), await step('composed')];
      console.log(
        `GtaMaskedSoftmax kernels: forward ${fa.length} fused [${fa}] against ${fc.length} composed [${fc}]; forward + backward ${ga.length} against ${gc.length}`,
      );
      if (!fa.includes(MASKED_SOFTMAX_KERNELS.forward)) throw new Error(`fused forward ran [${fa}]`);
      if (!ga.includes(MASKED_SOFTMAX_KERNELS.grad)) throw new Error(`fused forward + backward ran [${ga}]`);
      if (!(fa.length < fc.length) || !(ga.length < gc.length))
        throw new Error(`fused ${fa.length} / ${ga.length} kernels against composed ${fc.length} / ${gc.length}`);
      if (fc.includes(MASKED_SOFTMAX_KERNELS.forward)) throw new Error('the composed path ran the fused kernel');
    } finally {
      tf.dispose(xs);
    }
  });

  it('a decode step (T=1) at inference runs GtaMaskedSoftmaxValues and one product, under a tape the softmax kernel and two', async () => {
    for (const c of [CASES[15], { ...CASES[9], name: 'GTA-like decode', t: 1, causalOffset: 8 }, CASES[10]]) {
      const xs = inputsOf(c);
      try {
        const inference = await kernelNames(backend, () => attend(c, 'auto', xs).output);
        const composed = await kernelNames(backend, () => attend(c, 'composed', xs).output);
        const taped = await kernelNames(backend, () => tf.grads((...ys: tf.Tensor[]) => tf.sum(attend(c, 'auto', ys).output))(xs));
        console.log(`${c.name}: inference [${inference}], composed [${composed}]`);
        const count = (names: string[], n: string) => names.filter((x) => x === n).length;
        const products = c.extra ? 2 : 1; // the scores (and the extra pair's scores)
        if (count(inference, MASKED_SOFTMAX_KERNELS.withValues) !== 1 || count(inference, 'BatchMatMul') !== products) {
          throw new Error(`${c.name}: inference ran [${inference}]`);
        }
        if (inference.includes(MASKED_SOFTMAX_KERNELS.forward)) throw new Error(`${c.name}: inference also ran the softmax kernel`);
        if (!(inference.length < composed.length))
          throw new Error(`${c.name}: ${inference.length} kernels against composed ${composed.length}`);
        if (taped.includes(MASKED_SOFTMAX_KERNELS.withValues) || !taped.includes(MASKED_SOFTMAX_KERNELS.forward)) {
          throw new Error(`${c.name}: under a tape ran [${taped}]`);
        }
      } finally {
        tf.dispose(xs);
      }
    }
    // More queries than WEBGL_SOFTMAX_VALUES_MAX_QUERIES: the softmax kernel and the value product.
    const c: Case = { ...base, name: 'T past the limit', t: WEBGL_SOFTMAX_VALUES_MAX_QUERIES + 1, s: 12 };
    const xs = inputsOf(c);
    try {
      const names = await kernelNames(backend, () => attend(c, 'auto', xs).output);
      if (names.includes(MASKED_SOFTMAX_KERNELS.withValues) || !names.includes(MASKED_SOFTMAX_KERNELS.forward)) {
        throw new Error(`T = ${c.t} ran [${names}]`);
      }
    } finally {
      tf.dispose(xs);
    }
  });

  it('maskedSoftmaxValues refuses what it does not take, naming the rule', () => {
    const cases: Array<[number[], number[], number, RegExp]> = [
      [[1, 2, 4, 5], [1, 2, 6, 8], 4, /the values must be \[1, 2, 5, Dv\] for scores \[1,2,4,5\], got \[1,2,6,8\]/],
      [[1, 2, 4, 5], [1, 1, 5, 8], 4, /the values must be \[1, 2, 5, Dv\]/],
      [[1, 2, 18, 5], [1, 2, 5, 8], 9, new RegExp(`T = 9 queries exceed ${WEBGL_SOFTMAX_VALUES_MAX_QUERIES}`)],
      [[1, 2, 4, 5], [1, 2, 5, 8], 3, /must be a multiple of T = 3/],
    ];
    for (const [scores, values, t, pattern] of cases) {
      const why = maskedSoftmaxValuesUnsupported(scores, values, null, t);
      if (why === null || !pattern.test(why)) throw new Error(`[${scores}], [${values}], T=${t}: ${why}`);
      tf.tidy(() => {
        const run = () =>
          maskedSoftmaxValues(tf.zeros(scores) as unknown as tf.Tensor4D, tf.zeros(values) as unknown as tf.Tensor4D, null, {
            scale: 1,
            causalOffset: null,
            t,
          });
        expectThrows(run, pattern);
        expectThrows(run, /^maskedSoftmaxValues: /);
      });
    }
    let taped: string | null = null;
    tf.tidy(() => {
      tf.grads((x: tf.Tensor) => {
        taped = maskedSoftmaxValuesUnsupported([1, 2, 4, 5], [1, 2, 5, 8], null, 4);
        return tf.sum(x);
      })([tf.zeros([2])]);
    });
    if (taped === null || !/a gradient tape is recording/.test(taped)) throw new Error(`under a tape: ${taped}`);
  });

  it('refuses inputs it does not take (the composed path runs them), and maskedSoftmax throws a ValueError naming the rule', async () => {
    const s = WEBGL_MASKED_SOFTMAX_MAX_KEYS + 1;
    const cases: Array<[number[], number[] | null, number, RegExp]> = [
      [[1, 2, 4, s], null, 4, new RegExp(`S = ${s} keys exceed ${WEBGL_MASKED_SOFTMAX_MAX_KEYS}`)],
      [[1, 2, 4, 5], [1, 2, 4, 5], 4, /the bias must be \[B\|1, 1, T\|1, S\|1\] or \[T\|1, S\|1\]/],
      [[2, 2, 4, 5], [3, 1, 1, 5], 4, /does not broadcast/],
      [[1, 2, 6, 5], null, 4, /must be a multiple of T = 4/],
    ];
    for (const [shape, biasShape, t, pattern] of cases) {
      tf.tidy(() => {
        const bias = biasShape === null ? null : tf.zeros(biasShape);
        const why = maskedSoftmaxUnsupported(shape, bias, t);
        if (why === null || !pattern.test(why)) throw new Error(`[${shape}] with bias [${biasShape}]: ${why}`);
        if (sizeOfShape(shape) < 1e5)
          expectThrows(() => maskedSoftmax(tf.zeros(shape) as unknown as tf.Tensor4D, bias, { scale: 1, causalOffset: null, t }), pattern);
      });
    }
    // A per-head bias [B, nQ, T, S] (MHA) is not the kernel's: 'auto' takes the composed ops.
    const [auto, composed] = tf.tidy(() => {
      const q = tf.randomUniform([1, 2, 3, 4], -1, 1, 'float32', 1) as tf.Tensor4D;
      const bias = tf.randomUniform([1, 2, 3, 3], -1, 1, 'float32', 2);
      const options: GroupedAttentionOptions = { scale: 0.5, bias, returnProbs: false };
      return [groupedAttention(q, q, q, options).output, groupedAttention(q, q, q, { ...options, implementation: 'composed' }).output];
    });
    const e = await errorOf(auto, composed);
    tf.dispose([auto, composed]);
    checkError('per-head bias: auto = composed', e, 0);
  });
});

const sizeOfShape = (shape: number[]): number => shape.reduce((a, x) => a * x, 1);
