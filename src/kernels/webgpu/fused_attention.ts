/**
 * The fused attention forward as a tfjs kernel on webgpu (`GtaFusedAttention`), so that `tf.profile`,
 * the engine's memory accounting and tidy scopes see it like any other kernel.
 *
 * Notation as in src/ops/attention_core.ts: B batch, T query length, S key length, nQ/nK/nV/nE query,
 * key, value and extra-key heads, Dk/De/Dv dims.
 *   inputs   query [B, nQ, T, Dk], key [B, nK, S, Dk], value [B, nV, S, Dv],
 *            optional bias [B|1, 1, T|1, S|1] or [T|1, S|1], optional extraQuery [B, nQ, T, De], extraKey [B, nE, S, De]
 *   output   [B, nQ, T, Dv], or [B, nQ, T, Dv + 1] with the log-sum-exp of each row last (attr withLse)
 *
 * One dispatch (flash_attention.ts) when the (batch, head group, row block) workgroups fill the GPU; when
 * they do not (decode: T = 1, few heads), the keys are split over workgroups and a second dispatch
 * (attention_combine.ts) merges the splits (flash-decoding).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { AttentionCombineProgram } from './attention_combine.js';
import { chooseTiling, FlashAttentionProgram, foldedHeads, type FlashShapes, type FlashTiling } from './flash_attention.js';
import { chooseBackwardTiling, FlashAttentionKeyValueGradProgram, FlashAttentionQueryGradProgram } from './flash_attention_backward.js';
import {
  FlashAttentionKeyValueGradRowsProgram,
  FlashAttentionQueryGradRowsProgram,
  keyValueHalves,
  rowBackwardFits,
} from './flash_attention_backward_rows.js';
import { chooseRowTiling, FlashAttentionRowsProgram } from './flash_attention_rows.js';
import type { ProgramUniform, WebGPUBackendLike, WebGPUProgram } from './program.js';

/** The registered kernel's name. */
export const FUSED_ATTENTION_KERNEL = 'GtaFusedAttention';
/** The registered backward kernel's name. */
export const FUSED_ATTENTION_GRAD_KERNEL = 'GtaFusedAttentionGrad';

/** Split-of-keys tuning (internal; exported for tests and experiments). */
export const FUSED_ATTENTION_TUNING = {
  /** Split the keys when fewer workgroups than this would run without splitting (the H200 has 132 SMs). */
  targetWorkgroups: 264,
  /** Fewest keys per split. */
  minKeysPerSplit: 64,
  /**
   * Long key ranges (prefill): split further, until about this many workgroups run, as long as each split keeps
   * at least `longMinKeysPerSplit` keys (0: off). More, shorter workgroups even out a causal mask's uneven rows.
   * On the H200, GQA's prefill at T = 4096 (512 workgroups unsplit, 5 splits here) was faster in 33 of 34 rounds
   * over four runs, by 14-17%; GTA's (128 workgroups, 3 splits by `targetWorkgroups`, 8 here) unchanged
   * (docs/benchmarks/2026-12-03-decode-prefill-splits-h200.md). Training at T = 512 is not affected.
   */
  longTargetWorkgroups: 2112,
  /** Fewest keys per split of `longTargetWorkgroups`. */
  longMinKeysPerSplit: 512,
  /** Most splits. */
  maxSplits: 64,
  /**
   * Take the row-per-invocation programs (flash_attention_rows.ts, flash_attention_backward_rows.ts) where
   * they apply: Dk, De and Dv multiples of 4 that fit their registers, and at least one workgroup of folded
   * rows. False forces flash_attention.ts and flash_attention_backward.ts everywhere (the specs run both).
   */
  rowProgram: true,
  /** Rows (invocations) per workgroup of the row programs (forward and backward; keys per workgroup in dK/dV). */
  rowsPerWorkgroup: 128,
  /**
   * Workgroup memory the row programs may use for their tiles of keys (forward, dQ) or rows (dK/dV), in bytes;
   * the device's `maxComputeWorkgroupStorageSize` caps it. 16384 is WebGPU's guaranteed minimum.
   */
  rowWorkgroupBytes: 16384,
  /**
   * Keys per step of the forward row program's inner loop: 1, or 4 (four independent scores, one maximum and
   * at most one rescale of the output per four keys).
   */
  rowKeyBatch: 1 as 1 | 4,
  /** The forward row program's row blocks in reverse order, last rows first (see `rowBlockCoords`). */
  lateRowsFirst: false,
};

/** Floats of workgroup memory for the row programs' tiles on `backend` (FUSED_ATTENTION_TUNING.rowWorkgroupBytes, capped). */
function rowTileFloats(backend: WebGPUBackendLike): number {
  const limit = backend.device?.limits.maxComputeWorkgroupStorageSize ?? 16384;
  return Math.floor(Math.min(FUSED_ATTENTION_TUNING.rowWorkgroupBytes, limit) / 4);
}

/** Attributes of the kernel. */
interface FusedAttentionAttrs {
  scale: number;
  causalOffset: number | null;
  withLse: boolean;
}

/** Why the fused kernel cannot take these inputs, or null when it can. */
export function fusedAttentionUnsupported(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  bias: tf.Tensor | null,
  extra: { query: tf.Tensor; key: tf.Tensor } | null,
): string | null {
  const all = [query, key, value, ...(bias ? [bias] : []), ...(extra ? [extra.query, extra.key] : [])];
  if (all.some((x) => x.dtype !== 'float32')) return 'every input must be float32';
  if (query.rank !== 4 || key.rank !== 4 || value.rank !== 4) return 'query, key and value must be rank 4';
  const [b, nQ, t, dk] = query.shape;
  const [, nK, s] = key.shape;
  const [, nV, , dv] = value.shape;
  if (key.shape[0] !== b || value.shape[0] !== b || key.shape[3] !== dk || value.shape[2] !== s || nQ % nK !== 0 || nQ % nV !== 0)
    return 'query, key and value shapes do not match';
  if (bias) {
    const bs = bias.rank === 4 ? bias.shape : bias.rank === 2 ? [1, 1, ...bias.shape] : null;
    if (bs === null || bs[1] !== 1 || (bs[0] !== 1 && bs[0] !== b) || (bs[2] !== 1 && bs[2] !== t) || (bs[3] !== 1 && bs[3] !== s))
      return `bias shape [${bias.shape}] is not [B|1, 1, T|1, S|1] or [T|1, S|1]`;
  }
  let de = 0;
  if (extra) {
    const [eb, eq, et, d] = extra.query.shape;
    const [kb, nE, ks, kd] = extra.key.shape;
    if (
      extra.query.rank !== 4 ||
      extra.key.rank !== 4 ||
      eb !== b ||
      eq !== nQ ||
      et !== t ||
      kb !== b ||
      ks !== s ||
      kd !== d ||
      nQ % nE !== 0
    )
      return 'extra query/key shapes do not match';
    de = d;
  }
  const rf = foldedHeads({ nQ, nK, nV, nE: extra ? extra.key.shape[1] : nK, de } as FlashShapes);
  if (chooseTiling(dk + de, dv, rf * t) === null)
    return `query/key dim ${dk + de} with value dim ${dv} does not fit in 16 KiB of workgroup memory`;
  return null;
}

/** Splits of the keys and keys per split for these shapes and tiles. */
export function keySplits(shapes: FlashShapes, tile: FlashTiling): { splits: number; chunk: number } {
  const rf = foldedHeads(shapes);
  const workgroups = shapes.b * (shapes.nQ / rf) * Math.ceil((rf * shapes.t) / tile.rows);
  const { targetWorkgroups, minKeysPerSplit, maxSplits, longTargetWorkgroups, longMinKeysPerSplit } = FUSED_ATTENTION_TUNING;
  const fill =
    workgroups >= targetWorkgroups ? 1 : Math.min(Math.ceil(targetWorkgroups / workgroups), Math.floor(shapes.s / minKeysPerSplit));
  const long =
    longTargetWorkgroups > 0 ? Math.min(Math.ceil(longTargetWorkgroups / workgroups), Math.floor(shapes.s / longMinKeysPerSplit)) : 1;
  const splits = Math.min(Math.max(fill, long), maxSplits);
  if (splits <= 1) return { splits: 1, chunk: Math.max(shapes.s, 1) };
  const chunk = Math.ceil(Math.ceil(shapes.s / splits) / tile.keys) * tile.keys;
  return { splits: Math.ceil(shapes.s / chunk), chunk };
}

function biasStrides(bias: tf.TensorInfo | undefined, b: number, t: number, s: number): [number, number, number] | null {
  if (!bias) return null;
  const [bb, , bt, bs] = bias.shape.length === 4 ? bias.shape : [1, 1, ...bias.shape];
  return [bb === b && b > 1 ? bt * bs : 0, bt === t && t > 1 ? bs : 0, bs === s && s > 1 ? 1 : 0];
}

/** The kernels' shapes and options from their inputs and attributes. */
function shapesOf(inputs: tf.NamedTensorInfoMap, scale: number, causalOffset: number | null): FlashShapes {
  const { bias, extraQuery, extraKey } = inputs;
  const [b, nQ, t, dk] = inputs.query!.shape;
  const [, nK, s] = inputs.key!.shape;
  const [, nV, , dv] = inputs.value!.shape;
  return {
    b,
    nQ,
    t,
    s,
    nK,
    nV,
    nE: extraKey ? extraKey.shape[1] : nK,
    dk,
    de: extraQuery ? extraQuery.shape[3] : 0,
    dv,
    biasStrides: biasStrides(bias, b, t, s),
    causalOffset,
    scale,
  };
}

function fusedAttentionKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WebGPUBackendLike;
  const attrs = args.attrs as unknown as FusedAttentionAttrs;
  const { bias, extraQuery, extraKey } = args.inputs;
  const [query, key, value] = [args.inputs.query!, args.inputs.key!, args.inputs.value!];
  const shapes = shapesOf(args.inputs, attrs.scale, attrs.causalOffset);
  const inputs: tf.TensorInfo[] = [query, key, value, ...(bias ? [bias] : []), ...(extraQuery && extraKey ? [extraQuery, extraKey] : [])];
  return runFlashAttention(backend, shapes, inputs, attrs.withLse);
}

/** Whether the row programs are on and `shapes` has at least a workgroup of folded rows for them. */
function rowProgramApplies(shapes: FlashShapes): boolean {
  return FUSED_ATTENTION_TUNING.rowProgram && foldedHeads(shapes) * shapes.t >= FUSED_ATTENTION_TUNING.rowsPerWorkgroup;
}

/** The row program's tiling for `shapes` (flash_attention_rows.ts), or null where the tile program runs. */
function rowTiling(shapes: FlashShapes, floats?: number): FlashTiling | null {
  return rowProgramApplies(shapes)
    ? chooseRowTiling(shapes.dk, shapes.de, shapes.dv, FUSED_ATTENTION_TUNING.rowsPerWorkgroup, floats)
    : null;
}

/**
 * Which forward program runs for `shapes`: 'rows' (flash_attention_rows.ts: one folded row per invocation,
 * for at least a workgroup of folded rows with dims it keeps in registers) or 'tiles' (flash_attention.ts).
 */
export function forwardProgramKind(shapes: FlashShapes): 'rows' | 'tiles' {
  return rowTiling(shapes) !== null ? 'rows' : 'tiles';
}

/** The key splits that the forward runs for `shapes` with the current tuning (under WebGPU's 16 KiB of tiles). */
export function forwardKeySplits(shapes: FlashShapes): number {
  const tile = rowTiling(shapes) ?? chooseTiling(shapes.dk + shapes.de, shapes.dv, foldedHeads(shapes) * shapes.t);
  return tile === null ? 1 : keySplits(shapes, tile).splits;
}

/**
 * Runs the forward program on `inputs` (query, key, value, [bias], [extraQuery, extraKey], as
 * FlashAttentionProgram reads them) for `shapes`: one dispatch, or the key splits and their combine.
 */
export function runFlashAttention(
  backend: WebGPUBackendLike,
  shapes: FlashShapes,
  inputs: tf.TensorInfo[],
  withLse: boolean,
): tf.TensorInfo {
  const { b, nQ, t, dk, dv } = shapes;
  const rowTile = rowTiling(shapes, rowTileFloats(backend));
  const tile = rowTile ?? chooseTiling(dk + shapes.de, dv, foldedHeads(shapes) * t);
  if (tile === null) throw new ValueError(`fused attention: dims Dk+De=${dk + shapes.de}, Dv=${dv} do not fit in workgroup memory`);
  const { splits, chunk } = keySplits(shapes, tile);
  const program = (mode: 'final' | 'lse' | 'partial'): WebGPUProgram & { uniformValues(): ProgramUniform[] } =>
    rowTile
      ? new FlashAttentionRowsProgram(
          shapes,
          rowTile,
          splits,
          chunk,
          mode,
          FUSED_ATTENTION_TUNING.rowKeyBatch,
          FUSED_ATTENTION_TUNING.lateRowsFirst,
        )
      : new FlashAttentionProgram(shapes, tile, splits, chunk, mode);
  if (splits === 1) {
    const single = program(withLse ? 'lse' : 'final');
    return backend.runWebGPUProgram(single, inputs, 'float32', single.uniformValues());
  }
  const partialProgram = program('partial');
  const partial = backend.runWebGPUProgram(partialProgram, inputs, 'float32', partialProgram.uniformValues());
  const combine = new AttentionCombineProgram([b, nQ, t, withLse ? dv + 1 : dv], splits, dv, withLse);
  const out = backend.runWebGPUProgram(combine, [partial], 'float32', combine.uniformValues());
  backend.disposeData(partial.dataId);
  return out;
}

/** Inputs query, key, value, [extraQuery, extraKey], packed (the forward's output with its log-sum-exp), dy: [dQ, dKV]. */
function fusedAttentionGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo[] {
  const backend = args.backend as WebGPUBackendLike;
  const attrs = args.attrs as unknown as FusedAttentionAttrs;
  const { query, key, value, extraQuery, extraKey, packed, dy } = args.inputs;
  const shapes = shapesOf(args.inputs, attrs.scale, attrs.causalOffset);
  const inputs = [query!, key!, value!, ...(extraQuery && extraKey ? [extraQuery, extraKey] : []), packed!, dy!];
  if (backwardProgramKind(shapes) === 'rows') {
    const rows = FUSED_ATTENTION_TUNING.rowsPerWorkgroup;
    const floats = rowTileFloats(backend);
    const queryRows = new FlashAttentionQueryGradRowsProgram(shapes, rows, floats);
    const dQ = backend.runWebGPUProgram(queryRows, inputs, 'float32', queryRows.uniformValues());
    // dK and dV in one dispatch, or two into the same output where one would need too many registers.
    let dKV: tf.TensorInfo | undefined;
    for (const half of keyValueHalves(shapes.dk, shapes.de, shapes.dv)) {
      const program = new FlashAttentionKeyValueGradRowsProgram(shapes, rows, half, floats);
      dKV = backend.runWebGPUProgram(program, inputs, 'float32', program.uniformValues(), dKV);
    }
    return [dQ, dKV!];
  }
  const dq = shapes.dk + shapes.de;
  const queryTile = chooseBackwardTiling(dq, shapes.dv, 'query');
  const keyTile = chooseBackwardTiling(dq, shapes.dv, 'keyValue');
  if (queryTile === null || keyTile === null) throw new ValueError(`fused attention backward: dims DQ=${dq}, Dv=${shapes.dv} do not fit`);
  const queryProgram = new FlashAttentionQueryGradProgram(shapes, queryTile);
  const keyProgram = new FlashAttentionKeyValueGradProgram(shapes, keyTile);
  return [
    backend.runWebGPUProgram(queryProgram, inputs, 'float32', queryProgram.uniformValues()),
    backend.runWebGPUProgram(keyProgram, inputs, 'float32', keyProgram.uniformValues()),
  ];
}

/**
 * Which backward programs run for `shapes`: 'rows' (flash_attention_backward_rows.ts, when the row program
 * is on, there is at least a workgroup of folded rows and the dims fit its registers) or 'tiles'
 * (flash_attention_backward.ts).
 */
export function backwardProgramKind(shapes: FlashShapes): 'rows' | 'tiles' {
  return rowProgramApplies(shapes) && rowBackwardFits(shapes.dk, shapes.de, shapes.dv) ? 'rows' : 'tiles';
}

/** Registers the kernels for the webgpu backend (once). */
export function registerFusedAttention(): void {
  if (tf.getKernel(FUSED_ATTENTION_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: FUSED_ATTENTION_KERNEL, backendName: 'webgpu', kernelFunc: fusedAttentionKernel as tf.KernelFunc });
  tf.registerKernel({
    kernelName: FUSED_ATTENTION_GRAD_KERNEL,
    backendName: 'webgpu',
    kernelFunc: fusedAttentionGradKernel as unknown as tf.KernelFunc,
  });
}

/** Why the fused backward cannot take these inputs, or null when it can (a bias takes the composed gradient). */
export function fusedAttentionGradUnsupported(
  query: tf.Tensor,
  value: tf.Tensor,
  bias: tf.Tensor | null,
  extra: { query: tf.Tensor } | null,
): string | null {
  if (bias !== null) return 'a bias takes the composed gradient (which gives the bias its own)';
  const dq = query.shape[3]! + (extra ? extra.query.shape[3]! : 0);
  const dv = value.shape[3]!;
  if (chooseBackwardTiling(dq, dv, 'query') === null || chooseBackwardTiling(dq, dv, 'keyValue') === null)
    return `query/key dim ${dq} with value dim ${dv} does not fit the backward's workgroup memory`;
  return null;
}

/**
 * The fused backward's two outputs for the same inputs as `fusedAttentionBackward`: `dQ [B, nQ, T, DQ]` (DQ = Dk + De,
 * the extra query's columns last) and `dKV [B, G, S, DQ + Dv]`, per group of query heads that the kernel folds
 * together (`groups` of them): the keys' columns (Dk, then De), then the values'. Where `groups` equals a head count,
 * that head's gradient is its columns of dKV as they are; otherwise the groups sharing a head are summed. The
 * kernel may split the rows of dKV's sums over P workgroups (`splits`): with `sumSplits` false dKV is then the
 * `[P, B, G, S, DQ + Dv]` partial sums as the kernel wrote them, for a caller that sums while it reads.
 */
export function fusedAttentionBackwardParts(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  extra: { query: tf.Tensor4D; key: tf.Tensor4D } | null,
  packed: tf.Tensor4D,
  dy: tf.Tensor4D,
  options: { scale: number; causalOffset: number | null },
  sumSplits = true,
): { dQ: tf.Tensor4D; dKV: tf.Tensor; groups: number; splits: number } {
  registerFusedAttention();
  const inputs: tf.NamedTensorMap = { query, key, value, packed, dy };
  if (extra) {
    inputs.extraQuery = extra.query;
    inputs.extraKey = extra.key;
  }
  const attrs: FusedAttentionAttrs = { scale: options.scale, causalOffset: options.causalOffset, withLse: true };
  const [dQ, parts] = tf.engine().runKernel(FUSED_ATTENTION_GRAD_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  // [P, B, G, S, DQ + Dv]: the splits of the rows summed (one split: a free reshape).
  const [splits, pb, pg, ps, pw] = parts.shape;
  if (!sumSplits && splits > 1) return { dQ: dQ as tf.Tensor4D, dKV: parts, groups: pg, splits };
  const dKV = splits === 1 ? tf.reshape(parts, [pb, pg, ps, pw]) : tf.sum(parts, 0);
  parts.dispose();
  return { dQ: dQ as tf.Tensor4D, dKV, groups: pg, splits: 1 };
}

/**
 * From the fused backward's key/value sums `dKV [B, G, S, DQ + Dv]` (splits summed): columns `[from, from + width)`
 * per head of `heads`, the G / heads groups that share each head summed: `[B, heads, S, width]`.
 */
export function headGradients(dKV: tf.Tensor4D, from: number, width: number, heads: number): tf.Tensor4D {
  const [b, groups, s] = dKV.shape;
  return tf.tidy(() => {
    const part = tf.slice(dKV, [0, 0, 0, from], [b, groups, s, width]) as tf.Tensor4D;
    if (groups === heads) return part;
    return tf.sum(tf.reshape(part, [b, heads, groups / heads, s, width]), 2) as tf.Tensor4D; // [B, heads, S, width]
  });
}

/**
 * The gradients of the fused attention (no bias) from its inputs, the forward's packed output
 * `[B, nQ, T, Dv + 1]` (output and log-sum-exp, `fusedAttentionForward(..., {packed: true})`) and `dy`
 * `[B, nQ, T, Dv]`: two dispatches (flash_attention_backward.ts), then slices and, where several head groups
 * share a key or value head, a sum over them.
 */
export function fusedAttentionBackward(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  extra: { query: tf.Tensor4D; key: tf.Tensor4D } | null,
  packed: tf.Tensor4D,
  dy: tf.Tensor4D,
  options: { scale: number; causalOffset: number | null },
): { query: tf.Tensor4D; key: tf.Tensor4D; value: tf.Tensor4D; extraQuery: tf.Tensor4D | null; extraKey: tf.Tensor4D | null } {
  const { dQ, dKV } = fusedAttentionBackwardParts(query, key, value, extra, packed, dy, options);
  const [b, nQ, t, dk] = query.shape;
  const nK = key.shape[1];
  const [, nV, , dv] = value.shape;
  const de = extra ? extra.query.shape[3] : 0;
  const nE = extra ? extra.key.shape[1] : nK;
  const perHead = (from: number, width: number, heads: number) => headGradients(dKV as tf.Tensor4D, from, width, heads);
  const out = {
    query: de > 0 ? (tf.slice(dQ, [0, 0, 0, 0], [b, nQ, t, dk]) as tf.Tensor4D) : dQ,
    key: perHead(0, dk, nK),
    value: perHead(dk + de, dv, nV),
    extraQuery: de > 0 ? (tf.slice(dQ, [0, 0, 0, dk], [b, nQ, t, de]) as tf.Tensor4D) : null,
    extraKey: de > 0 ? perHead(dk, de, nE) : null,
  };
  tf.dispose(de > 0 ? [dQ, dKV] : [dKV]);
  return out;
}

/** Options of `fusedAttentionForward`. */
export interface FusedAttentionOptions {
  scale: number;
  bias?: tf.Tensor | null;
  causalOffset?: number | null;
  extra?: { query: tf.Tensor4D; key: tf.Tensor4D } | null;
  /** Also return the log-sum-exp of each row's scores `[B, nQ, T]`. */
  withLse?: boolean;
  /**
   * Also return the kernel's packed output `[B, nQ, T, Dv + 1]` (the output, then each row's log-sum-exp):
   * what `fusedAttentionBackward` takes. The caller disposes it.
   */
  packed?: boolean;
}

/**
 * `softmax(scale q k^T [+ scale eq ek^T] + bias [+ causal]) v` in one fused kernel on webgpu, with the rows'
 * log-sum-exp when asked. No gradient of its own: src/ops/attention_core.ts wraps it in `tf.customGrad`.
 */
export function fusedAttentionForward(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  options: FusedAttentionOptions,
): { output: tf.Tensor4D; lse: tf.Tensor3D | null; packed: tf.Tensor4D | null } {
  registerFusedAttention();
  const bias = options.bias ?? null;
  const extra = options.extra ?? null;
  const why = fusedAttentionUnsupported(query, key, value, bias, extra);
  if (why !== null) throw new ValueError(`fused attention: ${why}.`);
  const inputs: tf.NamedTensorMap = { query, key, value };
  if (bias) inputs.bias = bias;
  if (extra) {
    inputs.extraQuery = extra.query;
    inputs.extraKey = extra.key;
  }
  const attrs: FusedAttentionAttrs = {
    scale: options.scale,
    causalOffset: options.causalOffset ?? null,
    withLse: options.withLse === true || options.packed === true,
  };
  const out = tf.engine().runKernel(FUSED_ATTENTION_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  if (!attrs.withLse) return { output: out, lse: null, packed: null };
  const [b, nQ, t, w] = out.shape;
  const output = tf.slice(out, [0, 0, 0, 0], [b, nQ, t, w - 1]) as tf.Tensor4D; // [B, nQ, T, Dv + 1] -> [B, nQ, T, Dv]
  const lse =
    options.withLse === true
      ? (tf.tidy(() => tf.reshape(tf.slice(out, [0, 0, 0, w - 1], [b, nQ, t, 1]), [b, nQ, t])) as tf.Tensor3D)
      : null;
  if (options.packed === true) return { output, lse, packed: out };
  out.dispose();
  return { output, lse, packed: null };
}
