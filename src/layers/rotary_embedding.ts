/**
 * RotaryEmbedding: rotary position embedding as a weightless layer (keras-hub `RotaryEmbedding`
 * naming), rotate-half layout, computed by the same `ops/rope.ts` functions the attention layers use.
 *
 * Input `[B, T, ..., d]`: sequence on axis 1, rotated features on the last axis (d must be even).
 * `call(x, {startIndex})` rotates position `startIndex + t`; `call(x, {positions})` takes per-row
 * positions `[B, T]`.
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { applyRotaryFactors, broadcastFactors, rotaryFactorsAt, rotaryFactorsRange } from '../ops/rope.js';
import { LAYER_ARG_KEYS, LayerArgs } from './keras_args.js';
import { Kwargs } from './layer_utils.js';

export interface RotaryEmbeddingArgs extends LayerArgs {
  /** RoPE base. Default 10000. */
  maxWavelength?: number;
  /** Positions are divided by this factor (linear position interpolation). Default 1. */
  scalingFactor?: number;
}

export interface RotaryEmbeddingCallArgs {
  /** Position of the first token. Default 0. */
  startIndex?: number;
  /** `[B, T]` int32 positions, overriding `startIndex`. */
  positions?: tf.Tensor;
}

export class RotaryEmbedding extends tf.layers.Layer {
  static className = 'RotaryEmbedding';
  readonly maxWavelength: number;
  readonly scalingFactor: number;

  constructor(args: RotaryEmbeddingArgs = {}) {
    super(args);
    const owner = RotaryEmbedding.className;
    check.knownKeys(owner, args, [...LAYER_ARG_KEYS, 'maxWavelength', 'scalingFactor']);
    this.maxWavelength = check.positiveNumber(owner, 'maxWavelength', args.maxWavelength, 10000);
    this.scalingFactor = check.positiveNumber(owner, 'scalingFactor', args.scalingFactor, 1);
    this.supportsMasking = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const owner = RotaryEmbedding.className;
    if (x.rank < 3) {
      throw new ValueError(`${owner}: expected input of rank >= 3 [batch, sequence, ..., features], got shape [${x.shape}].`);
    }
    if (x.dtype !== 'float32') throw new ValueError(`${owner}: expected a float32 input, got dtype ${x.dtype}.`);
    const d = (x.shape as number[])[x.rank - 1];
    check.even(owner, 'the last input dimension', d, 'rotary embedding rotates pairs of dimensions');
    const t = (x.shape as number[])[1];
    const { startIndex = 0, positions } = kwargs as RotaryEmbeddingCallArgs;
    if (!Number.isInteger(startIndex) || startIndex < 0) {
      throw new ValueError(`${owner}: startIndex must be a non-negative integer, got ${startIndex}.`);
    }
    return tf.tidy(() => {
      let factors;
      if (positions) {
        if (positions.rank !== 2 || positions.shape[0] !== x.shape[0] || positions.shape[1] !== t) {
          throw new ValueError(`${owner}: positions must have shape [${x.shape[0]}, ${t}], got [${positions.shape}].`);
        }
        const bound = Math.max(...Array.from(positions.dataSync())) + 1;
        factors = rotaryFactorsAt(d, this.maxWavelength, this.scalingFactor, positions, bound); // [B, T, 1, d]
      } else {
        factors = rotaryFactorsRange(d, this.maxWavelength, this.scalingFactor, startIndex, t); // [1, T, 1, d]
      }
      return applyRotaryFactors(x, broadcastFactors(factors, x.rank)); // the attention layers' rotation
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxWavelength: this.maxWavelength, scalingFactor: this.scalingFactor };
  }
}
tf.serialization.registerClass(RotaryEmbedding);

/** `new RotaryEmbedding(args)`. */
export function rotaryEmbedding(args: RotaryEmbeddingArgs = {}): RotaryEmbedding {
  return new RotaryEmbedding(args);
}
