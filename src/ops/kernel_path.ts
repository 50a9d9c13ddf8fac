/**
 * One switch for every fused kernel: run code on the fused path (the backend's own kernels where it has
 * them: webgpu, webgl) or on composed tfjs ops only (the reference path), and restore the previous
 * settings afterwards. Benchmarks and tests compare the two paths with it; users can too.
 */
import { ATTENTION_DEFAULTS } from './attention_core.js';
import { TRAINING_KERNELS } from './capabilities.js';
import { ValueError } from '../utils/errors.js';

/** 'fused': fused kernels wherever the backend has them (the default); 'composed': composed tfjs ops only. */
export type KernelPath = 'fused' | 'composed';

/**
 * Runs `fn` with the attention (`ATTENTION_DEFAULTS`) and the training kernels (`TRAINING_KERNELS`) on
 * `path`, and restores both settings when `fn` returns, throws or (if it returns a promise) settles.
 * 'fused' sets them to 'auto', so a backend without a fused kernel still takes the composed ops.
 */
export function withKernelPath<T>(path: KernelPath, fn: () => T): T {
  if (path !== 'fused' && path !== 'composed') {
    throw new ValueError(`withKernelPath: path must be 'fused' or 'composed', got ${JSON.stringify(path)}.`);
  }
  const before = [ATTENTION_DEFAULTS.implementation, TRAINING_KERNELS.implementation] as const;
  const restore = () => {
    [ATTENTION_DEFAULTS.implementation, TRAINING_KERNELS.implementation] = before;
  };
  ATTENTION_DEFAULTS.implementation = path === 'fused' ? 'auto' : 'composed';
  TRAINING_KERNELS.implementation = path === 'fused' ? 'auto' : 'composed';
  let result: T;
  try {
    result = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}
