/**
 * The gradient of an embedding lookup (`gather(table, ids)`) wrt the table, for webgpu, as one tfjs kernel
 * (registered for webgpu on first use): `dtable[v, c] = sum over n with ids[n] == v of dy[n, c]`.
 *
 * Notation: V vocabulary rows, D columns, N looked-up ids (all axes of ids flattened), dy `[N, D]`.
 *   dtable   ids [N] (int32), dy [N, D] -> dtable [V, D]   one dispatch
 * tfjs's own gradient (UnsortedSegmentSum) transposes dy, fills the output with zeros, adds with atomics and
 * transposes back; this one writes each output once and sums in a fixed order (deterministic, no atomics).
 *
 * Work split: one workgroup per (vocabulary row v, block of COLUMNS columns); its invocations walk the ids
 * in tiles of COLUMNS staged in workgroup memory and add the dy rows whose id is v. The work is
 * V * N * ceil(D / COLUMNS) tile steps, so the fused path is taken only up to EMBEDDING_GRAD_MAX_WORK
 * (V * N); larger lookups keep tfjs's gradient. Ids outside [0, V) add nothing (as UnsortedSegmentSum).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { LINEAR_WORKGROUP, type ProgramUniform, type WebGPUBackendLike, type WebGPUProgram } from './program.js';

/** Registered kernel name. */
export const EMBEDDING_GRAD_KERNEL = 'GtaEmbeddingGrad';

/**
 * Largest V * N (vocabulary rows times looked-up ids) the fused gradient takes: each vocabulary row scans
 * every id, so the work grows with the product (2^27: e.g. V = 65,536 and N = 2,048).
 */
export const EMBEDDING_GRAD_MAX_WORK = 2 ** 27;

const COLUMNS = 64;

/** One workgroup per (vocabulary row, block of COLUMNS columns). */
class EmbeddingGradProgram implements WebGPUProgram {
  variableNames = ['Ids', 'DY'];
  outputShape: number[];
  shaderKey = 'gtaEmbeddingGrad';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [COLUMNS, 1, 1];
  uniforms = 'V : i32, D : i32, N : i32, colBlocks : i32,';

  constructor(
    private readonly v: number,
    private readonly d: number,
    private readonly n: number,
  ) {
    this.outputShape = [v, d];
    this.dispatch = [v * this.colBlocks(), 1, 1];
  }

  private colBlocks(): number {
    return Math.ceil(this.d / COLUMNS);
  }

  /** The uniform values of this run. */
  uniformValues(): ProgramUniform[] {
    return [this.v, this.d, this.n, this.colBlocks()].map((x) => ({ type: 'int32', data: [x] }));
  }

  getUserCode(): string {
    return `
var<workgroup> tile : array<i32, ${COLUMNS}>;

fn main(index : i32) {
  let li = i32(localIndex);
  let wg = ${LINEAR_WORKGROUP};
  let valid = wg < uniforms.V * uniforms.colBlocks;
  let row = wg / uniforms.colBlocks;
  let col = (wg % uniforms.colBlocks) * ${COLUMNS} + li;
  let D = uniforms.D;
  let N = uniforms.N;
  var total = 0.0;
  for (var start = 0; start < N; start = start + ${COLUMNS}) {
    let at = start + li;
    tile[li] = select(-1, Ids[min(at, N - 1)], at < N);
    workgroupBarrier();
    let count = min(${COLUMNS}, N - start);
    for (var i = 0; i < count; i = i + 1) {
      if (tile[i] == row && col < D) { total = total + DY[(start + i) * D + col]; }
    }
    workgroupBarrier();
  }
  if (valid && col < D) { result[row * D + col] = total; }
}
`;
  }
}

function embeddingGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const { ids, dy } = args.inputs;
  const { vocabSize } = args.attrs as unknown as { vocabSize: number };
  const d = dy!.shape[dy!.shape.length - 1];
  const n = ids!.shape.reduce((a, x) => a * x, 1);
  const program = new EmbeddingGradProgram(vocabSize, d, n);
  return backend.runWebGPUProgram(program, [ids!, dy!], 'float32', program.uniformValues());
}

/** Registers the kernel for the webgpu backend (once). */
export function registerEmbeddingGradKernel(): void {
  if (tf.getKernel(EMBEDDING_GRAD_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({
    kernelName: EMBEDDING_GRAD_KERNEL,
    backendName: 'webgpu',
    kernelFunc: embeddingGradKernel as unknown as tf.KernelFunc,
  });
}

/** Why the fused gradient cannot take a `[V, D]` table looked up at `ids`, or null when it can. */
export function fusedEmbeddingGradUnsupported(table: tf.Tensor, ids: tf.Tensor): string | null {
  if (table.dtype !== 'float32' || table.rank !== 2)
    return `the table must be a float32 [V, D] tensor (got ${table.dtype} [${table.shape}])`;
  if (ids.dtype !== 'int32') return `ids must be int32 (got ${ids.dtype})`;
  if (table.size === 0 || ids.size === 0) return 'the table and ids must have at least one element';
  if (table.shape[0] * ids.size > EMBEDDING_GRAD_MAX_WORK)
    return `V * N (${table.shape[0]} * ${ids.size}) must be at most EMBEDDING_GRAD_MAX_WORK (${EMBEDDING_GRAD_MAX_WORK})`;
  return null;
}

/**
 * The table gradient of `gather(table, ids)` for the output gradient `dy [...ids.shape, D]`: `[V, D]`, one
 * dispatch on webgpu. Throws a `ValueError` for inputs it does not take (`fusedEmbeddingGradUnsupported`), a
 * `dy` of the wrong shape, or off webgpu; callers check first and fall back to the composed gradient.
 */
export function fusedEmbeddingGrad(table: tf.Tensor, ids: tf.Tensor, dy: tf.Tensor): tf.Tensor2D {
  const why = fusedEmbeddingGradUnsupported(table, ids);
  if (why !== null) throw new ValueError(`fused embedding gradient: ${why}.`);
  const [v, d] = table.shape as [number, number];
  if (!tf.util.arraysEqual(dy.shape, [...ids.shape, d]) || dy.dtype !== 'float32')
    throw new ValueError(`fused embedding gradient: dy must be float32 [${[...ids.shape, d]}] (got ${dy.dtype} [${dy.shape}]).`);
  if (tf.getBackend() !== 'webgpu')
    throw new ValueError(`fused embedding gradient: the fused kernel needs the webgpu backend (active backend is ${tf.getBackend()}).`);
  registerEmbeddingGradKernel();
  // ids [...] and dy [..., D] are read as their flat buffers: [N] and [N, D].
  return tf.engine().runKernel(EMBEDDING_GRAD_KERNEL, { ids, dy }, { vocabSize: v } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
