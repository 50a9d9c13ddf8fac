/**
 * Cases and comparison for the fused attention kernel against the composed path (shared by the spec
 * test/ops/attention_fused.test.ts and the GPU entry's `fused-check`, which runs them on a real GPU).
 * Values are read with `await data()`, so the comparison also runs on webgpu in Node (Dawn), where
 * synchronous reads throw.
 *
 * Notation: B batch, T queries, S keys, nQ/nK/nV/nE query, key, value and extra-key heads, Dk/Dv/De dims.
 */
import * as tf from '@tensorflow/tfjs';
import { normRelativeError } from '../../src/conformance/reference_vectors.js';
import { groupedAttention, type GroupedAttentionOptions } from '../../src/ops/attention_core.js';
import { causalBias, MASK_VALUE } from '../../src/ops/masks.js';

/** One configuration of the equality check. */
export interface FusedCase {
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
  /** Cache length before the first query (causal), or null (not causal). */
  causalOffset: number | null;
  /** 'padding': [B, 1, 1, S] blocking a few keys of the second batch; 'mask': [B, 1, T, S] random 0/MASK_VALUE. */
  bias: 'padding' | 'mask' | null;
  /** MLA's decoupled RoPE pair. */
  extra: { nE: number; de: number } | null;
  /** MLA's absorbed decode: the value tensor is the key tensor (the latent). */
  keyIsValue?: boolean;
  /** Also compare gradients. */
  grads: boolean;
}

/** The configurations the spec and the GPU check run. */
export const FUSED_CASES: FusedCase[] = [
  {
    name: 'GQA nQ=8 nK=2, odd lengths T=7 S=13',
    b: 2,
    nQ: 8,
    nK: 2,
    nV: 2,
    t: 7,
    s: 13,
    dk: 16,
    dv: 16,
    scale: 0.25,
    causalOffset: null,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'MHA, causal with cache offset 6',
    b: 2,
    nQ: 4,
    nK: 4,
    nV: 4,
    t: 7,
    s: 13,
    dk: 16,
    dv: 16,
    scale: 0.25,
    causalOffset: 6,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'MQA nK=1, causal prefill T=S=37 (not a tile multiple)',
    b: 1,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 37,
    s: 37,
    dk: 32,
    dv: 32,
    scale: 0.18,
    causalOffset: 0,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'GTA-like: one key head, one latent value head Dv=24 != Dk=16, causal',
    b: 2,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 9,
    s: 21,
    dk: 16,
    dv: 24,
    scale: 0.25,
    causalOffset: 12,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'MLA-like: extra RoPE pair nE=1 De=8, causal',
    b: 2,
    nQ: 4,
    nK: 4,
    nV: 4,
    t: 7,
    s: 13,
    dk: 16,
    dv: 16,
    scale: 0.2,
    causalOffset: 6,
    bias: null,
    extra: { nE: 1, de: 8 },
    grads: true,
  },
  {
    name: 'MLA absorbed decode: latent as key and value, extra pair, T=1 S=300',
    b: 2,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 1,
    s: 300,
    dk: 32,
    dv: 32,
    scale: 0.15,
    causalOffset: 299,
    bias: null,
    extra: { nE: 1, de: 8 },
    keyIsValue: true,
    grads: false,
  },
  {
    name: 'padding bias [B,1,1,S], GQA, causal',
    b: 2,
    nQ: 8,
    nK: 2,
    nV: 2,
    t: 7,
    s: 13,
    dk: 16,
    dv: 16,
    scale: 0.25,
    causalOffset: 6,
    bias: 'padding',
    extra: null,
    grads: true,
  },
  {
    name: 'attention-mask bias [B,1,T,S], MHA',
    b: 2,
    nQ: 2,
    nK: 2,
    nV: 2,
    t: 7,
    s: 13,
    dk: 16,
    dv: 8,
    scale: 0.25,
    causalOffset: null,
    bias: 'mask',
    extra: null,
    grads: true,
  },
  {
    name: 'decode GQA T=1 S=300 (keys split over workgroups)',
    b: 2,
    nQ: 8,
    nK: 2,
    nV: 2,
    t: 1,
    s: 300,
    dk: 16,
    dv: 16,
    scale: 0.25,
    causalOffset: 299,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'decode GTA-like T=1 S=300 with padding',
    b: 2,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 1,
    s: 300,
    dk: 16,
    dv: 32,
    scale: 0.25,
    causalOffset: 299,
    bias: 'padding',
    extra: null,
    grads: false,
  },
  {
    name: 'causal chunk T=40 after a 260-token cache (split keys, T > 1)',
    b: 1,
    nQ: 4,
    nK: 2,
    nV: 2,
    t: 40,
    s: 300,
    dk: 16,
    dv: 16,
    scale: 0.25,
    causalOffset: 260,
    bias: null,
    extra: null,
    grads: false,
  },
  {
    name: 'head dim 256',
    b: 1,
    nQ: 2,
    nK: 1,
    nV: 1,
    t: 5,
    s: 19,
    dk: 256,
    dv: 256,
    scale: 0.06,
    causalOffset: 14,
    bias: null,
    extra: null,
    grads: false,
  },
  // Long enough for the row-per-invocation programs (flash_attention_rows.ts, flash_attention_backward_rows.ts:
  // 128 folded rows per workgroup).
  {
    // (cache offset 3: every row sees a key that the padding leaves; a row with every key blocked has no
    // defined result, and the paths differ there: the composed one spreads it over all S keys)
    name: 'rows: GTA-like Dv=24 != Dk=16, padding bias, causal T=70 after 3 cached keys',
    b: 2,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 70,
    s: 73,
    dk: 16,
    dv: 24,
    scale: 0.25,
    causalOffset: 3,
    bias: 'padding',
    extra: null,
    grads: true,
  },
  {
    // No bias: the gradients are the fused backward's (a bias takes the composed gradient).
    name: 'rows: GTA-like Dv=24 != Dk=16, causal prefill T=S=70',
    b: 2,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 70,
    s: 70,
    dk: 16,
    dv: 24,
    scale: 0.25,
    causalOffset: 0,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: "rows: GTA's dims Dk=64, latent Dv=128 (dK and dV as two dispatches), causal T=40 after 5 cached keys",
    b: 1,
    nQ: 4,
    nK: 1,
    nV: 1,
    t: 40,
    s: 45,
    dk: 64,
    dv: 128,
    scale: 0.125,
    causalOffset: 5,
    bias: null,
    extra: null,
    grads: true,
  },
  {
    name: 'rows: MLA-like extra pair De=8, T=130 S=135 (a partial second row block)',
    b: 1,
    nQ: 2,
    nK: 2,
    nV: 2,
    t: 130,
    s: 135,
    dk: 16,
    dv: 16,
    scale: 0.2,
    causalOffset: null,
    bias: null,
    extra: { nE: 1, de: 8 },
    grads: true,
  },
];

/** Inputs of one case (seeded). */
export function caseInputs(c: FusedCase): {
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  bias: tf.Tensor | null;
  extra: { query: tf.Tensor4D; key: tf.Tensor4D } | null;
} {
  const rnd = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, 'float32', seed) as unknown as tf.Tensor4D;
  const q = rnd([c.b, c.nQ, c.t, c.dk], 1);
  const k = rnd([c.b, c.nK, c.s, c.dk], 2);
  const v = c.keyIsValue ? k : rnd([c.b, c.nV, c.s, c.dv], 3);
  let bias: tf.Tensor | null = null;
  if (c.bias === 'padding') {
    const data = new Float32Array(c.b * c.s);
    for (let i = 0; i < c.b * c.s; i++) if (i >= c.s && i % c.s < 3) data[i] = MASK_VALUE; // the second batch's first 3 keys
    bias = tf.tensor(data, [c.b, 1, 1, c.s]);
  } else if (c.bias === 'mask') {
    bias = tf.tidy(() => tf.mul(tf.cast(tf.less(tf.randomUniform([c.b, 1, c.t, c.s], 0, 1, 'float32', 4), 0.3), 'float32'), MASK_VALUE));
  }
  const extra = c.extra ? { query: rnd([c.b, c.nQ, c.t, c.extra.de], 5), key: rnd([c.b, c.extra.nE, c.s, c.extra.de], 6) } : null;
  return { q, k, v, bias, extra };
}

/** Errors of one case: fused against composed (norm-relative), per quantity. */
export interface FusedCaseErrors {
  output: number;
  grads: Record<string, number>;
}

async function err(a: tf.Tensor, e: tf.Tensor): Promise<number> {
  if (a.shape.join(',') !== e.shape.join(',')) throw new Error(`shape [${a.shape}] differs from [${e.shape}]`);
  const [x, y] = await Promise.all([a.data(), e.data()]);
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`non-finite value ${x[i]} at ${i}`);
  return normRelativeError(x, y);
}

/** Runs case `c` with both implementations and returns the errors (outputs, and gradients when `c.grads`). */
export async function compareFusedCase(c: FusedCase): Promise<FusedCaseErrors> {
  const inp = caseInputs(c);
  const xs: tf.Tensor[] = [inp.q, inp.k, inp.v, ...(inp.bias ? [inp.bias] : []), ...(inp.extra ? [inp.extra.query, inp.extra.key] : [])];
  const names = ['query', 'key', 'value', ...(inp.bias ? ['bias'] : []), ...(inp.extra ? ['extraQuery', 'extraKey'] : [])];
  const attend =
    (implementation: 'fused' | 'composed') =>
    (...ys: tf.Tensor[]) => {
      const o: GroupedAttentionOptions = {
        scale: c.scale,
        causalOffset: c.causalOffset,
        returnProbs: false,
        implementation,
        bias: inp.bias ? ys[3] : null,
        extra: inp.extra ? { query: ys[ys.length - 2] as tf.Tensor4D, key: ys[ys.length - 1] as tf.Tensor4D } : null,
      };
      return groupedAttention(ys[0] as tf.Tensor4D, ys[1] as tf.Tensor4D, ys[2] as tf.Tensor4D, o).output;
    };
  const kept: tf.Tensor[] = [];
  try {
    const fused = tf.tidy(() => attend('fused')(...xs));
    const composed = tf.tidy(() => attend('composed')(...xs));
    kept.push(fused, composed);
    const result: FusedCaseErrors = { output: await err(fused, composed), grads: {} };
    if (c.grads) {
      const w = tf.randomUniform(fused.shape, -1, 1, 'float32', 7);
      kept.push(w);
      const gf = tf.tidy(() => tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(attend('fused')(...ys), w)))(xs));
      const gc = tf.tidy(() => tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(attend('composed')(...ys), w)))(xs));
      kept.push(...gf, ...gc);
      for (let i = 0; i < names.length; i++) result.grads[names[i]] = await err(gf[i], gc[i]);
    }
    return result;
  } finally {
    tf.dispose([...kept, ...xs]);
  }
}

/** `logsumexp` of each row of the composed scores `[B, nQ, T]`, built by plain ops (heads repeated). */
export function referenceLse(c: FusedCase, inp: ReturnType<typeof caseInputs>): tf.Tensor3D {
  return tf.tidy(() => {
    const heads = (n: number) => Array.from({ length: c.nQ }, (_, i) => Math.floor(i / (c.nQ / n)));
    let scores = tf.matMul(tf.mul(inp.q, c.scale), tf.gather(inp.k, heads(c.nK), 1), false, true); // [B, nQ, T, S]
    if (inp.extra && c.extra) {
      scores = tf.add(scores, tf.matMul(tf.mul(inp.extra.query, c.scale), tf.gather(inp.extra.key, heads(c.extra.nE), 1), false, true));
    }
    if (inp.bias) scores = tf.add(scores, inp.bias);
    if (c.causalOffset !== null) scores = tf.add(scores, causalBias(c.t, c.s, c.causalOffset));
    return tf.logSumExp(scores, -1) as tf.Tensor3D;
  });
}
