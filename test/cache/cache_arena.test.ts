/**
 * The cache arena's bookkeeping (src/cache/cache_arena.ts) and the caches that view it, on every backend
 * (the arena itself is plain tensors; only the webgpu kernels write it in place, test/layers/fused_decode.test.ts):
 * layout and capacity, slices of the filled positions, bytes, sharing and freeing, and the refusals.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionCache } from '../../src/cache/attention_cache.js';
import { arenaCapacity, arenaLayout, ArenaSpec, CACHE_ARENA_TUNING, CacheArena } from '../../src/cache/cache_arena.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const SPEC: ArenaSpec = {
  regions: [
    { name: 'key', heads: 2, dim: 3 },
    { name: 'value', heads: 1, dim: 4 },
  ],
  query: { heads: 4, dim: 3 },
};

/** An arena of batch 2 and capacity 5 whose element i holds the value i. */
function countingArena(filled: number): CacheArena {
  const { elements } = arenaLayout(SPEC, 2, 5);
  return new CacheArena(tf.keep(tf.range(0, elements, 1, 'float32') as tf.Tensor1D), SPEC, 2, 5, filled);
}

describeBackends('cache arena', () => {
  it('lays regions out one after another, then the query scratch; capacity grows by half, in steps', () => {
    const layout = arenaLayout(SPEC, 2, 5);
    const expected = { key: 0, value: 2 * 2 * 5 * 3, query: 2 * 2 * 5 * 3 + 2 * 1 * 5 * 4 };
    if (
      layout.regions.key.offset !== expected.key ||
      layout.regions.value.offset !== expected.value ||
      layout.query.offset !== expected.query
    )
      throw new Error(`offsets ${JSON.stringify(layout)}`);
    if (layout.elements !== expected.query + 2 * 4 * 3) throw new Error(`elements ${layout.elements}`);
    const before = CACHE_ARENA_TUNING.step;
    try {
      CACHE_ARENA_TUNING.step = 64;
      const caps = [1, 64, 100, 1000].map(arenaCapacity);
      if (caps.join() !== '128,128,192,1536') throw new Error(`capacities ${caps}`);
    } finally {
      CACHE_ARENA_TUNING.step = before;
    }
  });

  it('a cache of L positions shows exactly those, as [B, H, L, D] copies; bytes count them, allocatedBytes the arena', async () => {
    const arena = countingArena(4);
    const cache = AttentionCache.fromArena('gqa', 'layer#1', arena, 3);
    try {
      if (cache.length !== 3 || cache.batchSize !== 2 || cache.arena !== arena) throw new Error('wrong length, batch or arena');
      const key = cache.get('key');
      if (key.shape.join() !== '2,2,3,3') throw new Error(`key shape [${key.shape}]`);
      // key [b, h, p, d] lies at ((b*2 + h)*5 + p)*3 + d
      const got = Array.from(await key.data());
      const want: number[] = [];
      for (let bh = 0; bh < 4; bh++) for (let p = 0; p < 3; p++) for (let d = 0; d < 3; d++) want.push((bh * 5 + p) * 3 + d);
      if (got.join() !== want.join()) throw new Error(`key values ${got} against ${want}`);
      const value = Array.from(await cache.get('value').data());
      if (value[0] !== 60 || value.length !== 2 * 1 * 3 * 4 || value[12] !== 60 + 20) throw new Error(`value values ${value}`);
      if (cache.bytes() !== 2 * 3 * (2 * 3 + 4) * 4 || cache.bytesPerToken() !== (2 * 3 + 4) * 4) throw new Error(`bytes ${cache.bytes()}`);
      if (cache.allocatedBytes() !== arena.tensor.size * 4 + cache.bytes()) throw new Error(`allocatedBytes ${cache.allocatedBytes()}`);
    } finally {
      cache.dispose();
    }
    if (!arena.tensor.isDisposed) throw new Error('the arena outlived its only cache');
  });

  it('is shared: freed only with the last cache; appends in place only from the newest length', () => {
    const arena = countingArena(3);
    const older = AttentionCache.fromArena('gta', 'layer#2', arena, 2);
    const newest = AttentionCache.fromArena('gta', 'layer#2', arena, 3);
    if (arena.appendsInPlace(2) || !arena.appendsInPlace(3) || arena.appendsInPlace(3, 3)) throw new Error('appendsInPlace is wrong');
    newest.dispose();
    if (arena.tensor.isDisposed) throw new Error('freed while the older cache holds it');
    older.dispose();
    older.dispose(); // twice is harmless
    if (!arena.tensor.isDisposed) throw new Error('not freed with the last cache');
    if (arena.appendsInPlace(3)) throw new Error('a freed arena cannot be appended to');
  });

  it('refuses lengths beyond the filled positions, tensors of the wrong size, unknown names and disposed caches', () => {
    const arena = countingArena(2);
    try {
      expectThrows(() => AttentionCache.fromArena('gqa', 'x', arena, 3), /length must be an integer in \[1, 2\]/);
      expectThrows(() => AttentionCache.fromArena('gqa', 'x', arena, 0), /length must be an integer/);
      const wrong = tf.zeros([7]) as tf.Tensor1D;
      expectThrows(() => new CacheArena(wrong, SPEC, 2, 5, 0), /7 elements does not hold batch 2 at capacity 5/);
      wrong.dispose();
      const cache = AttentionCache.fromArena('gqa', 'x', arena, 2);
      expectThrows(() => cache.get('latent'), /no tensor named "latent"/);
      cache.dispose();
      expectThrows(() => cache.entries, /has been disposed/);
    } finally {
      arena.release();
    }
  });
});
