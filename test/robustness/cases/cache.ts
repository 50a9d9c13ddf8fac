/**
 * Cached calls and their inputs: attention layers (GQA, GTA, MLA) given wrong inputs, caches of another
 * layer, disposed or of another batch size, masks holding values other than 0/1, RoPE positions that
 * are fractional, negative or out of range, misspelt call options; `RotaryEmbedding` start indices; and
 * the same misuse of a whole `CausalLM`'s cache. Valid boundaries (bool/int32 masks, fully masked rows,
 * the last RoPE position, reusing an old cache) must give finite outputs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Case } from '../classify.js';
import { AttentionLayer } from '../../../src/layers/attention_base.js';
import { GroupedQueryAttention } from '../../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../../src/layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../../../src/layers/mla_attention.js';
import { RotaryEmbedding } from '../../../src/layers/rotary_embedding.js';
import { CausalLM } from '../../../src/models/causal_lm.js';
import { MAX_ROPE_POSITIONS } from '../../../src/ops/rope.js';

const CATEGORY = 'cache and call inputs';
const D = 16;

const MAKERS: Record<'gqa' | 'gta' | 'mla', () => AttentionLayer> = {
  gqa: () => new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, seed: 1 }),
  gta: () =>
    new GroupedHeadLatentAttention({ numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8, seed: 2 }),
  mla: () => new MultiHeadLatentAttention({ numHeads: 2, kvLoraRank: 8, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 4, seed: 3 }),
};
type Kind = keyof typeof MAKERS;

/** Tensors a case creates; disposed when it ends. */
class Scope {
  private readonly tensors: tf.Tensor[] = [];
  private readonly layers: tf.layers.Layer[] = [];
  private readonly others: Array<{ dispose(): void }> = [];

  /** Keeps `t` until the case ends. */
  t<T extends tf.Tensor>(t: T): T {
    this.tensors.push(t);
    return t;
  }

  /** Disposes `x` (a cache, a model) when the case ends. */
  own<T extends { dispose(): void }>(x: T): T {
    this.others.push(x);
    return x;
  }

  /** A new layer of `kind`, disposed when the case ends. */
  layer(kind: Kind): AttentionLayer {
    const l = MAKERS[kind]();
    this.layers.push(l);
    return l;
  }

  /** `x [B, T, D]` of seeded values. */
  x(b: number, t: number, d = D): tf.Tensor3D {
    return this.t(tf.randomNormal([b, t, d], 0, 1, 'float32', 11));
  }

  dispose(): void {
    for (const o of this.others) o.dispose();
    tf.dispose(this.tensors);
    for (const l of this.layers) if (l.built) l.dispose();
  }
}

/** Runs `body` in a scope whose tensors, caches and layers are disposed afterwards; returns output values. */
function scoped(body: (s: Scope) => unknown): unknown {
  const s = new Scope();
  try {
    const r = body(s);
    if (r instanceof tf.Tensor) return r.dataSync().slice();
    if (r !== null && typeof r === 'object' && 'output' in r) {
      const out = (r as { output: tf.Tensor }).output;
      const values = out.dataSync().slice();
      s.own(r as unknown as { dispose(): void; cache?: { dispose(): void } });
      return values;
    }
    return r;
  } finally {
    s.dispose();
  }
}

/** A cached call's result made disposable as one object (output, cache and scores). */
function call(layer: AttentionLayer, x: tf.Tensor, options: Record<string, unknown> = {}) {
  const r = layer.callWithCache(x, options);
  return {
    ...r,
    dispose: () => {
      r.output.dispose();
      r.cache.dispose();
      r.scores?.dispose();
    },
  };
}

function err(name: string, run: (s: Scope) => unknown, mentions: RegExp): Case {
  return { category: CATEGORY, name, run: () => scoped(run), expect: 'error', mentions };
}

function ok(name: string, run: (s: Scope) => unknown): Case {
  return { category: CATEGORY, name, run: () => scoped(run), expect: 'ok' };
}

/** A first call on `layer` with `x [b, t, D]`, its cache kept until the case ends. */
function primed(s: Scope, layer: AttentionLayer, b = 1, t = 2) {
  return s.own(call(layer, s.x(b, t))).cache;
}

function inputCases(kind: Kind): Case[] {
  const k = kind.toUpperCase();
  return [
    err(`${k} input of rank 2`, (s) => call(s.layer(kind), s.t(tf.zeros([3, D]))), /rank 3/),
    err(`${k} input of rank 4`, (s) => call(s.layer(kind), s.t(tf.zeros([1, 2, 3, D]))), /rank 3/),
    err(`${k} int32 input`, (s) => call(s.layer(kind), s.t(tf.zeros([1, 3, D], 'int32'))), /float32/),
    err(
      `${k} input width changed after build`,
      (s) => {
        const layer = s.layer(kind);
        primed(s, layer);
        return call(layer, s.x(1, 1, D - 4));
      },
      /features|last dimension/,
    ),
    err(`${k} input a plain array`, (s) => call(s.layer(kind), [[[1, 2]]] as unknown as tf.Tensor), /tf\.Tensor/),
    err(`${k} a list of three inputs`, (s) => call(s.layer(kind), [s.x(1, 2), s.x(1, 2), s.x(1, 2)] as unknown as tf.Tensor), /list of 3/),
    ok(`${k} empty sequence (T = 0)`, (s) => call(s.layer(kind), s.x(1, 0))),
    err(
      `${k} misspelt call option paddingmask`,
      (s) => call(s.layer(kind), s.x(1, 3), { paddingmask: s.t(tf.ones([1, 3])) }),
      /paddingmask/,
    ),
    err(`${k} useCausalMask="yes" in a call`, (s) => call(s.layer(kind), s.x(1, 3), { useCausalMask: 'yes' }), /useCausalMask/),
    ok(`${k} attention scores with a cache`, (s) => {
      const layer = s.layer(kind);
      return call(layer, s.x(1, 1), { cache: primed(s, layer), returnAttentionScores: true });
    }),
  ];
}

function cacheMisuseCases(kind: Kind): Case[] {
  const k = kind.toUpperCase();
  const other: Kind = kind === 'gqa' ? 'gta' : 'gqa';
  return [
    err(`${k} cache from another ${k} layer`, (s) => call(s.layer(kind), s.x(1, 1), { cache: primed(s, s.layer(kind)) }), /another layer/),
    err(
      `${k} cache from a ${other.toUpperCase()} layer`,
      (s) => call(s.layer(kind), s.x(1, 1), { cache: primed(s, s.layer(other)) }),
      /another layer/,
    ),
    err(
      `${k} disposed cache`,
      (s) => {
        const layer = s.layer(kind);
        const r = call(layer, s.x(1, 2));
        r.dispose();
        return call(layer, s.x(1, 1), { cache: r.cache });
      },
      /disposed/,
    ),
    err(
      `${k} cache of batch 2 with input of batch 1`,
      (s) => {
        const layer = s.layer(kind);
        return call(layer, s.x(1, 1), { cache: primed(s, layer, 2) });
      },
      /batch size/,
    ),
    err(`${k} a plain object as cache`, (s) => call(s.layer(kind), s.x(1, 1), { cache: { length: 3 } }), /cache/),
    ok(`${k} the same old cache used twice`, (s) => {
      const layer = s.layer(kind);
      const cache = primed(s, layer);
      s.own(call(layer, s.x(1, 1), { cache }));
      return call(layer, s.x(1, 1), { cache });
    }),
  ];
}

function maskCases(kind: Kind): Case[] {
  const k = kind.toUpperCase();
  const padding = (s: Scope, values: number[], dtype: tf.DataType = 'float32') =>
    call(s.layer(kind), s.x(1, 3), { paddingMask: s.t(tf.tensor2d([values], [1, 3], dtype)) });
  const attention = (s: Scope, value: number) => call(s.layer(kind), s.x(1, 3), { attentionMask: s.t(tf.fill([1, 3, 3], value)) });
  return [
    err(`${k} paddingMask holding 0.5`, (s) => padding(s, [1, 0.5, 1]), /paddingMask values must be 0 or 1/),
    err(`${k} paddingMask holding 2`, (s) => padding(s, [1, 2, 1]), /paddingMask values must be 0 or 1/),
    err(`${k} paddingMask holding NaN`, (s) => padding(s, [1, NaN, 1]), /paddingMask values must be 0 or 1/),
    err(`${k} paddingMask holding -1`, (s) => padding(s, [1, -1, 1]), /paddingMask values must be 0 or 1/),
    err(`${k} paddingMask one key too long`, (s) => call(s.layer(kind), s.x(1, 3), { paddingMask: s.t(tf.ones([1, 4])) }), /paddingMask/),
    err(`${k} paddingMask of rank 1`, (s) => call(s.layer(kind), s.x(1, 3), { paddingMask: s.t(tf.ones([3])) }), /paddingMask/),
    err(
      `${k} paddingMask of another batch size`,
      (s) => call(s.layer(kind), s.x(1, 3), { paddingMask: s.t(tf.ones([2, 3])) }),
      /paddingMask/,
    ),
    err(
      `${k} paddingMask of strings`,
      (s) => call(s.layer(kind), s.x(1, 3), { paddingMask: s.t(tf.tensor2d([['1', '1', '1']])) }),
      /paddingMask/,
    ),
    ok(`${k} paddingMask int32 0/1`, (s) => padding(s, [0, 1, 1], 'int32')),
    ok(`${k} paddingMask bool`, (s) => padding(s, [0, 1, 1], 'bool')),
    ok(`${k} paddingMask all zeros`, (s) => padding(s, [0, 0, 0])),
    err(`${k} attentionMask holding 0.5`, (s) => attention(s, 0.5), /attentionMask values must be 0 or 1/),
    err(`${k} attentionMask holding NaN`, (s) => attention(s, NaN), /attentionMask values must be 0 or 1/),
    err(
      `${k} attentionMask of the wrong shape`,
      (s) => call(s.layer(kind), s.x(1, 3), { attentionMask: s.t(tf.ones([1, 3, 4])) }),
      /attentionMask/,
    ),
    ok(`${k} attentionMask all zeros`, (s) => attention(s, 0)),
    err(`${k} second input of rank 1`, (s) => call(s.layer(kind), [s.x(1, 3), s.t(tf.ones([3]))] as unknown as tf.Tensor), /second input/),
  ];
}

function positionCases(kind: Kind): Case[] {
  const k = kind.toUpperCase();
  const at = (s: Scope, values: number[], dtype: tf.DataType = 'int32') =>
    call(s.layer(kind), s.x(1, 3), { positions: s.t(tf.tensor2d([values], [1, 3], dtype)) });
  return [
    err(`${k} fractional positions`, (s) => at(s, [0.5, 1.5, 2.5], 'float32'), /position/),
    err(`${k} negative positions`, (s) => at(s, [-3, -2, -1]), /position/),
    err(`${k} NaN positions`, (s) => at(s, [0, NaN, 2], 'float32'), /position/),
    err(`${k} positions at MAX_ROPE_POSITIONS`, (s) => at(s, [0, 1, MAX_ROPE_POSITIONS]), /MAX_ROPE_POSITIONS|position/),
    err(`${k} positions beyond cached + new tokens`, (s) => at(s, [5, 6, 7]), /positions must be below 3/),
    ok(`${k} repeated positions below cached + new tokens`, (s) => at(s, [0, 0, 1])),
    ok(`${k} positions up to cached + new tokens - 1 after a cache`, (s) => {
      const layer = s.layer(kind);
      return call(layer, s.x(1, 2), { cache: primed(s, layer, 1, 3), positions: s.t(tf.tensor2d([[3, 4]], [1, 2], 'int32')) });
    }),
    err(
      `${k} positions of the wrong shape`,
      (s) => call(s.layer(kind), s.x(1, 3), { positions: s.t(tf.zeros([1, 2], 'int32')) }),
      /positions must have shape/,
    ),
    err(`${k} positions a plain array`, (s) => call(s.layer(kind), s.x(1, 3), { positions: [[0, 1, 2]] }), /positions/),
  ];
}

function rotaryCases(): Case[] {
  const rope = (s: Scope, kwargs: Record<string, unknown>) => s.t(new RotaryEmbedding().apply(s.x(1, 3, 4), kwargs) as tf.Tensor);
  const start = (label: string, value: unknown): Case =>
    err(`RotaryEmbedding startIndex=${label}`, (s) => rope(s, { startIndex: value }), /startIndex/);
  return [
    start('1.5', 1.5),
    start('-1', -1),
    start('NaN', NaN),
    start("'3'", '3'),
    start('Infinity', Infinity),
    err('RotaryEmbedding startIndex at MAX_ROPE_POSITIONS', (s) => rope(s, { startIndex: MAX_ROPE_POSITIONS }), /MAX_ROPE_POSITIONS/),
    ok('RotaryEmbedding last three positions', (s) => rope(s, { startIndex: MAX_ROPE_POSITIONS - 3 })),
    err('RotaryEmbedding fractional positions', (s) => rope(s, { positions: s.t(tf.tensor2d([[0, 0.5, 1]])) }), /position/),
    err(
      'RotaryEmbedding positions beyond MAX_ROPE_POSITIONS',
      (s) => rope(s, { positions: s.t(tf.tensor2d([[0, 1, 2 ** 30]], [1, 3], 'int32')) }),
      /MAX_ROPE_POSITIONS|position/,
    ),
    err('RotaryEmbedding odd feature width', (s) => s.t(new RotaryEmbedding().apply(s.x(1, 3, 5)) as tf.Tensor), /even/),
  ];
}

/** A tiny CausalLM (vocabulary 11, at most 8 tokens), disposed when the case ends. */
function tinyLM(s: Scope): CausalLM {
  return s.own(
    CausalLM.create({
      vocabSize: 11,
      hiddenSize: 8,
      numLayers: 1,
      intermediateSize: 16,
      maxSequenceLength: 8,
      attention: { kind: 'gta', numHeads: 2, headDim: 4, numQueryHeads: 1, numKeyHeads: 1, numValueHeads: 1, valueDim: 4 },
      seed: 1,
    }),
  );
}

function modelCases(): Case[] {
  const step = (s: Scope, lm: CausalLM, ids: number[][], cache: unknown = null, options: Record<string, unknown> = {}) => {
    const r = lm.callWithCache(ids, cache as never, options as never);
    s.own(r.cache);
    return s.t(r.logits);
  };
  const first = (s: Scope, lm: CausalLM, ids: number[][] = [[1, 2]]) => {
    const r = lm.callWithCache(ids, null);
    s.t(r.logits);
    return s.own(r.cache);
  };
  return [
    err('CausalLM cache from another model', (s) => step(s, tinyLM(s), [[1]], first(s, tinyLM(s))), /another model/),
    err(
      'CausalLM disposed cache',
      (s) => {
        const lm = tinyLM(s);
        const cache = first(s, lm);
        cache.dispose();
        return step(s, lm, [[1]], cache);
      },
      /disposed/,
    ),
    err(
      'CausalLM cache of batch 2 with ids of batch 1',
      (s) => {
        const lm = tinyLM(s);
        return step(
          s,
          lm,
          [[1]],
          first(s, lm, [
            [1, 2],
            [3, 4],
          ]),
        );
      },
      /batch size/,
    ),
    err(
      'CausalLM a layer cache instead of a model cache',
      (s) => {
        const lm = tinyLM(s);
        return step(s, lm, [[1]], first(s, lm).layers[0]);
      },
      /cache/,
    ),
    err(
      'CausalLM paddingMask on a non-empty cache',
      (s) => {
        const lm = tinyLM(s);
        return step(s, lm, [[1]], first(s, lm), { paddingMask: [[1]] });
      },
      /paddingMask/,
    ),
    err('CausalLM paddingMask of the wrong shape', (s) => step(s, tinyLM(s), [[1, 2]], null, { paddingMask: [[1, 1, 1]] }), /paddingMask/),
    err('CausalLM paddingMask holding 2', (s) => step(s, tinyLM(s), [[1, 2]], null, { paddingMask: [[2, 1]] }), /paddingMask/),
    err('CausalLM paddingMask holding NaN', (s) => step(s, tinyLM(s), [[1, 2]], null, { paddingMask: [[NaN, 1]] }), /paddingMask/),
    err('CausalLM paddingMask holding "1"', (s) => step(s, tinyLM(s), [[1, 2]], null, { paddingMask: [['1', 1]] }), /paddingMask/),
    ok('CausalLM paddingMask with a fully padded row', (s) =>
      step(
        s,
        tinyLM(s),
        [
          [1, 2],
          [3, 4],
        ],
        null,
        {
          paddingMask: [
            [0, 0],
            [1, 1],
          ],
        },
      ),
    ),
    err(
      'CausalLM cached tokens beyond maxSequenceLength',
      (s) => {
        const lm = tinyLM(s);
        return step(s, lm, [[1, 2, 3]], first(s, lm, [[1, 2, 3, 4, 5, 6]]));
      },
      /maxSequenceLength/,
    ),
    ok('CausalLM exactly maxSequenceLength tokens over two calls', (s) => {
      const lm = tinyLM(s);
      return step(s, lm, [[1, 2]], first(s, lm, [[1, 2, 3, 4, 5, 6]]));
    }),
  ];
}

/** Every cache and call-input case. */
export function cacheCases(): Case[] {
  const kinds: Kind[] = ['gqa', 'gta', 'mla'];
  return [
    ...kinds.flatMap((k) => [...inputCases(k), ...cacheMisuseCases(k), ...maskCases(k), ...positionCases(k)]),
    ...rotaryCases(),
    ...modelCases(),
  ];
}
