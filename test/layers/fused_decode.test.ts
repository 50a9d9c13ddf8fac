/**
 * The fused decode step (src/kernels/webgpu/decode_step.ts, src/cache/cache_arena.ts) against the composed
 * path: on webgpu, one-token steps after a prefill give the same outputs and caches (<= 1e-5 norm-relative)
 * for GQA (biases, RoPE), MHA without RoPE and GTA; the cache grows in place, and a step from an older cache
 * (a branch) copies instead of overwriting; caches stay immutable, report exact bytes, and free the arena
 * with the last one disposed; a step dispatches at most 5 kernels (tf.profile). Other backends keep exact
 * caches.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { CACHE_ARENA_TUNING } from '../../src/cache/cache_arena.js';
import { AttentionLayer } from '../../src/layers/attention_base.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../../src/layers/mla_attention.js';
import { MLA_DECODE_KERNEL } from '../../src/kernels/webgpu/mla_decode.js';
import { withKernelPath } from '../../src/ops/kernel_path.js';
import { DECODE_ATTENTION_KERNEL } from '../../src/kernels/webgpu/decode_step.js';
import { decodeBlock, decodeRows, decodeSplits, FLASH_DECODE_TUNING, FlashDecodeProgram } from '../../src/kernels/webgpu/flash_decode.js';
import type { ArenaSpec } from '../../src/cache/cache_arena.js';
import { describeBackends, it, randomTensor } from '../kit/index.js';
import { expectSameTensor } from '../kit/fused.js';
import { builtRandomLayer } from '../kit/layers.js';

const D = 16;
const TOL = 1e-5;

interface Case {
  name: string;
  make: () => AttentionLayer;
  entries: string[];
  /** The fused attention kernel a step runs, and the most kernels a step may run (tf.profile). */
  kernel?: string;
  maxKernels?: number;
}

const CASES: Case[] = [
  {
    name: 'GQA (biases, RoPE)',
    make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, useBias: true, useCausalMask: true }),
    entries: ['key', 'value'],
  },
  {
    name: 'MHA without RoPE, no biases',
    make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 2, numKeyValueHeads: 2, useRope: false, useBias: false }),
    entries: ['key', 'value'],
  },
  {
    name: 'MQA with 32 query heads (rows split over two workgroups)',
    make: () => new GroupedQueryAttention({ headDim: 4, numQueryHeads: 32, numKeyValueHeads: 1, useCausalMask: true }),
    entries: ['key', 'value'],
  },
  {
    name: 'GTA (two maps, latent 4, biases)',
    make: () =>
      new GroupedHeadLatentAttention({
        numHeads: 4,
        headDim: 4,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 4,
        useCausalMask: true,
      }),
    entries: ['key', 'latent'],
  },
  {
    name: 'GTA with a 192-wide latent (more value columns than invocations)',
    make: () =>
      new GroupedHeadLatentAttention({ numHeads: 48, headDim: 4, numQueryHeads: 1, numKeyHeads: 1, numValueHeads: 1, valueDim: 192 }),
    entries: ['key', 'latent'],
  },
  {
    name: 'MLA absorbed (biases)',
    make: () =>
      new MultiHeadLatentAttention({
        numHeads: 4,
        kvLoraRank: 8,
        qkNopeHeadDim: 4,
        qkRopeHeadDim: 4,
        vHeadDim: 4,
        useBias: true,
        useCausalMask: true,
      }),
    entries: ['latent', 'keyRope'],
    kernel: MLA_DECODE_KERNEL,
  },
  {
    name: 'MLA with query compression and odd dims (biases)',
    make: () =>
      new MultiHeadLatentAttention({
        numHeads: 3,
        qLoraRank: 5,
        kvLoraRank: 11,
        qkNopeHeadDim: 3,
        qkRopeHeadDim: 2,
        vHeadDim: 5,
        useBias: true,
      }),
    entries: ['latent', 'keyRope'],
    kernel: MLA_DECODE_KERNEL,
    // the query's own product, its bias and RMSNorm, and the slice of its rows come on top
    maxKernels: 10,
  },
  {
    name: 'MLA with 32 heads (two workgroups of rows per sequence) and a 64-wide latent',
    make: () =>
      new MultiHeadLatentAttention({ numHeads: 32, kvLoraRank: 64, qkNopeHeadDim: 4, qkRopeHeadDim: 8, vHeadDim: 4, useCausalMask: true }),
    entries: ['latent', 'keyRope'],
    kernel: MLA_DECODE_KERNEL,
  },
];

/** A built layer with random weights (a seed per case). */
function makeLayer(c: Case, seed: number): AttentionLayer {
  return builtRandomLayer(c.make, D, seed);
}

describeBackends('fused decode step with an in-place cache (kernels/webgpu)', ({ backend }) => {
  if (backend !== 'webgpu') {
    it('keeps exact cache tensors (no arena) on this backend', () => {
      const layer = makeLayer(CASES[0], 1);
      const x = randomTensor([2, 3, D], 2);
      const step = randomTensor([2, 1, D], 3);
      const first = layer.callWithCache(x);
      const second = layer.callWithCache(step, { cache: first.cache });
      try {
        if (second.cache.arena !== null) throw new Error('a decode step on this backend made a cache arena');
        if (second.cache.length !== 4 || second.cache.bytes() !== 2 * 4 * 2 * 2 * 4 * 4)
          throw new Error(`length ${second.cache.length}, bytes ${second.cache.bytes()}`);
      } finally {
        tf.dispose([x, step, first.output, second.output]);
        first.cache.dispose();
        second.cache.dispose();
        layer.dispose();
      }
    });
    return;
  }

  for (const [i, c] of CASES.entries()) {
    it(`fused = composed over 12 steps, growing the arena: ${c.name}`, async () => {
      const before = CACHE_ARENA_TUNING.step;
      CACHE_ARENA_TUNING.step = 4; // capacity 8 after a 3-token prefill, then 16: two growths in 12 steps
      const layer = makeLayer(c, 10 + i);
      const prompt = randomTensor([2, 3, D], 20 + i);
      const caches: AttentionCache[] = [];
      try {
        let fused = withKernelPath('composed', () => layer.callWithCache(prompt));
        let composed = withKernelPath('composed', () => layer.callWithCache(prompt));
        caches.push(fused.cache, composed.cache);
        tf.dispose([fused.output, composed.output]);
        const capacities = new Set<number>();
        for (let s = 0; s < 12; s++) {
          const x = randomTensor([2, 1, D], 100 * i + s);
          const f = layer.callWithCache(x, { cache: fused.cache });
          const r = withKernelPath('composed', () => layer.callWithCache(x, { cache: composed.cache }));
          caches.push(f.cache, r.cache);
          x.dispose();
          if (f.cache.arena === null) throw new Error(`step ${s}: the fused step made no cache arena`);
          if (r.cache.arena !== null) throw new Error(`step ${s}: the composed step made a cache arena`);
          capacities.add(f.cache.arena.capacity);
          await expectSameTensor(`${c.name} step ${s}: output`, f.output, r.output, TOL);
          if (f.cache.length !== 4 + s || f.cache.bytes() !== r.cache.bytes())
            throw new Error(`step ${s}: length ${f.cache.length}, bytes ${f.cache.bytes()} (composed ${r.cache.bytes()})`);
          tf.dispose([f.output, r.output]);
          fused = f;
          composed = r;
        }
        if (capacities.size < 2) throw new Error(`the arena never grew (capacities ${[...capacities]})`);
        for (const name of c.entries)
          await expectSameTensor(`${c.name}: cache ${name}`, fused.cache.get(name), composed.cache.get(name), TOL);
      } finally {
        CACHE_ARENA_TUNING.step = before;
        prompt.dispose();
        for (const cache of caches) cache.dispose();
        layer.dispose();
      }
    });
  }

  for (const [c, vectorKeys] of [CASES[0], CASES[3], CASES[5]].flatMap((c) => [[c, false] as const, [c, true] as const])) {
    const how = vectorKeys ? ', keys read as vec4s (FLASH_DECODE_TUNING.vectorKeys)' : '';
    it(`after a 300-token prefill (keys split over workgroups${how}): ${c.name}`, async () => {
      const before = FLASH_DECODE_TUNING.vectorKeys;
      FLASH_DECODE_TUNING.vectorKeys = vectorKeys;
      const layer = makeLayer(c, 50);
      const prompt = randomTensor([2, 300, D], 51);
      const caches: AttentionCache[] = [];
      const spec = (layer as unknown as { decodeArenaSpec(): ArenaSpec }).decodeArenaSpec();
      const [k, v] = spec.regions;
      const heads = { b: 2, nQ: spec.query.heads, nK: k.heads, nV: v.heads, s: 301, dk: spec.query.dim, dv: v.dim, scale: 1 };
      const shapes = { ...heads, views: { query: 0, key: 0, value: 0, keyCapacity: 301 } };
      const rows = decodeRows(shapes)!;
      const block = decodeBlock(rows, shapes.dk)!;
      const { splits, chunk } = decodeSplits(shapes, rows, block);
      try {
        if (splits < 2) throw new Error(`the keys are not split (${splits} split): this case would not test the combine`);
        const program = new FlashDecodeProgram(shapes, rows, block, splits, chunk);
        if (program.shaderKey.endsWith('_vk') !== vectorKeys)
          throw new Error(`vectorKeys ${vectorKeys}, but the program is ${program.shaderKey}`);
        let fused = withKernelPath('composed', () => layer.callWithCache(prompt));
        let composed = withKernelPath('composed', () => layer.callWithCache(prompt));
        caches.push(fused.cache, composed.cache);
        tf.dispose([fused.output, composed.output]);
        for (let s = 0; s < 3; s++) {
          const x = randomTensor([2, 1, D], 60 + s);
          const f = layer.callWithCache(x, { cache: fused.cache });
          const r = withKernelPath('composed', () => layer.callWithCache(x, { cache: composed.cache }));
          caches.push(f.cache, r.cache);
          x.dispose();
          await expectSameTensor(`${c.name} step ${s}: output`, f.output, r.output, TOL);
          tf.dispose([f.output, r.output]);
          fused = f;
          composed = r;
        }
      } finally {
        FLASH_DECODE_TUNING.vectorKeys = before;
        prompt.dispose();
        for (const cache of caches) cache.dispose();
        layer.dispose();
      }
    });
  }

  it('a step from an older cache copies (copy on write); caches stay immutable; the last dispose frees the arena', async () => {
    const layer = makeLayer(CASES[0], 30);
    const prompt = randomTensor([1, 5, D], 31);
    const [x1, x2] = [randomTensor([1, 1, D], 32), randomTensor([1, 1, D], 33)];
    const p = layer.callWithCache(prompt);
    const a = layer.callWithCache(x1, { cache: p.cache }); // new arena, filled 6
    const keyA = tf.keep(a.cache.get('key').clone()); // [1, 2, 6, 4]
    const b = layer.callWithCache(x2, { cache: a.cache }); // in place: same arena
    const c = layer.callWithCache(x1, { cache: a.cache }); // a branch from a: a new arena
    const d = layer.callWithCache(x1, { cache: b.cache }); // in place again
    try {
      if (b.cache.arena !== a.cache.arena) throw new Error('the step from the newest cache did not append in place');
      if (c.cache.arena === a.cache.arena) throw new Error('the step from an older cache wrote into the shared arena');
      if (d.cache.arena !== a.cache.arena) throw new Error('the step from the newest cache (b) did not append in place');
      await expectSameTensor('a.key after later steps', a.cache.get('key'), keyA, 0);
      // b and c started from a with different tokens; c took x1 as d's last token did, after another history.
      const composedC = withKernelPath('composed', () => layer.callWithCache(x1, { cache: a.cache }));
      await expectSameTensor('branch c = composed', c.output, composedC.output, TOL);
      await expectSameTensor('branch c cache', c.cache.get('value'), composedC.cache.get('value'), TOL);
      tf.dispose(composedC.output);
      composedC.cache.dispose();
      if (a.cache.length !== 6 || b.cache.length !== 7 || c.cache.length !== 7 || d.cache.length !== 8)
        throw new Error(`lengths ${[a, b, c, d].map((r) => r.cache.length)}`);
      if (d.cache.allocatedBytes() < d.cache.bytes()) throw new Error('allocatedBytes below bytes');
      const arena = a.cache.arena!;
      a.cache.dispose();
      b.cache.dispose();
      if (arena.tensor.isDisposed) throw new Error('the arena was freed while d still holds it');
      d.cache.dispose();
      if (!arena.tensor.isDisposed) throw new Error('the arena outlived the last cache holding it');
    } finally {
      tf.dispose([prompt, x1, x2, keyA, p.output, a.output, b.output, c.output, d.output]);
      for (const r of [p, a, b, c, d]) r.cache.dispose();
      layer.dispose();
    }
  });

  for (const [i, c] of CASES.entries()) {
    const kernel = c.kernel ?? DECODE_ATTENTION_KERNEL;
    const most = c.maxKernels ?? 5;
    it(`one step dispatches at most ${most} kernels, one of them ${kernel}: ${c.name}`, async () => {
      const layer = makeLayer(c, 40 + i);
      const prompt = randomTensor([2, 4, D], 41);
      const x = randomTensor([2, 1, D], 42);
      const p = layer.callWithCache(prompt);
      const warm = layer.callWithCache(x, { cache: p.cache }); // builds the kept weights and the arena
      let step: ReturnType<AttentionLayer['callWithCache']> | null = null;
      try {
        const profile = await tf.profile(() => {
          step = layer.callWithCache(x, { cache: warm.cache });
          return step.output;
        });
        const names = profile.kernels.map((k) => k.name);
        if (names.length > most || !names.includes(kernel) || names.includes('Concat'))
          throw new Error(`kernels of one step: ${names.join(', ')}`);
      } finally {
        tf.dispose([prompt, x, p.output, warm.output]);
        p.cache.dispose();
        warm.cache.dispose();
        if (step !== null) {
          const s = step as ReturnType<AttentionLayer['callWithCache']>;
          s.output.dispose();
          s.cache.dispose();
        }
        layer.dispose();
      }
    });
  }
});
