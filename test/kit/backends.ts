/**
 * One spec body, every backend (like tfjs's `describeWithFlags`).
 *
 * `describeBackends(title, fn)` repeats a suite once per backend that is available in this runtime
 * (Node: cpu, wasm, tensorflow when tfjs-node is installed; browser: webgl, wasm, cpu; webgpu on request). The set is
 * chosen with `TFJS_BACKENDS=cpu,wasm` (Node) or `globalThis.__TFJS_BACKENDS__` (browser). A requested
 * backend that cannot start is reported as skipped, except under `CI=true` (or `REQUIRE_BACKENDS=1`),
 * where it becomes a failing test: CI never silently skips a backend.
 */
import * as tf from '@tensorflow/tfjs';
import { backendLoadError, IS_NODE, setBackendStrict } from '../../src/backend.js';
import { BACKEND_TOLERANCES, type Tolerances } from '../../src/conformance/tolerances.js';

export type { Tolerances };

/**
 * Explicit tolerances per backend (src/conformance/tolerances.ts, shared with the conformance runners;
 * tfjs's own testEpsilon is 0.1 on WebGL, far too loose).
 */
export const TOLERANCES: Readonly<Record<string, Tolerances>> = BACKEND_TOLERANCES;

interface RuntimeConfig {
  backends?: string[];
  required?: boolean;
}

function runtimeConfig(): RuntimeConfig {
  const g = globalThis as { __TFJS_BACKENDS__?: string[]; __REQUIRE_BACKENDS__?: boolean };
  if (!IS_NODE) return { backends: g.__TFJS_BACKENDS__, required: g.__REQUIRE_BACKENDS__ };
  const env = process.env;
  return {
    backends: env.TFJS_BACKENDS
      ? env.TFJS_BACKENDS.split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined,
    required: env.CI === 'true' || env.REQUIRE_BACKENDS === '1',
  };
}

const config = runtimeConfig();
/** Backends the run asked for. */
export const REQUESTED: string[] = config.backends ?? (IS_NODE ? ['cpu', 'wasm', 'tensorflow'] : ['webgl', 'wasm', 'cpu']);
/** Whether a missing backend fails the run. */
export const REQUIRED = config.required === true;

/** Backends that started, and the reason for each that did not. */
export const AVAILABLE: string[] = [];
export const UNAVAILABLE: Record<string, string> = {};

for (const name of REQUESTED) {
  try {
    await setBackendStrict(name);
    AVAILABLE.push(name);
  } catch (e) {
    UNAVAILABLE[name] = backendLoadError(name) ?? (e as Error).message;
  }
}
if (AVAILABLE.length > 0) await tf.setBackend(AVAILABLE[0]);

if (IS_NODE && !(globalThis as { __BACKEND_BANNER__?: boolean }).__BACKEND_BANNER__) {
  (globalThis as { __BACKEND_BANNER__?: boolean }).__BACKEND_BANNER__ = true;
  const skipped = Object.entries(UNAVAILABLE)
    .map(([b, why]) => `${b} (${why})`)
    .join(', ');
  console.log(`backends: running ${AVAILABLE.join(', ') || 'none'}${skipped ? `; skipped ${skipped}` : ''}`);
}

describe('test backends', () => {
  for (const name of REQUESTED) {
    const why = UNAVAILABLE[name];
    if (why === undefined) {
      it(`${name} is active when selected`, async () => {
        await setBackendStrict(name);
        if (tf.getBackend() !== name) throw new Error(`active backend is ${tf.getBackend()}`);
      });
    } else if (REQUIRED) {
      it(`${name} is available (required in CI)`, () => {
        throw new Error(`backend ${name} is required but could not start: ${why}`);
      });
    }
  }
});

export interface BackendContext {
  backend: string;
  tol: Tolerances;
}

/**
 * Defines `title [backend]` once per available backend. The suite activates its backend (and fails
 * if tfjs would silently fall back), and the callback receives the backend's tolerances.
 */
export function describeBackends(title: string, fn: (ctx: BackendContext) => void, options: { only?: string[] } = {}): void {
  for (const backend of AVAILABLE) {
    if (options.only && !options.only.includes(backend)) continue;
    describe(`${title} [${backend}]`, function () {
      before(async () => {
        await setBackendStrict(backend);
      });
      fn({ backend, tol: TOLERANCES[backend] ?? TOLERANCES.cpu });
    });
  }
}

/**
 * Backends that run every kernel as a GPU dispatch (webgl, webgpu). In the browser suite they run on
 * SwiftShader, Chromium's CPU renderer, where one decode step of a tiny model takes 0.3-1 s (pipeline
 * compilation, dispatch and read-back in software): specs that loop over many steps or epochs take fewer
 * there, through `stepsOn`. The kernels they test are the same at every step, and the fused-kernel specs
 * (test/ops/attention_fused.test.ts) cover the GPU paths' shapes and edge cases directly.
 */
export const DISPATCH_BOUND: ReadonlySet<string> = new Set(['webgl', 'webgpu']);

/** `steps` on the CPU backends, `dispatchBoundSteps` on webgl and webgpu (see DISPATCH_BOUND). */
export function stepsOn(backend: string, steps: number, dispatchBoundSteps: number): number {
  return DISPATCH_BOUND.has(backend) ? dispatchBoundSteps : steps;
}
