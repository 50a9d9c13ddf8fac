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

  getState(): AdamWState {
    return {
      step: this.t,
      m: this.m.map((x) => x.dataSync() as Float32Array),
      v: this.v.map((x) => x.dataSync() as Float32Array),
    };
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

/** Scales gradients so that their global L2 norm is at most `maxNorm`; returns them and the norm before clipping. */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const norm = Math.sqrt(tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return { grads: grads.map((g) => tf.clone(g)), norm };
  const scale = maxNorm / (norm + 1e-6);
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}
