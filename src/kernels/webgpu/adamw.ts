/**
 * AdamW's update on webgpu as tfjs kernels of our own (registered for webgpu on first use): one dispatch
 * updates the moments of a group of up to `MOMENTS_GROUP_SIZE` variables, then one dispatch per variable
 * writes its new weight. A WebGPU dispatch writes one output and cannot read and write one buffer through
 * two bindings, so each group's moments live together in one flat state tensor, and each dispatch writes
 * a new buffer that the caller assigns to its variable (no copy: `Variable.assign` takes the buffer over).
 * A group is as large as the binding limit allows: WebGPU's default of 8 storage buffers per shader stage
 * holds the output, the state, the optional scale and 5 gradients.
 *
 * Notation: a group of k variables, variable i with n_i elements; o_i = 2 (n_0 + ... + n_{i-1}) the start of
 * its block in the group's state; b1, b2 the betas; c1 = 1 - b1^t, c2 = 1 - b2^t the bias corrections of
 * step t; s the gradient's scale (global-norm clipping, 1 when none).
 *   state    [2 (n_0 + ... + n_{k-1})]   per variable, in order: m_i [n_i] then v_i [n_i]
 *   GtaAdamWMoments  (state, grad0 .. grad{k-1} (variable i's shape), scale? [] or [1]) -> state'
 *                    g = s * grad_i;  m_i' = b1 m_i + (1 - b1) g;  v_i' = b2 v_i + (1 - b2) g^2
 *                    s is a uniform, or a scalar tensor input (a scale computed on the GPU, never read back)
 *   GtaAdamWWeight   (weight [...shape], state' of its group; attrs offset o_i) -> weight' [...shape]
 *                    w' = w - lr ((m_i' / c1) / (sqrt(v_i' / c2) + eps) + decay w)
 * The arithmetic follows the composed update of src/train/adamw.ts operation by operation.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import type { ProgramUniform, WebGPUBackendLike, WebGPUProgram } from './program.js';

/** The registered kernels' names. */
export const ADAMW_KERNELS = { moments: 'GtaAdamWMoments', weight: 'GtaAdamWWeight' } as const;

const WG = 256;

/** One invocation per element of the output, over a flat dispatch. */
abstract class ElementwiseProgram implements WebGPUProgram {
  abstract variableNames: string[];
  abstract shaderKey: string;
  abstract uniforms: string;
  outputShape: number[];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  size = true;

  constructor(outputShape: number[]) {
    this.outputShape = outputShape;
    this.dispatch = [Math.ceil(outputShape.reduce((a, x) => a * x, 1) / WG), 1, 1];
  }

  abstract getUserCode(): string;
}

/**
 * The moments of a group of `count` variables: output index `index` lies in variable i's block
 * [o_i, o_i + 2 n_i); its first n_i entries are m_i, the next n_i are v_i.
 */
class MomentsProgram extends ElementwiseProgram {
  variableNames: string[];
  shaderKey: string;
  uniforms: string;

  constructor(
    stateSize: number,
    private readonly count: number,
    private readonly scaleInput: boolean,
  ) {
    super([stateSize]);
    const grads = Array.from({ length: count }, (_, i) => `Grad${i}`);
    this.variableNames = ['State', ...grads, ...(scaleInput ? ['Scale'] : [])];
    this.shaderKey = `gtaAdamWMoments_${count}_${scaleInput ? 'tensor' : 'uniform'}`;
    const blocks = Array.from({ length: count }, (_, i) => `o${i} : i32, n${i} : i32,`).join(' ');
    this.uniforms = `${blocks} beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, gradScale : f32,`;
  }

  getUserCode(): string {
    // Variable i's block, then its gradient element: the last block needs no bound check.
    const branch = (i: number) => `{
    j = index - uniforms.o${i};
    n = uniforms.n${i};
    raw = Grad${i}[select(j - n, j, j < n)];
  }`;
    const blocks = Array.from({ length: this.count }, (_, i) =>
      i === this.count - 1 ? branch(i) : `if (index < uniforms.o${i + 1}) ${branch(i)}`,
    ).join(' else ');
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  var j = 0;
  var n = 0;
  var raw = 0.0;
  ${blocks}
  let s = ${this.scaleInput ? 'Scale[0]' : 'uniforms.gradScale'};
  let g = select(raw * s, raw, s == 1.0);
  if (j < n) {
    result[index] = State[index] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
  } else {
    result[index] = State[index] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
  }
}
`;
  }
}

/** Weight update from the new moments. */
class WeightProgram extends ElementwiseProgram {
  variableNames = ['Weight', 'State'];
  shaderKey: string;
  uniforms = 'n : i32, offset : i32, lr : f32, c1 : f32, c2 : f32, eps : f32, decay : f32,';

  constructor(
    shape: number[],
    private readonly decays: boolean,
  ) {
    super(shape);
    this.shaderKey = `gtaAdamWWeight_${decays}`;
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let w = Weight[index];
  let m = State[uniforms.offset + index];
  let v = State[uniforms.offset + uniforms.n + index];
  var update = (m / uniforms.c1) / (sqrt(v / uniforms.c2) + uniforms.eps);
  ${this.decays ? 'update = update + w * uniforms.decay;' : ''}
  result[index] = w - update * uniforms.lr;
}
`;
  }
}

/** Attributes of `GtaAdamWMoments`. */
export interface AdamWMomentsAttrs {
  beta1: number;
  beta2: number;
  /** The gradient's scale when no `scale` tensor is given. */
  gradScale: number;
}

/** Attributes of `GtaAdamWWeight`. */
export interface AdamWWeightAttrs {
  lr: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^t. */
  c1: number;
  c2: number;
  epsilon: number;
  /** Decoupled weight decay (0: none). */
  decay: number;
  /** Where the variable's block (m then v) starts in its group's state. */
  offset: number;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
const f32 = (x: number): ProgramUniform => ({ type: 'float32', data: [x] });
const i32 = (x: number): ProgramUniform => ({ type: 'int32', data: [x] });
const sizeOf = (shape: number[]) => shape.reduce((x, d) => x * d, 1);

function momentsKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const a = args.attrs as unknown as AdamWMomentsAttrs;
  const { state, scale } = args.inputs;
  const grads: tf.TensorInfo[] = [];
  for (let i = 0; args.inputs[`grad${i}`] !== undefined; i++) grads.push(args.inputs[`grad${i}`]!);
  const program = new MomentsProgram(sizeOf(state!.shape), grads.length, scale !== undefined);
  const blocks: ProgramUniform[] = [];
  let offset = 0;
  for (const g of grads) {
    blocks.push(i32(offset), i32(sizeOf(g.shape)));
    offset += 2 * sizeOf(g.shape);
  }
  const uniforms = [...blocks, f32(a.beta1), f32(1 - a.beta1), f32(a.beta2), f32(1 - a.beta2), f32(a.gradScale)];
  const inputs = [state!, ...grads, ...(scale !== undefined ? [scale] : [])];
  return backend.runWebGPUProgram(program, inputs, 'float32', uniforms);
}

function weightKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const a = args.attrs as unknown as AdamWWeightAttrs;
  const { weight, state } = args.inputs;
  const program = new WeightProgram(weight!.shape, a.decay > 0);
  const uniforms = [i32(sizeOf(weight!.shape)), i32(a.offset), f32(a.lr), f32(a.c1), f32(a.c2), f32(a.epsilon), f32(a.decay)];
  return backend.runWebGPUProgram(program, [weight!, state!], 'float32', uniforms);
}

/** Registers both kernels for the webgpu backend (once). */
export function registerAdamW(): void {
  if (tf.getKernel(ADAMW_KERNELS.moments, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: ADAMW_KERNELS.moments, backendName: 'webgpu', kernelFunc: momentsKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: ADAMW_KERNELS.weight, backendName: 'webgpu', kernelFunc: weightKernel as tf.KernelFunc });
}

/** Most variables whose moments one `GtaAdamWMoments` dispatch updates (8 storage buffers: output, state, scale, 5 gradients). */
export const MOMENTS_GROUP_SIZE = 5;

/**
 * Most state elements of one group when it holds more than one variable (16 Mi floats, 64 MiB): far below
 * WebGPU's default binding limit of 128 MiB per storage buffer. A variable whose state is larger than this
 * forms a group of its own (as large as one variable's state was before grouping).
 */
export const MOMENTS_GROUP_MAX_ELEMENTS = 1 << 24;

/**
 * Variables (by their element counts `sizes`, in order) split into consecutive groups of at most
 * `MOMENTS_GROUP_SIZE`, each with at most `MOMENTS_GROUP_MAX_ELEMENTS` state elements unless it holds a
 * single variable. Returns each group's variable indices.
 */
export function momentGroups(sizes: number[]): number[][] {
  const groups: number[][] = [];
  let current: number[] = [];
  let elements = 0;
  sizes.forEach((n, i) => {
    if (current.length > 0 && (current.length === MOMENTS_GROUP_SIZE || elements + 2 * n > MOMENTS_GROUP_MAX_ELEMENTS)) {
      groups.push(current);
      current = [];
      elements = 0;
    }
    current.push(i);
    elements += 2 * n;
  });
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The fused AdamW step of one group of variables on webgpu: the group's new state (one dispatch) and each
 * variable's new weight (one dispatch each). `state` is the group's flat state (layout above), `grads` are
 * float32 and shaped like `weights`; `scale` (a scalar tensor) overrides `moments.gradScale`; `decays[i]` is
 * variable i's weight decay. The caller assigns the results to its variables. At most `MOMENTS_GROUP_SIZE`
 * variables; call only where `hasFusedTrainingKernels()` (webgpu).
 */
export function fusedAdamWGroupStep(
  weights: tf.Tensor[],
  state: tf.Tensor,
  grads: tf.Tensor[],
  scale: tf.Tensor | null,
  moments: AdamWMomentsAttrs,
  update: Omit<AdamWWeightAttrs, 'decay' | 'offset'>,
  decays: number[],
): { state: tf.Tensor; weights: tf.Tensor[] } {
  if (weights.length === 0 || weights.length > MOMENTS_GROUP_SIZE || grads.length !== weights.length || decays.length !== weights.length) {
    throw new ValueError(
      `fusedAdamWGroupStep: 1 to ${MOMENTS_GROUP_SIZE} variables, each with a gradient and a decay; got ${weights.length}.`,
    );
  }
  const total = weights.reduce((acc, w) => acc + 2 * w.size, 0);
  if (state.size !== total) throw new ValueError(`fusedAdamWGroupStep: the state has ${state.size} elements, the group needs ${total}.`);
  registerAdamW();
  const inputs: tf.NamedTensorMap = { state };
  grads.forEach((g, i) => (inputs[`grad${i}`] = g));
  if (scale !== null) inputs.scale = scale;
  const engine = tf.engine();
  const newState = engine.runKernel(ADAMW_KERNELS.moments, inputs, moments as unknown as tf.NamedAttrMap) as tf.Tensor;
  let offset = 0;
  const newWeights = weights.map((weight, i) => {
    const attrs: AdamWWeightAttrs = { ...update, decay: decays[i], offset };
    offset += 2 * weight.size;
    return engine.runKernel(ADAMW_KERNELS.weight, { weight, state: newState }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  });
  return { state: newState, weights: newWeights };
}
