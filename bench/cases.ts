/**
 * Setting up and running one cell: what a timed unit is for each phase and implementation.
 *
 * | phase | timed unit (ends with `await data()`) |
 * |---|---|
 * | prefill | L1: `layer.callWithCache(x [B, T, D])` (output read, cache disposed); L2: `lm.callWithCache(ids)` (last-position logits read)
 * |
 * | decode | one token with a cache of S + i tokens: call, read the output (L2: logits), dispose the previous cache; a run is `steps`
 * consecutive tokens starting from a prefilled cache of S tokens, and each step is one sample |
 * | train | forward + backward + Adam (`optimizer.minimize`), loss read; L1 uses an MSE loss, L2 cross-entropy on next-token ids |
 * | matmul | `tf.matMul([M, D], [D, D])`, result read |
 * | read | `tf.sum` over M MiB, result read |
 *
 * Decode caches are filled with random values of the exact shapes (per-entry shapes come from a
 * one-token call of the same layer/model): decode time does not depend on the values, and a real
 * prefill of 4096 tokens at batch 8 would exceed the score-memory budget for GQA/MHA/MLA.
 *
 * Peak memory: the first warm-up unit runs under `tf.profile`, which snapshots the engine's tensor
 * bytes (`tf.memory().numBytes`) after every kernel; the peak is the largest snapshot, reported both
 * absolute and minus the bytes held before the unit (transient). Tensors a backend allocates and frees
 * inside a single kernel are not seen.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AdamW,
  AttentionCache,
  AttentionLayer,
  CausalLM,
  ModelCache,
  buildLayer,
  createAttention,
  sparseCrossEntropyFromLogits,
} from '../src/index.js';
import type { CellSpec } from './matrix.js';
import { PlainAttentionPeer, PlainCache, TfjsMhaPeer, checkSameEngine, loadTfjsMultiHeadAttention } from './peers.js';
import { OurImpl, VOCAB, attentionConfig, heads, HEAD_DIM, l2Config } from './variants.js';

export interface ProfileInfo {
  /** Kernels launched by one unit (one decode step for decode cells). */
  kernels: number;
  peakBytes: number;
  transientBytes: number;
  /** Kernel time by kernel name from the profiled run (approximate: profiling adds overhead). */
  byKernel: Record<string, { count: number; ms: number }>;
}

export interface Case {
  /** One timed run; returns its samples (ms). */
  run(): Promise<number[]>;
  /**
   * Decode cases: of each sample of the last run, the time until the step returned, before the read (the
   * JavaScript side of a step: ops, programs, uniforms, the cache's bookkeeping; the GPU runs behind it).
   */
  enqueueSamples?(): number[];
  /** One untimed unit under tf.profile (also serves as the first warm-up). */
  profile(): Promise<ProfileInfo>;
  /** One more untimed unit (decode: two steps) before timing. */
  warmup?(): Promise<void>;
  /** Cache bytes from the cache object (`bytes()`), when the cell has a cache. */
  cacheBytes?: number;
  /** Notes (e.g. the engine check of the tfjs-layers peer). */
  notes: string[];
  dispose(): void;
}

const now = () => performance.now();

async function profiled(unit: () => Promise<void>): Promise<ProfileInfo> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(async () => {
    await unit();
    return null as unknown as tf.Tensor;
  });
  const byKernel: ProfileInfo['byKernel'] = {};
  for (const k of info.kernels) {
    const e = (byKernel[k.name] ??= { count: 0, ms: 0 });
    e.count += 1;
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  }
  for (const e of Object.values(byKernel)) e.ms = Math.round(e.ms * 1000) / 1000;
  const peak = info.kernels.length > 0 ? info.peakBytes : start;
  return { kernels: info.kernels.length, peakBytes: peak, transientBytes: Math.max(0, peak - start), byKernel };
}

function randomIds(b: number, t: number, seed: number): number[][] {
  let s = seed;
  return Array.from({ length: b }, () =>
    Array.from({ length: t }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % VOCAB;
    }),
  );
}

/** A cache like `template` but holding `s` random tokens per sequence. */
function syntheticCache(template: AttentionCache, s: number): AttentionCache {
  const entries: Record<string, { tensor: tf.Tensor; seqAxis: number }> = {};
  for (const [name, e] of Object.entries(template.entries)) {
    const shape = e.tensor.shape.slice();
    shape[e.seqAxis] = s;
    entries[name] = { tensor: tf.randomNormal(shape, 0, 1, 'float32', 7), seqAxis: e.seqAxis };
  }
  return new AttentionCache(template.kind, template.owner, entries, null);
}

function trainableVariables(weights: tf.LayerVariable[]): tf.Variable[] {
  return weights.map((w) => w.read() as tf.Variable);
}

/**
 * Decode warm-up steps: two, or a whole run on webgl, whose Softmax and Concat shaders are compiled per
 * shape (even with WEBGL_USE_SHAPES_UNIFORMS), so every cache length not seen before costs 10-50 ms of
 * compilation; the warm-up run compiles the lengths the timed runs use.
 */
function warmupSteps(cell: CellSpec): number {
  return tf.getBackend() === 'webgl' ? (cell.steps ?? 32) : 2;
}

/** A case whose timed run is one call of `unit`; `release` frees what the case holds. */
function unitCase(notes: string[], unit: () => Promise<void>, release: () => void): Case {
  return {
    notes,
    async run() {
      const t0 = now();
      await unit();
      return [now() - t0];
    },
    profile: () => profiled(unit),
    dispose: release,
  };
}

/** One optimizer step that minimizes `loss` over `vars`, ending with a read of the loss. */
function trainStep(optimizer: tf.Optimizer, loss: () => tf.Scalar, vars: tf.Variable[]): () => Promise<void> {
  return async () => {
    const value = optimizer.minimize(loss, true, vars);
    await value!.data();
    value!.dispose();
  };
}

/**
 * A decode case: runs of `cell.steps` consecutive `step` calls from the cache `start` (kept; each step's
 * new cache is freed with `disposeCache` once the next one exists); `release` frees the rest of the case.
 */
function decodeCase<C>(
  cell: CellSpec,
  notes: string[],
  start: C,
  cacheBytes: number,
  step: (cache: C) => { out: tf.Tensor; next: C },
  disposeCache: (c: C) => void,
  release: () => void,
): Case {
  let enqueue: number[] = [];
  return {
    notes,
    cacheBytes,
    run: () => decodeRun(start, cell.steps ?? 32, step, disposeCache, (enqueue = [])),
    enqueueSamples: () => enqueue,
    warmup: async () => {
      await decodeRun(start, warmupSteps(cell), step, disposeCache);
    },
    // One step from a cache that an earlier step made (the steady state: on webgpu the first step from
    // `start` also copies it into a cache arena), so that the count is that of every later step.
    profile: async () => {
      const first = step(start);
      await first.out.data();
      first.out.dispose();
      try {
        return await profiled(async () => {
          const { out, next } = step(first.next);
          await out.data();
          out.dispose();
          disposeCache(next);
        });
      } finally {
        disposeCache(first.next);
      }
    },
    dispose() {
      disposeCache(start);
      release();
    },
  };
}

/** Times `steps` decode steps from `start`; `step` returns the output to read and the next cache. */
async function decodeRun<C>(
  start: C,
  steps: number,
  step: (cache: C) => { out: tf.Tensor; next: C },
  disposeCache: (c: C) => void,
  enqueue: number[] = [],
): Promise<number[]> {
  const samples: number[] = [];
  let cache = start;
  for (let i = 0; i < steps; i++) {
    const t0 = now();
    const { out, next } = step(cache);
    enqueue.push(now() - t0);
    await out.data();
    out.dispose();
    if (cache !== start) disposeCache(cache);
    cache = next;
    samples.push(now() - t0);
  }
  if (cache !== start) disposeCache(cache);
  return samples;
}

// ------------------------------------------------------------------ L1: our layers

function l1Case(cell: CellSpec, impl: OurImpl): Case {
  const { d, batch: b, t, s } = cell;
  const layer: AttentionLayer = createAttention(attentionConfig(impl, d), { name: `bench_${impl.replace('-', '_')}`, useCausalMask: true });
  buildLayer(layer, [1, 1, d]);
  const notes: string[] = [];
  if (cell.phase === 'prefill') {
    const x = tf.randomNormal([b, t, d], 0, 1, 'float32', 1);
    // The output read: all of it, or one element (`readOne`; the queue runs in order, so that read waits for
    // every kernel of the call).
    const read = async (output: tf.Tensor) => {
      const one = cell.readOne === true ? tf.slice(output, [0, 0, 0], [1, 1, 1]) : output;
      await one.data();
      if (one !== output) one.dispose();
    };
    const c: Case = {
      notes,
      async run() {
        const t0 = now();
        const r = layer.callWithCache(x);
        await read(r.output);
        c.cacheBytes ??= r.cache.bytes();
        r.output.dispose();
        r.cache.dispose();
        return [now() - t0];
      },
      profile: () =>
        profiled(async () => {
          const r = layer.callWithCache(x);
          await read(r.output);
          r.output.dispose();
          r.cache.dispose();
        }),
      dispose() {
        x.dispose();
        layer.dispose();
      },
    };
    return c;
  }
  if (cell.phase === 'decode') {
    const zeros = tf.zeros([b, 1, d]);
    const template = layer.callWithCache(zeros);
    zeros.dispose();
    template.output.dispose();
    const start = syntheticCache(template.cache, s);
    template.cache.dispose();
    const x = tf.randomNormal([b, 1, d], 0, 1, 'float32', 2);
    const step = (cache: AttentionCache) => {
      const r = layer.callWithCache(x, { cache });
      return { out: r.output, next: r.cache };
    };
    return decodeCase(
      cell,
      notes,
      start,
      start.bytes(),
      step,
      (c) => c.dispose(),
      () => {
        x.dispose();
        layer.dispose();
      },
    );
  }
  // train: MSE to a random target, Adam (tfjs's, or the package's AdamW: `cell.optimizer`) over the layer's weights
  const x = tf.randomNormal([b, t, d], 0, 1, 'float32', 3);
  const target = tf.randomNormal([b, t, d], 0, 1, 'float32', 4);
  const vars = trainableVariables(layer.trainableWeights);
  const loss = () => {
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    if (cell.lossReduction !== 'rows') return tf.losses.meanSquaredError(target, y) as tf.Scalar;
    // the same mean, as a Sum over each row's D values and then one over the B T rows
    return tf.div(tf.sum(tf.sum(tf.reshape(tf.squaredDifference(y, target), [b * t, d]), 1)), b * t * d) as tf.Scalar;
  };
  if (cell.optimizer === 'adamw') {
    const adamw = new AdamW(vars, { weightDecay: 0 });
    const unit = async () => {
      const { value, grads } = tf.variableGrads(loss, vars);
      adamw.apply(
        vars.map((v) => grads[v.name]),
        1e-4,
      );
      tf.dispose(Object.values(grads));
      await value.data();
      value.dispose();
    };
    return unitCase(notes, unit, () => {
      tf.dispose([x, target]);
      adamw.dispose();
      layer.dispose();
    });
  }
  const optimizer = tf.train.adam(1e-4);
  const unit = trainStep(optimizer, loss, vars);
  return unitCase(notes, unit, () => {
    x.dispose();
    target.dispose();
    optimizer.dispose();
    layer.dispose();
  });
}

// ------------------------------------------------------------------ L2: the small causal LM

function l2Case(cell: CellSpec, impl: OurImpl): Case {
  const { d, batch: b, t, s } = cell;
  const maxLen = Math.max(t, s + (cell.steps ?? 0) + 8, 16);
  const lm = CausalLM.create(l2Config(impl, d, maxLen), `bench_lm_${impl.replace('-', '_')}`);
  const notes: string[] = [];
  if (cell.phase === 'prefill') {
    const ids = randomIds(b, t, 11);
    const unit = async (c?: Case) => {
      const r = lm.callWithCache(ids, null);
      const last = tf.slice(r.logits, [0, t - 1, 0], [b, 1, VOCAB]); // [B, 1, V]
      await last.data();
      if (c) c.cacheBytes ??= r.cache.bytes();
      last.dispose();
      r.logits.dispose();
      r.cache.dispose();
    };
    const c: Case = {
      notes,
      async run() {
        const t0 = now();
        await unit(c);
        return [now() - t0];
      },
      profile: () => profiled(() => unit()),
      dispose: () => lm.dispose(),
    };
    return c;
  }
  if (cell.phase === 'decode') {
    const template = lm.callWithCache(randomIds(b, 1, 12), null);
    template.logits.dispose();
    const layers = template.cache.layers.map((c) => syntheticCache(c, s));
    template.cache.dispose();
    const start = new ModelCache(lm.id, layers, new Array<number>(b).fill(s), false);
    const ids = randomIds(b, 1, 13);
    const step = (cache: ModelCache) => {
      const r = lm.callWithCache(ids, cache);
      return { out: r.logits as tf.Tensor, next: r.cache };
    };
    return decodeCase(
      cell,
      notes,
      start,
      start.bytes(),
      step,
      (c) => c.dispose(),
      () => lm.dispose(),
    );
  }
  const ids = tf.tensor2d(randomIds(b, t, 14), [b, t], 'int32');
  const targets = tf.tensor2d(randomIds(b, t, 15), [b, t], 'int32');
  const optimizer = tf.train.adam(1e-4);
  const vars = trainableVariables(lm.model.trainableWeights);
  const unit = trainStep(
    optimizer,
    () => sparseCrossEntropyFromLogits(targets, lm.model.apply(ids, { training: true }) as tf.Tensor),
    vars,
  );
  return unitCase(notes, unit, () => {
    ids.dispose();
    targets.dispose();
    optimizer.dispose();
    lm.dispose();
  });
}

// ------------------------------------------------------------------ peers (L1, MHA shapes)

async function peerCase(cell: CellSpec): Promise<Case> {
  const { d, batch: b, t, s } = cell;
  const notes: string[] = [];
  const x = tf.randomNormal([b, cell.phase === 'decode' ? 1 : t, d], 0, 1, 'float32', 5);
  const target = cell.phase === 'train' ? tf.randomNormal([b, t, d], 0, 1, 'float32', 6) : null;
  const optimizer = cell.phase === 'train' ? tf.train.adam(1e-4) : null;
  let forward: (x: tf.Tensor) => tf.Tensor;
  let variables: tf.Variable[];
  let disposePeer: () => void;
  let plain: PlainAttentionPeer | null = null;
  if (cell.impl === 'peer-tfjs-mha') {
    const { ctor, error } = await loadTfjsMultiHeadAttention();
    if (ctor === null) {
      tf.dispose(target ? [x, target] : [x]);
      optimizer?.dispose();
      throw new Error(`could not load tfjs-layers MultiHeadAttention: ${error}`);
    }
    const peer = new TfjsMhaPeer(ctor, d);
    let mismatch: string | null;
    try {
      const probe = tf.tidy(() => peer.forward(tf.slice(x, [0, 0, 0], [1, 1, d]))); // builds the layer
      mismatch = checkSameEngine(probe);
      probe.dispose();
    } catch (e) {
      peer.dispose();
      tf.dispose(target ? [x, target] : [x]);
      optimizer?.dispose();
      throw e;
    }
    if (mismatch !== null) throw new Error(mismatch);
    notes.push(`same tfjs-core engine and backend as @tensorflow/tfjs (${tf.getBackend()})`);
    forward = (input) => peer.forward(input);
    variables = peer.variables();
    disposePeer = () => peer.dispose();
  } else {
    plain = new PlainAttentionPeer(d, cell.impl === 'peer-plain-rope');
    const p = plain;
    forward = (input) => tf.tidy(() => p.forward(input).y);
    variables = p.variables();
    disposePeer = () => p.dispose();
  }
  const disposeAll = () => {
    x.dispose();
    target?.dispose();
    optimizer?.dispose();
    disposePeer();
  };
  if (cell.phase === 'prefill') {
    return unitCase(
      notes,
      async () => {
        const y = forward(x);
        await y.data();
        y.dispose();
      },
      disposeAll,
    );
  }
  if (cell.phase === 'decode') {
    const p = plain!;
    const h = heads(d);
    const start: PlainCache = {
      k: tf.randomNormal([b, h, s, HEAD_DIM], 0, 1, 'float32', 8) as tf.Tensor4D,
      v: tf.randomNormal([b, h, s, HEAD_DIM], 0, 1, 'float32', 9) as tf.Tensor4D,
    };
    const step = (cache: PlainCache) => {
      const r = tf.tidy(() => {
        const o = p.forward(x, cache);
        return { y: o.y, k: o.cache.k, v: o.cache.v };
      });
      return { out: r.y, next: { k: r.k, v: r.v } as PlainCache };
    };
    const disposeCache = (c: PlainCache) => tf.dispose([c.k, c.v]);
    return decodeCase(cell, notes, start, (start.k.size + start.v.size) * 4, step, disposeCache, disposeAll);
  }
  return unitCase(
    notes,
    trainStep(optimizer!, () => tf.losses.meanSquaredError(target!, forward(x)) as tf.Scalar, variables),
    disposeAll,
  );
}

// ------------------------------------------------------------------ references

function matmulCase(cell: CellSpec): Case {
  const a = tf.randomNormal([cell.m!, cell.d], 0, 1, 'float32', 20);
  const w = tf.randomNormal([cell.d, cell.d], 0, 1, 'float32', 21);
  const unit = async () => {
    const c = tf.matMul(a, w); // [M, D] @ [D, D] -> [M, D]
    const read = cell.readOne === true ? tf.slice(c, [0, 0], [1, 1]) : c; // one element: waits for the whole product
    await read.data();
    tf.dispose([c, read]);
  };
  return unitCase([], unit, () => tf.dispose([a, w]));
}

function readCase(cell: CellSpec): Case {
  const x = tf.randomNormal([(cell.m! * 2 ** 20) / 4], 0, 1, 'float32', 22);
  const unit = async () => {
    const r = tf.sum(x);
    await r.data();
    r.dispose();
  };
  return unitCase([], unit, () => x.dispose());
}

/** Builds the case of a cell on the active backend (weights and inputs are created here, untimed). */
export async function makeCase(cell: CellSpec): Promise<Case> {
  if (cell.impl === 'matmul') return matmulCase(cell);
  if (cell.impl === 'read') return readCase(cell);
  if (cell.impl.startsWith('peer-')) return peerCase(cell);
  const impl = cell.impl as OurImpl;
  return cell.level === 'L1' ? l1Case(cell, impl) : l2Case(cell, impl);
}
