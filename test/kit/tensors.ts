/** Assertions on tensors and memory shared by every spec. */
import * as tf from '@tensorflow/tfjs';
import { normRelativeError } from '../../src/conformance/reference_vectors.js';

export { normRelativeError };

/** Asserts equal shapes and a norm-relative error at most `tol`. */
export function expectClose(
  actual: tf.Tensor | ArrayLike<number>,
  expected: tf.Tensor | ArrayLike<number>,
  tol: number,
  what = 'tensor',
): number {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) {
    if (actual.shape.join(',') !== expected.shape.join(',')) {
      throw new Error(`${what}: shape [${actual.shape}] differs from expected [${expected.shape}]`);
    }
  }
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const e = expected instanceof tf.Tensor ? expected.dataSync() : expected;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${what}: non-finite value ${a[i]} at ${i}`);
  }
  const err = normRelativeError(a, e);
  recordError(what, err, tol);
  if (!(err <= tol)) throw new Error(`${what}: norm-relative error ${err.toExponential(3)} exceeds ${tol}`);
  return err;
}

/**
 * Records a measured error while a runner collects them (scripts/browser-tests.mjs sets
 * `globalThis.__TFJS_GTA_ERRORS__` and prints the maxima); does nothing otherwise.
 */
export function recordError(what: string, err: number, tol: number): void {
  const g = globalThis as { __TFJS_GTA_ERRORS__?: unknown[]; __currentTest?: string };
  g.__TFJS_GTA_ERRORS__?.push({ test: g.__currentTest ?? '', what, err, tol });
}

/** Asserts the shape of a tensor. */
export function expectShape(t: tf.Tensor, shape: number[], what = 'tensor'): void {
  if (t.shape.join(',') !== shape.join(',')) throw new Error(`${what}: shape [${t.shape}], expected [${shape}]`);
}

/**
 * Runs `fn` once to warm up (weights, tables), then again, and asserts that the second run leaves
 * `tf.memory().numTensors` unchanged once its returned tensors are disposed.
 */
export async function expectNoLeakedTensors(fn: () => unknown, what = 'call'): Promise<void> {
  tf.dispose((await fn()) as tf.TensorContainer);
  const before = tf.memory().numTensors;
  tf.dispose((await fn()) as tf.TensorContainer);
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${what} leaked ${after - before} tensor(s) (${before} -> ${after})`);
}

/** Asserts that `fn` throws an error whose message matches every pattern. */
export function expectThrows(fn: () => unknown, ...patterns: RegExp[]): Error {
  let error: Error | null = null;
  try {
    fn();
  } catch (e) {
    error = e as Error;
  }
  if (error === null) throw new Error(`expected an error matching ${patterns.join(', ')}, but nothing was thrown`);
  for (const p of patterns) {
    if (!p.test(error.message)) throw new Error(`error message ${JSON.stringify(error.message)} does not match ${p}`);
  }
  return error;
}

/** Seeded uniform random tensor in [-scale, scale). */
export function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.randomUniform(shape, -scale, scale, 'float32', seed);
}
