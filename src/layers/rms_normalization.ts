/**
 * RMSNormalization: `x * rsqrt(mean(x^2, last axis) + epsilon) * scale` (Keras `RMSNormalization`,
 * weight `scale` initialised to ones). Used before attention and MLP in the decoder block and inside MLA
 * on its latents.
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { rmsNorm } from '../ops/rms_norm.js';
import { LAYER_ARG_KEYS, LayerArgs } from './keras_args.js';
import { Kwargs, markUsed } from './layer_utils.js';

export interface RMSNormalizationArgs extends LayerArgs {
  /** Axis to normalise; only the last axis (-1) is supported. */
  axis?: number;
  /** Added to the mean square. Default 1e-6. */
  epsilon?: number;
}

export class RMSNormalization extends tf.layers.Layer {
  static className = 'RMSNormalization';
  readonly axis: number;
  readonly epsilon: number;
  private scale: tf.LayerVariable | null = null;
  private dim = -1;

  constructor(args: RMSNormalizationArgs = {}) {
    super(args);
    const owner = RMSNormalization.className;
    check.knownKeys(owner, args, [...LAYER_ARG_KEYS, 'axis', 'epsilon']);
    this.axis = args.axis ?? -1;
    if (this.axis !== -1) {
      throw new ValueError(`${owner}: axis must be -1 (the last axis), got ${this.axis}.`);
    }
    this.epsilon = check.positiveNumber(owner, 'epsilon', args.epsilon, 1e-6);
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1];
    if (d === null || d === undefined) {
      throw new ValueError(`${RMSNormalization.className}: the last input dimension must be defined.`);
    }
    this.dim = d;
    this.scale = this.addWeight('scale', [d], 'float32', tf.initializers.ones());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const owner = RMSNormalization.className;
    if (x.dtype !== 'float32') throw new ValueError(`${owner}: expected a float32 input, got dtype ${x.dtype}.`);
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new ValueError(`${owner}: expected last dimension ${this.dim}, got input shape [${x.shape}].`);
    }
    return tf.tidy(() => rmsNorm(x, this.scale!.read(), this.epsilon));
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, epsilon: this.epsilon };
  }
}
tf.serialization.registerClass(RMSNormalization);

/** `new RMSNormalization(args)`. */
export function rmsNormalization(args: RMSNormalizationArgs = {}): RMSNormalization {
  return new RMSNormalization(args);
}
