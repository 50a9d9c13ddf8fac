/**
 * Keras argument plumbing: the argument keys every layer accepts, and the kernel/bias initializer,
 * regularizer, constraint and seed arguments (checked at construction, applied to each weight a layer
 * adds, written back by `getConfig`). Nothing here knows about attention.
 */
import * as tf from '@tensorflow/tfjs';
import * as check from '../utils/errors.js';
import {
  ConstraintIdentifier,
  InitializerIdentifier,
  RegularizerIdentifier,
  getConstraint,
  getInitializer,
  getRegularizer,
  serializeIdentifier,
} from '../utils/serialization.js';

/** The constructor arguments of `tf.layers.Layer`. */
export type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Initializer = ReturnType<typeof tf.initializers.zeros>;

/** Keys every tfjs layer accepts. */
export const LAYER_ARG_KEYS = [
  'name',
  'trainable',
  'inputShape',
  'batchInputShape',
  'batchSize',
  'dtype',
  'weights',
  'inputDType',
  'customObjects',
] as const;

/** The Keras arguments of layers with kernels and biases (as in `keras.layers.Dense`). */
export interface WeightArgs extends LayerArgs {
  kernelInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
  kernelRegularizer?: RegularizerIdentifier | null;
  biasRegularizer?: RegularizerIdentifier | null;
  kernelConstraint?: ConstraintIdentifier | null;
  biasConstraint?: ConstraintIdentifier | null;
  /** Seed for initializers (and dropout, in layers that have it); null = nondeterministic. */
  seed?: number | null;
}

/** The keys of `WeightArgs` beyond `LAYER_ARG_KEYS`, in `getConfig` order (the seed last). */
export const WEIGHT_ARG_KEYS = [
  'kernelInitializer',
  'biasInitializer',
  'kernelRegularizer',
  'biasRegularizer',
  'kernelConstraint',
  'biasConstraint',
  'seed',
] as const;

/**
 * A layer whose weights follow the Keras kernel/bias arguments. Identifiers are resolved once in the
 * constructor, so that a bad one fails there, not at build; each added weight gets the next seed
 * (`seed`, `seed + 1`, ...) so seeded layers are reproducible.
 */
export abstract class KerasWeightsLayer extends tf.layers.Layer {
  readonly seed: number | null;
  protected readonly kernelInitializer: InitializerIdentifier;
  protected readonly biasInitializer: InitializerIdentifier;
  protected readonly kernelRegularizer: RegularizerIdentifier | null;
  protected readonly biasRegularizer: RegularizerIdentifier | null;
  protected readonly kernelConstraint: ConstraintIdentifier | null;
  protected readonly biasConstraint: ConstraintIdentifier | null;
  private weightCounter = 0;

  constructor(args: WeightArgs) {
    super(args);
    const owner = this.getClassName();
    this.seed = check.seed(owner, args.seed);
    this.kernelInitializer = args.kernelInitializer ?? 'glorotUniform';
    this.biasInitializer = args.biasInitializer ?? 'zeros';
    this.kernelRegularizer = args.kernelRegularizer ?? null;
    this.biasRegularizer = args.biasRegularizer ?? null;
    this.kernelConstraint = args.kernelConstraint ?? null;
    this.biasConstraint = args.biasConstraint ?? null;
    getInitializer(owner, 'kernelInitializer', this.kernelInitializer);
    getInitializer(owner, 'biasInitializer', this.biasInitializer);
    getRegularizer(owner, 'kernelRegularizer', this.kernelRegularizer);
    getRegularizer(owner, 'biasRegularizer', this.biasRegularizer);
    getConstraint(owner, 'kernelConstraint', this.kernelConstraint);
    getConstraint(owner, 'biasConstraint', this.biasConstraint);
  }

  private nextSeed(): number | null {
    const s = this.seed === null ? null : this.seed + this.weightCounter;
    this.weightCounter += 1;
    return s;
  }

  /**
   * Adds a kernel with the layer's kernel initializer/regularizer/constraint. Per-head projections are
   * stored flat, `[D, heads*dim]` and `[heads*dim, D]` (heads major), so that no forward or backward pass
   * reshapes them (on webgl reshaping `[D, heads, dim]` to `[D, heads*dim]` is a texture copy, on tensorflow
   * a kernel launch); `initShape` is the Keras (EinsumDense) shape `[D, heads, dim]` / `[heads, dim, D]`,
   * which the initializer sees, so the fan-based scales and the seeded values are those of the Keras layout.
   */
  protected addKernel(name: string, shape: number[], initShape?: number[], initializer?: InitializerIdentifier): tf.LayerVariable {
    const owner = this.getClassName();
    const init = getInitializer(owner, 'kernelInitializer', initializer ?? this.kernelInitializer, this.nextSeed());
    return this.addWeight(
      name,
      shape,
      'float32',
      initializeAs(init, initShape),
      getRegularizer(owner, 'kernelRegularizer', this.kernelRegularizer) as never,
      true,
      getConstraint(owner, 'kernelConstraint', this.kernelConstraint) ?? undefined,
    );
  }

  /** Adds a bias with the layer's bias initializer/regularizer/constraint (`initShape` as in `addKernel`). */
  protected addBias(name: string, shape: number[], initShape?: number[]): tf.LayerVariable {
    const owner = this.getClassName();
    const init = getInitializer(owner, 'biasInitializer', this.biasInitializer, this.nextSeed());
    return this.addWeight(
      name,
      shape,
      'float32',
      initializeAs(init, initShape),
      getRegularizer(owner, 'biasRegularizer', this.biasRegularizer) as never,
      true,
      getConstraint(owner, 'biasConstraint', this.biasConstraint) ?? undefined,
    );
  }

  /** Adds a weight of ones with no regularizer (RMSNorm gains). */
  protected addScale(name: string, size: number): tf.LayerVariable {
    return this.addWeight(name, [size], 'float32', tf.initializers.ones());
  }

  /** The `WEIGHT_ARG_KEYS` entries of `getConfig`, identifiers serialized. */
  protected weightArgsConfig(): tf.serialization.ConfigDict {
    return {
      kernelInitializer: serializeIdentifier(this.kernelInitializer),
      biasInitializer: serializeIdentifier(this.biasInitializer),
      kernelRegularizer: serializeIdentifier(this.kernelRegularizer),
      biasRegularizer: serializeIdentifier(this.biasRegularizer),
      kernelConstraint: serializeIdentifier(this.kernelConstraint),
      biasConstraint: serializeIdentifier(this.biasConstraint),
      seed: this.seed,
    } as tf.serialization.ConfigDict;
  }
}

/**
 * `init` producing values for `initShape` (same count as the requested shape) reshaped to the requested
 * shape; `init` itself when `initShape` is undefined.
 */
function initializeAs(init: Initializer, initShape: number[] | undefined): Initializer {
  if (initShape === undefined) return init;
  return {
    apply: (shape: tf.Shape, dtype?: tf.DataType) => tf.tidy(() => tf.reshape(init.apply(initShape, dtype), shape as number[])),
  } as unknown as Initializer;
}
