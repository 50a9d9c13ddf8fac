/**
 * What GQA, GTA and MLA have in common: Keras-style arguments (dropout, biases, initializers,
 * regularizers, constraints, seed, causal masking as a constructor option), input checking, masks,
 * RoPE angles, and the two entry points:
 *
 * - `call(x | [x, mask], kwargs)`: the Keras path used by `apply`, `predict` and `fit`. Padding masks
 *   arrive as Keras masks (`kwargs.mask`), as a second input `[B, S]`, or as an attention mask
 *   `[B, T, S]` (second input or `kwargs.attentionMask`). With `returnAttentionScores` (eager only)
 *   it returns `[output, scores]`.
 * - `callWithCache(x, {cache})`: eager incremental decoding; returns the output and a new cache.
 *
 * Notation: B batch, T query length, S key length (cached + new), D model width.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_DROPOUT_SEED_STRIDE } from '../utils/seeds.js';
import { broadcastsSlowly, fusedProjectionMaxRows, slicesCheaply } from '../ops/capabilities.js';
import { AttentionCache, AttentionKind, CacheEntry } from '../cache/attention_cache.js';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { attentionMaskBias, checkMaskValues, combineBiases, paddingBias } from '../ops/masks.js';
import { RotaryFactors, applyRotaryFactors, rotaryFactorsAt, rotaryFactorsRange, rotaryMatrix } from '../ops/rope.js';
import { project } from '../ops/dense.js';
import { matMul2d } from '../ops/matmul.js';
import {
  ConstraintIdentifier, InitializerIdentifier, RegularizerIdentifier, getConstraint, getInitializer,
  getRegularizer, serializeIdentifier,
} from '../utils/serialization.js';

export type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Initializer = ReturnType<typeof tf.initializers.zeros>;
export type Kwargs = Record<string, unknown>;

/** Keys every tfjs layer accepts. */
export const LAYER_ARG_KEYS = ['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype',
  'weights', 'inputDType', 'customObjects'] as const;

export interface AttentionBaseArgs extends LayerArgs {
  /** Dropout rate on the attention probabilities (applied when `training`). Default 0. */
  dropout?: number;
  /** Whether projections have biases (which ones is mechanism-specific). */
  useBias?: boolean;
  /** Mask future keys (decoder self-attention). Default false, as in Keras. */
  useCausalMask?: boolean;
  /** RoPE base (Keras `max_wavelength`). Default 10000. */
  ropeMaxWavelength?: number;
  /** RoPE position scaling (positions are divided by it). Default 1. */
  ropeScalingFactor?: number;
  kernelInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
  kernelRegularizer?: RegularizerIdentifier | null;
  biasRegularizer?: RegularizerIdentifier | null;
  kernelConstraint?: ConstraintIdentifier | null;
  biasConstraint?: ConstraintIdentifier | null;
  /** Seed for initializers and dropout; null = nondeterministic. */
  seed?: number | null;
}

export const BASE_ARG_KEYS = [...LAYER_ARG_KEYS, 'dropout', 'useBias', 'useCausalMask', 'ropeMaxWavelength',
  'ropeScalingFactor', 'kernelInitializer', 'biasInitializer', 'kernelRegularizer', 'biasRegularizer',
  'kernelConstraint', 'biasConstraint', 'seed'] as const;

/** Options of eager calls. */
export interface AttentionCallOptions {
  /** `[B, T, S]`, 1/true where query t may attend to key s (S counts cached keys too). */
  attentionMask?: tf.Tensor | null;
  /** `[B, T]` (new tokens) or `[B, S]` (cached + new), 1/true for real tokens; masks padded keys. */
  paddingMask?: tf.Tensor | null;
  /** Overrides the constructor's `useCausalMask` for this call. */
  useCausalMask?: boolean;
  /** Also return the attention probabilities `[B, maps, T, S]`. */
  returnAttentionScores?: boolean;
  training?: boolean;
  /** `[B, T]` int32 RoPE positions; default `cache.length + 0..T-1` for every row. */
  positions?: tf.Tensor | null;
}

export interface CachedCallOptions extends AttentionCallOptions {
  /** The cache from the previous call; null/undefined starts a new one. */
  cache?: AttentionCache | null;
}

export interface CachedCallResult {
  output: tf.Tensor3D; // [B, T, D]
  cache: AttentionCache;
  scores?: tf.Tensor4D; // [B, maps, T, S]
}

/** What a mechanism's forward pass receives. */
export interface ForwardContext {
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
  bias: tf.Tensor | null;
  training: boolean;
  /** Tensors of the previous cache, or null. */
  past: Record<string, tf.Tensor> | null;
  /** Use the decode-optimised form (MLA absorbed) where the mechanism has one. */
  decode: boolean;
  /**
   * An inference call (`callWithCache` while no gradient scope is open): tensors derived from the weights
   * (scaled, fused and folded kernels) may be kept between calls, through `derivedWeight` only.
   */
  inference: boolean;
  /**
   * Causal masking, applied by `groupedAttention`: the cache length (position of the first query among
   * the keys), or null when the call is not causal (or has a single query). `bias` holds the other masks.
   */
  causalOffset: number | null;
  /** Whether the caller wants the attention probabilities (`scores`). */
  wantScores: boolean;
  dropoutSeed?: number;
}

export interface ForwardResult {
  output: tf.Tensor; // [B, T, D]
  scores: tf.Tensor | null; // [B, maps, T, S] when `wantScores`
  /** Full (past + new) cache tensors. */
  cache: Record<string, tf.Tensor>;
}

interface ParsedInputs {
  x: tf.Tensor3D;
  attentionMask: tf.Tensor | null;
  paddingMask: tf.Tensor | null;
}

let instanceCounter = 0;

export abstract class AttentionLayer extends tf.layers.Layer {
  /** Identifies this layer instance as the owner of the caches it creates. */
  readonly cacheOwner = `${++instanceCounter}`;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly useCausalMask: boolean;
  readonly ropeMaxWavelength: number;
  readonly ropeScalingFactor: number;
  readonly seed: number | null;
  protected readonly kernelInitializer: InitializerIdentifier;
  protected readonly biasInitializer: InitializerIdentifier;
  protected readonly kernelRegularizer: RegularizerIdentifier | null;
  protected readonly biasRegularizer: RegularizerIdentifier | null;
  protected readonly kernelConstraint: ConstraintIdentifier | null;
  protected readonly biasConstraint: ConstraintIdentifier | null;
  /** Input (and output) width D, known after `build`. */
  protected inputDim = -1;
  private weightCounter = 0;
  private dropoutCounter = 0;
  /** Whether the latest `call` returned [output, scores] (so `computeMask` returns two masks). */
  private returnedScores = false;
  /** Tensors derived from weights for inference calls, with the data ids of the weights they came from. */
  private readonly derived = new Map<string, { ids: Array<object | null>; tensor: tf.Tensor }>();

  /** Which mechanism this layer implements (names the cache). */
  abstract readonly kind: AttentionKind;

  constructor(args: AttentionBaseArgs, defaultUseBias: boolean) {
    super(args);
    const owner = this.getClassName();
    this.dropout = check.rate(owner, 'dropout', args.dropout);
    this.useBias = check.bool(owner, 'useBias', args.useBias, defaultUseBias);
    this.useCausalMask = check.bool(owner, 'useCausalMask', args.useCausalMask, false);
    this.ropeMaxWavelength = check.positiveNumber(owner, 'ropeMaxWavelength', args.ropeMaxWavelength, 10000);
    this.ropeScalingFactor = check.positiveNumber(owner, 'ropeScalingFactor', args.ropeScalingFactor, 1);
    this.seed = check.seed(owner, args.seed);
    this.kernelInitializer = args.kernelInitializer ?? 'glorotUniform';
    this.biasInitializer = args.biasInitializer ?? 'zeros';
    this.kernelRegularizer = args.kernelRegularizer ?? null;
    this.biasRegularizer = args.biasRegularizer ?? null;
    this.kernelConstraint = args.kernelConstraint ?? null;
    this.biasConstraint = args.biasConstraint ?? null;
    // Resolve once so that a bad identifier fails at construction, not at build.
    getInitializer(owner, 'kernelInitializer', this.kernelInitializer);
    getInitializer(owner, 'biasInitializer', this.biasInitializer);
    getRegularizer(owner, 'kernelRegularizer', this.kernelRegularizer);
    getRegularizer(owner, 'biasRegularizer', this.biasRegularizer);
    getConstraint(owner, 'kernelConstraint', this.kernelConstraint);
    getConstraint(owner, 'biasConstraint', this.biasConstraint);
    this.supportsMasking = true;
  }

  // ---------------------------------------------------------------- weights

  private nextSeed(): number | null {
    const s = this.seed === null ? null : this.seed + this.weightCounter;
    this.weightCounter += 1;
    return s;
  }

  /**
   * Adds a kernel with the layer's kernel initializer/regularizer/constraint. Per-head projections are
   * stored flat, `[D, heads*dim]` and `[heads*dim, D]` (heads major), so that no forward or backward pass
   * reshapes them (on webgl reshaping `[D, heads, dim]` to `[D, heads*dim]` is a texture copy, on tensorflow
   * a kernel launch); `initShape` is the Keras (EinsumDense) shape `[D, heads, dim]` / `[heads, dim, D]`,
   * which the initializer sees, so the fan-based scales and the seeded values are those of the Keras layout.
   */
  protected addKernel(name: string, shape: number[], initShape?: number[],
    initializer?: InitializerIdentifier): tf.LayerVariable {
    const owner = this.getClassName();
    const init = getInitializer(owner, 'kernelInitializer', initializer ?? this.kernelInitializer, this.nextSeed());
    return this.addWeight(name, shape, 'float32', initializeAs(init, initShape),
      getRegularizer(owner, 'kernelRegularizer', this.kernelRegularizer) as never, true,
      getConstraint(owner, 'kernelConstraint', this.kernelConstraint) ?? undefined);
  }

  /** Adds a bias with the layer's bias initializer/regularizer/constraint (`initShape` as in `addKernel`). */
  protected addBias(name: string, shape: number[], initShape?: number[]): tf.LayerVariable {
    const owner = this.getClassName();
    const init = getInitializer(owner, 'biasInitializer', this.biasInitializer, this.nextSeed());
    return this.addWeight(name, shape, 'float32', initializeAs(init, initShape),
      getRegularizer(owner, 'biasRegularizer', this.biasRegularizer) as never, true,
      getConstraint(owner, 'biasConstraint', this.biasConstraint) ?? undefined);
  }

  /**
   * A tensor computed from weights by `make` (a 2-D view, a fused, scaled or folded kernel). This is the
   * layer's only cache of such tensors: in inference calls it is kept and reused until one of `sources`
   * changes value (a new data id after `assign`, e.g. an optimizer step or `setWeights`); under a gradient
   * tape (and in Keras `call`s) it is computed in the call, so that gradients reach the weights.
   * `make` must return a new tensor, never a weight itself, and must be differentiable.
   */
  protected derivedWeight(ctx: ForwardContext, key: string, sources: Array<tf.LayerVariable | null>,
    make: () => tf.Tensor): tf.Tensor {
    if (!ctx.inference) return make();
    const ids = sources.map((v) => (v === null ? null : (v.read() as unknown as { dataId: object }).dataId));
    const have = this.derived.get(key);
    if (have !== undefined && have.ids.every((id, i) => id === ids[i])) return have.tensor;
    have?.tensor.dispose();
    const tensor = tf.keep(make());
    this.derived.set(key, { ids, tensor });
    return tensor;
  }

  /**
   * A flat projection kernel `[D, heads*dim]` and its bias (`[heads*dim]` or null), times `scale`; the scaled
   * copies are kept between inference calls (`derivedWeight`). With `scale` 1 the weights themselves.
   */
  protected scaledWeights(ctx: ForwardContext, kernel: tf.LayerVariable, bias: tf.LayerVariable | null,
    scale = 1): { kernel: tf.Tensor; bias: tf.Tensor | null } {
    const scaled = (v: tf.LayerVariable): tf.Tensor => (scale === 1 ? read(v)!
      : this.derivedWeight(ctx, `${v.name}*${scale}`, [v], () => tf.mul(read(v)!, scale)));
    return { kernel: scaled(kernel), bias: bias === null ? null : scaled(bias) };
  }

  /**
   * `x2 [N, D]` projected to `heads` heads of `dim` with RoPE, in the attention layout `[B, heads, T, dim]`.
   * One token per row (T = 1, no per-row positions) rotates all heads with one `[dim, dim]` product.
   */
  protected ropeHeads(ctx: ForwardContext, x2: tf.Tensor, w: { kernel: tf.Tensor; bias: tf.Tensor | null },
    b: number, t: number, heads: number, dim: number): tf.Tensor4D {
    const y = project(x2, w.kernel, w.bias); // [N, D] @ [D, heads*dim] -> [N, heads*dim]
    const rotation = ctx.rotation(dim);
    if (rotation !== null) {
      return tf.reshape(matMul2d(tf.reshape(y, [b * heads, dim]), rotation), [b, heads, 1, dim]) as tf.Tensor4D; // T = 1: [B*heads, dim] @ [dim, dim] -> [B, heads, 1, dim]
    }
    // Where broadcasting is slow, repeat the factors per head.
    const factors = ctx.rotary(dim, broadcastsSlowly() ? heads : 1);
    const roped = applyRotaryFactors(tf.reshape(y, [b, t, heads, dim]), factors); // [N, heads*dim] -> [B, T, heads, dim]
    return tf.transpose(roped, [0, 2, 1, 3]) as tf.Tensor4D; // [B, T, heads, dim] -> [B, heads, T, dim]
  }

  /**
   * Queries and keys with RoPE, `[B, hq, T, dim]` and `[B, hk, T, dim]`, from `x2 [N, D]`. On backends with
   * cheap slicing (tensorflow, webgl) both come from one product with the concatenated kernel (kept in
   * inference calls) and are rotated together, which halves the kernel launches that dominate short
   * sequences; on cpu and wasm, whose Slice copies through JavaScript, they are projected and rotated
   * separately so that nothing is split. (RoPE-free projections go through `plainHeadsFused`.)
   */
  protected queryKeyHeads(ctx: ForwardContext, x2: tf.Tensor, wq: { kernel: tf.LayerVariable; bias: tf.LayerVariable | null },
    wk: { kernel: tf.LayerVariable; bias: tf.LayerVariable | null }, qScale: number, b: number, t: number, hq: number,
    hk: number, dim: number): { q: tf.Tensor4D; k: tf.Tensor4D } {
    const qw = this.scaledWeights(ctx, wq.kernel, wq.bias, qScale);
    const kw = this.scaledWeights(ctx, wk.kernel, wk.bias);
    if (!slicesCheaply()) {
      return { q: this.ropeHeads(ctx, x2, qw, b, t, hq, dim), k: this.ropeHeads(ctx, x2, kw, b, t, hk, dim) };
    }
    const sources = [wq.kernel, wk.kernel];
    const kernel = this.derivedWeight(ctx, `${wq.kernel.name}|${wk.kernel.name}*${qScale}`, sources,
      () => tf.concat([qw.kernel, kw.kernel], 1)); // [D, hq*dim + hk*dim]
    const bias = qw.bias === null ? null : this.derivedWeight(ctx, `${wq.bias!.name}|${wk.bias!.name}*${qScale}`,
      [wq.bias, wk.bias], () => tf.concat([qw.bias!, kw.bias!], 0)); // [hq*dim + hk*dim]
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
  protected plainHeadsFused(ctx: ForwardContext, x2: tf.Tensor,
    parts: Array<{ kernel: tf.LayerVariable; bias: tf.LayerVariable | null; heads: number; scale?: number }>,
    b: number, t: number, dim: number): tf.Tensor4D[] {
    const views = parts.map((p) => this.scaledWeights(ctx, p.kernel, p.bias, p.scale ?? 1));
    // One wide product, then slices: only where slicing is cheap and up to the backend's row limit.
    const fuse = ctx.inference && slicesCheaply() && b * t <= fusedProjectionMaxRows();
    if (!fuse) return views.map((w, i) => this.plainHeads(x2, w, b, t, parts[i].heads, dim));
    const key = parts.map((p) => `${p.kernel.name}*${p.scale ?? 1}`).join('|');
    const kernel = this.derivedWeight(ctx, key, parts.map((p) => p.kernel),
      () => tf.concat(views.map((w) => w.kernel), 1)); // [D, sum(heads_i)*dim]
    const bias = views[0].bias === null ? null : this.derivedWeight(ctx, `${key}#bias`, parts.map((p) => p.bias),
      () => tf.concat(views.map((w) => w.bias!), 0)); // [sum(heads_i)*dim]
    const heads = parts.map((p) => p.heads);
    const total = heads.reduce((p, h) => p + h, 0);
    if (t > 1 && heads.every((h) => h === heads[0])) {
      return unstackEqualParts(project(x2, kernel, bias), b, t, parts.length, heads[0], dim); // [N, D] @ [D, n*h*dim] -> n x [B, h, T, dim]
    }
    const all = this.plainHeads(x2, { kernel, bias }, b, t, total, dim); // [B, sum(heads_i), T, dim]
    return tf.split(all, heads, 1) as tf.Tensor4D[]; // [B, heads_i, T, dim] each
  }

  /** `x2 [N, D]` projected to `heads` heads of `dim` (no RoPE), in the layout `[B, heads, T, dim]`. */
  protected plainHeads(x2: tf.Tensor, w: { kernel: tf.Tensor; bias: tf.Tensor | null }, b: number, t: number,
    heads: number, dim: number): tf.Tensor4D {
    const y = project(x2, w.kernel, w.bias); // [N, D] @ [D, heads*dim] -> [N, heads*dim]
    if (t === 1) return tf.reshape(y, [b, heads, 1, dim]) as tf.Tensor4D; // [B, heads*dim] -> [B, heads, 1, dim] (T = 1)
    return tf.transpose(tf.reshape(y, [b, t, heads, dim]), [0, 2, 1, 3]) as tf.Tensor4D; // [N, heads*dim] -> [B, T, heads, dim] -> [B, heads, T, dim]
  }

  /** Adds a weight of ones with no regularizer (RMSNorm gains). */
  protected addScale(name: string, size: number): tf.LayerVariable {
    return this.addWeight(name, [size], 'float32', tf.initializers.ones());
  }

  // ---------------------------------------------------------------- mechanism hooks

  /** Creates the weights for input width `inputDim`. */
  protected abstract buildWeights(inputDim: number): void;

  /** The forward pass on `x [B, T, D]`. */
  protected abstract forward(x: tf.Tensor3D, ctx: ForwardContext): ForwardResult;

  /** Sequence axis of each cache tensor. */
  protected abstract cacheAxes(): Record<string, number>;

  /** Elements per token per layer the cache stores (analytic). */
  abstract kvCacheElementsPerToken(): number;

  /** Number of attention maps (score matrices) per token pair: heads for GQA/MLA, query groups for GTA. */
  abstract numAttentionMaps(): number;

  // ---------------------------------------------------------------- Keras API

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const owner = this.getClassName();
    if (shape.length !== 3) {
      throw new ValueError(`${owner}: expected input of rank 3 [batch, sequence, features], got shape ` +
        `[${shape.map((d) => (d === null ? 'null' : d)).join(', ')}].`);
    }
    const dim = shape[2];
    if (dim === null || dim === undefined) {
      throw new ValueError(`${owner}: the last input dimension (features) must be defined.`);
    }
    this.inputDim = dim;
    this.buildWeights(dim);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return shape.slice();
  }

  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor {
    // The output keeps the (first) input's padding mask; tfjs expects null when there is none.
    const m = (Array.isArray(mask) ? mask[0] : mask) ?? null;
    return (this.returnedScores ? [m, null] : m) as unknown as tf.Tensor;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const parsed = this.parseInputs(inputs, kwargs);
    const opts = kwargs as AttentionCallOptions;
    const returnScores = opts.returnAttentionScores === true;
    this.returnedScores = returnScores;
    return tf.tidy(() => {
      const { result } = this.run(parsed, opts, null, false, false);
      return returnScores ? [result.output, result.scores!] : result.output;
    });
  }

  /**
   * Eager incremental call: attends over `cache` plus `x`, returns the output and the extended cache.
   * The cache passed in is left unchanged (dispose it when you no longer need it).
   */
  callWithCache(x: tf.Tensor, options: CachedCallOptions = {}): CachedCallResult {
    const cache = options.cache ?? null;
    const parsed = this.parseInputs(x, options as Kwargs);
    if (!this.built) buildLayer(this, [1, 1, parsed.x.shape[2]]);
    if (cache !== null) this.checkCache(cache, parsed.x.shape[0]);
    const t = parsed.x.shape[1];
    const decode = t === 1;
    type Out = { output: tf.Tensor; scores: tf.Tensor | null; cache: Record<string, tf.Tensor>; keyMask: tf.Tensor | null };
    const inference = !recordingGradients();
    const out = tf.tidy(() => {
      const { result, keyMask } = this.run(parsed, options, cache, decode, inference);
      const kept: Out = { output: result.output, scores: result.scores, cache: result.cache, keyMask };
      return kept as unknown as tf.TensorContainer;
    }) as unknown as Out;
    const axes = this.cacheAxes();
    const entries: Record<string, CacheEntry> = {};
    for (const [name, tensor] of Object.entries(out.cache)) entries[name] = { tensor, seqAxis: axes[name] };
    const newCache = new AttentionCache(this.kind, `${this.name}#${this.cacheOwner}`, entries, out.keyMask as tf.Tensor2D | null);
    let scores: tf.Tensor4D | undefined;
    if (options.returnAttentionScores) scores = out.scores as tf.Tensor4D;
    else out.scores?.dispose();
    return { output: out.output as tf.Tensor3D, cache: newCache, scores };
  }

  // ---------------------------------------------------------------- internals

  private run(parsed: ParsedInputs, opts: AttentionCallOptions, cache: AttentionCache | null,
    decode: boolean, inference: boolean): { result: ForwardResult; keyMask: tf.Tensor | null } {
    const { x } = parsed;
    const [b, t] = x.shape;
    const offset = cache === null ? 0 : cache.length;
    const s = offset + t;
    const causal = opts.useCausalMask ?? this.useCausalMask;
    const biases: Array<tf.Tensor | null> = [];
    const keyMask = this.fullKeyMask(cache, parsed.paddingMask, b, t);
    // The caller's mask is checked once (fullKeyMask); the parts kept from earlier calls were checked then.
    if (keyMask !== null) biases.push(paddingBias(keyMask, { checked: true }));
    if (parsed.attentionMask !== null) {
      this.expectShape('attentionMask', parsed.attentionMask, [b, t, s]);
      biases.push(attentionMaskBias(parsed.attentionMask));
    }
    const positions = opts.positions ?? null;
    if (positions !== null) this.expectShape('positions', positions, [b, t]);
    const factors = new Map<string, RotaryFactors>();
    const rotary = (dim: number, heads = 1): RotaryFactors => {
      const key = positions === null ? `${dim}x${heads}` : `${dim}`;
      if (!factors.has(key)) {
        factors.set(key, positions === null
          ? rotaryFactorsRange(dim, this.ropeMaxWavelength, this.ropeScalingFactor, offset, t, heads)
          : rotaryFactorsAt(dim, this.ropeMaxWavelength, this.ropeScalingFactor, positions, s));
      }
      return factors.get(key)!;
    };
    const training = opts.training === true;
    let dropoutSeed: number | undefined;
    if (training && this.dropout > 0 && this.seed !== null) {
      dropoutSeed = this.seed + ATTENTION_DROPOUT_SEED_STRIDE * (1 + this.dropoutCounter);
      this.dropoutCounter += 1;
    }
    const past = cache === null ? null : Object.fromEntries(
      Object.entries(cache.entries).map(([name, e]) => [name, e.tensor]));
    const matrices = new Map<number, tf.Tensor2D>();
    const rotation = (dim: number): tf.Tensor2D | null => {
      if (positions !== null || t !== 1) return null;
      if (!matrices.has(dim)) matrices.set(dim, rotaryMatrix(dim, this.ropeMaxWavelength, this.ropeScalingFactor, offset));
      return matrices.get(dim)!;
    };
    const result = this.forward(x, {
      rotary, rotation, bias: combineBiases(biases), training, past, decode, inference, dropoutSeed,
      causalOffset: causal && t > 1 ? offset : null, wantScores: opts.returnAttentionScores === true,
    });
    return { result, keyMask };
  }

  /** Key padding mask over all S keys, or null when every key is real. */
  private fullKeyMask(cache: AttentionCache | null, paddingMask: tf.Tensor | null, b: number,
    t: number): tf.Tensor | null {
    const offset = cache === null ? 0 : cache.length;
    if (paddingMask !== null) checkMaskValues(paddingMask, 'paddingMask');
    if (paddingMask !== null && paddingMask.shape[1] !== t && paddingMask.shape[1] !== offset + t) {
      throw new ValueError(`${this.getClassName()}: paddingMask must cover the ${t} new tokens or all ` +
        `${offset + t} keys, got shape [${paddingMask.shape}].`);
    }
    if (paddingMask !== null && paddingMask.shape[1] === offset + t && offset > 0) {
      return tf.cast(paddingMask, 'float32'); // already covers cached + new keys
    }
    const past = cache?.keyMask ?? null;
    if (past === null && paddingMask === null) return null;
    const pastMask = past ?? (offset > 0 ? tf.ones([b, offset]) : null);
    const newMask = paddingMask === null ? tf.ones([b, t]) : tf.cast(paddingMask, 'float32');
    return pastMask === null ? newMask : tf.concat([pastMask, newMask], 1); // [B, S]
  }

  private parseInputs(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): ParsedInputs {
    const owner = this.getClassName();
    const list = Array.isArray(inputs) ? inputs : [inputs];
    if (list.length < 1 || list.length > 2) {
      throw new ValueError(`${owner}: expected an input tensor or [input, mask], got a list of ${list.length}.`);
    }
    const x = list[0];
    if (!(x instanceof tf.Tensor)) throw new ValueError(`${owner}: the input must be a tf.Tensor.`);
    if (x.rank !== 3) {
      throw new ValueError(`${owner}: expected input of rank 3 [batch, sequence, features], got shape [${x.shape}].`);
    }
    if (x.dtype !== 'float32') {
      throw new ValueError(`${owner}: expected a float32 input, got dtype ${x.dtype}.`);
    }
    if (this.built && x.shape[2] !== this.inputDim) {
      throw new ValueError(`${owner}: expected input features (last dimension) ${this.inputDim}, got ` +
        `${x.shape[2]} (input shape [${x.shape}]).`);
    }
    let attentionMask = (kwargs.attentionMask as tf.Tensor | null | undefined) ?? null;
    let paddingMask = (kwargs.paddingMask as tf.Tensor | null | undefined) ?? null;
    const second = list[1];
    if (second !== undefined) {
      if (second.rank === 3) attentionMask = second;
      else if (second.rank === 2) paddingMask = second;
      else {
        throw new ValueError(`${owner}: the second input must be a padding mask [batch, keys] or an ` +
          `attention mask [batch, queries, keys], got shape [${second.shape}].`);
      }
    }
    const kerasMask = kwargs.mask as tf.Tensor | tf.Tensor[] | null | undefined;
    const firstMask = Array.isArray(kerasMask) ? kerasMask[0] : kerasMask;
    if (paddingMask === null && firstMask) paddingMask = firstMask;
    if (paddingMask !== null) {
      if (paddingMask.rank !== 2 || paddingMask.shape[0] !== x.shape[0]) {
        throw new ValueError(`${owner}: paddingMask must have shape [batch, keys] = [${x.shape[0]}, keys], ` +
          `got [${paddingMask.shape}].`);
      }
    }
    return { x: x as tf.Tensor3D, attentionMask, paddingMask };
  }

  private expectShape(arg: string, tensor: tf.Tensor, shape: number[]): void {
    if (tensor.rank !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
      throw new ValueError(`${this.getClassName()}: ${arg} must have shape [${shape}], got [${tensor.shape}].`);
    }
  }

  private checkCache(cache: AttentionCache, batch: number): void {
    const owner = this.getClassName();
    if (cache.isDisposed) throw new ValueError(`${owner}: the cache passed in has been disposed.`);
    const me = `${this.name}#${this.cacheOwner}`;
    if (cache.owner !== me || cache.kind !== this.kind) {
      throw new ValueError(`${owner}: the cache belongs to another layer (${cache.owner}, ${cache.kind}), ` +
        `not to this layer (${me}, ${this.kind}).`);
    }
    if (cache.batchSize !== batch) {
      throw new ValueError(`${owner}: the cache holds batch size ${cache.batchSize} but the input has batch ` +
        `size ${batch}.`);
    }
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

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      dropout: this.dropout,
      useBias: this.useBias,
      useCausalMask: this.useCausalMask,
      ropeMaxWavelength: this.ropeMaxWavelength,
      ropeScalingFactor: this.ropeScalingFactor,
      kernelInitializer: serializeIdentifier(this.kernelInitializer),
      biasInitializer: serializeIdentifier(this.biasInitializer),
      kernelRegularizer: serializeIdentifier(this.kernelRegularizer),
      biasRegularizer: serializeIdentifier(this.biasRegularizer),
      kernelConstraint: serializeIdentifier(this.kernelConstraint),
      biasConstraint: serializeIdentifier(this.biasConstraint),
      seed: this.seed,
    } as tf.serialization.ConfigDict;
  }
}

/**
 * Builds a layer the way Keras does, through `apply()` on a small zero input, so that its weights
 * get names scoped by the layer (`layer_name/query/kernel`; a bare `build()` would create unscoped,
 * colliding names) and tfjs counts the layer as used. `inputShape` may contain nulls (taken as 1).
 */
export function buildLayer(layer: tf.layers.Layer, inputShape: Array<number | null>): void {
  if (layer.built) return;
  tf.tidy(() => {
    layer.apply(tf.zeros(inputShape.map((d) => d ?? 1)));
  });
}

/**
 * tfjs only lets a layer be disposed after `apply()` has run (it counts references from there). Layers
 * built directly with `build()` (weight import, cached calls) are marked as used once, so `dispose()`
 * frees their weights instead of throwing.
 */
export function markUsed(layer: tf.layers.Layer): void {
  const counted = layer as unknown as { _refCount: number | null };
  if (layer.built && counted._refCount === null) counted._refCount = 1;
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

/**
 * `init` producing values for `initShape` (same count as the requested shape) reshaped to the requested
 * shape; `init` itself when `initShape` is undefined.
 */
function initializeAs(init: Initializer, initShape: number[] | undefined): Initializer {
  if (initShape === undefined) return init;
  return {
    apply: (shape: tf.Shape, dtype?: tf.DataType) => tf.tidy(() => tf.reshape(init.apply(initShape, dtype), shape as number[])),
  } as unknown as Initializer;
}

/**
 * Whether a gradient scope (`tf.grad`, `tf.variableGrads`, `optimizer.minimize`, ...) is open, also inside
 * a kernel (a custom gradient's forward pass), where `tf.engine().isTapeOn()` is false. Calls made then
 * are not inference calls: they keep no tensors derived from the weights.
 */
function recordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/** Reads a LayerVariable as a tensor (for brevity inside forward passes). */
export function read(v: tf.LayerVariable | null): tf.Tensor | null {
  return v === null ? null : v.read();
}
