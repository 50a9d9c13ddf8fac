/**
 * TokenEmbedding: a token table `[V, D]` usable in both directions, like Keras `ReversibleEmbedding`.
 * Called on int32 ids `[B, T]` it returns vectors `[B, T, D]`; called on float32 hidden states
 * `[B, T, D]` it returns logits `[B, T, V] = h E^T` (tied output head). The direction is chosen by the
 * input's dtype, so one shared layer instance serves as embedding and head in a functional model
 * (tfjs does not replay call options such as Keras's `reverse=True` in fit/predict).
 *
 * LMHead: an untied output projection `[D, V]` without bias.
 */
import * as tf from '@tensorflow/tfjs';
import { hasKernel, usesFusedTrainingKernels } from '../ops/capabilities.js';
import { fusedEmbeddingGrad, fusedEmbeddingGradUnsupported } from '../kernels/webgpu/embedding_grad.js';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { project } from '../ops/dense.js';
import { batchedMatMul, matMul2d, useTwoDimProducts } from '../ops/matmul.js';
import { InitializerIdentifier, getInitializer, serializeIdentifier } from '../utils/serialization.js';
import { LAYER_ARG_KEYS, LayerArgs } from './keras_args.js';
import { Kwargs, markUsed } from './layer_utils.js';

export interface TokenEmbeddingArgs extends LayerArgs {
  /** Vocabulary size V. */
  inputDim: number;
  /** Embedding width D. */
  outputDim: number;
  /** Default: normal with stddev 0.02. */
  embeddingsInitializer?: InitializerIdentifier;
  seed?: number | null;
}

/**
 * `gather(table, ids)` whose gradient also works where tfjs's does not: gather's gradient uses the
 * UnsortedSegmentSum kernel, which the wasm backend lacks, so there the table gradient is computed as
 * `oneHot(ids)^T @ dy` (a matMul every backend has). Where `usesFusedTrainingKernels()` (webgpu) and the
 * lookup fits (`fusedEmbeddingGradUnsupported`), the table gradient is one fused dispatch
 * (src/kernels/webgpu/embedding_grad.ts).
 */
export function embeddingLookup(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  const [v, d] = table.shape as [number, number];
  const fused = usesFusedTrainingKernels() && fusedEmbeddingGradUnsupported(table, ids) === null;
  const lookup = tf.customGrad(((t: tf.Tensor) => ({
    value: tf.gather(t, ids), // [..., D]
    gradFunc: (dy: tf.Tensor) => {
      if (fused) return fusedEmbeddingGrad(table, ids, dy); // webgpu: one dispatch, [V, D]
      const flatIds = tf.reshape(ids, [-1]); // [N]
      const flatDy = tf.reshape(dy, [-1, d]); // [N, D]
      if (hasKernel('UnsortedSegmentSum')) {
        return tf.unsortedSegmentSum(flatDy, flatIds as tf.Tensor1D, v); // [V, D]
      }
      const hot = tf.oneHot(flatIds as tf.Tensor1D, v); // [N, V]
      // wasm runs transposed products in a scalar loop: transpose first, then a plain 2-D product.
      return useTwoDimProducts()
        ? matMul2d(tf.transpose(hot), flatDy) // [V, N] @ [N, D] -> [V, D]
        : tf.matMul(hot, flatDy, true, false); // [N, V]^T @ [N, D] -> [V, D]
    },
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return lookup(table);
}

const DEFAULT_EMBEDDING_INIT: InitializerIdentifier = { className: 'RandomNormal', config: { mean: 0, stddev: 0.02 } };

export class TokenEmbedding extends tf.layers.Layer {
  static className = 'TokenEmbedding';
  readonly inputDim: number;
  readonly outputDim: number;
  readonly seed: number | null;
  private readonly embeddingsInitializer: InitializerIdentifier;
  private table: tf.LayerVariable | null = null;

  constructor(args: TokenEmbeddingArgs) {
    super(args);
    const owner = TokenEmbedding.className;
    check.knownKeys(owner, args, [...LAYER_ARG_KEYS, 'inputDim', 'outputDim', 'embeddingsInitializer', 'seed']);
    this.inputDim = check.positiveInt(owner, 'inputDim', args.inputDim);
    this.outputDim = check.positiveInt(owner, 'outputDim', args.outputDim);
    this.seed = check.seed(owner, args.seed);
    this.embeddingsInitializer = args.embeddingsInitializer ?? DEFAULT_EMBEDDING_INIT;
    getInitializer(owner, 'embeddingsInitializer', this.embeddingsInitializer);
  }

  override build(): void {
    this.table = this.addWeight(
      'embeddings',
      [this.inputDim, this.outputDim],
      'float32',
      getInitializer(TokenEmbedding.className, 'embeddingsInitializer', this.embeddingsInitializer, this.seed),
    );
    this.built = true;
  }

  /** The `[V, D]` table. */
  get embeddings(): tf.LayerVariable {
    if (this.table === null) throw new ValueError(`${TokenEmbedding.className}: the layer is not built.`);
    return this.table;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() => {
      if (x.dtype === 'float32') {
        if (x.shape[x.rank - 1] !== this.outputDim) {
          throw new ValueError(`${TokenEmbedding.className}: hidden states must have last dimension ${this.outputDim}, got [${x.shape}].`);
        }
        const lead = x.shape.slice(0, -1);
        const logits = batchedMatMul(tf.reshape(x, [-1, this.outputDim]), this.table!.read(), true); // [N, D] @ [V, D]^T -> [N, V]
        return tf.reshape(logits, [...lead, this.inputDim]); // [..., V]
      }
      if (x.dtype !== 'int32') throw new ValueError(`${TokenEmbedding.className}: token ids must be int32, got ${x.dtype}.`);
      return embeddingLookup(this.table!.read(), x); // [..., D]
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    // Hidden states (last dim D, rank 3) map to logits; ids map to vectors.
    if (shape.length === 3 && shape[2] === this.outputDim) return [...shape.slice(0, -1), this.inputDim];
    return [...shape, this.outputDim];
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      inputDim: this.inputDim,
      outputDim: this.outputDim,
      embeddingsInitializer: serializeIdentifier(this.embeddingsInitializer),
      seed: this.seed,
    } as tf.serialization.ConfigDict;
  }
}
tf.serialization.registerClass(TokenEmbedding);

export interface LMHeadArgs extends LayerArgs {
  /** Vocabulary size V. */
  units: number;
  kernelInitializer?: InitializerIdentifier;
  seed?: number | null;
}

export class LMHead extends tf.layers.Layer {
  static className = 'LMHead';
  readonly units: number;
  readonly seed: number | null;
  private readonly kernelInitializer: InitializerIdentifier;
  private kernel: tf.LayerVariable | null = null;

  constructor(args: LMHeadArgs) {
    super(args);
    check.knownKeys(LMHead.className, args, [...LAYER_ARG_KEYS, 'units', 'kernelInitializer', 'seed']);
    this.units = check.positiveInt(LMHead.className, 'units', args.units);
    this.seed = check.seed(LMHead.className, args.seed);
    this.kernelInitializer = args.kernelInitializer ?? DEFAULT_EMBEDDING_INIT;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1] as number;
    this.kernel = this.addWeight(
      'kernel',
      [d, this.units],
      'float32',
      getInitializer(LMHead.className, 'kernelInitializer', this.kernelInitializer, this.seed),
    );
    this.built = true;
  }

  /** The `[D, V]` kernel. */
  get weight(): tf.LayerVariable {
    if (this.kernel === null) throw new ValueError(`${LMHead.className}: the layer is not built.`);
    return this.kernel;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() => project(x, this.kernel!.read())); // [..., D] @ [D, V] -> [..., V]
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      kernelInitializer: serializeIdentifier(this.kernelInitializer),
      seed: this.seed,
    } as tf.serialization.ConfigDict;
  }
}
tf.serialization.registerClass(LMHead);
