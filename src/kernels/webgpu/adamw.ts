/**
 * AdamW's update of one variable on webgpu in two dispatches (two tfjs kernels of our own, registered for
 * webgpu on first use). A WebGPU dispatch writes one output and cannot read and write one buffer through
 * two bindings, so the moments live together in one state tensor and each dispatch writes a new buffer
 * that the caller assigns to its variable (no copy: `Variable.assign` takes the buffer over).
 *
 * Notation: n elements of the variable, shape [...shape]; b1, b2 the betas; c1 = 1 - b1^t, c2 = 1 - b2^t
 * the bias corrections of step t; s the gradient's scale (global-norm clipping, 1 when none).
 *   state    [2, ...shape]   m then v
 *   GtaAdamWMoments  (state, grad [...shape], scale? [] or [1]) -> state' [2, ...shape]
 *                    g = s * grad;  m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g^2
 *                    s is a uniform, or a scalar tensor input (a scale computed on the GPU, never read back)
 *   GtaAdamWWeight   (weight [...shape], state' [2, ...shape]) -> weight' [...shape]
 *                    w' = w - lr ((m' / c1) / (sqrt(v' / c2) + eps) + decay w)
 * The arithmetic follows the composed update of src/train/adamw.ts operation by operation.
 */
import * as tf from '@tensorflow/tfjs';
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

/** Moments update: output index i < n is m, i >= n is v. */
class MomentsProgram extends ElementwiseProgram {
  variableNames: string[];
  shaderKey: string;
  uniforms = 'n : i32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, gradScale : f32,';

  constructor(
    stateShape: number[],
    private readonly scaleInput: boolean,
  ) {
    super(stateShape);
    this.variableNames = scaleInput ? ['State', 'Grad', 'Scale'] : ['State', 'Grad'];
    this.shaderKey = `gtaAdamWMoments_${scaleInput ? 'tensor' : 'uniform'}`;
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let n = uniforms.n;
  let j = select(index - n, index, index < n);
  let s = ${this.scaleInput ? 'Scale[0]' : 'uniforms.gradScale'};
  let g = select(Grad[j] * s, Grad[j], s == 1.0);
  if (index < n) {
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
  uniforms = 'n : i32, lr : f32, c1 : f32, c2 : f32, eps : f32, decay : f32,';

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
  let m = State[index];
  let v = State[index + uniforms.n];
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
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
const f32 = (x: number): ProgramUniform => ({ type: 'float32', data: [x] });

function momentsKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const a = args.attrs as unknown as AdamWMomentsAttrs;
  const { state, grad, scale } = args.inputs;
  const program = new MomentsProgram(state!.shape, scale !== undefined);
  const uniforms = [
    { type: 'int32', data: [grad!.shape.reduce((x, d) => x * d, 1)] } as ProgramUniform,
    f32(a.beta1),
    f32(1 - a.beta1),
    f32(a.beta2),
    f32(1 - a.beta2),
    f32(a.gradScale),
  ];
  const inputs = scale !== undefined ? [state!, grad!, scale] : [state!, grad!];
  return backend.runWebGPUProgram(program, inputs, 'float32', uniforms);
}

function weightKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const a = args.attrs as unknown as AdamWWeightAttrs;
  const { weight, state } = args.inputs;
  const program = new WeightProgram(weight!.shape, a.decay > 0);
  const uniforms = [
    { type: 'int32', data: [weight!.shape.reduce((x, d) => x * d, 1)] } as ProgramUniform,
    f32(a.lr),
    f32(a.c1),
    f32(a.c2),
    f32(a.epsilon),
    f32(a.decay),
  ];
  return backend.runWebGPUProgram(program, [weight!, state!], 'float32', uniforms);
}

/** Registers both kernels for the webgpu backend (once). */
export function registerAdamW(): void {
  if (tf.getKernel(ADAMW_KERNELS.moments, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: ADAMW_KERNELS.moments, backendName: 'webgpu', kernelFunc: momentsKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: ADAMW_KERNELS.weight, backendName: 'webgpu', kernelFunc: weightKernel as tf.KernelFunc });
}

/**
 * One fused AdamW step of one variable on webgpu: the new state `[2, ...shape]` (m, v) and the new weight,
 * two dispatches. `scale` (a scalar tensor) overrides `moments.gradScale`. The caller assigns both results
 * to its variables. Call only where `hasFusedTrainingKernels()` (webgpu).
 */
export function fusedAdamWStep(
  weight: tf.Tensor,
  state: tf.Tensor,
  grad: tf.Tensor,
  scale: tf.Tensor | null,
  moments: AdamWMomentsAttrs,
  update: AdamWWeightAttrs,
): { state: tf.Tensor; weight: tf.Tensor } {
  registerAdamW();
  const inputs: tf.NamedTensorMap = { state, grad };
  if (scale !== null) inputs.scale = scale;
  const engine = tf.engine();
  const newState = engine.runKernel(ADAMW_KERNELS.moments, inputs, moments as unknown as tf.NamedAttrMap) as tf.Tensor;
  const newWeight = engine.runKernel(ADAMW_KERNELS.weight, { weight, state: newState }, update as unknown as tf.NamedAttrMap) as tf.Tensor;
  return { state: newState, weight: newWeight };
}
