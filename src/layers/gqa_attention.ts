/**
 * GroupedQueryAttention: grouped-query attention (GQA) with RoPE; MHA (numKeyValueHeads ==
 * numQueryHeads) and MQA (numKeyValueHeads == 1) are settings of it.
 *
 * Paper: Ainslie et al. 2023, arXiv 2305.13245. Reference: Hugging Face transformers `LlamaAttention`
 * (eager path); argument names from `keras.layers.GroupQueryAttention`.
 *
 * Notation:
 *   B   batch                      T    query length (new tokens)
 *   S   key length (cache + T)     D    model width (input = output features)
 *   Hq  query heads                Hkv  key/value heads (Hq % Hkv == 0)
 *   Dh  head dim
 *
 * Query head i reads KV head floor(i / (Hq/Hkv)). Scores are scaled by Dh^-1/2. RoPE (rotate-half)
 * is applied to q and k, never to v; keys are cached after RoPE. `useRope: false` leaves q and k
 * unrotated (models with learned or no position embeddings, e.g. GPT-2 style).
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { groupedAttention } from '../ops/attention_core.js';
import { project } from '../ops/dense.js';
import type { RotaryFactors } from '../ops/rope.js';
import type { ArenaSpec, CacheArena } from '../cache/cache_arena.js';
import { decodeAttention, fusedDecodeUnsupported } from '../kernels/webgpu/decode_step.js';
import { decodeAppend, decodeScores, webglDecodeUnsupported } from '../kernels/webgl/decode_step.js';
import { maskedSoftmaxValues } from '../kernels/webgl/attention_softmax.js';
import type { AttentionCache } from '../cache/attention_cache.js';
import { AttentionBaseArgs, AttentionLayer, BASE_ARG_KEYS, ForwardContext, ForwardResult } from './attention_base.js';
import { read } from './layer_utils.js';
import type { DecodeProjection } from './projections.js';

export interface GroupedQueryAttentionArgs extends AttentionBaseArgs {
  /** Size of each attention head (Keras `head_dim`). Must be even when `useRope` (RoPE rotates pairs). */
  headDim: number;
  /** Number of query heads (Keras `num_query_heads`). */
  numQueryHeads: number;
  /** Number of key/value heads; must divide `numQueryHeads` (Keras `num_key_value_heads`). */
  numKeyValueHeads: number;
  /**
   * Bias on the output projection; defaults to `useBias`. The GTA paper's 160M/500M baselines used
   * q/k/v biases without an output bias (Qwen2-style), i.e. `useBias: true, useOutputBias: false`.
   */
  useOutputBias?: boolean;
  /** Apply RoPE to queries and keys (default true); false gives position-free attention. */
  useRope?: boolean;
}

const ARG_KEYS = [...BASE_ARG_KEYS, 'headDim', 'numQueryHeads', 'numKeyValueHeads', 'useOutputBias', 'useRope'];

export class GroupedQueryAttention extends AttentionLayer {
  static className = 'GroupedQueryAttention';
  readonly kind = 'gqa' as const;
  readonly headDim: number;
  readonly numQueryHeads: number;
  readonly numKeyValueHeads: number;
  readonly useOutputBias: boolean;
  readonly useRope: boolean;
  private queryKernel: tf.LayerVariable | null = null;
  private keyKernel: tf.LayerVariable | null = null;
  private valueKernel: tf.LayerVariable | null = null;
  private outputKernel: tf.LayerVariable | null = null;
  private queryBias: tf.LayerVariable | null = null;
  private keyBias: tf.LayerVariable | null = null;
  private valueBias: tf.LayerVariable | null = null;
  private outputBias: tf.LayerVariable | null = null;

  constructor(args: GroupedQueryAttentionArgs) {
    super(args, true);
    const owner = GroupedQueryAttention.className;
    check.knownKeys(owner, args, ARG_KEYS);
    this.headDim = check.positiveInt(owner, 'headDim', args.headDim);
    this.numQueryHeads = check.positiveInt(owner, 'numQueryHeads', args.numQueryHeads);
    this.numKeyValueHeads = check.positiveInt(owner, 'numKeyValueHeads', args.numKeyValueHeads);
    check.divisible(owner, 'numQueryHeads', this.numQueryHeads, 'numKeyValueHeads', this.numKeyValueHeads);
    this.useRope = check.bool(owner, 'useRope', args.useRope, true);
    if (this.useRope) check.even(owner, 'headDim', this.headDim, 'rotary embedding rotates pairs of dimensions');
    this.useOutputBias = check.bool(owner, 'useOutputBias', args.useOutputBias, this.useBias);
  }

  protected buildWeights(d: number): void {
    const { numQueryHeads: hq, numKeyValueHeads: hkv, headDim: dh } = this;
    // Flat per-head kernels (see `addKernel`): [D, Hq*Dh] is Keras's [D, Hq, Dh] with the heads merged.
    this.queryKernel = this.addKernel('query/kernel', [d, hq * dh], [d, hq, dh]);
    this.keyKernel = this.addKernel('key/kernel', [d, hkv * dh], [d, hkv, dh]);
    this.valueKernel = this.addKernel('value/kernel', [d, hkv * dh], [d, hkv, dh]);
    this.outputKernel = this.addKernel('attention_output/kernel', [hq * dh, d], [hq, dh, d]);
    if (this.useBias) {
      this.queryBias = this.addBias('query/bias', [hq * dh], [hq, dh]);
      this.keyBias = this.addBias('key/bias', [hkv * dh], [hkv, dh]);
      this.valueBias = this.addBias('value/bias', [hkv * dh], [hkv, dh]);
    }
    if (this.useOutputBias) this.outputBias = this.addBias('attention_output/bias', [d]);
  }

  protected forward(x: tf.Tensor3D, ctx: ForwardContext): ForwardResult {
    const [b, t, d] = x.shape;
    const { numQueryHeads: hq, numKeyValueHeads: hkv, headDim: dh } = this;
    // Inference calls fold the score scale Dh^-1/2 into the kept query kernel.
    const scale = 1 / Math.sqrt(dh);
    const qScale = ctx.inference ? scale : 1;
    const x2 = tf.reshape(x, [b * t, d]); // [B, T, D] -> [N, D]
    let q: tf.Tensor4D; // [B, Hq, T, Dh]
    let k: tf.Tensor4D; // [B, Hkv, T, Dh]
    let v: tf.Tensor4D; // [B, Hkv, T, Dh]
    if (this.useRope) {
      ({ q, k } = this.queryKeyHeads(
        ctx,
        x2,
        { kernel: this.queryKernel!, bias: this.queryBias },
        { kernel: this.keyKernel!, bias: this.keyBias },
        qScale,
        b,
        t,
        hq,
        hkv,
        dh,
      ));
      v = this.plainHeads(x2, this.scaledWeights(ctx, this.valueKernel!, this.valueBias), b, t, hkv, dh);
    } else {
      [q, k, v] = this.plainHeadsFused(
        ctx,
        x2,
        [
          { kernel: this.queryKernel!, bias: this.queryBias, heads: hq, scale: qScale },
          { kernel: this.keyKernel!, bias: this.keyBias, heads: hkv },
          { kernel: this.valueKernel!, bias: this.valueBias, heads: hkv },
        ],
        b,
        t,
        dh,
      );
    }
    if (ctx.past !== null) {
      k = tf.concat([ctx.past.key as tf.Tensor4D, k], 2); // [B, Hkv, S, Dh]
      v = tf.concat([ctx.past.value as tf.Tensor4D, v], 2); // [B, Hkv, S, Dh]
    }
    const { output, probs } = groupedAttention(q, k, v, {
      scale: scale / qScale,
      bias: ctx.bias,
      causalOffset: ctx.causalOffset,
      returnProbs: ctx.wantScores,
      dropoutRate: ctx.training ? this.dropout : 0,
      dropoutSeed: ctx.dropoutSeed,
    }); // [B, Hq, T, Dh], [B, Hq, T, S]
    const merged =
      t === 1
        ? tf.reshape(output, [b, hq * dh]) // [B, Hq, 1, Dh] -> [B, Hq*Dh] (T = 1)
        : tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [b * t, hq * dh]); // [B, Hq, T, Dh] -> [B, T, Hq, Dh] -> [N, Hq*Dh]
    // [N, Hq*Dh] @ [Hq*Dh, D] -> [N, D] -> [B, T, D]
    const out = tf.reshape(project(merged, read(this.outputKernel)!, read(this.outputBias)), [b, t, d]);
    return { output: out, scores: probs, cache: { key: k, value: v } };
  }

  protected cacheAxes(): Record<string, number> {
    return { key: 2, value: 2 };
  }

  protected override decodeArenaSpec(): ArenaSpec | null {
    const { numQueryHeads: hq, numKeyValueHeads: hkv, headDim: dh } = this;
    if (fusedDecodeUnsupported(hq, hkv, hkv, dh, dh) !== null) return null;
    return {
      regions: [
        { name: 'key', heads: hkv, dim: dh },
        { name: 'value', heads: hkv, dim: dh },
      ],
      query: { heads: hq, dim: dh },
    };
  }

  /** Both decode steps' `[1, D, N]` weight, N = (Hq + 2 Hkv) Dh, the score scale folded into the query columns; kept between steps. */
  private decodeProjection(): DecodeProjection {
    return this.keptDecodeProjection(
      'decode/qkv',
      [this.queryKernel!, this.keyKernel!, this.valueKernel!],
      this.useBias ? [this.queryBias!, this.keyBias!, this.valueBias!] : null,
      1 / Math.sqrt(this.headDim),
    );
  }

  /**
   * The fused decode step (webgpu): `[q | k | v] = x [Wq/sqrt(Dh) | Wk | Wv] (+ b)` as one product, then one
   * kernel writes RoPE(k) and v into the cache arena at `position` and attends RoPE(q) over it, then the output
   * projection. Kernels: BatchMatMul, GtaDecodeAttention, Reshape, BatchMatMul (+ Add for the output bias).
   */
  protected override fusedDecodeStep(
    x: tf.Tensor3D,
    arena: CacheArena,
    position: number,
    rope: (dim: number) => RotaryFactors,
  ): tf.Tensor3D {
    const b = x.shape[0];
    const { numQueryHeads: hq, headDim: dh } = this;
    const { kernel, bias } = this.decodeProjection();
    const rows = tf.matMul(x, kernel); // [B, 1, D] @ [1, D, N] -> [B, 1, N]
    const o = decodeAttention(rows, bias, this.useRope ? rope(dh) : null, arena, position); // [B, Hq, 1, Dh]
    return this.decodeOutput(tf.reshape(o, [b, 1, hq * dh]), this.outputKernel!, this.outputBias); // [B, 1, Hq*Dh] -> [B, 1, D]
  }

  /**
   * The decode step on webgl: `[q | k | v] = x [Wq/sqrt(Dh) | Wk | Wv] + b` as one product (the bias added by its
   * kernel), RoPE(k) and v appended to the cached keys and values, RoPE(q)'s scores against the keys, their softmax
   * with the values, the output projection: 6 programs (src/kernels/webgl/decode_step.ts).
   */
  protected override webglDecodeStep(
    x: tf.Tensor3D,
    cache: AttentionCache,
    rope: (dim: number) => number[],
  ): { output: tf.Tensor3D; cache: Record<string, tf.Tensor> } | null {
    const { numQueryHeads: hq, numKeyValueHeads: hkv, headDim: dh } = this;
    if (webglDecodeUnsupported(hq, hkv, hkv, dh, dh, this.useRope) !== null) return null;
    const rows = this.decodeRows(x, this.decodeProjection()); // [B, 1, N]
    const r = this.useRope ? rope(dh) : null;
    const key = decodeAppend(cache.get('key') as tf.Tensor4D, rows, hq * dh, r); // [B, Hkv, S, Dh]
    const value = decodeAppend(cache.get('value') as tf.Tensor4D, rows, (hq + hkv) * dh, null); // [B, Hkv, S, Dh]
    const scores = decodeScores(rows, key, hq, r); // [B, Hkv, Hq/Hkv, S], scaled
    const o = maskedSoftmaxValues(scores, value, null, { scale: 1, causalOffset: null, t: 1, flat: true }); // [B, 1, Hq*Dh]
    return { output: this.decodeOutput(o, this.outputKernel!, this.outputBias, true), cache: { key, value } }; // [B, 1, D]
  }

  kvCacheElementsPerToken(): number {
    return 2 * this.numKeyValueHeads * this.headDim;
  }

  numAttentionMaps(): number {
    return this.numQueryHeads;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      headDim: this.headDim,
      numQueryHeads: this.numQueryHeads,
      numKeyValueHeads: this.numKeyValueHeads,
      useOutputBias: this.useOutputBias,
      useRope: this.useRope,
    };
  }
}
tf.serialization.registerClass(GroupedQueryAttention);

/** Arguments of the MHA/MQA factories (Keras `MultiHeadAttention` naming for the head count). */
export type MultiHeadAttentionArgs = Omit<GroupedQueryAttentionArgs, 'numQueryHeads' | 'numKeyValueHeads'> & {
  numHeads: number;
};

/** `new GroupedQueryAttention(args)`, like `tf.layers.*` factories. */
export function groupedQueryAttention(args: GroupedQueryAttentionArgs): GroupedQueryAttention {
  return new GroupedQueryAttention(args);
}

/** Multi-head attention: GQA with one KV head per query head. */
export function multiHeadAttention(args: MultiHeadAttentionArgs): GroupedQueryAttention {
  const { numHeads, ...rest } = args;
  check.positiveInt('multiHeadAttention', 'numHeads', numHeads);
  return new GroupedQueryAttention({ ...rest, numQueryHeads: numHeads, numKeyValueHeads: numHeads });
}

/** Multi-query attention: GQA with a single KV head shared by all query heads. */
export function multiQueryAttention(args: MultiHeadAttentionArgs): GroupedQueryAttention {
  const { numHeads, ...rest } = args;
  check.positiveInt('multiQueryAttention', 'numHeads', numHeads);
  return new GroupedQueryAttention({ ...rest, numQueryHeads: numHeads, numKeyValueHeads: 1 });
}
