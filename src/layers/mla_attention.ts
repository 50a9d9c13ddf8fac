/**
 * MultiHeadLatentAttention (MLA), DeepSeek-V2 multi-head latent attention with decoupled RoPE, and the
 * absorbed decode form.
 *
 * Paper: DeepSeek-AI 2024, arXiv 2405.04434 (section 2.1). Reference: Hugging Face transformers
 * `DeepseekV3Attention` (eager), RoPE in the rotate-half layout.
 *
 * Notation:
 *   B   batch                      T    query length (new tokens)
 *   S   key length (cache + T)     D    model width (input = output features)
 *   H   heads                      Dn   no-RoPE query/key dim per head (qkNopeHeadDim)
 *   Dr  RoPE dim (qkRopeHeadDim), one RoPE key shared by all heads
 *   Dqk = Dn + Dr                  Dv   value dim per head (vHeadDim)
 *   Dc  KV latent dim (kvLoraRank)  Dq  optional query latent dim (qLoraRank)
 *
 * Naive (training) form:
 *   q = x Wq (or RMSNorm(x Wqa) Wqb) -> per head [q_nope (Dn) ; RoPE(q_rope) (Dr)]
 *   [c_raw ; k_rope_raw] = x Wkva;  c = RMSNorm(c_raw) (cached);  k_rope = RoPE(k_rope_raw) (cached, no norm)
 *   [k_nope_i ; v_i] = c Wkvb_i;  k_i = [k_nope_i ; k_rope]
 *   o_i = softmax(q_i k_i^T / sqrt(Dqk) + mask) v_i;  out = concat_i(o_i) Wo
 * Absorbed decode form (exact): fold W_UK into the query and apply W_UV after attention, so attention
 * runs in latent space as MQA with key [c ; k_rope] and value c, and the cache is never expanded:
 *   q~_i = q_nope_i W_UK_i^T (Dc);  o~_i = softmax([q~_i ; q_rope_i] [c ; k_rope]^T / sqrt(Dqk)) c;  o_i = o~_i W_UV_i
 */
import * as tf from '@tensorflow/tfjs';
import type { ArenaSpec, CacheArena } from '../cache/cache_arena.js';
import { latentUpDecode } from '../kernels/webgpu/decode_step.js';
import { mlaDecodeAttention, mlaDecodeUnsupported } from '../kernels/webgpu/mla_decode.js';
import type { RotaryFactors } from '../ops/rope.js';
import * as check from '../utils/errors.js';
import { GroupedAttentionOptions, groupedAttention } from '../ops/attention_core.js';
import { groupMatMul, project } from '../ops/dense.js';
import { matMul2d } from '../ops/matmul.js';
import { applyRotaryFactors } from '../ops/rope.js';
import { rmsNorm } from '../ops/rms_norm.js';
import { AttentionBaseArgs, AttentionLayer, BASE_ARG_KEYS, ForwardContext, ForwardResult } from './attention_base.js';
import { read } from './layer_utils.js';

export interface MultiHeadLatentAttentionArgs extends AttentionBaseArgs {
  /** Number of heads (`num_attention_heads`). */
  numHeads: number;
  /** Query compression rank (`q_lora_rank`); null/undefined = plain query projection. */
  qLoraRank?: number | null;
  /** KV latent width (`kv_lora_rank`); what the cache stores per token, with the RoPE key. */
  kvLoraRank: number;
  /** No-RoPE query/key dims per head (`qk_nope_head_dim`). */
  qkNopeHeadDim: number;
  /** RoPE dims per head, shared key (`qk_rope_head_dim`). Must be even. */
  qkRopeHeadDim: number;
  /** Value dims per head (`v_head_dim`). */
  vHeadDim: number;
  /** Epsilon of the RMSNorms on the latents (`rms_norm_eps`). Default 1e-6. */
  rmsNormEpsilon?: number;
  /** Decode single tokens in the absorbed form (attention in latent space). Default true. */
  absorbForDecode?: boolean;
}

const ARG_KEYS = [
  ...BASE_ARG_KEYS,
  'numHeads',
  'qLoraRank',
  'kvLoraRank',
  'qkNopeHeadDim',
  'qkRopeHeadDim',
  'vHeadDim',
  'rmsNormEpsilon',
  'absorbForDecode',
];

export class MultiHeadLatentAttention extends AttentionLayer {
  static className = 'MultiHeadLatentAttention';
  readonly kind = 'mla' as const;
  readonly numHeads: number;
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly qkNopeHeadDim: number;
  readonly qkRopeHeadDim: number;
  readonly vHeadDim: number;
  readonly rmsNormEpsilon: number;
  readonly absorbForDecode: boolean;
  private queryKernel: tf.LayerVariable | null = null;
  private queryAKernel: tf.LayerVariable | null = null;
  private queryABias: tf.LayerVariable | null = null;
  private queryANorm: tf.LayerVariable | null = null;
  private queryBKernel: tf.LayerVariable | null = null;
  private kvAKernel: tf.LayerVariable | null = null;
  private kvABias: tf.LayerVariable | null = null;
  private kvANorm: tf.LayerVariable | null = null;
  private kvBKernel: tf.LayerVariable | null = null;
  private outputKernel: tf.LayerVariable | null = null;
  private outputBias: tf.LayerVariable | null = null;

  constructor(args: MultiHeadLatentAttentionArgs) {
    super(args, false);
    const owner = MultiHeadLatentAttention.className;
    check.knownKeys(owner, args, ARG_KEYS);
    this.numHeads = check.positiveInt(owner, 'numHeads', args.numHeads);
    this.qLoraRank = check.optionalPositiveInt(owner, 'qLoraRank', args.qLoraRank);
    this.kvLoraRank = check.positiveInt(owner, 'kvLoraRank', args.kvLoraRank);
    this.qkNopeHeadDim = check.positiveInt(owner, 'qkNopeHeadDim', args.qkNopeHeadDim);
    this.qkRopeHeadDim = check.positiveInt(owner, 'qkRopeHeadDim', args.qkRopeHeadDim);
    this.vHeadDim = check.positiveInt(owner, 'vHeadDim', args.vHeadDim);
    this.rmsNormEpsilon = check.positiveNumber(owner, 'rmsNormEpsilon', args.rmsNormEpsilon, 1e-6);
    this.absorbForDecode = check.bool(owner, 'absorbForDecode', args.absorbForDecode, true);
    check.even(owner, 'qkRopeHeadDim', this.qkRopeHeadDim, 'rotary embedding rotates pairs of dimensions');
  }

  /** Query/key dim per head, Dn + Dr. */
  get qkHeadDim(): number {
    return this.qkNopeHeadDim + this.qkRopeHeadDim;
  }

  protected buildWeights(d: number): void {
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr, qkNopeHeadDim: dn, vHeadDim: dv } = this;
    if (this.qLoraRank === null) {
      this.queryKernel = this.addKernel('query/kernel', [d, h * this.qkHeadDim], [d, h, this.qkHeadDim]);
    } else {
      this.queryAKernel = this.addKernel('query_a/kernel', [d, this.qLoraRank]);
      if (this.useBias) this.queryABias = this.addBias('query_a/bias', [this.qLoraRank]);
      this.queryANorm = this.addScale('query_a_norm/scale', this.qLoraRank);
      this.queryBKernel = this.addKernel('query_b/kernel', [this.qLoraRank, h * this.qkHeadDim], [this.qLoraRank, h, this.qkHeadDim]);
    }
    this.kvAKernel = this.addKernel('key_value_a/kernel', [d, dc + dr]);
    if (this.useBias) this.kvABias = this.addBias('key_value_a/bias', [dc + dr]);
    this.kvANorm = this.addScale('key_value_a_norm/scale', dc);
    this.kvBKernel = this.addKernel('key_value_b/kernel', [dc, h * (dn + dv)], [dc, h, dn + dv]);
    this.outputKernel = this.addKernel('attention_output/kernel', [h * dv, d], [h, dv, d]);
    if (this.useBias) this.outputBias = this.addBias('attention_output/bias', [d]);
  }

  /** `x2 [N, D]` -> queries `[N, H*Dqk]` and the KV-A output `[N, Dc+Dr]` (one product without query compression). */
  private projections(x2: tf.Tensor, ctx: ForwardContext): { q2: tf.Tensor; a2: tf.Tensor } {
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr } = this;
    if (this.qLoraRank === null) {
      const hq = h * this.qkHeadDim;
      const kernel = this.derivedWeight(ctx, 'q+kva/kernel', [this.queryKernel, this.kvAKernel], () =>
        tf.concat([read(this.queryKernel)!, read(this.kvAKernel)!], 1),
      ); // [D, H*Dqk] | [D, Dc+Dr] -> [D, H*Dqk + Dc+Dr]
      const bias = !this.useBias
        ? null
        : // [H*Dqk + Dc+Dr]
          this.derivedWeight(ctx, 'q+kva/bias', [this.kvABias], () => tf.concat([tf.zeros([hq]), read(this.kvABias)!], 0));
      const [q2, a2] = tf.split(project(x2, kernel, bias), [hq, dc + dr], 1); // [N, D] @ [D, H*Dqk + Dc+Dr] -> [N, H*Dqk], [N, Dc+Dr]
      return { q2, a2 };
    }
    // [N, D] @ [D, Dq] -> [N, Dq]
    const cq = rmsNorm(project(x2, read(this.queryAKernel)!, read(this.queryABias)), read(this.queryANorm), this.rmsNormEpsilon);
    return {
      q2: project(cq, read(this.queryBKernel)!), // [N, Dq] @ [Dq, H*Dqk] -> [N, H*Dqk]
      a2: project(x2, read(this.kvAKernel)!, read(this.kvABias)), // [N, D] @ [D, Dc+Dr] -> [N, Dc+Dr]
    };
  }

  protected forward(x: tf.Tensor3D, ctx: ForwardContext): ForwardResult {
    const [b, t, d] = x.shape;
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr, qkNopeHeadDim: dn } = this;
    const { q2, a2 } = this.projections(tf.reshape(x, [b * t, d]), ctx); // [B, T, D] -> [N, D]
    // [N, H*Dqk] -> [B, T, H, Dqk] -> [B, T, H, Dn], [B, T, H, Dr]
    const [qNope, qRopeRaw] = tf.split(tf.reshape(q2, [b, t, h, this.qkHeadDim]), [dn, dr], -1);
    const [cRaw, kRopeRaw] = tf.split(a2, [dc, dr], -1); // [N, Dc], [N, Dr]
    let latent = tf.reshape(rmsNorm(cRaw, read(this.kvANorm), this.rmsNormEpsilon), [b, t, dc]); // [N, Dc] -> [B, T, Dc]
    // RoPE on the per-head query parts and the shared key at once: [B, T, H+1, Dr].
    const ropeIn = tf.concat([qRopeRaw, tf.reshape(kRopeRaw, [b, t, 1, dr])], 2); // [B, T, H+1, Dr]
    const rotation = ctx.rotation(dr);
    const roped =
      rotation !== null
        ? // T = 1: [B*(H+1), Dr] @ [Dr, Dr] -> [B, 1, H+1, Dr]
          tf.reshape(matMul2d(tf.reshape(ropeIn, [b * (h + 1), dr]), rotation), [b, t, h + 1, dr])
        : applyRotaryFactors(ropeIn, ctx.rotary(dr)); // [B, T, H+1, Dr]
    const [qRope, kRope] = tf.split(roped, [h, 1], 2); // [B, T, H, Dr], [B, T, 1, Dr]
    let keyRope = tf.reshape(kRope, [b, t, dr]); // [B, T, 1, Dr] -> [B, T, Dr]
    if (ctx.past !== null) {
      latent = tf.concat([ctx.past.latent, latent], 1); // [B, S, Dc]
      keyRope = tf.concat([ctx.past.keyRope, keyRope], 1); // [B, S, Dr]
    }
    const opts: GroupedAttentionOptions = {
      scale: 1 / Math.sqrt(this.qkHeadDim),
      bias: ctx.bias,
      causalOffset: ctx.causalOffset,
      returnProbs: ctx.wantScores,
      dropoutRate: ctx.training ? this.dropout : 0,
      dropoutSeed: ctx.dropoutSeed,
    };
    const attend = ctx.decode && this.absorbForDecode ? this.attendAbsorbed : this.attendNaive;
    const { merged, probs } = attend.call(this, ctx, qNope, qRope, latent, keyRope, opts); // merged [N, H*Dv]
    // [N, H*Dv] @ [H*Dv, D] -> [N, D] -> [B, T, D]
    const out = tf.reshape(project(merged, read(this.outputKernel)!, read(this.outputBias)), [b, t, d]);
    return { output: out, scores: probs, cache: { latent, keyRope } };
  }

  /**
   * Expands the latent into per-head keys and values, then multi-head attention whose scores are
   * `q_nope k_nope^T + q_rope k_rope^T` (the shared RoPE key is never repeated per head).
   */
  private attendNaive(
    ctx: ForwardContext,
    qNope: tf.Tensor,
    qRope: tf.Tensor,
    latent: tf.Tensor,
    keyRope: tf.Tensor,
    opts: GroupedAttentionOptions,
  ): { merged: tf.Tensor; probs: tf.Tensor | null } {
    const [b, t] = qNope.shape as number[];
    const s = (latent.shape as number[])[1];
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr, qkNopeHeadDim: dn, vHeadDim: dv } = this;
    // [B*S, Dc] @ [Dc, H*(Dn+Dv)] -> [B, S, H, Dn+Dv]
    const kv = tf.reshape(project(tf.reshape(latent, [b * s, dc]), read(this.kvBKernel)!), [b, s, h, dn + dv]);
    const [kNope, v] = tf.split(kv, [dn, dv], -1); // [B, S, H, Dn], [B, S, H, Dv]
    const key = tf.transpose(kNope, [0, 2, 1, 3]) as tf.Tensor4D; // [B, S, H, Dn] -> [B, H, S, Dn]
    const value = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D; // [B, S, H, Dv] -> [B, H, S, Dv]
    const query = tf.transpose(qNope, [0, 2, 1, 3]) as tf.Tensor4D; // [B, T, H, Dn] -> [B, H, T, Dn]
    const extra = {
      query: tf.transpose(qRope, [0, 2, 1, 3]) as tf.Tensor4D, // [B, T, H, Dr] -> [B, H, T, Dr]
      key: tf.reshape(keyRope, [b, 1, s, dr]) as tf.Tensor4D, // [B, S, Dr] -> [B, 1, S, Dr]
    };
    const { output, probs } = groupedAttention(query, key, value, { ...opts, extra }); // [B, H, T, Dv]
    const merged = tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [b * t, h * dv]); // -> [B, T, H, Dv] -> [N, H*Dv]
    return { merged, probs };
  }

  /**
   * W_UK `[H, Dn, Dc]` and W_UV `[H, Dc, Dv]` from Wkvb, kept between inference calls until Wkvb's value
   * changes (`derivedWeight`); under a gradient tape they are split in the call, differentiably.
   */
  private absorbedWeights(ctx: ForwardContext): { uk: tf.Tensor3D; uv: tf.Tensor3D } {
    return {
      uk: this.derivedWeight(ctx, 'key_value_b/uk', [this.kvBKernel], () => this.absorbedPart(0)) as tf.Tensor3D,
      uv: this.derivedWeight(ctx, 'key_value_b/uv', [this.kvBKernel], () => this.absorbedPart(1)) as tf.Tensor3D,
    };
  }

  /** W_UK `[H, Dn, Dc]` (index 0) or W_UV `[H, Dc, Dv]` (index 1), split from Wkvb. */
  private absorbedPart(index: 0 | 1): tf.Tensor {
    const { kvLoraRank: dc, numHeads: h, qkNopeHeadDim: dn, vHeadDim: dv } = this;
    const perHead = tf.reshape(read(this.kvBKernel)!, [dc, h, dn + dv]); // [Dc, H*(Dn+Dv)] -> [Dc, H, Dn+Dv]
    const piece = tf.split(perHead, [dn, dv], -1)[index]; // [Dc, H, Dn] or [Dc, H, Dv]
    return tf.transpose(piece, index === 0 ? [1, 2, 0] : [1, 0, 2]); // W_UK [H, Dn, Dc] or W_UV [H, Dc, Dv]
  }

  /**
   * Attention in latent space: MQA with key [c ; k_rope] and value c, scored as
   * `q~ c^T + q_rope k_rope^T` so the cache is never copied into a concatenated key.
   */
  private attendAbsorbed(
    ctx: ForwardContext,
    qNope: tf.Tensor,
    qRope: tf.Tensor,
    latent: tf.Tensor,
    keyRope: tf.Tensor,
    opts: GroupedAttentionOptions,
  ): { merged: tf.Tensor; probs: tf.Tensor | null } {
    const [b, t] = qNope.shape as number[];
    const s = (latent.shape as number[])[1];
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr, qkNopeHeadDim: dn, vHeadDim: dv } = this;
    const { uk, uv } = this.absorbedWeights(ctx);
    const qn = tf.reshape(tf.transpose(qNope, [2, 0, 1, 3]), [h, b * t, dn]) as tf.Tensor3D; // [B, T, H, Dn] -> [H, B*T, Dn]
    // [H, B*T, Dn] @ [H, Dn, Dc] -> [H, B, T, Dc] -> [B, H, T, Dc]
    const query = tf.transpose(tf.reshape(groupMatMul(qn, uk), [h, b, t, dc]), [1, 0, 2, 3]) as tf.Tensor4D;
    const value = tf.reshape(latent, [b, 1, s, dc]) as tf.Tensor4D; // [B, S, Dc] -> [B, 1, S, Dc] (also the key)
    const extra = {
      query: tf.transpose(qRope, [0, 2, 1, 3]) as tf.Tensor4D, // [B, T, H, Dr] -> [B, H, T, Dr]
      key: tf.reshape(keyRope, [b, 1, s, dr]) as tf.Tensor4D, // [B, S, Dr] -> [B, 1, S, Dr]
    };
    const { output, probs } = groupedAttention(query, value, value, { ...opts, extra }); // [B, H, T, Dc]
    const rows = tf.reshape(tf.transpose(output, [1, 0, 2, 3]), [h, b * t, dc]) as tf.Tensor3D; // [B, H, T, Dc] -> [H, B*T, Dc]
    const heads = tf.reshape(groupMatMul(rows, uv), [h, b, t, dv]); // [H, B*T, Dc] @ [H, Dc, Dv] -> [H, B, T, Dv]
    const merged = tf.reshape(tf.transpose(heads, [1, 2, 0, 3]), [b * t, h * dv]); // -> [B, T, H, Dv] -> [N, H*Dv]
    return { merged, probs };
  }

  protected cacheAxes(): Record<string, number> {
    return { latent: 1, keyRope: 1 };
  }

  protected override decodeArenaSpec(): ArenaSpec | null {
    const { numHeads: h, kvLoraRank: dc, qkRopeHeadDim: dr } = this;
    if (!this.absorbForDecode || mlaDecodeUnsupported(h, dc, dr) !== null) return null;
    return {
      regions: [
        { name: 'latent', heads: 1, dim: dc, seqAxis: 1 },
        { name: 'keyRope', heads: 1, dim: dr, seqAxis: 1 },
      ],
      query: { heads: h, dim: dc + dr },
    };
  }

  /**
   * The fused absorbed decode step (webgpu). Without query compression `[q | c_raw ; k_rope_raw] = x [Wq | Wkva]`
   * is one product; with it, `x [Wqa | Wkva]`, then the query's RMSNorm and `Wqb`. One kernel (mla_decode.ts)
   * writes c = RMSNorm(c_raw) and RoPE(k_rope) into the cache arena at `position`, absorbs W_UK into each
   * head's query and attends in latent space (o~ [B, H, 1, Dc]); one applies W_UV per head; then the output
   * projection. Kernels without query compression or biases: BatchMatMul, GtaMlaDecodeAttention,
   * GtaLatentUpDecode, BatchMatMul.
   */
  protected override fusedDecodeStep(
    x: tf.Tensor3D,
    arena: CacheArena,
    position: number,
    rope: (dim: number) => RotaryFactors,
  ): tf.Tensor3D {
    const b = x.shape[0];
    const { numHeads: h, qkRopeHeadDim: dr } = this;
    const hq = h * this.qkHeadDim;
    const first = this.qLoraRank === null ? this.queryKernel! : this.queryAKernel!;
    // [1, D, N]: N = H*Dqk + Dc+Dr, or Dq + Dc+Dr with query compression; kept between steps.
    const { kernel } = this.keptDecodeProjection('decode/q+kva', [first, this.kvAKernel!], null, 1);
    const rows = tf.matMul(x, kernel); // [B, 1, D] @ [1, D, N] -> [B, 1, N]
    let queries = rows;
    if (this.qLoraRank !== null) {
      const dq = this.qLoraRank;
      let cq = tf.slice(rows, [0, 0, 0], [b, 1, dq]); // [B, 1, Dq]
      if (this.queryABias !== null) cq = tf.add(cq, read(this.queryABias)!);
      const wqb = this.keptWeight('decode/query_b', [this.queryBKernel], () => tf.reshape(read(this.queryBKernel)!, [1, dq, hq]));
      queries = tf.matMul(rmsNorm(cq, read(this.queryANorm), this.rmsNormEpsilon), wqb); // [B, 1, Dq] @ [1, Dq, H*Dqk]
    }
    const o = mlaDecodeAttention(
      {
        queries,
        queryColumn: 0,
        rows,
        rowColumn: this.qLoraRank ?? hq,
        bias: read(this.kvABias),
        factors: rope(dr),
        gain: read(this.kvANorm)!,
        epsilon: this.rmsNormEpsilon,
        uk: this.keptWeight('key_value_b/uk', [this.kvBKernel], () => this.absorbedPart(0)),
      },
      arena,
      position,
      1 / Math.sqrt(this.qkHeadDim),
    ); // [B, H, 1, Dc]
    const uv = this.keptWeight('key_value_b/uv', [this.kvBKernel], () => this.absorbedPart(1)) as tf.Tensor3D; // [H, Dc, Dv]
    const heads = latentUpDecode(o, uv); // [B, H, 1, Dc] x [H, Dc, Dv] -> [B, 1, H*Dv]
    return this.decodeOutput(heads, this.outputKernel!, this.outputBias); // [B, 1, H*Dv] -> [B, 1, D]
  }

  kvCacheElementsPerToken(): number {
    return this.kvLoraRank + this.qkRopeHeadDim;
  }

  numAttentionMaps(): number {
    return this.numHeads;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      qLoraRank: this.qLoraRank,
      kvLoraRank: this.kvLoraRank,
      qkNopeHeadDim: this.qkNopeHeadDim,
      qkRopeHeadDim: this.qkRopeHeadDim,
      vHeadDim: this.vHeadDim,
      rmsNormEpsilon: this.rmsNormEpsilon,
      absorbForDecode: this.absorbForDecode,
    };
  }
}
tf.serialization.registerClass(MultiHeadLatentAttention);

/** `new MultiHeadLatentAttention(args)`, like `tf.layers.*` factories. */
export function multiHeadLatentAttention(args: MultiHeadLatentAttentionArgs): MultiHeadLatentAttention {
  return new MultiHeadLatentAttention(args);
}
