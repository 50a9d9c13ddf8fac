/**
 * GroupedHeadLatentAttention (GTA): grouped-head latent attention.
 *
 * Paper: Sun et al. 2025, "GTA: Grouped-head latenT Attention", arXiv 2506.17286.
 * Reference: plm-team/GTA `gta/gta_modeling.py` (`GTAAttention`, eager path), whose semantics we follow
 * where it and the paper differ (docs/ATTENTION_SPEC.md section 7).
 *
 * Notation:
 *   B   batch                      T    query length (new tokens)
 *   S   key length (cache + T)     D    model width (input = output features)
 *   Hh  output heads (numHeads)    Dh   head dim (also the query/key dim)
 *   W   = Hh * Dh, width of the gate and of the output projection's input
 *   Hq  query heads = shared attention maps (numQueryHeads); each is used by Hh/Hq output heads
 *   Hk  key heads (numKeyHeads)    Hc   latent value heads (numValueHeads)
 *   Dl  value latent dim (valueDim)
 *   r   = W / (Hq * Dl), the decoder's expansion rate (must be a positive integer)
 *
 * Forward (G1-G9 of docs/ATTENTION_SPEC.md section 4.3):
 *   q = RoPE(x Wq + bq) [B,Hq,T,Dh]; k = RoPE(x Wk + bk) [B,Hk,T,Dh]; c = x Wc + bc [B,Hc,T,Dl] (no RoPE)
 *   map g reads key head floor(g*Hk/Hq) and latent head floor(g*Hc/Hq) (contiguous blocks)
 *   o_g = softmax(q_g k^T / sqrt(Dh) + mask) c        -> one attention-weighted latent per map [T, Dl]
 *   u_g = o_g (R + Delta_g), R = [I_Dl ... I_Dl] (r copies side by side), Delta_g [Dl, r*Dl]
 *   out = (sigmoid(x Wg + bg) * concat_g(u_g)) Wo     (gate from the query token; Wo has no bias)
 * The cache holds k (post-RoPE) and the latent c: Hk*Dh + Hc*Dl elements per token.
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { groupedAttention } from '../ops/attention_core.js';
import { project } from '../ops/dense.js';
import { gatedValueDecoder } from '../ops/gated_decoder.js';
import { matMul2d } from '../ops/matmul.js';
import { InitializerIdentifier, serializeIdentifier } from '../utils/serialization.js';
import type { RotaryFactors } from '../ops/rope.js';
import type { ArenaSpec, CacheArena } from '../cache/cache_arena.js';
import { decodeAttention, fusedDecodeUnsupported, gatedLatentDecode } from '../kernels/webgpu/decode_step.js';
import { decodeAppend, decodeGatedLatent, decodeScores, webglDecodeUnsupported } from '../kernels/webgl/decode_step.js';
import { maskedSoftmaxValues } from '../kernels/webgl/attention_softmax.js';
import type { AttentionCache } from '../cache/attention_cache.js';
import { AttentionBaseArgs, AttentionLayer, BASE_ARG_KEYS, ForwardContext, ForwardResult } from './attention_base.js';
import { read } from './layer_utils.js';
import type { DecodeProjection } from './projections.js';

export interface GroupedHeadLatentAttentionArgs extends AttentionBaseArgs {
  /** Output heads (`num_attention_heads`); with `headDim` sets the gate/output width W. */
  numHeads: number;
  /** Head dim, also the query/key dim (`head_dim`). Must be even (RoPE). */
  headDim: number;
  /** Query heads = shared attention maps (`num_query_heads`). */
  numQueryHeads: number;
  /** Key heads (`num_key_heads`); must divide `numQueryHeads`. */
  numKeyHeads: number;
  /** Latent value heads (`num_value_heads`); must divide `numQueryHeads`. */
  numValueHeads: number;
  /** Width of each value latent (`value_dim`); `numHeads*headDim / (numQueryHeads*valueDim)` must be a positive integer. */
  valueDim: number;
  /** Initializer of the learned decoder delta (`v_b_proj`). Default N(0, 0.02) as in the released code. */
  valueDecoderInitializer?: InitializerIdentifier;
}

const ARG_KEYS = [
  ...BASE_ARG_KEYS,
  'numHeads',
  'headDim',
  'numQueryHeads',
  'numKeyHeads',
  'numValueHeads',
  'valueDim',
  'valueDecoderInitializer',
];

const DEFAULT_DECODER_INIT: InitializerIdentifier = { className: 'RandomNormal', config: { mean: 0, stddev: 0.02 } };

export class GroupedHeadLatentAttention extends AttentionLayer {
  static className = 'GroupedHeadLatentAttention';
  readonly kind = 'gta' as const;
  readonly numHeads: number;
  readonly headDim: number;
  readonly numQueryHeads: number;
  readonly numKeyHeads: number;
  readonly numValueHeads: number;
  readonly valueDim: number;
  /** Decoder expansion rate r = numHeads*headDim / (numQueryHeads*valueDim). */
  readonly expandRate: number;
  private readonly valueDecoderInitializer: InitializerIdentifier;
  private queryKernel: tf.LayerVariable | null = null;
  private keyKernel: tf.LayerVariable | null = null;
  private valueKernel: tf.LayerVariable | null = null;
  private gateKernel: tf.LayerVariable | null = null;
  private decoderKernel: tf.LayerVariable | null = null;
  private outputKernel: tf.LayerVariable | null = null;
  private queryBias: tf.LayerVariable | null = null;
  private keyBias: tf.LayerVariable | null = null;
  private valueBias: tf.LayerVariable | null = null;
  private gateBias: tf.LayerVariable | null = null;

  constructor(args: GroupedHeadLatentAttentionArgs) {
    super(args, true);
    const owner = GroupedHeadLatentAttention.className;
    check.knownKeys(owner, args, ARG_KEYS);
    this.numHeads = check.positiveInt(owner, 'numHeads', args.numHeads);
    this.headDim = check.positiveInt(owner, 'headDim', args.headDim);
    this.numQueryHeads = check.positiveInt(owner, 'numQueryHeads', args.numQueryHeads);
    this.numKeyHeads = check.positiveInt(owner, 'numKeyHeads', args.numKeyHeads);
    this.numValueHeads = check.positiveInt(owner, 'numValueHeads', args.numValueHeads);
    this.valueDim = check.positiveInt(owner, 'valueDim', args.valueDim);
    check.even(owner, 'headDim', this.headDim, 'rotary embedding rotates pairs of dimensions');
    check.divisible(owner, 'numQueryHeads', this.numQueryHeads, 'numKeyHeads', this.numKeyHeads);
    check.divisible(owner, 'numQueryHeads', this.numQueryHeads, 'numValueHeads', this.numValueHeads);
    const width = this.numHeads * this.headDim;
    const r = width / (this.numQueryHeads * this.valueDim);
    if (!Number.isInteger(r) || r < 1) {
      throw new ValueError(
        `${owner}: numHeads*headDim / (numQueryHeads*valueDim) must be a positive integer ` +
          `(the value decoder's expansion rate), got ${width} / (${this.numQueryHeads}*${this.valueDim}) = ` +
          `${+r.toFixed(4)}.`,
      );
    }
    this.expandRate = r;
    this.valueDecoderInitializer = args.valueDecoderInitializer ?? DEFAULT_DECODER_INIT;
  }

  /** Gate/output width W = numHeads * headDim. */
  get width(): number {
    return this.numHeads * this.headDim;
  }

  protected buildWeights(d: number): void {
    const { numQueryHeads: hq, numKeyHeads: hk, numValueHeads: hc, headDim: dh, valueDim: dl } = this;
    const w = this.width;
    // Flat per-head kernels (see `addKernel`): [D, Hq*Dh] is Keras's [D, Hq, Dh] with the heads merged.
    this.queryKernel = this.addKernel('query/kernel', [d, hq * dh], [d, hq, dh]);
    this.keyKernel = this.addKernel('key/kernel', [d, hk * dh], [d, hk, dh]);
    this.valueKernel = this.addKernel('value/kernel', [d, hc * dl], [d, hc, dl]);
    this.gateKernel = this.addKernel('gate/kernel', [d, w]);
    // One [Dl, r*Dl] matrix per query group, used as a batch of matrices (never reshaped).
    this.decoderKernel = this.addKernel('value_decoder/kernel', [hq, dl, this.expandRate * dl], undefined, this.valueDecoderInitializer);
    this.outputKernel = this.addKernel('attention_output/kernel', [w, d], [this.numHeads, dh, d]);
    if (this.useBias) {
      this.queryBias = this.addBias('query/bias', [hq * dh], [hq, dh]);
      this.keyBias = this.addBias('key/bias', [hk * dh], [hk, dh]);
      this.valueBias = this.addBias('value/bias', [hc * dl], [hc, dl]);
      this.gateBias = this.addBias('gate/bias', [w]);
    }
  }

  /**
   * The value decoder on per-map latents `rows [Hq, N, Dl]` -> `[Hq, N, r*Dl]`: `tile_r(o) + o Delta`.
   * Training differentiates through Delta and uses that form.
   */
  private foldedDecoderWeight(ctx: ForwardContext): tf.Tensor {
    return this.derivedWeight(ctx, 'value_decoder/folded', [this.decoderKernel], () => {
      const { numQueryHeads: hq, valueDim: dl, expandRate: r } = this;
      const delta = read(this.decoderKernel)!; // [Hq, Dl, r*Dl]
      const folded = tf.add(delta, tf.tile(tf.eye(dl), [1, r])); // [Hq, Dl, r*Dl] + R [Dl, r*Dl]
      // Block g at rows g*Dl.., columns g*r*Dl..: [Hq, Dl, 1, r*Dl] * I_Hq [Hq, 1, Hq, 1] -> [Hq, Dl, Hq, r*Dl].
      const diagonal = tf.reshape(tf.eye(hq), [hq, 1, hq, 1]);
      const blocks = tf.mul(tf.reshape(folded, [hq, dl, 1, r * dl]), diagonal);
      return tf.reshape(blocks, [hq * dl, hq * r * dl]); // -> [Hq*Dl, W]
    });
  }

  protected forward(x: tf.Tensor3D, ctx: ForwardContext): ForwardResult {
    const [b, t, d] = x.shape;
    const { numQueryHeads: hq, numKeyHeads: hk, numValueHeads: hc, headDim: dh, valueDim: dl } = this;
    // Inference calls fold the score scale Dh^-1/2 into the kept query kernel.
    const scale = 1 / Math.sqrt(dh);
    const qScale = ctx.inference ? scale : 1;
    const x2 = tf.reshape(x, [b * t, d]); // [B, T, D] -> [N, D]
    const heads = this.queryKeyHeads(
      ctx,
      x2,
      { kernel: this.queryKernel!, bias: this.queryBias },
      { kernel: this.keyKernel!, bias: this.keyBias },
      qScale,
      b,
      t,
      hq,
      hk,
      dh,
    );
    const q = heads.q; // [B, Hq, T, Dh]
    let k = heads.k; // [B, Hk, T, Dh]
    let c = this.plainHeads(x2, this.scaledWeights(ctx, this.valueKernel!, this.valueBias), b, t, hc, dl); // [B, Hc, T, Dl]
    const g2 = project(x2, read(this.gateKernel)!, read(this.gateBias)); // [N, D] @ [D, W] -> [N, W]
    if (ctx.past !== null) {
      k = tf.concat([ctx.past.key as tf.Tensor4D, k], 2); // [B, Hk, S, Dh]
      c = tf.concat([ctx.past.latent as tf.Tensor4D, c], 2); // [B, Hc, S, Dl]
    }
    const { output: o, probs } = groupedAttention(q, k, c, {
      scale: scale / qScale,
      bias: ctx.bias,
      causalOffset: ctx.causalOffset,
      returnProbs: ctx.wantScores,
      dropoutRate: ctx.training ? this.dropout : 0,
      dropoutSeed: ctx.dropoutSeed,
    }); // o: [B, Hq, T, Dl], probs: [B, Hq, T, S]
    let gated: tf.Tensor;
    if (ctx.decode) {
      // [B, Hq, 1, Dl] -> [B, Hq*Dl] @ [Hq*Dl, W] -> [B, W] (group-major)
      const u = matMul2d(tf.reshape(o, [b, hq * dl]), this.foldedDecoderWeight(ctx));
      gated = tf.mul(tf.sigmoid(g2), u); // sigmoid([N, W]) * [N, W]
    } else {
      // sigmoid(g2) * (o expanded by R + Delta per group): [B, Hq, T, Dl] -> [N, W] (group-major)
      gated = gatedValueDecoder(o as tf.Tensor4D, g2 as tf.Tensor2D, read(this.decoderKernel)! as tf.Tensor3D);
    }
    const out = project(gated, read(this.outputKernel)!); // [N, W] @ [W, D] -> [N, D]
    return { output: tf.reshape(out, [b, t, d]), scores: probs, cache: { key: k, latent: c } }; // [N, D] -> [B, T, D]
  }

  protected cacheAxes(): Record<string, number> {
    return { key: 2, latent: 2 };
  }

  protected override decodeArenaSpec(): ArenaSpec | null {
    const { numQueryHeads: hq, numKeyHeads: hk, numValueHeads: hc, headDim: dh, valueDim: dl } = this;
    if (fusedDecodeUnsupported(hq, hk, hc, dh, dl) !== null) return null;
    return {
      regions: [
        { name: 'key', heads: hk, dim: dh },
        { name: 'latent', heads: hc, dim: dl },
      ],
      query: { heads: hq, dim: dh },
    };
  }

  /**
   * Both decode steps' `[1, D, N]` weight, N = Hq Dh + Hk Dh + Hc Dl + W, the score scale folded into the query
   * columns; kept between steps.
   */
  private decodeProjection(): DecodeProjection {
    return this.keptDecodeProjection(
      'decode/qkcg',
      [this.queryKernel!, this.keyKernel!, this.valueKernel!, this.gateKernel!],
      this.useBias ? [this.queryBias!, this.keyBias!, this.valueBias!, this.gateBias!] : null,
      1 / Math.sqrt(this.headDim),
    );
  }

  /**
   * The fused decode step (webgpu): `[q | k | c | g] = x [Wq/sqrt(Dh) | Wk | Wc | Wg] (+ b)` as one product;
   * one kernel writes RoPE(k) and the latent c into the cache arena at `position` and attends each map's
   * RoPE(q) over them (o [B, Hq, 1, Dl]); one kernel applies the decoder and the gate,
   * `sigmoid(g) * concat_g(o_g (R + Delta_g))`; then the output projection. Kernels: BatchMatMul,
   * GtaDecodeAttention, GtaGatedLatentDecode, BatchMatMul.
   */
  protected override fusedDecodeStep(
    x: tf.Tensor3D,
    arena: CacheArena,
    position: number,
    rope: (dim: number) => RotaryFactors,
  ): tf.Tensor3D {
    const { numQueryHeads: hq, numKeyHeads: hk, numValueHeads: hc, headDim: dh, valueDim: dl, expandRate: r } = this;
    const { kernel, bias } = this.decodeProjection();
    const rows = tf.matMul(x, kernel); // [B, 1, D] @ [1, D, N] -> [B, 1, N]
    const o = decodeAttention(rows, bias, rope(dh), arena, position); // [B, Hq, 1, Dl]
    // R + Delta per map: [Hq, Dl, r*Dl] (R = [I ... I]); kept between steps.
    const blocks = this.keptWeight('decode/decoder-blocks', [this.decoderKernel], () =>
      tf.add(read(this.decoderKernel)!, tf.tile(tf.eye(dl), [1, r])),
    ) as tf.Tensor3D;
    const u = gatedLatentDecode(o, rows, bias, blocks, (hq + hk) * dh + hc * dl); // [B, 1, W]
    return this.decodeOutput(u, this.outputKernel!, null); // [B, 1, W] -> [B, 1, D]
  }

  /**
   * The decode step on webgl: `[q | k | c | g] = x [Wq/sqrt(Dh) | Wk | Wc | Wg] + b` as one product, RoPE(k) and the
   * latent c appended to the cached keys and latents, each map's RoPE(q) scored against its key head, the softmax
   * with the latents, the decoder and gate `sigmoid(g) * concat_g(o_g (R + Delta_g))`, the output projection:
   * 7 programs (src/kernels/webgl/decode_step.ts).
   */
  protected override webglDecodeStep(
    x: tf.Tensor3D,
    cache: AttentionCache,
    rope: (dim: number) => number[],
  ): { output: tf.Tensor3D; cache: Record<string, tf.Tensor> } | null {
    const { numQueryHeads: hq, numKeyHeads: hk, numValueHeads: hc, headDim: dh, valueDim: dl, expandRate: r } = this;
    if (webglDecodeUnsupported(hq, hk, hc, dh, dl, true) !== null) return null;
    const rows = this.decodeRows(x, this.decodeProjection()); // [B, 1, N]
    const factors = rope(dh);
    const key = decodeAppend(cache.get('key') as tf.Tensor4D, rows, hq * dh, factors); // [B, Hk, S, Dh]
    const latent = decodeAppend(cache.get('latent') as tf.Tensor4D, rows, (hq + hk) * dh, null); // [B, Hc, S, Dl]
    const b = x.shape[0];
    const s = key.shape[2];
    let scores = decodeScores(rows, key, hq, factors); // [B, Hk, Hq/Hk, S], scaled
    if (hk !== hc) scores = tf.reshape(scores, [b, hc, hq / hc, s]); // maps (rows) regrouped per latent head
    const o = maskedSoftmaxValues(scores, latent, null, { scale: 1, causalOffset: null, t: 1, flat: true }); // [B, 1, Hq*Dl]
    // R + Delta per map: [Hq, Dl, r*Dl] (R = [I ... I]); kept between steps.
    const blocks = this.keptWeight('decode/decoder-blocks', [this.decoderKernel], () =>
      tf.add(read(this.decoderKernel)!, tf.tile(tf.eye(dl), [1, r])),
    ) as tf.Tensor3D;
    const u = decodeGatedLatent(o, rows, blocks, (hq + hk) * dh + hc * dl); // [B, 1, W]
    return { output: this.decodeOutput(u, this.outputKernel!, null), cache: { key, latent } }; // [B, 1, D]
  }

  kvCacheElementsPerToken(): number {
    return this.numKeyHeads * this.headDim + this.numValueHeads * this.valueDim;
  }

  numAttentionMaps(): number {
    return this.numQueryHeads;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      headDim: this.headDim,
      numQueryHeads: this.numQueryHeads,
      numKeyHeads: this.numKeyHeads,
      numValueHeads: this.numValueHeads,
      valueDim: this.valueDim,
      valueDecoderInitializer: serializeIdentifier(this.valueDecoderInitializer),
    } as tf.serialization.ConfigDict;
  }
}
tf.serialization.registerClass(GroupedHeadLatentAttention);

/** `new GroupedHeadLatentAttention(args)`, like `tf.layers.*` factories. */
export function groupedHeadLatentAttention(args: GroupedHeadLatentAttentionArgs): GroupedHeadLatentAttention {
  return new GroupedHeadLatentAttention(args);
}
