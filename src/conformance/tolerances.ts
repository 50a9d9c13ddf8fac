/**
 * Norm-relative error tolerances per backend, shared by the conformance runners (`npm run conformance`,
 * `conformance:models`) and the test kit (test/kit/backends.ts). The float32 CPU backends (cpu, wasm,
 * tensorflow) agree with the float64 references to about 1e-7; the GPU backends (webgl, webgpu) sum in
 * other orders and use fast exp/division, so their budgets are wider but still set from measured errors
 * with a margin (docs/PERFORMANCE.md lists the worst errors measured per backend). tfjs's own testEpsilon
 * is 0.1 on WebGL, far too loose to catch a wrong mask or scale.
 */
import { ValueError } from '../utils/errors.js';

export interface Tolerances {
  /** Forward outputs against float64 references. */
  output: number;
  /** Gradients against float64 references. */
  grad: number;
  /** Two float32 computations of the same quantity. */
  same: number;
  /** Whole-model logits against the float64 reference models (`conformance:models`). */
  logits: number;
}

const CPU_LIKE: Tolerances = { output: 1e-5, grad: 1e-4, same: 1e-5, logits: 1e-4 };

/** The tolerances of every backend tfjs-gta is tested on. */
export const BACKEND_TOLERANCES: Readonly<Record<string, Tolerances>> = {
  cpu: CPU_LIKE,
  wasm: CPU_LIKE,
  tensorflow: CPU_LIKE,
  webgl: { output: 1e-4, grad: 1e-3, same: 1e-4, logits: 1e-3 },
  // Worst errors measured on the shipped vectors and models (SwiftShader's WebGPU in headless Chromium, both
  // mask modes): output 3.5e-7, gradients 9.5e-7, logits 6.1e-7, as close as cpu/wasm/tensorflow (3.5e-7,
  // 8.1e-7, 6.8e-7). The CPU budgets leave a margin of 28x (output), 105x (gradients) and 160x (logits).
  webgpu: CPU_LIKE,
};

/** The tolerances of `backend`; an unknown backend is a `ValueError` naming the known ones. */
export function tolerancesFor(backend: string): Tolerances {
  const t = BACKEND_TOLERANCES[backend];
  if (t === undefined) {
    throw new ValueError(
      `no conformance tolerances for backend ${JSON.stringify(backend)}; known: ${Object.keys(BACKEND_TOLERANCES).join(', ')}.`,
    );
  }
  return t;
}
