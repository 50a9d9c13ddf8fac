/** Helpers of the fused-kernel specs: error checks against a tolerance, and running under one kernel path. */
import { TRAINING_KERNELS } from '../../src/ops/capabilities.js';
import { recordError } from './tensors.js';

/** Records a norm-relative error and fails when it exceeds `tol`. */
export function checkError(what: string, err: number, tol: number): void {
  recordError(what, err, tol);
  if (!(err <= tol)) throw new Error(`${what}: norm-relative error ${err.toExponential(3)} exceeds ${tol}`);
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
