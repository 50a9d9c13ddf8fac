/**
 * SwiGLUFeedForward: the Llama-style gated MLP `down(silu(x Wgate) * (x Wup))`, used by every block
 * of the GTA paper's models (and HF Llama/DeepSeek/GTA references).
 *
 * Notation: D model width, I intermediate width (`intermediateDim`).
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { project } from '../ops/dense.js';
import { usesFusedKernel } from '../ops/capabilities.js';
import { fusedSwiGLU, fusedSwiGLUUnsupported, SWIGLU_KERNELS } from '../kernels/webgpu/swiglu.js';
import {
  ConstraintIdentifier,
  InitializerIdentifier,
  RegularizerIdentifier,
  getConstraint,
  getInitializer,
  getRegularizer,
  serializeIdentifier,
} from '../utils/serialization.js';
import { LAYER_ARG_KEYS, LayerArgs } from './keras_args.js';
import { Kwargs, markUsed } from './layer_utils.js';

export interface SwiGLUFeedForwardArgs extends LayerArgs {
  /** Width of the hidden (gated) layer. */
  intermediateDim: number;
  /** Biases on the three projections (`mlp_bias`). Default false. */
  useBias?: boolean;
  /** Dropout on the output (training only). Default 0. */
  dropout?: number;
  kernelInitializer?: InitializerIdentifier;
  kernelRegularizer?: RegularizerIdentifier | null;
  kernelConstraint?: ConstraintIdentifier | null;
  seed?: number | null;
}

/**
 * The gated activation `silu(gate) * up`: the fused kernels (src/kernels/webgpu/swiglu.ts, webgl/swiglu.ts:
 * one dispatch forward, two backward) where `usesFusedKernel('GtaSwiGLU')` (webgpu, webgl) and the inputs are float32 of one
 * shape; otherwise the composed ops (3 kernels forward), the reference path and every other backend's.
 */
export function swiGLU(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (usesFusedKernel(SWIGLU_KERNELS.forward) && fusedSwiGLUUnsupported(gate, up) === null) return fusedSwiGLU(gate, up);
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}

export class SwiGLUFeedForward extends tf.layers.Layer {
  static className = 'SwiGLUFeedForward';
  readonly intermediateDim: number;
  readonly useBias: boolean;
  readonly dropout: number;
  readonly seed: number | null;
  private readonly kernelInitializer: InitializerIdentifier;
  private readonly kernelRegularizer: RegularizerIdentifier | null;
  private readonly kernelConstraint: ConstraintIdentifier | null;
  private gate: tf.LayerVariable | null = null;
  private up: tf.LayerVariable | null = null;
  private down: tf.LayerVariable | null = null;
  private gateBias: tf.LayerVariable | null = null;
  private upBias: tf.LayerVariable | null = null;
  private downBias: tf.LayerVariable | null = null;
  private dim = -1;
  private dropoutCalls = 0;

  constructor(args: SwiGLUFeedForwardArgs) {
    super(args);
    const owner = SwiGLUFeedForward.className;
    check.knownKeys(owner, args, [
      ...LAYER_ARG_KEYS,
      'intermediateDim',
      'useBias',
      'dropout',
      'kernelInitializer',
      'kernelRegularizer',
      'kernelConstraint',
      'seed',
    ]);
    this.intermediateDim = check.positiveInt(owner, 'intermediateDim', args.intermediateDim);
    this.useBias = check.bool(owner, 'useBias', args.useBias, false);
    this.dropout = check.rate(owner, 'dropout', args.dropout);
    this.seed = check.seed(owner, args.seed);
    this.kernelInitializer = args.kernelInitializer ?? 'glorotUniform';
    this.kernelRegularizer = args.kernelRegularizer ?? null;
    this.kernelConstraint = args.kernelConstraint ?? null;
    getInitializer(owner, 'kernelInitializer', this.kernelInitializer);
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1];
    if (d === null || d === undefined) throw new ValueError(`${SwiGLUFeedForward.className}: the last input dimension must be defined.`);
    this.dim = d;
    const owner = SwiGLUFeedForward.className;
    const kernel = (name: string, shape2: number[], k: number) =>
      this.addWeight(
        name,
        shape2,
        'float32',
        getInitializer(owner, 'kernelInitializer', this.kernelInitializer, this.seed === null ? null : this.seed + k),
        getRegularizer(owner, 'kernelRegularizer', this.kernelRegularizer) as never,
        true,
        getConstraint(owner, 'kernelConstraint', this.kernelConstraint) ?? undefined,
      );
    const i = this.intermediateDim;
    this.gate = kernel('gate/kernel', [d, i], 0);
    this.up = kernel('up/kernel', [d, i], 1);
    this.down = kernel('down/kernel', [i, d], 2);
    if (this.useBias) {
      this.gateBias = this.addWeight('gate/bias', [i], 'float32', tf.initializers.zeros());
      this.upBias = this.addWeight('up/bias', [i], 'float32', tf.initializers.zeros());
      this.downBias = this.addWeight('down/bias', [d], 'float32', tf.initializers.zeros());
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new ValueError(`${SwiGLUFeedForward.className}: expected last dimension ${this.dim}, got input shape [${x.shape}].`);
    }
    return tf.tidy(() => {
      // Rows flattened once for the three products (one reshape in and one out, not one around each).
      const lead = x.shape.slice(0, -1);
      const rows = x.rank === 2 ? x : tf.reshape(x, [-1, this.dim]); // [..., D] -> [N, D]
      const g = project(rows, this.gate!.read(), this.gateBias?.read()); // [N, D] @ [D, I] -> [N, I]
      const u = project(rows, this.up!.read(), this.upBias?.read()); // [N, D] @ [D, I] -> [N, I]
      const down = project(swiGLU(g, u), this.down!.read(), this.downBias?.read()); // [N, I] @ [I, D] -> [N, D]
      let y = x.rank === 2 ? down : tf.reshape(down, [...lead, this.dim]); // [..., D]
      if (kwargs.training === true && this.dropout > 0) {
        const seed = this.seed === null ? undefined : this.seed + 104729 * (1 + this.dropoutCalls++);
        y = tf.dropout(y, this.dropout, undefined, seed);
      }
      return y;
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      intermediateDim: this.intermediateDim,
      useBias: this.useBias,
      dropout: this.dropout,
      kernelInitializer: serializeIdentifier(this.kernelInitializer),
      kernelRegularizer: serializeIdentifier(this.kernelRegularizer),
      kernelConstraint: serializeIdentifier(this.kernelConstraint),
      seed: this.seed,
    } as tf.serialization.ConfigDict;
  }
}
tf.serialization.registerClass(SwiGLUFeedForward);

/** `new SwiGLUFeedForward(args)`. */
export function swiGLUFeedForward(args: SwiGLUFeedForwardArgs): SwiGLUFeedForward {
  return new SwiGLUFeedForward(args);
}
