/**
 * TransformerDecoderBlock: the pre-norm Llama-style block shared by the GTA paper's models and the
 * reference checkpoints, with any attention mechanism chosen by config:
 *
 *   h   = x + Attention(RMSNorm(x))        (causal self-attention: GQA/MHA/MQA, GTA or MLA)
 *   out = h + SwiGLU(RMSNorm(h))
 *
 * It is a composite layer. tfjs does not track nested layers' weights by itself (docs/TFJS_NOTES.md finding 4),
 * so the block builds each sublayer through its own `apply()` inside the block's `build()` (giving
 * unique weight names such as `block_0/attention/query/kernel`) and overrides the weight getters so
 * that `fit()`, optimizers, `countParams()` and save/load see every sublayer weight.
 *
 * Notation: B batch, T new tokens, D model width.
 */
import * as tf from '@tensorflow/tfjs';
import { RESIDUAL_DROPOUT_SEED_STRIDE } from '../utils/seeds.js';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { AttentionCache } from '../cache/attention_cache.js';
import { AttentionLayer } from './attention_base.js';
import { LAYER_ARG_KEYS, LayerArgs } from './keras_args.js';
import { Kwargs, buildLayer, markUsed } from './layer_utils.js';
import type { RotaryStep } from '../ops/rope.js';
import { AttentionConfig, createAttentionLayer } from '../mechanisms/registry.js';
import { RMSNormalization } from './rms_normalization.js';
import { SwiGLUFeedForward } from './swiglu_mlp.js';

export type { AttentionConfig } from '../mechanisms/registry.js';

/** Builds an attention layer from an `AttentionConfig` (through the mechanism registry). */
export function createAttention(config: AttentionConfig, extra: { name?: string; useCausalMask?: boolean } = {}): AttentionLayer {
  return createAttentionLayer(config, extra);
}

export interface TransformerDecoderBlockArgs extends LayerArgs {
  /** The attention mechanism and its arguments. */
  attention: AttentionConfig;
  /** Width of the SwiGLU hidden layer. */
  intermediateDim: number;
  /** Epsilon of both RMSNorms. Default 1e-6. */
  normEpsilon?: number;
  /** Dropout on each residual branch (training only). Default 0. */
  dropout?: number;
  /** Seed for the sublayers' initializers and dropout. */
  seed?: number | null;
}

export interface BlockCachedResult {
  output: tf.Tensor3D;
  cache: AttentionCache;
}

export class TransformerDecoderBlock extends tf.layers.Layer {
  static className = 'TransformerDecoderBlock';
  readonly attentionConfig: AttentionConfig;
  readonly intermediateDim: number;
  readonly normEpsilon: number;
  readonly dropout: number;
  readonly seed: number | null;
  readonly attentionNorm: RMSNormalization;
  readonly attention: AttentionLayer;
  readonly mlpNorm: RMSNormalization;
  readonly mlp: SwiGLUFeedForward;
  private dropoutCalls = 0;

  constructor(args: TransformerDecoderBlockArgs) {
    super(args);
    const owner = TransformerDecoderBlock.className;
    check.knownKeys(owner, args, [...LAYER_ARG_KEYS, 'attention', 'intermediateDim', 'normEpsilon', 'dropout', 'seed']);
    this.intermediateDim = check.positiveInt(owner, 'intermediateDim', args.intermediateDim);
    this.normEpsilon = check.positiveNumber(owner, 'normEpsilon', args.normEpsilon, 1e-6);
    this.dropout = check.rate(owner, 'dropout', args.dropout);
    this.seed = check.seed(owner, args.seed);
    const seeded = this.seed === null ? {} : { seed: this.seed };
    this.attentionConfig = { ...seeded, ...args.attention } as AttentionConfig;
    this.attentionNorm = new RMSNormalization({ name: 'attention_norm', epsilon: this.normEpsilon });
    this.attention = createAttention(this.attentionConfig, { name: 'attention', useCausalMask: true });
    this.mlpNorm = new RMSNormalization({ name: 'mlp_norm', epsilon: this.normEpsilon });
    this.mlp = new SwiGLUFeedForward({
      name: 'mlp',
      intermediateDim: this.intermediateDim,
      ...(this.seed === null ? {} : { seed: this.seed + 1000 }),
    });
    this.supportsMasking = true;
  }

  private get sublayers(): tf.layers.Layer[] {
    return [this.attentionNorm, this.attention, this.mlpNorm, this.mlp];
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1];
    if (shape.length !== 3 || d === null || d === undefined) {
      throw new ValueError(
        `${TransformerDecoderBlock.className}: expected input [batch, sequence, features] with known features, got [${shape}].`,
      );
    }
    // Each sublayer is built through its own apply() so that its weights are scoped under this block.
    for (const layer of this.sublayers) buildLayer(layer, [1, 1, d]);
    this.built = true;
  }

  override get trainableWeights(): tf.LayerVariable[] {
    return this.trainable ? this.sublayers.flatMap((l) => l.trainableWeights) : [];
  }

  override set trainableWeights(_weights: tf.LayerVariable[]) {
    throw new ValueError(`${TransformerDecoderBlock.className}: trainableWeights come from the sublayers and cannot be set.`);
  }

  override get nonTrainableWeights(): tf.LayerVariable[] {
    const frozen = this.trainable ? [] : this.sublayers.flatMap((l) => l.trainableWeights);
    return [...frozen, ...this.sublayers.flatMap((l) => l.nonTrainableWeights)];
  }

  override set nonTrainableWeights(_weights: tf.LayerVariable[]) {
    throw new ValueError(`${TransformerDecoderBlock.className}: nonTrainableWeights come from the sublayers and cannot be set.`);
  }

  private residualDropout(y: tf.Tensor, training: boolean): tf.Tensor {
    if (!training || this.dropout === 0) return y;
    const seed = this.seed === null ? undefined : this.seed + RESIDUAL_DROPOUT_SEED_STRIDE * (1 + this.dropoutCalls++);
    return tf.dropout(y, this.dropout, undefined, seed);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const training = kwargs.training === true;
    return tf.tidy(() => {
      // `rope`: the model step's shared RoPE factors (a RotaryStep), checked by the attention layer.
      const attended = this.attention.call(this.attentionNorm.call(x, {}), { mask: kwargs.mask, training, rope: kwargs.rope }) as tf.Tensor;
      const h = tf.add(x, this.residualDropout(attended, training)); // [B, T, D]
      const fed = this.mlp.call(this.mlpNorm.call(h, {}), { training });
      return tf.add(h, this.residualDropout(fed, training)); // [B, T, D]
    });
  }

  /**
   * Eager incremental call through the attention layer's cache (inference: no dropout). `rope` is the
   * model step's shared RoPE factors (see `AttentionCallOptions.rope`); without it the attention builds its own.
   */
  callWithCache(
    x: tf.Tensor,
    options: { cache?: AttentionCache | null; paddingMask?: tf.Tensor | null; positions?: tf.Tensor | null; rope?: RotaryStep | null } = {},
  ): BlockCachedResult {
    if (!this.built) buildLayer(this, [1, 1, x.shape[x.rank - 1]]);
    let cache: AttentionCache | null = null;
    const output = tf.tidy(() => {
      const normed = this.attentionNorm.call(x, {});
      const r = this.attention.callWithCache(normed, options);
      cache = r.cache;
      for (const t of (cache as AttentionCache).tensors()) tf.keep(t);
      const h = tf.add(x, r.output);
      return tf.add(h, this.mlp.call(this.mlpNorm.call(h, {}), {})) as tf.Tensor3D;
    });
    return { output, cache: cache! };
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  override computeMask(_inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return ((Array.isArray(mask) ? mask[0] : mask) ?? null) as unknown as tf.Tensor;
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    const result = super.dispose(); // disposes every sublayer weight through the weight getters
    if (result.refCountAfterDispose === 0) this.attention.releaseDerivedTensors();
    return result;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      attention: { ...this.attentionConfig } as unknown as tf.serialization.ConfigDict,
      intermediateDim: this.intermediateDim,
      normEpsilon: this.normEpsilon,
      dropout: this.dropout,
      seed: this.seed,
    };
  }
}
tf.serialization.registerClass(TransformerDecoderBlock);

/** `new TransformerDecoderBlock(args)`. */
export function transformerDecoderBlock(args: TransformerDecoderBlockArgs): TransformerDecoderBlock {
  return new TransformerDecoderBlock(args);
}
