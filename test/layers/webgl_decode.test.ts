/**
 * The decode step on webgl (src/kernels/webgl/decode_step.ts, `webglDecodeStep` of GQA and GTA) against the
 * composed path: one-token steps after a prefill give the same outputs and caches (<= 1e-5 norm-relative) for
 * GQA with biases and RoPE, MHA without RoPE, MQA, GTA with one key head and GTA with more key heads than latent
 * heads, over odd and even cache lengths; a step runs the decode kernels and 6-8 WebGL programs (the composed path
 * 18-29);
 * head dims the kernels do not take run the composed path. Elsewhere the capability is false.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { AttentionLayer } from '../../src/layers/attention_base.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { withKernelPath } from '../../src/ops/kernel_path.js';
import { hasWebGLDecodeStep } from '../../src/ops/capabilities.js';
import { MASKED_SOFTMAX_KERNELS } from '../../src/kernels/webgl/attention_softmax.js';
import { WEBGL_DECODE_KERNELS, webglDecodeUnsupported } from '../../src/kernels/webgl/decode_step.js';
import { describeBackends, it, randomTensor } from '../kit/index.js';
import { expectSameTensor } from '../kit/fused.js';
import { builtRandomLayer } from '../kit/layers.js';

const D = 16;
const TOL = 1e-5;

interface Case {
  name: string;
  make: () => AttentionLayer;
  entries: string[];
  /** The most WebGL programs one step may run. */
  programs: number;
}

const gta = (numKeyHeads: number, useBias: boolean) =>
  new GroupedHeadLatentAttention({
    numHeads: 4,
    headDim: 4,
    numQueryHeads: 2,
    numKeyHeads,
    numValueHeads: 1,
    valueDim: 4,
    useBias,
    useCausalMask: true,
  });

const CASES: Case[] = [
  {
    name: 'GQA (biases, RoPE)',
    make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, useBias: true, useCausalMask: true }),
    entries: ['key', 'value'],
    programs: 6,
  },
  {
    name: 'MHA without RoPE, no biases',
    make: () => new GroupedQueryAttention({ headDim: 6, numQueryHeads: 3, numKeyValueHeads: 3, useRope: false, useBias: false }),
    entries: ['key', 'value'],
    programs: 6,
  },
  {
    name: 'MQA, 8 query heads of 8',
    make: () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 8, numKeyValueHeads: 1, useCausalMask: true }),
    entries: ['key', 'value'],
    programs: 6,
  },
  { name: 'GTA (two maps, one key head, latent 4, biases)', make: () => gta(1, true), entries: ['key', 'latent'], programs: 7 },
  { name: 'GTA with two key heads over one latent head', make: () => gta(2, false), entries: ['key', 'latent'], programs: 8 },
];

/** A built layer with random weights (a seed per case). */
function makeLayer(c: Case, seed: number): AttentionLayer {
  return builtRandomLayer(c.make, D, seed);
}

/**
 * Registered kernel names of one decode step of `layer` from `cache` (tf.profile), and the WebGL programs it ran
 * (tfjs-backend-webgl's `runWebGLProgram`, counted by wrapping it for the step).
 */
async function stepKernels(
  layer: AttentionLayer,
  cache: AttentionCache,
  x: tf.Tensor,
): Promise<{ names: string[]; programs: number; seen: string[] }> {
  const gl = tf.backend() as unknown as { runWebGLProgram?: (...args: unknown[]) => unknown };
  const run = gl.runWebGLProgram;
  let programs = 0;
  const seen: string[] = [];
  if (run !== undefined) {
    gl.runWebGLProgram = (...args: unknown[]) => {
      const p = args[0] as { constructor: { name: string }; variableNames: string[]; outputShape: number[] };
      seen.push(`${p.constructor.name}(${p.variableNames}->[${p.outputShape}])`);
      // The upload of the test's input token is not the step's (in a model the token comes from a program).
      if (!p.constructor.name.startsWith('EncodeMatrix')) programs += 1;
      return run.apply(gl, args);
    };
  }
  let next: AttentionCache | null = null;
  try {
    const info = await tf.profile(() => {
      const r = layer.callWithCache(x, { cache });
      next = r.cache;
      return r.output;
    });
    tf.dispose(info.result as tf.Tensor);
    const names = info.kernels.map((k) => k.name).filter((n) => tf.getKernel(n, 'webgl') !== undefined);
    return { names, programs, seen };
  } finally {
    if (run !== undefined) gl.runWebGLProgram = run;
    (next as AttentionCache | null)?.dispose();
  }
}

describeBackends('decode step on webgl (kernels/webgl/decode_step.ts)', ({ backend }) => {
  if (backend !== 'webgl') {
    it('has no webgl decode step on this backend', () => {
      if (hasWebGLDecodeStep()) throw new Error(`hasWebGLDecodeStep() is true on ${backend}`);
      const why = webglDecodeUnsupported(4, 2, 2, 4, 4, true);
      if (why === null || !why.includes(`no ${WEBGL_DECODE_KERNELS.append} kernel on the ${backend} backend`)) throw new Error(`${why}`);
    });
    return;
  }

  for (const [i, c] of CASES.entries()) {
    it(`webgl step = composed over 9 steps (cache lengths 3 to 12): ${c.name}`, async () => {
      const layer = makeLayer(c, 10 + i);
      const prompt = randomTensor([2, 3, D], 20 + i);
      const caches: AttentionCache[] = [];
      try {
        let fused = layer.callWithCache(prompt);
        let composed = withKernelPath('composed', () => layer.callWithCache(prompt));
        caches.push(fused.cache, composed.cache);
        tf.dispose([fused.output, composed.output]);
        for (let s = 0; s < 9; s++) {
          const x = randomTensor([2, 1, D], 100 * i + s);
          if (s === 1) {
            // The second step: the kept weights (the joined projection, GTA's decoder blocks) exist by then.
            const { names, programs, seen } = await stepKernels(layer, fused.cache, x);
            const count = (n: string) => names.filter((k) => k === n).length;
            const expected = c.entries[1] === 'latent' ? [WEBGL_DECODE_KERNELS.gatedLatent] : [];
            if (
              count(WEBGL_DECODE_KERNELS.append) !== 2 ||
              count(WEBGL_DECODE_KERNELS.scores) !== 1 ||
              count(MASKED_SOFTMAX_KERNELS.withValues) !== 1 ||
              expected.some((n) => count(n) !== 1) ||
              programs > c.programs
            ) {
              throw new Error(
                `a step ran ${programs} programs [${seen}], kernels [${names}]; expected at most ${c.programs} with the decode kernels`,
              );
            }
          }
          const f = layer.callWithCache(x, { cache: fused.cache });
          const r = withKernelPath('composed', () => layer.callWithCache(x, { cache: composed.cache }));
          caches.push(f.cache, r.cache);
          x.dispose();
          await expectSameTensor(`${c.name} step ${s}: output`, f.output, r.output, TOL);
          if (f.cache.length !== 4 + s || f.cache.bytes() !== r.cache.bytes())
            throw new Error(`step ${s}: length ${f.cache.length}, bytes ${f.cache.bytes()} (composed ${r.cache.bytes()})`);
          tf.dispose([f.output, r.output]);
          fused = f;
          composed = r;
        }
        for (const name of c.entries)
          await expectSameTensor(`${c.name}: cache ${name}`, fused.cache.get(name), composed.cache.get(name), TOL);
      } finally {
        prompt.dispose();
        for (const cache of caches) cache.dispose();
        layer.dispose();
      }
    });
  }

  it('a head dim the kernels do not take (RoPE over 6 dims) runs the composed path, with the same result', async () => {
    const c: Case = {
      name: 'GQA head dim 6',
      make: () => new GroupedQueryAttention({ headDim: 6, numQueryHeads: 2, numKeyValueHeads: 1 }),
      entries: ['key', 'value'],
      programs: 0,
    };
    if (webglDecodeUnsupported(2, 1, 1, 6, 6, true) === null) throw new Error('head dim 6 with RoPE was accepted');
    const layer = makeLayer(c, 3);
    const prompt = randomTensor([1, 3, D], 4);
    const x = randomTensor([1, 1, D], 5);
    const first = layer.callWithCache(prompt);
    try {
      const { names } = await stepKernels(layer, first.cache, x);
      if (names.includes(WEBGL_DECODE_KERNELS.append)) throw new Error(`ran [${names}]`);
      const f = layer.callWithCache(x, { cache: first.cache });
      const r = withKernelPath('composed', () => layer.callWithCache(x, { cache: first.cache }));
      await expectSameTensor('head dim 6: output', f.output, r.output, TOL);
      tf.dispose([f.output, r.output]);
      f.cache.dispose();
      r.cache.dispose();
    } finally {
      tf.dispose([prompt, x, first.output]);
      first.cache.dispose();
      layer.dispose();
    }
  });

  it('a step with a padding mask, scores or training runs the composed path', async () => {
    const layer = makeLayer(CASES[0], 7);
    const prompt = randomTensor([1, 3, D], 8);
    const x = randomTensor([1, 1, D], 9);
    const first = layer.callWithCache(prompt);
    try {
      for (const extra of [{ returnAttentionScores: true }, { training: true }]) {
        let next: AttentionCache | null = null;
        let scores: tf.Tensor | undefined;
        const info = await tf.profile(() => {
          const r = layer.callWithCache(x, { cache: first.cache, ...extra });
          next = r.cache;
          scores = r.scores;
          return r.output;
        });
        tf.dispose([info.result as tf.Tensor, scores as tf.Tensor]);
        (next as AttentionCache | null)?.dispose();
        const names = info.kernels.map((k) => k.name);
        if (names.includes(WEBGL_DECODE_KERNELS.append)) throw new Error(`${JSON.stringify(extra)} ran [${names}]`);
      }
    } finally {
      tf.dispose([prompt, x, first.output]);
      first.cache.dispose();
      layer.dispose();
    }
  });
});
