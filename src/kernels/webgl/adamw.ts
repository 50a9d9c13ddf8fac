/**
 * AdamW's update of one variable on webgl in three tfjs kernels of our own (registered for 'webgl' by
 * `registerWebGLAdamWKernels`), each one packed fragment program over the variable's own shape, four
 * elements per texel, like tfjs's elementwise ops. A fragment program writes one output, so the moments
 * stay separate (as on the composed path) and each kernel gives a new tensor that the caller assigns.
 *
 * Notation: b1, b2 the betas; c1 = 1 - b1^t, c2 = 1 - b2^t the bias corrections of step t; s the
 * gradient's scale (global-norm clipping, 1 when none), a uniform or a scalar tensor input (a scale
 * computed on the GPU, never read back).
 *   GtaAdamWFirstMoment   (m, grad, scale?) -> m'   g = s grad;  m' = b1 m + (1 - b1) g
 *   GtaAdamWSecondMoment  (v, grad, scale?) -> v'   v' = b2 v + (1 - b2) g^2
 *   GtaAdamWWeightMV      (weight, m', v')  -> w'   w' = w - lr ((m' / c1) / (sqrt(v' / c2) + eps) + decay w)
 * The arithmetic follows the composed update of src/train/adamw.ts operation by operation. Every number
 * that changes between steps (lr, c1, c2, s) is a uniform: tfjs caches compiled programs by `userCode`
 * and input shapes, so a constant baked into the code would compile a new shader at every step. At most
 * two programs per kernel and shape: scale as a uniform or a tensor; weight decay or none. A scale tensor is
 * packed once per step (`GtaAdamWPackScale`, `packedScaleWebGL`) for all the variables' moment kernels.
 * The names differ from the webgpu kernels' (src/kernels/webgpu/adamw.ts), whose moments are packed
 * together in one state `[2, ...shape]`.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import type { WebGLBackendLike, WebGLKernelArgs, WebGLProgram } from './program.js';

/** The registered kernels' names (webgl only). */
export const WEBGL_ADAMW_KERNELS = {
  firstMoment: 'GtaAdamWFirstMoment',
  secondMoment: 'GtaAdamWSecondMoment',
  weight: 'GtaAdamWWeightMV',
  packScale: 'GtaAdamWPackScale',
} as const;

/** Attributes of `GtaAdamWFirstMoment` (beta = b1) and `GtaAdamWSecondMoment` (beta = b2). */
export interface WebGLAdamWMomentAttrs {
  beta: number;
  /** The gradient's scale when no `scale` tensor is given. */
  gradScale: number;
}

/** Attributes of `GtaAdamWWeightMV`. */
export interface WebGLAdamWWeightAttrs {
  lr: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^t. */
  c1: number;
  c2: number;
  epsilon: number;
  /** Decoupled weight decay (0: none). */
  decay: number;
}

const float = (name: string) => ({ name, type: 'float' as const });

/** A moment's program: `first` m' = b m + (1 - b) g, else v' = b v + (1 - b) g^2; g = s grad. Uniforms in `momentKernel`'s order. */
function momentProgram(shape: number[], first: boolean, scaleInput: boolean): WebGLProgram {
  const scale = scaleInput ? 'getScaleAtOutCoords()' : 'vec4(adamGradScale)';
  const term = first ? 'g' : '(g * g)';
  const userCode = `
void main() {
  vec4 g = getGradAtOutCoords() * ${scale};
  setOutput(getXAtOutCoords() * adamBeta + ${term} * adamOneMinusBeta);
}
`;
  return {
    variableNames: scaleInput ? ['X', 'Grad', 'Scale'] : ['X', 'Grad'],
    outputShape: shape,
    userCode,
    packedInputs: true,
    packedOutput: true,
    customUniforms: ['adamBeta', 'adamOneMinusBeta', ...(scaleInput ? [] : ['adamGradScale'])].map(float),
  };
}

/** The weight's program from the new moments. */
function weightProgram(shape: number[], decays: boolean): WebGLProgram {
  const userCode = `
void main() {
  vec4 w = getWAtOutCoords();
  vec4 update = (getMAtOutCoords() / adamC1) / (sqrt(getVAtOutCoords() / adamC2) + adamEps);
  ${decays ? 'update = update + w * adamDecay;' : ''}
  setOutput(w - update * adamLr);
}
`;
  return {
    variableNames: ['W', 'M', 'V'],
    outputShape: shape,
    userCode,
    packedInputs: true,
    packedOutput: true,
    customUniforms: ['adamLr', 'adamC1', 'adamC2', 'adamEps', ...(decays ? ['adamDecay'] : [])].map(float),
  };
}

function momentKernel(first: boolean) {
  return (args: WebGLKernelArgs): tf.TensorInfo => {
    const backend = args.backend as WebGLBackendLike;
    const a = args.attrs as unknown as WebGLAdamWMomentAttrs;
    const { x, grad, scale } = args.inputs;
    const program = momentProgram(x!.shape, first, scale !== undefined);
    const inputs = scale !== undefined ? [x!, grad!, scale] : [x!, grad!];
    const values = [[a.beta], [1 - a.beta], ...(scale !== undefined ? [] : [[a.gradScale]])];
    return backend.runWebGLProgram(program, inputs, 'float32', values);
  };
}

function weightKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const a = args.attrs as unknown as WebGLAdamWWeightAttrs;
  const { weight, m, v } = args.inputs;
  const decays = a.decay > 0;
  const values = [[a.lr], [a.c1], [a.c2], [a.epsilon], ...(decays ? [[a.decay]] : [])];
  return backend.runWebGLProgram(weightProgram(weight!.shape, decays), [weight!, m!, v!], 'float32', values);
}

/**
 * The scale `[]` copied into a packed texture: the moment programs read their inputs packed, and tfjs packs an
 * unpacked input again at every program that reads it (two per variable and step, one program each).
 */
function packScaleKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const program: WebGLProgram = {
    variableNames: ['S'],
    outputShape: [],
    userCode: 'void main() {\n  setOutput(vec4(getS(), 0.0, 0.0, 0.0));\n}\n',
    packedInputs: false,
    packedOutput: true,
  };
  return backend.runWebGLProgram(program, [args.inputs.scale!], 'float32');
}

/** Registers the four kernels for the webgl backend (once). */
export function registerWebGLAdamWKernels(): void {
  if (tf.getKernel(WEBGL_ADAMW_KERNELS.weight, 'webgl') !== undefined) return;
  const kernels: [string, tf.KernelFunc][] = [
    [WEBGL_ADAMW_KERNELS.firstMoment, momentKernel(true) as tf.KernelFunc],
    [WEBGL_ADAMW_KERNELS.secondMoment, momentKernel(false) as tf.KernelFunc],
    [WEBGL_ADAMW_KERNELS.weight, weightKernel as tf.KernelFunc],
    [WEBGL_ADAMW_KERNELS.packScale, packScaleKernel as tf.KernelFunc],
  ];
  for (const [kernelName, kernelFunc] of kernels) tf.registerKernel({ kernelName, backendName: 'webgl', kernelFunc });
}

/** Moment and weight hyperparameters of one step (see the notation above). */
export interface WebGLAdamWStepOptions {
  beta1: number;
  beta2: number;
  /** The gradient's scale when no `scale` tensor is given. */
  gradScale: number;
  lr: number;
  c1: number;
  c2: number;
  epsilon: number;
  decay: number;
}

/**
 * One fused AdamW step of one variable on webgl, three kernels: the new moments and the new weight, which
 * the caller assigns to its variables. `grad` (float32) has the weight's shape; `scale`, a scalar tensor
 * of rank 0, overrides `options.gradScale`. Call only where `usesFusedKernel(WEBGL_ADAMW_KERNELS.weight)`.
 */
export function fusedAdamWStepWebGL(
  weight: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  grad: tf.Tensor,
  scale: tf.Tensor | null,
  options: WebGLAdamWStepOptions,
): { m: tf.Tensor; v: tf.Tensor; weight: tf.Tensor } {
  for (const [name, x] of [
    ['m', m],
    ['v', v],
    ['grad', grad],
  ] as const) {
    if (!tf.util.arraysEqual(x.shape, weight.shape)) {
      throw new ValueError(`fused AdamW (webgl): ${name} has shape [${x.shape}], the weight [${weight.shape}]; they must be equal.`);
    }
  }
  if (scale !== null && scale.rank !== 0)
    throw new ValueError(`fused AdamW (webgl): scale must be a scalar of rank 0, got shape [${scale.shape}].`);
  registerWebGLAdamWKernels();
  const engine = tf.engine();
  const moment = (name: string, x: tf.Tensor, beta: number): tf.Tensor => {
    const inputs: tf.NamedTensorMap = scale !== null ? { x, grad, scale } : { x, grad };
    const attrs = { beta, gradScale: options.gradScale } as unknown as tf.NamedAttrMap;
    return engine.runKernel(name, inputs, attrs) as tf.Tensor;
  };
  const newM = moment(WEBGL_ADAMW_KERNELS.firstMoment, m, options.beta1);
  const newV = moment(WEBGL_ADAMW_KERNELS.secondMoment, v, options.beta2);
  const { lr, c1, c2, epsilon, decay } = options;
  const attrs = { lr, c1, c2, epsilon, decay } as unknown as tf.NamedAttrMap;
  const newWeight = engine.runKernel(WEBGL_ADAMW_KERNELS.weight, { weight, m: newM, v: newV }, attrs) as tf.Tensor;
  return { m: newM, v: newV, weight: newWeight };
}

/**
 * The gradients' scale (a scalar tensor) held packed, for every `fusedAdamWStepWebGL` of one step: one program
 * per step instead of a pack of the scale for each moment of each variable. A scale already packed is returned
 * as it is.
 */
export function packedScaleWebGL(scale: tf.Tensor): tf.Tensor {
  if (scale.rank !== 0) throw new ValueError(`fused AdamW (webgl): scale must be a scalar of rank 0, got shape [${scale.shape}].`);
  const held = (tf.backend() as unknown as { texData?: { get(id: object): { isPacked?: boolean } | undefined } }).texData?.get(
    scale.dataId,
  );
  if (held?.isPacked === true) return scale; // already packed (made by a packed program)
  registerWebGLAdamWKernels();
  return tf.engine().runKernel(WEBGL_ADAMW_KERNELS.packScale, { scale }) as tf.Tensor;
}
