/** Helpers of the fused-kernel specs: error checks against a tolerance, and running under one kernel path. */
import * as tf from '@tensorflow/tfjs';
import { TRAINING_KERNELS } from '../../src/ops/capabilities.js';
import { normRelativeError, recordError } from './tensors.js';

/** Records a norm-relative error and fails when it exceeds `tol`. */
export function checkError(what: string, err: number, tol: number): void {
  recordError(what, err, tol);
  if (!(err <= tol)) throw new Error(`${what}: norm-relative error ${err.toExponential(3)} exceeds ${tol}`);
}

/** Fails unless `a` and `b` have one shape and `a` is within `tol` (norm-relative) of `b`. */
export async function expectSameTensor(what: string, a: tf.Tensor, b: tf.Tensor, tol: number): Promise<void> {
  if (a.shape.join() !== b.shape.join()) throw new Error(`${what}: shape [${a.shape}] against [${b.shape}]`);
  checkError(what, normRelativeError((await a.data()) as Float32Array, (await b.data()) as Float32Array), tol);
}

/** Runs `fn` with `TRAINING_KERNELS.implementation` set, restoring it afterwards. */
export function withImplementation<T>(implementation: 'auto' | 'composed', fn: () => T): T {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = implementation;
  try {
    return fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

/** `withImplementation` for an async `fn`. */
export async function withImplementationAsync<T>(implementation: 'auto' | 'composed', fn: () => Promise<T>): Promise<T> {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = implementation;
  try {
    return await fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

/**
 * A layer's `sum(y * w)` for `y = layer.apply(x, kwargs)` and its gradients wrt the layer's weights, in
 * weight order (the layer is built first if it is not).
 */
export function layerValueAndGrads(layer: tf.layers.Layer, x: tf.Tensor, w: tf.Tensor, kwargs?: tf.serialization.ConfigDict): tf.Tensor[] {
  if (!layer.built) tf.dispose(layer.apply(x) as tf.Tensor);
  const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, kwargs) as tf.Tensor, w)) as tf.Scalar, vars);
  return [value, ...vars.map((v) => grads[v.name])];
}

/**
 * Checks two results of `layerValueAndGrads` (fused and composed paths): the value within `valueTol`, each
 * weight's gradient within `gradTol`, norm-relative; fails when a gradient is missing.
 */
export async function checkLayerValueAndGrads(
  layer: tf.layers.Layer,
  fused: tf.Tensor[],
  composed: tf.Tensor[],
  valueTol: number,
  gradTol: number,
): Promise<void> {
  if (fused.length !== layer.trainableWeights.length + 1) throw new Error('missing gradients');
  for (let i = 0; i < fused.length; i++) {
    const what = i === 0 ? 'loss' : `grad ${layer.trainableWeights[i - 1].name}`;
    checkError(`layer ${what}`, normRelativeError(await fused[i].data(), await composed[i].data()), i === 0 ? valueTol : gradTol);
  }
}
