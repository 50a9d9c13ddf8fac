/**
 * The page's training loop for one model, built from the package's browser-safe pieces: `Batcher`
 * (seeded random windows), `RotaryStep`, `sparseCrossEntropyFromLogits`, `clipScale`, `AdamW` and `warmupCosine`,
 * the same steps as `train()` in src/train/trainer.ts. One call of `trainStep()` is one optimizer step; the
 * page awaits `tf.nextFrame()` between steps so the UI stays responsive.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AdamW,
  Batcher,
  CausalLM,
  clipScale,
  evaluate,
  RotaryStep,
  sparseCrossEntropyFromLogits,
  warmupCosine,
  type VariantName,
} from 'tfjs-gta';

export interface RunOptions {
  batchSize: number;
  sequenceLength: number;
  steps: number;
  learningRate: number;
  seed: number;
  /** Steps left out of the tokens/s figure (the first steps compile WebGL shaders). Default 2. */
  warmupTimingSteps?: number;
}

export class TrainingRun {
  readonly variant: VariantName;
  readonly lm: CausalLM;
  readonly options: RunOptions;
  /** [step, training loss] after each step. */
  readonly losses: Array<[number, number]> = [];
  step = 0;
  validationLoss: number | null = null;
  /** Milliseconds of each step, in order. */
  readonly stepMs: number[] = [];
  private readonly variables: tf.Variable[];
  private readonly optimizer: AdamW;
  private readonly batcher: Batcher;

  constructor(variant: VariantName, lm: CausalLM, trainIds: Int32Array, options: RunOptions) {
    this.variant = variant;
    this.lm = lm;
    this.options = options;
    this.variables = lm.model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.optimizer = new AdamW(this.variables, { weightDecay: 0.1, beta2: 0.95 });
    this.batcher = new Batcher(trainIds, { batchSize: options.batchSize, sequenceLength: options.sequenceLength, seed: options.seed });
  }

  get done(): boolean {
    return this.step >= this.options.steps;
  }

  /** One AdamW step on the next batch; returns the batch's loss (nats/token). */
  async trainStep(): Promise<number> {
    const o = this.options;
    const t0 = performance.now();
    const lr = warmupCosine(this.step, {
      peakLearningRate: o.learningRate,
      warmupSteps: Math.min(100, Math.floor(o.steps / 10)),
      totalSteps: o.steps,
    });
    const { inputs, targets } = this.batcher.next();
    // RoPE factors built once for every block of the step, as train() does.
    const rope = new RotaryStep({ start: 0, length: o.sequenceLength });
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
    try {
      result = tf.variableGrads(
        () => sparseCrossEntropyFromLogits(targets, this.lm.model.apply(inputs, { training: true, rope }) as tf.Tensor),
        this.variables,
      );
    } finally {
      rope.dispose();
    }
    const { value, grads } = result;
    const ordered = this.variables.map((v) => grads[v.name]);
    // Clipping to global norm 1 with the factor computed on the GPU and applied inside the update: no read
    // of the norm stalls the step between the backward pass and the update.
    const scale = clipScale(ordered, 1);
    this.optimizer.apply(ordered, lr, scale);
    const loss = (await value.data())[0];
    // Reading the last variable the optimizer wrote waits for the whole step (GPU work is queued in order),
    // so the step time is not carried into the next model's step.
    await this.variables[this.variables.length - 1].data();
    tf.dispose([value, inputs, targets, scale, ...ordered]);
    if (!Number.isFinite(loss)) throw new Error(`${this.variant}: the loss became ${loss} at step ${this.step}; lower the learning rate.`);
    this.stepMs.push(performance.now() - t0);
    this.step += 1;
    this.losses.push([this.step, loss]);
    return loss;
  }

  /** Training tokens per second over the steps after the first `warmupTimingSteps` (0 until there are some). */
  get tokensPerSecond(): number {
    const skip = Math.min(this.options.warmupTimingSteps ?? 2, Math.max(0, this.stepMs.length - 1));
    const timed = this.stepMs.slice(skip);
    const ms = timed.reduce((a, b) => a + b, 0);
    return ms > 0 ? (timed.length * this.options.batchSize * this.options.sequenceLength * 1000) / ms : 0;
  }

  /** Mean validation loss over up to `maxBatches` held-out batches. */
  validate(validation: Int32Array, maxBatches = 4): number {
    const r = evaluate(this.lm, validation, { batchSize: this.options.batchSize, sequenceLength: this.options.sequenceLength, maxBatches });
    this.validationLoss = r.loss;
    return r.loss;
  }

  /** Frees the optimizer's moments (the model stays). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
