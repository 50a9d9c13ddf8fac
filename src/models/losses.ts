/**
 * Losses for language models: the mean cross-entropy the trainer uses, and a Keras-style sparse loss
 * with `compileForSparseTargets`, which lets `model.fit()` take integer-id targets `[B, T]`.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { readsSynchronously, usesFusedKernel } from '../ops/capabilities.js';
import { CROSS_ENTROPY_KERNELS, fusedMeanCrossEntropy, fusedRowCrossEntropy } from '../kernels/webgpu/cross_entropy.js';

/** Whether the fused cross-entropy kernels are used now (webgpu, webgl; `TRAINING_KERNELS` 'auto'). */
const usesFusedCrossEntropy = (): boolean => usesFusedKernel(CROSS_ENTROPY_KERNELS.rows);

/** Cross-entropy of each row of `flat` logits `[N, V]` against `dense` target rows `[N, V]`: `[N]`. */
function rowCrossEntropy(flat: tf.Tensor, dense: tf.Tensor): tf.Tensor {
  return tf.sub(tf.logSumExp(flat, -1), tf.sum(tf.mul(flat, dense), -1));
}

/** Whether the fused kernels take these ids and logits: webgpu or webgl, float32 logits `[..., V]`, int32/float32 ids `[...]`. */
function takesFusedPath(targets: tf.Tensor, logits: tf.Tensor): boolean {
  if (!usesFusedCrossEntropy() || logits.dtype !== 'float32' || logits.rank < 2) return false;
  if (targets.dtype !== 'int32' && targets.dtype !== 'float32') return false;
  return targets.rank === logits.rank - 1 && targets.shape.every((d, i) => d === logits.shape[i]);
}

/**
 * Mean cross-entropy (nats/token) under logits `[B, T, V]`, computed stably as
 * `logsumexp(logits) - <target, logits>`. Targets are integer ids `[B, T]`, or one-hot/probability
 * rows `[B, T, V]`. For `model.fit()` with integer ids use `compileForSparseTargets`; with this loss
 * `fit` checks targets against the model output `[B, T, V]`, so it takes only one-hot rows.
 * With integer ids on webgpu or webgl (`usesFusedCrossEntropy()`) it runs the fused kernels of
 * src/kernels/webgpu/cross_entropy.ts and webgl/cross_entropy.ts (no one-hot); elsewhere, and for one-hot rows, the composed ops.
 */
export function sparseCrossEntropyFromLogits(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  if (takesFusedPath(targets, logits)) return fusedMeanCrossEntropy(targets, logits);
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1] as number;
    const flat = tf.reshape(logits, [-1, v]); // [N, V]
    const dense =
      targets.rank === logits.rank
        ? tf.reshape(tf.cast(targets, 'float32'), [-1, v]) // [N, V]
        : tf.oneHot(tf.cast(tf.reshape(targets, [-1]), 'int32'), v); // [N] -> [N, V]
    return tf.mean(rowCrossEntropy(flat, dense)) as tf.Scalar;
  });
}

const LOSS_NAME = 'sparseCategoricalCrossentropyFromLogits';
const HOW_TO_FIT = 'for model.fit() call compileForSparseTargets(model, {optimizer}) and pass integer ids [B, T]';

/** Checks that `targets` are ids for `logits` (shape `[...lead]` or `[...lead, 1]`, integers in [0, V)); returns them flat. */
function checkedIds(targets: tf.Tensor, logits: tf.Tensor): tf.Tensor1D {
  if (logits.rank < 2) throw new ValueError(`${LOSS_NAME}: logits must have rank >= 2 ([B, T, V]), got shape [${logits.shape}].`);
  const lead = logits.shape.slice(0, -1);
  const v = logits.shape[logits.rank - 1];
  const same = (shape: number[]) => shape.length === lead.length && shape.every((d, i) => d === lead[i]);
  const withOne = targets.rank === logits.rank && targets.shape[targets.rank - 1] === 1 && same(targets.shape.slice(0, -1));
  if (!same(targets.shape) && !withOne) {
    const oneHot = targets.rank === logits.rank && targets.shape[targets.rank - 1] === v;
    throw new ValueError(
      `${LOSS_NAME}: targets must be integer ids shaped [${lead}] (or [${lead},1]) for logits [${logits.shape}], ` +
        `got [${targets.shape}]${oneHot ? ' (one-hot rows: use sparseCrossEntropyFromLogits for those)' : ''}; ${HOW_TO_FIT}.`,
    );
  }
  checkIdValues(targets, v, LOSS_NAME);
  return tf.cast(tf.reshape(targets, [-1]), 'int32') as tf.Tensor1D;
}

/**
 * Throws unless every value of `targets` is an integer in [0, v). Where the backend cannot read values
 * synchronously (webgpu in Node) the values are not checked: there the fused kernels give NaN for the rows
 * of ids outside [0, v), and `train` checks its token streams before it starts.
 */
function checkIdValues(targets: tf.Tensor, v: number, owner: string): void {
  if (!readsSynchronously()) return;
  const values = targets.dataSync();
  for (let i = 0; i < values.length; i++) {
    const id = values[i];
    if (!Number.isInteger(id) || id < 0 || id >= v) {
      throw new ValueError(
        `${owner}: targets must be integer token ids in [0, ${v}) (the vocabulary of the logits), got ${id} at flat index ${i}.`,
      );
    }
  }
}

/**
 * Keras-style sparse categorical cross-entropy from logits (a `LossOrMetricFn` for
 * `model.compile({loss})`): `yTrue` holds integer token ids shaped `[B, T]` (or `[B, T, 1]`), `yPred`
 * holds logits `[B, T, V]`; returns the per-token losses `[B, T]` in nats (fit and evaluate average
 * them). Ids that are not integers in `[0, V)` and other target shapes are a `ValueError` naming the
 * rule (the ids are read back once per batch to check them; not on webgpu in Node, which cannot read
 * synchronously: there such ids give NaN losses). With `model.fit()` use
 * `compileForSparseTargets`: plain `compile({loss})` makes `fit` check targets against `[B, T, V]`.
 * On webgpu and webgl (`usesFusedCrossEntropy()`) the losses come from the fused kernels of
 * src/kernels/webgpu/cross_entropy.ts (webgl/cross_entropy.ts).
 */
export function sparseCategoricalCrossentropyFromLogits(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const ids = checkedIds(yTrue, yPred);
    const v = yPred.shape[yPred.rank - 1];
    if (usesFusedCrossEntropy()) {
      const lead = tf.reshape(ids, yPred.shape.slice(0, -1)); // [N] -> [B, T]
      if (takesFusedPath(lead, yPred)) return fusedRowCrossEntropy(lead, yPred);
    }
    const flat = tf.reshape(yPred, [-1, v]); // [N, V]
    return tf.reshape(rowCrossEntropy(flat, tf.oneHot(ids, v)), yPred.shape.slice(0, -1)); // [B, T]
  });
}

/** Arguments of `compileForSparseTargets`. */
export interface SparseCompileArgs {
  /** An optimizer or its tfjs name ('adam', 'sgd', ...). */
  optimizer: tf.Optimizer | string;
}

/**
 * Compiles a model whose single output is logits `[B, T, V]` (e.g. `CausalLM.model`) with
 * `sparseCategoricalCrossentropyFromLogits`, so that `model.fit(x, y)` and `model.evaluate(x, y)` take
 * integer-id targets `y` shaped `[B, T]`, Keras-style (int32 or float32 holding integers):
 *
 *     compileForSparseTargets(lm.model, { optimizer: tf.train.adam(1e-3) });
 *     await lm.model.fit(inputIds, nextIds, { epochs: 5 }); // both [B, T]
 *
 * tfjs's `fit` checks targets against the output shape unless the loss is its own probability-based
 * `sparseCategoricalCrossentropy`; this sets the target shape that `compile` recorded (tfjs 4.x keeps it
 * in the model's `feedOutputShapes`) to the output shape without its last axis, and makes this model's
 * `fit`, `evaluate` and `trainOnBatch` check that the targets are ids in `[0, V)` before tfjs starts.
 * Calling `compile` again undoes it.
 */
export function compileForSparseTargets(model: tf.LayersModel, args: SparseCompileArgs): void {
  if (model === null || typeof model !== 'object' || typeof model.compile !== 'function' || !Array.isArray(model.outputs)) {
    throw new ValueError('compileForSparseTargets: model must be a tf.LayersModel (for a CausalLM pass lm.model).');
  }
  if (args === null || typeof args !== 'object' || args.optimizer === undefined || args.optimizer === null) {
    throw new ValueError('compileForSparseTargets: args must be {optimizer}, e.g. {optimizer: tf.train.adam(1e-3)}.');
  }
  const outputs = model.outputs.map((o) => o.shape);
  if (outputs.length !== 1 || outputs[0].length < 3) {
    throw new ValueError(
      `compileForSparseTargets: the model must have one output of logits [B, T, V], got output shapes ${JSON.stringify(outputs)}.`,
    );
  }
  model.compile({ optimizer: args.optimizer, loss: sparseCategoricalCrossentropyFromLogits });
  const internals = model as unknown as { feedOutputShapes?: unknown };
  const recorded = internals.feedOutputShapes;
  if (!Array.isArray(recorded) || recorded.length !== 1 || !Array.isArray(recorded[0]) || recorded[0].length !== outputs[0].length) {
    throw new ValueError(
      'compileForSparseTargets: this tfjs version does not record target shapes as tfjs 4.x does; compile with ' +
        'sparseCrossEntropyFromLogits and pass one-hot targets [B, T, V] to fit instead.',
    );
  }
  internals.feedOutputShapes = [outputs[0].slice(0, -1)];
  guardTargets(model, outputs[0][outputs[0].length - 1]);
}

const GUARDED = Symbol('tfjs-gta sparse target guard');

/**
 * Makes `fit`, `evaluate` and `trainOnBatch` of this model instance check integer-id targets before
 * tfjs starts (while the model is compiled with the sparse loss). The loss checks them too, but an
 * error thrown inside tfjs's gradient computation leaves the forward pass's saved tensors behind.
 */
function guardTargets(model: tf.LayersModel, vocabSize: number | null): void {
  const m = model as unknown as Record<string | symbol, unknown>;
  if (m[GUARDED] === true || vocabSize === null) return;
  m[GUARDED] = true;
  const check = (y: unknown) => {
    const fn = model.lossFunctions?.[0] as unknown;
    const t = y instanceof tf.Tensor ? y : Array.isArray(y) && y.length === 1 && y[0] instanceof tf.Tensor ? y[0] : null;
    if (fn === sparseCategoricalCrossentropyFromLogits && t !== null) checkIdValues(t, vocabSize, 'fit/evaluate');
  };
  for (const name of ['fit', 'trainOnBatch'] as const) {
    const original = (model[name] as (...a: unknown[]) => Promise<unknown>).bind(model);
    m[name] = async (x: unknown, y: unknown, ...rest: unknown[]) => {
      check(y);
      return original(x, y, ...rest);
    };
  }
  const evaluate = model.evaluate.bind(model);
  m.evaluate = (x: unknown, y: unknown, ...rest: unknown[]) => {
    check(y);
    return (evaluate as (...a: unknown[]) => unknown)(x, y, ...rest);
  };
}
