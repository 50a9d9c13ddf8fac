/**
 * The training loop for `CausalLM`: AdamW, linear warm-up plus cosine learning rate, gradient
 * clipping by global norm, evaluation every N steps, seeded data order, checkpoints that resume
 * exactly (model, optimizer moments, data order, history) and a stop request (Ctrl-C) that saves a
 * checkpoint before returning.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import * as check from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { sparseCrossEntropyFromLogits } from '../models/losses.js';
import { RotaryStep } from '../ops/rope.js';
import { Batcher, BatcherState } from '../data/dataset.js';
import type { TokenIds } from '../data/ids.js';
import { AdamW, AdamWState, clipFactor, globalNormSquaredParts } from './adamw.js';
import { warmupCosine } from './schedule.js';
import { evaluateAsync } from './evaluate.js';
import { gpuLossAndGradients, gpuStepUnsupported } from './gpu_step.js';

/** The training state a checkpoint holds besides the model and the optimizer moments. */
export interface TrainerCheckpointState {
  step: number;
  batcher: BatcherState;
  history: StepRecord[];
  evals: EvalRecord[];
  /** What the caller asked to keep with the checkpoint (`TrainOptions.checkpointExtra`), e.g. the tokenizer. */
  extra?: Record<string, unknown>;
}

/** A checkpoint as `train` writes and `resumeTraining` reads it. */
export interface TrainingCheckpoint {
  lm: CausalLM;
  optimizer: AdamWState;
  state: TrainerCheckpointState;
}

/**
 * Where `train` keeps its checkpoints. In Node, `directoryCheckpoint(dir)` from `tfjs-gta/node` writes a
 * folder; in a browser, implement these two methods over IndexedDB or anything else. `save` must replace
 * the previous checkpoint atomically: after a failure at any moment, `load` returns the old or the new one.
 */
export interface CheckpointStore {
  /** Where the checkpoint lives, for messages (a path, a key). */
  readonly location: string;
  save(checkpoint: TrainingCheckpoint): Promise<void>;
  load(): Promise<TrainingCheckpoint>;
}

export interface StepRecord {
  step: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  /** Training tokens per second of this step. */
  tokensPerSecond: number;
  /** Seconds since the run (or the resumed run) started. */
  elapsed: number;
  /** Estimated seconds to finish. */
  eta: number;
}

export interface EvalRecord {
  step: number;
  loss: number;
  perplexity: number;
}

export interface TrainOptions {
  model: CausalLM;
  train: TokenIds;
  validation: TokenIds;
  batchSize: number;
  sequenceLength: number;
  /** Total optimizer steps (a resumed run continues up to this). */
  steps: number;
  /** Peak learning rate. Default 3e-3. */
  learningRate?: number;
  /** Default: 10% of the steps, at most 100. */
  warmupSteps?: number;
  /** Default: learningRate / 10. */
  minLearningRate?: number;
  /** Default 0.1 (matrices only). */
  weightDecay?: number;
  beta1?: number;
  /** Default 0.95. */
  beta2?: number;
  /** Clip gradients to this global norm (0 disables). Default 1. */
  gradClip?: number;
  /** Evaluate every N steps (and at the end). Default: steps / 5. */
  evalEvery?: number;
  /** Validation batches per evaluation (default 8; 0 = all windows). */
  evalBatches?: number;
  /** Seed of the data order. Default 0. */
  seed?: number;
  /** Save checkpoints here (in Node: `directoryCheckpoint(dir)` from `tfjs-gta/node`). */
  checkpoint?: CheckpointStore;
  /** Kept with every checkpoint (`TrainingCheckpoint.state.extra`): e.g. the tokenizer and the run's settings. */
  checkpointExtra?: Record<string, unknown>;
  /** Checkpoint every N steps (default: only at the end and on stop). */
  checkpointEvery?: number;
  /** Polled after every step; returning true saves a checkpoint (if configured) and stops. */
  shouldStop?: () => boolean;
  onStep?: (record: StepRecord) => void;
  onEval?: (record: EvalRecord) => void;
  /**
   * Count the tfjs kernels of this run's first step (forward, backward, clipping and the update) with
   * `tf.profile` and return them as `kernelsPerStep`. Default false (profiling slows that step a little).
   */
  countKernels?: boolean;
  /** Internal: state to continue from (see `resumeTraining`). */
  resumeState?: { step: number; batcher: BatcherState; optimizer: AdamWState; history: StepRecord[]; evals: EvalRecord[] };
}

export interface TrainResult {
  /** Steps completed (including those before a resume). */
  steps: number;
  history: StepRecord[];
  evals: EvalRecord[];
  finalValidationLoss: number;
  /** Mean training tokens per second over this run. */
  tokensPerSecond: number;
  wallSeconds: number;
  /** True when `shouldStop` ended the run early. */
  stopped: boolean;
  /** Problems that did not stop the run but make its result doubtful (e.g. a gradient that was always zero). */
  warnings: string[];
  /** Where the last checkpoint was written, if a store was given. */
  checkpoint?: string;
  /** Kernels of one training step (the run's first), when `countKernels` asked for them; else null. */
  kernelsPerStep: number | null;
}

function resolve(o: TrainOptions) {
  const owner = 'train';
  const steps = check.positiveInt(owner, 'steps', o.steps);
  return {
    steps,
    batchSize: check.positiveInt(owner, 'batchSize', o.batchSize),
    sequenceLength: check.positiveInt(owner, 'sequenceLength', o.sequenceLength),
    learningRate: check.positiveNumber(owner, 'learningRate', o.learningRate, 3e-3),
    warmupSteps: o.warmupSteps ?? Math.min(100, Math.floor(steps / 10)),
    minLearningRate: o.minLearningRate,
    weightDecay: o.weightDecay ?? 0.1,
    gradClip: o.gradClip ?? 1,
    evalEvery: o.evalEvery ?? Math.max(1, Math.floor(steps / 5)),
    evalBatches: o.evalBatches ?? 8,
    seed: o.seed ?? 0,
  };
}

/**
 * Throws unless every id of `ids` (the argument `what` of `train`) is an integer in [0, vocabSize): an id
 * outside the vocabulary would otherwise reach the embedding and the loss, where backends differ (cpu
 * throws inside the gather; the GPU backends read out of range and give a NaN loss or silently wrong
 * gradients).
 */
function checkVocabulary(what: string, ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new ValueError(
        `train: ${what} must hold integer token ids in [0, ${vocabSize}) (the model's vocabSize), got ${id} at index ${i}.`,
      );
    }
  }
}

/**
 * The step's loss and the gradients' global norm, read together in one asynchronous read (every backend
 * can do it, webgpu in Node included, and it waits for the device once per step, not twice).
 */
async function readLossAndNorm(value: tf.Scalar, grads: tf.Tensor[]): Promise<{ loss: number; norm: number }> {
  // [loss, partial sums of the squared norm...]: the partials are summed here, which saves a kernel per step.
  const both = tf.tidy(() => tf.concat([tf.reshape(value, [1]), ...globalNormSquaredParts(grads)]));
  try {
    const [loss, ...parts] = await both.data();
    return { loss, norm: Math.sqrt(parts.reduce((a, x) => a + x, 0)) };
  } finally {
    both.dispose();
  }
}

/**
 * One training step on `batch` (disposed here): forward and backward pass, one read of the loss and the
 * gradient norm, then, only if both are finite (a non-finite step never reaches the weights, in memory
 * or on disk), clipping to `gradClip` and the AdamW update. `applied` says whether the update was made.
 */
async function optimizerStep(
  lm: CausalLM,
  variables: tf.Variable[],
  optimizer: AdamW,
  batch: { inputs: tf.Tensor; targets: tf.Tensor },
  lr: number,
  gradClip: number,
): Promise<{ loss: number; norm: number; applied: boolean }> {
  let value: tf.Scalar;
  let ordered: tf.Tensor[];
  const rope = new RotaryStep({ start: 0, length: batch.inputs.shape[1] as number }); // RoPE factors built once for all blocks
  try {
    if (gpuStepUnsupported(lm, batch.inputs) === null) {
      // webgpu: the whole step as direct kernel calls, no tape (src/train/gpu_step.ts)
      ({ loss: value, grads: ordered } = gpuLossAndGradients(lm, batch.inputs, batch.targets, rope, variables));
    } else {
      const result = tf.variableGrads(
        () => sparseCrossEntropyFromLogits(batch.targets, lm.model.apply(batch.inputs, { training: true, rope }) as tf.Tensor),
        variables,
      );
      value = result.value;
      ordered = variables.map((v) => result.grads[v.name]);
    }
  } finally {
    rope.dispose();
    tf.dispose([batch.inputs, batch.targets]);
  }
  try {
    const { loss, norm } = await readLossAndNorm(value, ordered);
    if (!Number.isFinite(loss) || !Number.isFinite(norm)) return { loss, norm, applied: false };
    optimizer.apply(ordered, lr, clipFactor(norm, gradClip)); // the clipping scale is applied inside the update
    return { loss, norm, applied: true };
  } finally {
    tf.dispose([value, ...ordered]);
  }
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const o = resolve(options);
  const lm = options.model;
  if (o.sequenceLength > lm.config.maxSequenceLength) {
    throw new ValueError(`train: sequenceLength ${o.sequenceLength} exceeds the model's maxSequenceLength ${lm.config.maxSequenceLength}.`);
  }
  checkVocabulary('train', options.train, lm.config.vocabSize);
  checkVocabulary('validation', options.validation, lm.config.vocabSize);
  const batcher = new Batcher(options.train, { batchSize: o.batchSize, sequenceLength: o.sequenceLength, seed: o.seed });
  const variables = lm.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new AdamW(variables, { weightDecay: o.weightDecay, beta1: options.beta1, beta2: options.beta2 ?? 0.95 });
  const history: StepRecord[] = [...(options.resumeState?.history ?? [])];
  const evals: EvalRecord[] = [...(options.resumeState?.evals ?? [])];
  let step = 0;
  if (options.resumeState) {
    if (options.resumeState.step > o.steps) {
      optimizer.dispose();
      throw new ValueError(
        `train: the checkpoint is at step ${options.resumeState.step}, beyond steps ${o.steps}; ` +
          "resume with steps of at least the checkpoint's step.",
      );
    }
    batcher.restore(options.resumeState.batcher);
    optimizer.setState(options.resumeState.optimizer);
    step = options.resumeState.step;
  }
  const schedule = {
    peakLearningRate: o.learningRate,
    warmupSteps: o.warmupSteps,
    totalSteps: o.steps,
    minLearningRate: o.minLearningRate,
  };
  const runEval = async () => {
    const r = await evaluateAsync(lm, options.validation, {
      batchSize: o.batchSize,
      sequenceLength: o.sequenceLength,
      maxBatches: o.evalBatches || undefined,
    });
    const record = { step, loss: r.loss, perplexity: r.perplexity };
    evals.push(record);
    options.onEval?.(record);
    return record;
  };
  const checkpoint = async () => {
    if (!options.checkpoint) return;
    await options.checkpoint.save({
      lm,
      optimizer: await optimizer.getStateAsync(),
      state: { step, batcher: batcher.state(), history, evals, extra: options.checkpointExtra },
    });
  };
  const started = performance.now();
  const firstStep = step;
  let stopped = false;
  let kernelsPerStep: number | null = null;
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      const lr = warmupCosine(step, schedule);
      const batch = batcher.next();
      const runStep = () => optimizerStep(lm, variables, optimizer, batch, lr, o.gradClip);
      let result: Awaited<ReturnType<typeof runStep>>;
      if (options.countKernels === true && kernelsPerStep === null) {
        // tf.profile's result must be a tensor container: the step's result travels outside it.
        const info = await tf.profile(async () => {
          result = await runStep();
          return null as unknown as tf.Tensor;
        });
        kernelsPerStep = info.kernels.length;
      } else result = await runStep();
      const { loss, norm, applied } = result!;
      if (!applied) {
        throw new ValueError(
          `train: at step ${step + 1} the ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} became ` +
            `${Number.isFinite(loss) ? norm : loss}; the update was not applied, so the model${options.checkpoint ? ' and the last checkpoint' : ''} ` +
            `keep step ${step}. Lower learningRate (now ${o.learningRate}) or keep gradClip on (now ${o.gradClip}).`,
        );
      }
      step += 1;
      const seconds = (performance.now() - t0) / 1000;
      const elapsed = (performance.now() - started) / 1000;
      const perStep = elapsed / (step - firstStep);
      const record: StepRecord = {
        step,
        loss,
        learningRate: lr,
        gradNorm: norm,
        tokensPerSecond: (o.batchSize * o.sequenceLength) / seconds,
        elapsed,
        eta: perStep * (o.steps - step),
      };
      history.push(record);
      options.onStep?.(record);
      if (step % o.evalEvery === 0 && step < o.steps) await runEval();
      if (options.checkpointEvery && step % options.checkpointEvery === 0 && step < o.steps) await checkpoint();
      if (options.shouldStop?.()) {
        stopped = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 0)); // let signal handlers and the UI run
    }
    const final = evals.length > 0 && evals[evals.length - 1].step === step ? evals[evals.length - 1] : await runEval();
    await checkpoint();
    const wallSeconds = (performance.now() - started) / 1000;
    const warnings: string[] = [];
    const ran = history.slice(firstStep);
    if (ran.length > 0 && ran.every((h) => h.gradNorm === 0)) {
      warnings.push(
        `the gradient was zero at every step, so the weights never changed (loss ${final.loss.toFixed(4)}; ` +
          `ln(vocabulary) = ${Math.log(lm.config.vocabSize).toFixed(4)}): check the data, the learning rate and the model`,
      );
    }
    return {
      warnings,
      steps: step,
      history,
      evals,
      finalValidationLoss: final.loss,
      tokensPerSecond: ((step - firstStep) * o.batchSize * o.sequenceLength) / Math.max(1e-9, wallSeconds),
      wallSeconds,
      stopped,
      checkpoint: options.checkpoint?.location,
      kernelsPerStep,
    };
  } finally {
    optimizer.dispose();
  }
}

/**
 * Continues a run from a checkpoint written by `train`: same model weights, optimizer moments, data
 * order and history. `options` are those of the original run (minus `model`); new checkpoints go to
 * `options.checkpoint`, or back to `store`.
 */
export async function resumeTraining(
  store: CheckpointStore,
  options: Omit<TrainOptions, 'model' | 'resumeState'>,
): Promise<{ model: CausalLM; result: TrainResult }> {
  const loaded = await store.load();
  try {
    const result = await train({
      ...options,
      model: loaded.lm,
      checkpoint: options.checkpoint ?? store,
      checkpointExtra: options.checkpointExtra ?? loaded.state.extra,
      resumeState: {
        step: loaded.state.step,
        batcher: loaded.state.batcher,
        optimizer: loaded.optimizer,
        history: loaded.state.history,
        evals: loaded.state.evals,
      },
    });
    return { model: loaded.lm, result };
  } catch (e) {
    loaded.lm.dispose();
    throw e;
  }
}
