/**
 * The small part of tfjs-backend-webgpu 4.22's program interface that our kernels use, typed here so
 * that the package stays an optional peer (nothing is imported from it at run time).
 *
 * A program is compiled by the backend from: a uniform struct (tfjs's NAN/INFINITY, each input's shape
 * and strides, the output's shape and strides, then `uniforms`), `result` (the output buffer, binding 0),
 * one `array<f32>` per name in `variableNames`, tfjs's helpers, `getUserCode()` and an entry point
 * `_start` that stores the builtins in private variables (`localIndex`, `workgroupId`, `numWorkgroups`)
 * and calls `main(index)` with the flat global index (for a dispatch layout over x only).
 * The pipeline cache key is `shaderKey` plus the inputs' ranks and dtypes: every constant baked into
 * the WGSL must be part of `shaderKey`.
 */
import type * as tf from '@tensorflow/tfjs';

/** A WebGPU compute program as tfjs-backend-webgpu runs it. */
export interface WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Extra uniform fields, WGSL struct syntax, each ending with a comma. */
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

/** One extra uniform value, in the order of `WebGPUProgram.uniforms`. */
export interface ProgramUniform {
  type: 'int32' | 'float32';
  data: number[];
}

/** The backend methods our kernels call. */
export interface WebGPUBackendLike {
  runWebGPUProgram(
    program: WebGPUProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    uniforms?: ProgramUniform[],
    output?: tf.TensorInfo,
  ): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  device?: { limits: { maxComputeWorkgroupsPerDimension: number; maxComputeWorkgroupStorageSize?: number } };
}

/** WGSL: the linear index of this workgroup in a 1-D dispatch that tfjs may have reshaped to 2-D or 3-D. */
export const LINEAR_WORKGROUP = 'i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x)';

/**
 * WGSL: this workgroup's coordinates in a 1-D dispatch of `uniforms.total` workgroups, which tfjs may have
 * rounded up and reshaped. Declares `valid` (false for the workgroups past the total) and one `let` per axis,
 * split in mixed radix from the fastest axis: `axes` are `[name, radix]` pairs (the radix a WGSL expression,
 * usually a uniform), and `slowest` takes what is left. The workgroups past the total take the last one's
 * coordinates, so that they reach every barrier the real ones reach and read in bounds; they must not write.
 */
export function workgroupCoords(axes: ReadonlyArray<readonly [name: string, radix: string]>, slowest: string): string {
  const lines = [
    `let wgIndex = ${LINEAR_WORKGROUP};`,
    'let valid = wgIndex < uniforms.total;',
    'var w = min(wgIndex, uniforms.total - 1);',
  ];
  for (const [name, radix] of axes) lines.push(`let ${name} = w % ${radix};`, `w = w / ${radix};`);
  lines.push(`let ${slowest} = w;`);
  return lines.join('\n  ');
}

/** One uniform of a `CountedProgram`: its WGSL name, type and value. */
export type NamedUniform = [name: string, type: 'i32' | 'f32', value: number];

/** Invocations per workgroup of a `CountedProgram`. */
export const COUNTED_WORKGROUP = 64;

/**
 * A 1-D program with one invocation per element of `count`, in workgroups of COUNTED_WORKGROUP. `count` is the
 * first uniform (`uniforms.count`; the WGSL starts with `if (index >= uniforms.count) { return; }`), followed by
 * `uniforms` in order. Subclasses give the inputs, output, pipeline key and WGSL.
 */
export abstract class CountedProgram implements WebGPUProgram {
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [COUNTED_WORKGROUP, 1, 1];
  uniforms: string;
  private readonly values: ProgramUniform[];

  constructor(
    public variableNames: string[],
    public outputShape: number[],
    public shaderKey: string,
    count: number,
    uniforms: NamedUniform[],
  ) {
    const all: NamedUniform[] = [['count', 'i32', count], ...uniforms];
    this.dispatch = [Math.max(1, Math.ceil(count / COUNTED_WORKGROUP)), 1, 1];
    this.uniforms = all.map(([name, type]) => `${name} : ${type},`).join(' ');
    this.values = all.map(([, type, value]) => ({ type: type === 'i32' ? 'int32' : 'float32', data: [value] }));
  }

  uniformValues(): ProgramUniform[] {
    return this.values;
  }

  abstract getUserCode(): string;
}
