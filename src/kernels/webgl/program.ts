/**
 * The small part of tfjs-backend-webgl 4.22's program interface that our kernels use, typed here so that
 * the package stays an optional peer (nothing is imported from it at run time).
 *
 * A program is a fragment shader that writes one output texel (one element: our programs take and give
 * unpacked textures) per invocation. tfjs compiles `userCode` after its helpers: `getOutputCoords()` (an
 * `int` for a rank-1 output, an `ivec2` for rank 2), one sampler per name in `variableNames`
 * (`getX(i, j)` for an input `X` of rank 2, `getXAtOutCoords()` for an input shaped like the output),
 * `setOutput(float)` and the constant `NAN`. The compiled program is cached by `userCode` and the inputs'
 * shapes, so constants baked into `userCode` are safe.
 */
import * as tf from '@tensorflow/tfjs';

/** A WebGL program as tfjs-backend-webgl runs it. */
export interface WebGLProgram {
  variableNames: string[];
  outputShape: number[];
  userCode: string;
  /** Packed programs read and write 4 values per texel (`vec4 getXAtOutCoords()`, `setOutput(vec4)`). */
  packedInputs?: boolean;
  packedOutput?: boolean;
  /**
   * Shapes as uniforms: the compiled program is then cached by the inputs' ranks rather than their shapes, so that
   * a shape that changes per call (a decode step's growing cache) does not compile a new shader per call.
   */
  enableShapeUniforms?: boolean;
  /**
   * Uniforms declared before `userCode` (`uniform float name;`), set at each run from the values passed to
   * `runWebGLProgram`, in this order. Values that change per call belong here, not in `userCode`: the
   * program cache is keyed by `userCode`, so a baked constant compiles a new shader per value.
   */
  customUniforms?: Array<{
    name: string;
    type: 'float' | 'int' | 'vec2' | 'vec3' | 'vec4' | 'ivec2' | 'ivec3' | 'ivec4';
    /** An array of this many entries (`uniform vec4 name[n];`), set from a flat list of their values. */
    arrayIndex?: number;
  }>;
}

/** The backend methods our kernels call. */
export interface WebGLBackendLike {
  /** `customUniformValues`: one array per entry of `program.customUniforms`, in order. */
  runWebGLProgram(
    program: WebGLProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    customUniformValues?: number[][],
  ): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

/** Kernel arguments as tfjs passes them. */
export interface WebGLKernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/**
 * `info` viewed with `shape` through webgl's own Reshape kernel (free for unpacked data; a packed input
 * is re-laid out). The caller disposes the result with `disposeIntermediateTensorInfo`.
 */
export function reshapeInfo(backend: WebGLBackendLike, info: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const reshape = tf.getKernel('Reshape', 'webgl');
  if (reshape === undefined) throw new Error('webgl backend without a Reshape kernel');
  const attrs = { shape } as unknown as tf.NamedAttrMap;
  return reshape.kernelFunc({ inputs: { x: info }, backend: backend as unknown as tf.KernelBackend, attrs }) as tf.TensorInfo;
}

/**
 * Runs `program` on `inputs`, each first viewed with the matching shape in `shapes`, and returns its
 * output viewed with `outShape`; every intermediate view is disposed. `uniforms`: the values of the
 * program's `customUniforms`, in order.
 */
export function runReshaped(
  backend: WebGLBackendLike,
  program: WebGLProgram,
  inputs: tf.TensorInfo[],
  shapes: number[][],
  outShape: number[],
  uniforms?: number[][],
): tf.TensorInfo {
  const views = inputs.map((info, i) => reshapeInfo(backend, info, shapes[i]));
  const out = backend.runWebGLProgram(program, views, 'float32', uniforms);
  views.forEach((v) => backend.disposeIntermediateTensorInfo(v));
  if (tf.util.arraysEqual(out.shape, outShape)) return out;
  const shaped = reshapeInfo(backend, out, outShape);
  backend.disposeIntermediateTensorInfo(out);
  return shaped;
}

/** The product of `shape`'s entries. */
export const sizeOf = (shape: number[]): number => shape.reduce((a, x) => a * x, 1);
