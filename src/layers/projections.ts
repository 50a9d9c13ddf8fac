/**
 * Projections of attention inputs to heads, and the one owner of tensors derived from weights.
 *
 * `ProjectionLayer` turns `x2 [N, D]` into per-head tensors `[B, heads, T, dim]` (with or without RoPE),
 * fusing several projections into one product where the backend slices cheaply, and keeps the fused,
 * scaled and folded kernels between inference calls through `derivedWeight`, its only cache of such
 * tensors (freed by `dispose()` / `releaseDerivedTensors()`).
 *
 * Notation: B batch, T query length, N = B*T rows, D model width.
 */
import * as tf from '@tensorflow/tfjs';
import { broadcastsSlowly, fusedProjectionMaxRows, slicesCheaply } from '../ops/capabilities.js';
import { RotaryFactors, applyRotaryFactors, applyRotaryFactorsToHeads } from '../ops/rope.js';
import { project } from '../ops/dense.js';
import { matMul2d } from '../ops/matmul.js';
import { KerasWeightsLayer } from './keras_args.js';
import { markUsed, read } from './layer_utils.js';

/** What the projections need of a call: its RoPE factors and whether it is an inference call. */
export interface ProjectionContext {
  /**
   * RoPE factors `[B|1, T, 1|heads, dim]` for the call's positions (see `applyRotaryFactors`); `heads`
   * repeats them per head (for consecutive positions only).
   */
  rotary: (dim: number, heads?: number) => RotaryFactors;
  /**
   * For one new token at the same position in every row (T = 1, no per-row positions): RoPE as a
   * `[dim, dim]` matrix (`rotaryMatrix`), else null.
   */
  rotation: (dim: number) => tf.Tensor2D | null;
  /**
   * An inference call (`callWithCache` while no gradient scope is open): tensors derived from the weights
   * (scaled, fused and folded kernels) may be kept between calls, through `derivedWeight` only.
   */
  inference: boolean;
}

/** A projection's kernel `[D, heads*dim]` and bias `[heads*dim]` (or null), as tensors. */
export interface ProjectionWeights {
  kernel: tf.Tensor;
  bias: tf.Tensor | null;
}

/** A projection's kernel and bias, as the layer's variables. */
export interface ProjectionVariables {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
}

/** The decode steps' joined projection (`keptDecodeProjection`): its key, kept weight `[1, D, N]` and bias `[N]`. */
export interface DecodeProjection {
  key: string;
  kernel: tf.Tensor;
  bias: tf.Tensor | null;
  /** The bias variables it joins (null without biases). */
  biases: tf.LayerVariable[] | null;
}

/** A layer that projects its input to heads and owns the tensors it derives from its weights. */
export abstract class ProjectionLayer extends KerasWeightsLayer {
  /** Tensors derived from weights for inference calls, with the data ids of the weights they came from. */
  private readonly derived = new Map<string, { ids: Array<object | null>; tensor: tf.Tensor }>();

  /**
   * A tensor computed from weights by `make` (a 2-D view, a fused, scaled or folded kernel). This is the
   * layer's only cache of such tensors: in inference calls it is kept and reused until one of `sources`
   * changes value (a new data id after `assign`, e.g. an optimizer step or `setWeights`); under a gradient
   * tape (and in Keras `call`s) it is computed in the call, so that gradients reach the weights.
   * `make` must return a new tensor, never a weight itself, and must be differentiable.
   */
  protected derivedWeight(ctx: ProjectionContext, key: string, sources: Array<tf.LayerVariable | null>, make: () => tf.Tensor): tf.Tensor {
    return ctx.inference ? this.keptWeight(key, sources, make) : make();
  }

  /** `derivedWeight` for a call known to be an inference call (the fused decode step): always kept. */
  protected keptWeight(key: string, sources: Array<tf.LayerVariable | null>, make: () => tf.Tensor): tf.Tensor {
    const ids = sources.map((v) => (v === null ? null : (v.read() as unknown as { dataId: object }).dataId));
    const have = this.derived.get(key);
    if (have !== undefined && have.ids.every((id, i) => id === ids[i])) return have.tensor;
    have?.tensor.dispose();
    const tensor = tf.keep(make());
    this.derived.set(key, { ids, tensor });
    return tensor;
  }

  /**
   * For the fused decode step (an inference call): the projections `kernels` side by side as one kept
   * `[1, D, N]` weight, the first (the query) times `scale`, and their biases the same way (`[N]`), or null when
   * `biases` is null.
   */
  protected keptDecodeProjection(
    key: string,
    kernels: tf.LayerVariable[],
    biases: tf.LayerVariable[] | null,
    scale: number,
  ): DecodeProjection {
    const joined = (parts: tf.LayerVariable[], axis: number) =>
      tf.concat(
        parts.map((v, i) => (i === 0 ? tf.mul(read(v)!, scale) : read(v)!)),
        axis,
      );
    const d = kernels[0].shape[0]!;
    return {
      key,
      kernel: this.keptWeight(`${key}/kernel`, kernels, () => tf.reshape(joined(kernels, 1), [1, d, -1])),
      bias: biases === null ? null : this.keptWeight(`${key}/bias`, biases, () => joined(biases, 0)),
      biases,
    };
  }

  /**
   * The webgl decode step's projection of the token `x [B, 1, D]` to its row `[B, 1, N]`: `x @ kernel + bias` as one
   * product whose kernel adds the bias (`keptDecodeProjection`'s weights). The bias is kept as a `[1, N]` product's
   * output, which WebGL holds packed like the product takes it (a bias held unpacked is packed again every call).
   */
  protected decodeRows(x: tf.Tensor3D, projection: DecodeProjection): tf.Tensor3D {
    const { key, kernel, bias, biases } = projection;
    if (bias === null) return tf.matMul(x, kernel) as tf.Tensor3D; // [B, 1, D] @ [1, D, N] -> [B, 1, N]
    const n = bias.shape[0];
    const packed = this.keptWeight(`${key}/bias-packed`, biases!, () => tf.matMul(tf.ones([1, 1]), tf.reshape(bias, [1, n]))); // [1, N]
    return tf.fused.matMul({ a: x, b: kernel, bias: packed }) as tf.Tensor3D; // [B, 1, D] @ [1, D, N] + [1, N] -> [B, 1, N]
  }

  /**
   * The fused decode step's output projection: `u [B, 1, W] @ kernel [W, D] (+ bias)` -> `[B, 1, D]`, the kernel
   * kept as `[1, W, D]` between steps.
   */
  protected decodeOutput(u: tf.Tensor, kernel: tf.LayerVariable, bias: tf.LayerVariable | null, fuseBias = false): tf.Tensor3D {
    const d = kernel.shape[kernel.shape.length - 1]!;
    const wo = this.keptWeight('decode/output', [kernel], () => tf.reshape(read(kernel)!, [1, -1, d]));
    // With `fuseBias` (webgl: one program fewer) the product's kernel adds the bias; tf.fused.matMul's reshapes are
    // free views but count as kernels under tf.profile, so webgpu's step keeps a product and an Add.
    if (fuseBias && bias !== null) return tf.fused.matMul({ a: u, b: wo, bias: read(bias)! }) as tf.Tensor3D; // [B, 1, D]
    const out = tf.matMul(u, wo) as tf.Tensor3D; // [B, 1, W] @ [1, W, D] -> [B, 1, D]
    return bias === null ? out : tf.add(out, read(bias)!);
  }

  /**
   * A flat projection kernel `[D, heads*dim]` and its bias (`[heads*dim]` or null), times `scale`; the scaled
   * copies are kept between inference calls (`derivedWeight`). With `scale` 1 the weights themselves.
   */
  protected scaledWeights(ctx: ProjectionContext, kernel: tf.LayerVariable, bias: tf.LayerVariable | null, scale = 1): ProjectionWeights {
    const scaled = (v: tf.LayerVariable): tf.Tensor =>
      scale === 1 ? read(v)! : this.derivedWeight(ctx, `${v.name}*${scale}`, [v], () => tf.mul(read(v)!, scale));
    return { kernel: scaled(kernel), bias: bias === null ? null : scaled(bias) };
  }

  /**
   * `x2 [N, D]` projected to `heads` heads of `dim` with RoPE, in the attention layout `[B, heads, T, dim]`.
   * One token per row (T = 1, no per-row positions) rotates all heads with one `[dim, dim]` product.
   */
  protected ropeHeads(
    ctx: ProjectionContext,
    x2: tf.Tensor,
    w: ProjectionWeights,
    b: number,
    t: number,
    heads: number,
    dim: number,
  ): tf.Tensor4D {
    const y = project(x2, w.kernel, w.bias); // [N, D] @ [D, heads*dim] -> [N, heads*dim]
    const rotation = ctx.rotation(dim);
    if (rotation !== null) {
      // T = 1: [B*heads, dim] @ [dim, dim] -> [B, heads, 1, dim]
      return tf.reshape(matMul2d(tf.reshape(y, [b * heads, dim]), rotation), [b, heads, 1, dim]) as tf.Tensor4D;
    }
    // Where broadcasting is slow, repeat the factors per head.
    const factors = ctx.rotary(dim, broadcastsSlowly() ? heads : 1);
    // [N, heads*dim] -> [B, T, heads, dim] -> rotated, heads first: [B, heads, T, dim]
    return applyRotaryFactorsToHeads(tf.reshape(y, [b, t, heads, dim]) as tf.Tensor4D, factors);
  }

  /**
   * Queries and keys with RoPE, `[B, hq, T, dim]` and `[B, hk, T, dim]`, from `x2 [N, D]`. On backends with
   * cheap slicing (tensorflow, webgl) both come from one product with the concatenated kernel (kept in
   * inference calls) and are rotated together, which halves the kernel launches that dominate short
   * sequences; on cpu and wasm, whose Slice copies through JavaScript, they are projected and rotated
   * separately so that nothing is split. (RoPE-free projections go through `plainHeadsFused`.)
   */
  protected queryKeyHeads(
    ctx: ProjectionContext,
    x2: tf.Tensor,
    wq: ProjectionVariables,
    wk: ProjectionVariables,
    qScale: number,
    b: number,
    t: number,
    hq: number,
    hk: number,
    dim: number,
  ): { q: tf.Tensor4D; k: tf.Tensor4D } {
    const qw = this.scaledWeights(ctx, wq.kernel, wq.bias, qScale);
    const kw = this.scaledWeights(ctx, wk.kernel, wk.bias);
    if (!slicesCheaply()) {
      return { q: this.ropeHeads(ctx, x2, qw, b, t, hq, dim), k: this.ropeHeads(ctx, x2, kw, b, t, hk, dim) };
    }
    const sources = [wq.kernel, wk.kernel];
    const kernel = this.derivedWeight(ctx, `${wq.kernel.name}|${wk.kernel.name}*${qScale}`, sources, () =>
      tf.concat([qw.kernel, kw.kernel], 1),
    ); // [D, hq*dim + hk*dim]
    const bias =
      qw.bias === null
        ? null
        : this.derivedWeight(ctx, `${wq.bias!.name}|${wk.bias!.name}*${qScale}`, [wq.bias, wk.bias], () =>
            tf.concat([qw.bias!, kw.bias!], 0),
          ); // [hq*dim + hk*dim]
    if (t > 1 && hq === hk) {
      // Equal parts (MHA): rotate, then unstack q and k without a copy (`unstackEqualParts`).
      const y = project(x2, kernel, bias); // [N, D] @ [D, 2*h*dim] -> [N, 2*h*dim]
      const roped = applyRotaryFactors(tf.reshape(y, [b, t, 2 * hq, dim]), ctx.rotary(dim)); // [N, 2*h*dim] -> [B, T, 2h, dim]
      const [q, k] = unstackEqualParts(roped, b, t, 2, hq, dim); // 2 x [B, h, T, dim]
      return { q, k };
    }
    const qk = this.ropeHeads(ctx, x2, { kernel, bias }, b, t, hq + hk, dim); // [B, hq+hk, T, dim]
    const [q, k] = tf.split(qk, [hq, hk], 1); // [B, hq, T, dim], [B, hk, T, dim]
    return { q: q as tf.Tensor4D, k: k as tf.Tensor4D };
  }

  /**
   * Several projections of `x2 [N, D]` without RoPE (kernels `[D, heads_i*dim]`, the i-th scaled by
   * `scale_i`), each in the layout `[B, heads_i, T, dim]`. In inference calls on backends with cheap
   * slicing they come from one product with the concatenated kernel (kept between calls) and one split:
   * a third of the kernel launches of separate projections, which dominate short sequences. Otherwise
   * (training, where the concatenation would be rebuilt every step; cpu and wasm; tensorflow beyond
   * `FUSED_MAX_ROWS` rows) they are separate.
   */
  protected plainHeadsFused(
    ctx: ProjectionContext,
    x2: tf.Tensor,
    parts: Array<ProjectionVariables & { heads: number; scale?: number }>,
    b: number,
    t: number,
    dim: number,
  ): tf.Tensor4D[] {
    const views = parts.map((p) => this.scaledWeights(ctx, p.kernel, p.bias, p.scale ?? 1));
    // One wide product, then slices: only where slicing is cheap and up to the backend's row limit.
    const fuse = ctx.inference && slicesCheaply() && b * t <= fusedProjectionMaxRows();
    if (!fuse) return views.map((w, i) => this.plainHeads(x2, w, b, t, parts[i].heads, dim));
    const key = parts.map((p) => `${p.kernel.name}*${p.scale ?? 1}`).join('|');
    const kernel = this.derivedWeight(
      ctx,
      key,
      parts.map((p) => p.kernel),
      () =>
        tf.concat(
          views.map((w) => w.kernel),
          1,
        ),
    ); // [D, sum(heads_i)*dim]
    const bias =
      views[0].bias === null
        ? null
        : this.derivedWeight(
            ctx,
            `${key}#bias`,
            parts.map((p) => p.bias),
            () =>
              tf.concat(
                views.map((w) => w.bias!),
                0,
              ),
          ); // [sum(heads_i)*dim]
    const heads = parts.map((p) => p.heads);
    const total = heads.reduce((p, h) => p + h, 0);
    if (t > 1 && heads.every((h) => h === heads[0])) {
      return unstackEqualParts(project(x2, kernel, bias), b, t, parts.length, heads[0], dim); // [N, D] @ [D, n*h*dim] -> n x [B, h, T, dim]
    }
    const all = this.plainHeads(x2, { kernel, bias }, b, t, total, dim); // [B, sum(heads_i), T, dim]
    return tf.split(all, heads, 1) as tf.Tensor4D[]; // [B, heads_i, T, dim] each
  }

  /** `x2 [N, D]` projected to `heads` heads of `dim` (no RoPE), in the layout `[B, heads, T, dim]`. */
  protected plainHeads(x2: tf.Tensor, w: ProjectionWeights, b: number, t: number, heads: number, dim: number): tf.Tensor4D {
    const y = project(x2, w.kernel, w.bias); // [N, D] @ [D, heads*dim] -> [N, heads*dim]
    if (t === 1) return tf.reshape(y, [b, heads, 1, dim]) as tf.Tensor4D; // [B, heads*dim] -> [B, heads, 1, dim] (T = 1)
    // [N, heads*dim] -> [B, T, heads, dim] -> [B, heads, T, dim]
    return tf.transpose(tf.reshape(y, [b, t, heads, dim]), [0, 2, 1, 3]) as tf.Tensor4D;
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    markUsed(this);
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) this.releaseDerivedTensors();
    return result;
  }

  /**
   * Frees tensors derived from the weights and kept between calls (folded decode weights). Called by
   * `dispose()`, and by composite layers that dispose this layer's weights themselves.
   */
  releaseDerivedTensors(): void {
    for (const { tensor } of this.derived.values()) tensor.dispose();
    this.derived.clear();
  }
}

/**
 * `y` holding `[B, T, n, h, dim]` values (n equal parts of h heads, any shape of that size) as n tensors
 * `[B, h, T, dim]`: one transpose puts the parts on a leading axis, and unstacking along it is free on
 * tensorflow (it shares the buffer of leading-axis slices), where a split on the head axis copies.
 */
function unstackEqualParts(y: tf.Tensor, b: number, t: number, n: number, h: number, dim: number): tf.Tensor4D[] {
  const stacked = tf.transpose(tf.reshape(y, [b, t, n, h, dim]), [2, 0, 3, 1, 4]); // -> [B, T, n, h, dim] -> [n, B, h, T, dim]
  return tf.unstack(stacked, 0) as tf.Tensor4D[]; // n x [B, h, T, dim]
}
