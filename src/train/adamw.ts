/**
 * AdamW (decoupled weight decay, Loshchilov & Hutter) over tfjs variables, with gradient clipping by
 * global norm and a state that can be saved and restored exactly (for resumable training).
 * Weight decay applies to matrices (rank >= 2: kernels, embeddings), not to norm gains or biases.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  /** First and second moments per variable, in variable order. */
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly variables: tf.Variable[];
  private m: tf.Variable[];
  private v: tf.Variable[];
  private t = 0;

  constructor(variables: tf.Variable[], options: AdamWOptions = {}) {
    this.variables = variables;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.1;
    this.m = variables.map(zerosVariable);
    this.v = variables.map(zerosVariable);
  }

  /** Steps taken. */
  get iterations(): number {
    return this.t;
  }

  /** One update with learning rate `lr`; `grads` are in variable order. */
  apply(grads: tf.Tensor[], lr: number): void {
    if (grads.length !== this.variables.length) {
      throw new ValueError(`AdamW: got ${grads.length} gradients for ${this.variables.length} variables.`);
    }
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.variables.forEach((w, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        if (this.weightDecay > 0 && w.rank >= 2) update = tf.add(update, tf.mul(w, this.weightDecay));
        w.assign(tf.sub(w, tf.mul(update, lr)));
      });
    });
  }

  /** A copy of the state, read synchronously (not possible on webgpu in Node: use `getStateAsync`). */
  getState(): AdamWState {
    return {
      step: this.t,
      m: this.m.map((x) => x.dataSync() as Float32Array),
      v: this.v.map((x) => x.dataSync() as Float32Array),
    };
  }

  /** `getState` with asynchronous reads (works on every backend). */
  async getStateAsync(): Promise<AdamWState> {
    const step = this.t;
    const [m, v] = await Promise.all([this.m, this.v].map((moments) => Promise.all(moments.map((x) => x.data() as Promise<Float32Array>))));
    return { step, m, v };
  }

  setState(state: AdamWState): void {
    if (state.m.length !== this.variables.length || state.v.length !== this.variables.length) {
      throw new ValueError(`AdamW.setState: the state holds ${state.m.length} moments for ${this.variables.length} variables.`);
    }
    this.t = state.step;
    tf.tidy(() => {
      this.variables.forEach((w, i) => {
        if (state.m[i].length !== w.size || state.v[i].length !== w.size) {
          throw new ValueError(`AdamW.setState: moment ${i} has ${state.m[i].length} values, variable ${w.name} has ${w.size}.`);
        }
        this.m[i].assign(tf.tensor(state.m[i], w.shape));
        this.v[i].assign(tf.tensor(state.v[i], w.shape));
      });
    });
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/**
 * A non-trainable variable of zeros shaped like `x`. The zeros are made inside a tidy: the variable
 * shares their data, so disposing the variable frees everything.
 */
function zerosVariable(x: tf.Variable): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(x), false));
}

/**
 * Most inputs of one `tf.addN`: tfjs 4.22's webgpu AddN binds every input and its output as storage buffers
 * in one shader and does not split, and WebGPU's default limit is 8 storage buffers per shader stage, so a
 * larger addN fails validation there and returns garbage.
 */
const ADDN_MAX_INPUTS = 7;

/** Sums same-shaped tensors with `tf.addN` calls of at most `ADDN_MAX_INPUTS` inputs each (call inside a tidy). */
function addNChunked(xs: tf.Tensor[]): tf.Tensor {
  let level = xs;
  while (level.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < level.length; i += ADDN_MAX_INPUTS) {
      const chunk = level.slice(i, i + ADDN_MAX_INPUTS);
      next.push(chunk.length === 1 ? chunk[0] : tf.addN(chunk));
    }
    level = next;
  }
  return level[0];
}

/** The squared global L2 norm of `grads` (the sum of every element's square) as a scalar tensor; nothing is read. */
export function globalNormSquared(grads: tf.Tensor[]): tf.Scalar {
  if (grads.length === 0) return tf.scalar(0);
  return tf.tidy(() => addNChunked(grads.map((g) => tf.sum(tf.square(g)))) as tf.Scalar);
}

/**
 * Gradients whose global norm is `norm` (already read), scaled to `maxNorm` when the norm exceeds it; new
 * tensors either way (copies when nothing is scaled). `maxNorm` <= 0 or a non-finite norm leaves them as they are.
 */
export function clipToNorm(grads: tf.Tensor[], norm: number, maxNorm: number): tf.Tensor[] {
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return grads.map((g) => tf.clone(g));
  const scale = maxNorm / (norm + 1e-6);
  return grads.map((g) => tf.mul(g, scale));
}

/**
 * Scales gradients so that their global L2 norm is at most `maxNorm`; returns them and the norm before
 * clipping. Reads the norm synchronously (`dataSync`), which tfjs's webgpu backend cannot do in Node: use
 * `clipByGlobalNormAsync` there.
 */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const squared = globalNormSquared(grads);
  const norm = Math.sqrt(squared.dataSync()[0]);
  squared.dispose();
  return { grads: clipToNorm(grads, norm, maxNorm), norm };
}

/** `clipByGlobalNorm` with an asynchronous read of the norm (works on every backend, webgpu in Node included). */
export async function clipByGlobalNormAsync(grads: tf.Tensor[], maxNorm: number): Promise<{ grads: tf.Tensor[]; norm: number }> {
  const squared = globalNormSquared(grads);
  try {
    const norm = Math.sqrt((await squared.data())[0]);
    return { grads: clipToNorm(grads, norm, maxNorm), norm };
  } finally {
    squared.dispose();
  }
}
