/**
 * AdamW (decoupled weight decay, Loshchilov & Hutter) over tfjs variables, with gradient clipping by
 * global norm and a state that can be saved and restored exactly (for resumable training).
 * Weight decay applies to matrices (rank >= 2: kernels, embeddings), not to norm gains or biases.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedAdamWStepWebGL, packedScaleWebGL, WEBGL_ADAMW_KERNELS } from '../kernels/webgl/adamw.js';
import { fusedAdamWGroupStep, momentGroups } from '../kernels/webgpu/adamw.js';
import { fusedSquaredNorm, fusedSquaredNormUnsupported, SQUARED_NORM_KERNEL } from '../kernels/webgpu/squared_norm.js';
import { usesFusedKernel, usesFusedTrainingKernels } from '../ops/capabilities.js';
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

/**
 * AdamW over `variables`. On webgpu (`usesFusedTrainingKernels()`) the variables form groups of up to five
 * (`momentGroups`, src/kernels/webgpu/adamw.ts): one fused dispatch updates a group's moments, kept together
 * in one flat state (m_i then v_i for each variable i of the group), and one more per variable writes its
 * weight; on webgl (`usesFusedKernel(WEBGL_ADAMW_KERNELS.weight)`) it is three fused kernels
 * (src/kernels/webgl/adamw.ts) over separate m and v; elsewhere the composed tfjs ops update separate m
 * and v. The layout follows the path taken at each step; `getState`/`setState` use separate m and v
 * everywhere, so checkpoints move between backends.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly variables: tf.Variable[];
  /** Separate moments (composed path), or null while the state is packed. */
  private m: tf.Variable[] | null = null;
  private v: tf.Variable[] | null = null;
  /** Packed moments, one flat state per group of `groups` (fused path), or null while they are separate. */
  private packed: tf.Variable[] | null = null;
  /** The webgpu groups: variable indices of each packed state. */
  private readonly groups: number[][];
  /** Each variable's packed state (group index) and where its block (m, then v) starts in it. */
  private readonly blocks: Array<{ group: number; offset: number }>;
  /** Elements of each group's state: m and v of each of its variables. */
  private readonly groupSizes: number[];
  private t = 0;

  constructor(variables: tf.Variable[], options: AdamWOptions = {}) {
    this.variables = variables;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.1;
    this.groups = momentGroups(variables.map((x) => x.size));
    this.blocks = [];
    this.groupSizes = this.groups.map((group, k) => {
      let offset = 0;
      for (const i of group) {
        this.blocks[i] = { group: k, offset };
        offset += 2 * variables[i].size;
      }
      return offset;
    });
    if (usesFusedTrainingKernels()) {
      this.packed = this.groupSizes.map((n) => tf.tidy(() => tf.variable(tf.zeros([n]), false)));
    } else {
      this.m = variables.map(zerosVariable);
      this.v = variables.map(zerosVariable);
    }
  }

  /** Steps taken. */
  get iterations(): number {
    return this.t;
  }

  /**
   * One update with learning rate `lr`; `grads` are in variable order. `gradScale` multiplies every
   * gradient first (global-norm clipping): a number, or a scalar tensor (e.g. computed on the GPU by
   * `clipScale`, never read back); 1 when omitted.
   */
  apply(grads: tf.Tensor[], lr: number, gradScale: number | tf.Tensor = 1): void {
    this.checkApply(grads, lr, gradScale);
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    if (usesFusedTrainingKernels()) this.applyFused(grads, lr, gradScale, c1, c2);
    else if (usesFusedKernel(WEBGL_ADAMW_KERNELS.weight)) this.applyFusedWebGL(grads, lr, gradScale, c1, c2);
    else this.applyComposed(grads, lr, gradScale, c1, c2);
  }

  private checkApply(grads: tf.Tensor[], lr: number, gradScale: number | tf.Tensor): void {
    if (grads.length !== this.variables.length) {
      throw new ValueError(`AdamW: got ${grads.length} gradients for ${this.variables.length} variables.`);
    }
    grads.forEach((g, i) => {
      const w = this.variables[i];
      if (!tf.util.arraysEqual(g.shape, w.shape)) {
        throw new ValueError(`AdamW: gradient ${i} has shape [${g.shape}], variable ${w.name} has shape [${w.shape}]; they must match.`);
      }
    });
    if (typeof lr !== 'number' || !Number.isFinite(lr)) throw new ValueError(`AdamW: lr must be a finite number, got ${lr}.`);
    if (typeof gradScale === 'number' ? !(Number.isFinite(gradScale) && gradScale >= 0) : gradScale.size !== 1) {
      const got = typeof gradScale === 'number' ? String(gradScale) : `a tensor of shape [${gradScale.shape}]`;
      throw new ValueError(`AdamW: gradScale must be a finite number >= 0 or a scalar tensor, got ${got}.`);
    }
  }

  private applyComposed(grads: tf.Tensor[], lr: number, gradScale: number | tf.Tensor, c1: number, c2: number): void {
    this.unpack();
    const [ms, vs] = [this.m!, this.v!];
    tf.tidy(() => {
      this.variables.forEach((w, i) => {
        const g = gradScale === 1 ? grads[i] : tf.mul(grads[i], gradScale);
        const m = tf.add(tf.mul(ms[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(vs[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        ms[i].assign(m);
        vs[i].assign(v);
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        if (this.weightDecay > 0 && w.rank >= 2) update = tf.add(update, tf.mul(w, this.weightDecay));
        w.assign(tf.sub(w, tf.mul(update, lr)));
      });
    });
  }

  private applyFused(grads: tf.Tensor[], lr: number, gradScale: number | tf.Tensor, c1: number, c2: number): void {
    this.pack();
    const states = this.packed!;
    const scale = typeof gradScale === 'number' ? null : gradScale;
    const moments = { beta1: this.beta1, beta2: this.beta2, gradScale: typeof gradScale === 'number' ? gradScale : 1 };
    tf.tidy(() => {
      this.groups.forEach((group, k) => {
        const weights = group.map((i) => this.variables[i]);
        const groupGrads = group.map((i) => (grads[i].dtype === 'float32' ? grads[i] : tf.cast(grads[i], 'float32')));
        const decays = weights.map((w) => (this.weightDecay > 0 && w.rank >= 2 ? this.weightDecay : 0));
        const next = fusedAdamWGroupStep(weights, states[k], groupGrads, scale, moments, { lr, c1, c2, epsilon: this.epsilon }, decays);
        states[k].assign(next.state);
        weights.forEach((w, j) => w.assign(next.weights[j]));
      });
    });
  }

  /** The webgl fused update: three kernels per variable over separate moments (the composed path's layout). */
  private applyFusedWebGL(grads: tf.Tensor[], lr: number, gradScale: number | tf.Tensor, c1: number, c2: number): void {
    this.unpack();
    const [ms, vs] = [this.m!, this.v!];
    const hyper = { beta1: this.beta1, beta2: this.beta2, lr, c1, c2, epsilon: this.epsilon };
    tf.tidy(() => {
      // The scale packed once for every variable's moment kernels (packed programs).
      const scale = typeof gradScale === 'number' ? null : packedScaleWebGL(gradScale.rank === 0 ? gradScale : tf.reshape(gradScale, []));
      const scaleValue = typeof gradScale === 'number' ? gradScale : 1;
      this.variables.forEach((w, i) => {
        const decay = this.weightDecay > 0 && w.rank >= 2 ? this.weightDecay : 0;
        const grad = grads[i].dtype === 'float32' ? grads[i] : tf.cast(grads[i], 'float32');
        const next = fusedAdamWStepWebGL(w, ms[i], vs[i], grad, scale, { ...hyper, gradScale: scaleValue, decay });
        ms[i].assign(next.m);
        vs[i].assign(next.v);
        w.assign(next.weight);
      });
    });
  }

  /** Moves separate moments into packed group states (once, when the fused path starts). */
  private pack(): void {
    if (this.packed !== null) return;
    const [ms, vs] = [this.m!, this.v!];
    this.packed = this.groups.map((group) =>
      tf.tidy(() => tf.variable(tf.concat(group.flatMap((i) => [tf.reshape(ms[i], [-1]), tf.reshape(vs[i], [-1])])), false)),
    );
    tf.dispose([...ms, ...vs]);
    this.m = this.v = null;
  }

  /** Moves packed group states into separate moments (once, when the composed path starts). */
  private unpack(): void {
    if (this.packed === null) return;
    const states = this.packed;
    const half = (w: tf.Variable, i: number, which: 0 | 1) => {
      const { group, offset } = this.blocks[i];
      return tf.tidy(() => tf.variable(tf.reshape(tf.slice(states[group], [offset + which * w.size], [w.size]), w.shape), false));
    };
    this.m = this.variables.map((w, i) => half(w, i, 0));
    this.v = this.variables.map((w, i) => half(w, i, 1));
    tf.dispose(states);
    this.packed = null;
  }

  /** Separate m and v arrays of every variable from the values read in `stateTensors()` order. */
  private split(values: Float32Array[], separate: boolean): { m: Float32Array[]; v: Float32Array[] } {
    const count = this.variables.length;
    if (separate) return { m: values.slice(0, count), v: values.slice(count) };
    const half = (i: number, which: 0 | 1) => {
      const { group, offset } = this.blocks[i];
      const n = this.variables[i].size;
      return values[group].slice(offset + which * n, offset + (which + 1) * n);
    };
    return { m: this.variables.map((_, i) => half(i, 0)), v: this.variables.map((_, i) => half(i, 1)) };
  }

  private stateTensors(): tf.Tensor[] {
    return this.packed ?? [...this.m!, ...this.v!];
  }

  /** A copy of the state, read synchronously (not possible on webgpu in Node: use `getStateAsync`). */
  getState(): AdamWState {
    const values = this.stateTensors().map((x) => x.dataSync() as Float32Array);
    return { step: this.t, ...this.split(values, this.packed === null) };
  }

  /** `getState` with asynchronous reads (works on every backend). */
  async getStateAsync(): Promise<AdamWState> {
    const step = this.t;
    const separate = this.packed === null;
    const values = await Promise.all(this.stateTensors().map((x) => x.data() as Promise<Float32Array>));
    return { step, ...this.split(values, separate) };
  }

  setState(state: AdamWState): void {
    if (state.m.length !== this.variables.length || state.v.length !== this.variables.length) {
      throw new ValueError(`AdamW.setState: the state holds ${state.m.length} moments for ${this.variables.length} variables.`);
    }
    this.variables.forEach((w, i) => {
      if (state.m[i].length !== w.size || state.v[i].length !== w.size) {
        throw new ValueError(`AdamW.setState: moment ${i} has ${state.m[i].length} values, variable ${w.name} has ${w.size}.`);
      }
    });
    this.t = state.step;
    tf.tidy(() => {
      if (this.packed !== null) {
        const flats = this.groupSizes.map((n) => new Float32Array(n));
        this.variables.forEach((w, i) => {
          const { group, offset } = this.blocks[i];
          flats[group].set(state.m[i], offset);
          flats[group].set(state.v[i], offset + w.size);
        });
        flats.forEach((flat, k) => this.packed![k].assign(tf.tensor(flat, [flat.length])));
      } else {
        this.variables.forEach((w, i) => {
          this.m![i].assign(tf.tensor(state.m[i], w.shape));
          this.v![i].assign(tf.tensor(state.v[i], w.shape));
        });
      }
    });
  }

  dispose(): void {
    tf.dispose(this.stateTensors());
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

/**
 * The squared global L2 norm of `grads` (the sum of every element's square) as a scalar tensor; nothing is
 * read. On webgpu and webgl (unless `TRAINING_KERNELS` asks for the composed path) one fused kernel per 7
 * tensors (src/kernels/webgpu/squared_norm.ts, webgl/squared_norm.ts) instead of a square and a sum per tensor.
 */
export function globalNormSquared(grads: tf.Tensor[]): tf.Scalar {
  if (grads.length === 0) return tf.scalar(0);
  if (usesFusedKernel(SQUARED_NORM_KERNEL) && fusedSquaredNormUnsupported(grads) === null) return fusedSquaredNorm(grads);
  return tf.tidy(() => addNChunked(grads.map((g) => tf.sum(tf.square(g.dtype === 'float32' ? g : tf.cast(g, 'float32'))))) as tf.Scalar);
}

/**
 * `globalNormSquared` as partial sums (1-D tensors whose elements add up to the squared norm), for a caller that
 * reads them anyway (the trainer reads them with the loss): on the fused path the outputs of
 * `GtaSquaredNormPartials`, without the concat and sum kernels; elsewhere the one sum as `[1]`.
 */
export function globalNormSquaredParts(grads: tf.Tensor[]): tf.Tensor1D[] {
  if (grads.length > 0 && usesFusedKernel(SQUARED_NORM_KERNEL) && fusedSquaredNormUnsupported(grads) === null)
    return fusedSquaredNorm(grads, false);
  return [tf.tidy(() => tf.reshape(globalNormSquared(grads), [1])) as tf.Tensor1D];
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

/**
 * The factor that clips gradients to global norm `maxNorm`, as a scalar tensor computed on the device
 * (nothing is read back): `maxNorm / (norm + 1e-6)` when the norm exceeds `maxNorm`, else 1. Pass it to
 * `AdamW.apply` as `gradScale`. `maxNorm` <= 0 gives 1.
 */
export function clipScale(grads: tf.Tensor[], maxNorm: number): tf.Scalar {
  if (!(maxNorm > 0)) return tf.scalar(1);
  return tf.tidy(() => {
    const norm = tf.sqrt(globalNormSquared(grads));
    return tf.where(tf.greater(norm, maxNorm), tf.div(maxNorm, tf.add(norm, 1e-6)), tf.onesLike(norm)) as tf.Scalar;
  });
}

/** The factor that clips gradients of global norm `norm` (already read) to `maxNorm`: as `clipToNorm` scales them. */
export function clipFactor(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return 1;
  return maxNorm / (norm + 1e-6);
}
