/**
 * The call/mask/cache protocol of the attention layers (GQA, GTA, MLA): their shared arguments (dropout,
 * biases, causal masking as a constructor option, RoPE base and scaling), input checking, masks, RoPE
 * factors for the call's positions, and the two entry points:
 *
 * - `call(x | [x, mask], kwargs)`: the Keras path used by `apply`, `predict` and `fit`. Padding masks
 *   arrive as Keras masks (`kwargs.mask`), as a second input `[B, S]`, or as an attention mask
 *   `[B, T, S]` (second input or `kwargs.attentionMask`). With `returnAttentionScores` (eager only)
 *   it returns `[output, scores]`.
 * - `callWithCache(x, {cache})`: eager incremental decoding; returns the output and a new cache. On backends
 *   with a fused decode (webgpu), a one-token step of a mechanism that has one (`decodeArenaSpec`) appends
 *   to a cache arena in place and runs `fusedDecodeStep` (a handful of kernels); on webgl such a step runs
 *   `webglDecodeStep` (a handful of programs over the cache's tensors); any other call, or a step that needs
 *   masks, positions, scores or the composed path, runs `forward`.
 *
 * Both take `rope`, a `RotaryStep` a model builds once per step for all its layers; without one the layer
 * builds its own factors. Projections and kept derived weights are in `projections.ts`, the Keras weight
 * arguments in `keras_args.ts`.
 *
 * Notation: B batch, T query length, S key length (cached + new), D model width.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_DROPOUT_SEED_STRIDE } from '../utils/seeds.js';
import { AttentionCache, AttentionKind, CacheEntry } from '../cache/attention_cache.js';
import { arenaCapacity, arenaLayout, ArenaSpec, CacheArena } from '../cache/cache_arena.js';
import { ATTENTION_DEFAULTS } from '../ops/attention_core.js';
import { hasFusedAttention, hasWebGLDecodeStep, maxStorageBufferBytes } from '../ops/capabilities.js';
import { WEBGL_MASKED_SOFTMAX_MAX_KEYS } from '../kernels/webgl/attention_softmax.js';
import { ropeUniform } from '../kernels/webgl/decode_step.js';
import { ArenaCopy, packArena } from '../kernels/webgpu/decode_step.js';
import * as check from '../utils/errors.js';
import { ValueError } from '../utils/errors.js';
import { attentionMaskBias, checkMaskValues, combineBiases, paddingBias } from '../ops/masks.js';
import { RotaryFactors, RotaryStep, rotaryFactorValues } from '../ops/rope.js';
import { LAYER_ARG_KEYS, WEIGHT_ARG_KEYS, WeightArgs } from './keras_args.js';
import { Kwargs, buildLayer } from './layer_utils.js';
import { ProjectionContext, ProjectionLayer } from './projections.js';

export interface AttentionBaseArgs extends WeightArgs {
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
}

/** The keys of `AttentionBaseArgs` (mechanisms add their own). */
export const BASE_ARG_KEYS = [
  ...LAYER_ARG_KEYS,
  'dropout',
  'useBias',
  'useCausalMask',
  'ropeMaxWavelength',
  'ropeScalingFactor',
  ...WEIGHT_ARG_KEYS,
] as const;

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
  /**
   * RoPE factors built once for the whole model step (`RotaryStep`), describing this call's positions:
   * start = cache length, length = T, and the same `positions` tensor (or none). Default: built by the layer.
   */
  rope?: RotaryStep | null;
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

/** What a mechanism's forward pass receives (`rotary`, `rotation` and `inference`: see `ProjectionContext`). */
export interface ForwardContext extends ProjectionContext {
  bias: tf.Tensor | null;
  training: boolean;
  /** Tensors of the previous cache, or null. */
  past: Record<string, tf.Tensor> | null;
  /** Use the decode-optimised form (MLA absorbed) where the mechanism has one. */
  decode: boolean;
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

/** An attention mechanism as a Keras layer: subclasses supply the weights, forward pass and cache layout. */
export abstract class AttentionLayer extends ProjectionLayer {
  /** Identifies this layer instance as the owner of the caches it creates. */
  readonly cacheOwner = `${++instanceCounter}`;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly useCausalMask: boolean;
  readonly ropeMaxWavelength: number;
  readonly ropeScalingFactor: number;
  /** Input (and output) width D, known after `build`. */
  protected inputDim = -1;
  private dropoutCounter = 0;
  /** Whether the latest `call` returned [output, scores] (so `computeMask` returns two masks). */
  private returnedScores = false;

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
    this.supportsMasking = true;
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

  /**
   * What the mechanism keeps in a cache arena for the fused decode (its cache tensors `[B, H, S, D]` and
   * its query), or null when it has no fused decode (the default) or its dims do not fit the kernel.
   */
  protected decodeArenaSpec(): ArenaSpec | null {
    return null;
  }

  /**
   * The fused one-token step (`decodeArenaSpec` non-null): `x [B, 1, D]` after `position` cached tokens held
   * in `arena`; appends the token's cache entries to `arena` in place and returns the output `[B, 1, D]`.
   * `rope` gives the factors of the step's position for a dim.
   */
  protected fusedDecodeStep(x: tf.Tensor3D, arena: CacheArena, position: number, rope: (dim: number) => RotaryFactors): tf.Tensor3D {
    void [x, arena, position, rope];
    throw new ValueError(`${this.getClassName()}: no fused decode step.`);
  }

  /**
   * The decode step on webgl (src/kernels/webgl/decode_step.ts), inside a tidy: `x [B, 1, D]` after the tokens held
   * in `cache`'s tensors; returns the output `[B, 1, D]` and the grown cache tensors by name, or null (before
   * computing anything) when the mechanism has no such step or its dims do not fit the kernels (the default).
   * `rope` gives the RoPE uniform of the step's position for a dim (`ropeUniform`).
   */
  protected webglDecodeStep(
    x: tf.Tensor3D,
    cache: AttentionCache,
    rope: (dim: number) => number[],
  ): { output: tf.Tensor3D; cache: Record<string, tf.Tensor> } | null {
    void [x, cache, rope];
    return null;
  }

  // ---------------------------------------------------------------- Keras API

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const owner = this.getClassName();
    if (shape.length !== 3) {
      throw new ValueError(
        `${owner}: expected input of rank 3 [batch, sequence, features], got shape ` +
          `[${shape.map((d) => (d === null ? 'null' : d)).join(', ')}].`,
      );
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
    const inference = !recordingGradients();
    const spec = decode && inference && cache !== null ? this.fusedDecodeSpec(parsed, options, cache) : null;
    if (spec !== null) return this.callFusedDecode(parsed.x, cache!, spec, options);
    type Out = { output: tf.Tensor; scores: tf.Tensor | null; cache: Record<string, tf.Tensor>; keyMask: tf.Tensor | null };
    const out = tf.tidy(() => {
      if (decode && inference && cache !== null && this.takesWebGLDecode(parsed, options, cache)) {
        const position = cache.length;
        const rope = (dim: number): number[] => {
          const f = rotaryFactorValues(dim, this.ropeMaxWavelength, this.ropeScalingFactor, position);
          return ropeUniform(f.cos, f.sinSigned, dim);
        };
        const step = this.webglDecodeStep(parsed.x, cache, rope);
        if (step !== null) return { output: step.output, scores: null, cache: step.cache, keyMask: null } as unknown as tf.TensorContainer;
      }
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

  /**
   * The arena spec when this one-token inference step takes the fused decode: the backend has it and the
   * attention is not set to 'composed'; no padding or attention mask, no per-row positions, no scores; the
   * arena fits one storage buffer of the device. Otherwise null (the step runs `forward`).
   */
  private fusedDecodeSpec(parsed: ParsedInputs, opts: CachedCallOptions, cache: AttentionCache): ArenaSpec | null {
    if (!hasFusedAttention() || !this.decodeStepAllowed(parsed, opts, cache)) return null;
    const spec = this.decodeArenaSpec();
    if (spec === null) return null;
    const capacity = cache.arena?.appendsInPlace(cache.length) ? cache.arena.capacity : arenaCapacity(cache.length + 1);
    return arenaLayout(spec, cache.batchSize, capacity).elements * 4 <= maxStorageBufferBytes() ? spec : null;
  }

  /**
   * Whether this one-token inference step may take the webgl decode step: the backend has it and the attention
   * is not set to 'composed'; no padding or attention mask, no per-row positions, no scores, not training; the
   * cache is held as tensors and the step's keys fit the softmax kernel (`WEBGL_MASKED_SOFTMAX_MAX_KEYS`).
   */
  private takesWebGLDecode(parsed: ParsedInputs, opts: CachedCallOptions, cache: AttentionCache): boolean {
    if (!hasWebGLDecodeStep() || !this.decodeStepAllowed(parsed, opts, cache)) return false;
    return cache.arena === null && cache.length + 1 <= WEBGL_MASKED_SOFTMAX_MAX_KEYS;
  }

  /**
   * What both decode steps (webgpu's and webgl's) ask of a one-token inference call: the attention is not set to
   * 'composed'; no padding or attention mask (in the call or kept in the cache), no per-row positions, no scores,
   * not training.
   */
  private decodeStepAllowed(parsed: ParsedInputs, opts: CachedCallOptions, cache: AttentionCache): boolean {
    if (ATTENTION_DEFAULTS.implementation === 'composed') return false;
    if (parsed.attentionMask !== null || parsed.paddingMask !== null || cache.keyMask !== null) return false;
    return (opts.positions ?? null) === null && opts.returnAttentionScores !== true && opts.training !== true;
  }

  /** The fused one-token step: in place when `cache` is its arena's newest, else into a new arena first. */
  private callFusedDecode(x: tf.Tensor3D, cache: AttentionCache, spec: ArenaSpec, options: CachedCallOptions): CachedCallResult {
    const position = cache.length;
    const shared = this.sharedRotaryStep(options.rope, position, 1, null);
    const step = shared ?? new RotaryStep({ start: position, length: 1, positions: null });
    let created: CacheArena | null = null;
    try {
      let arena = cache.arena;
      if (arena === null || !arena.appendsInPlace(position)) arena = created = this.newArena(cache, spec);
      const target = arena;
      const rope = (dim: number): RotaryFactors => step.factors(dim, this.ropeMaxWavelength, this.ropeScalingFactor, 1);
      const output = tf.tidy(() => this.fusedDecodeStep(x, target, position, rope));
      arena.filled = position + 1;
      const next = AttentionCache.fromArena(this.kind, `${this.name}#${this.cacheOwner}`, arena, position + 1);
      created = null;
      return { output, cache: next };
    } finally {
      created?.release();
      if (shared === null) step.dispose();
    }
  }

  /** A new arena with room to grow, holding `cache`'s positions (copied from its tensors or its arena). */
  private newArena(cache: AttentionCache, spec: ArenaSpec): CacheArena {
    const rows = cache.length;
    const capacity = arenaCapacity(rows + 1);
    const layout = arenaLayout(spec, cache.batchSize, capacity);
    const old = cache.arena;
    const sources = old === null ? spec.regions.map((r) => cache.get(r.name)) : [old.tensor];
    const copies: ArenaCopy[] = spec.regions.map((r, i) => ({
      source: old === null ? i : 0,
      sourceOffset: old === null ? 0 : old.regions[r.name].offset,
      sourceCapacity: old === null ? rows : old.capacity,
      offset: layout.regions[r.name].offset,
      heads: r.heads,
      dim: r.dim,
    }));
    const tensor = tf.keep(packArena(sources, { batch: cache.batchSize, rows, capacity, elements: layout.elements, copies }));
    return new CacheArena(tensor, spec, cache.batchSize, capacity, rows);
  }

  private run(
    parsed: ParsedInputs,
    opts: AttentionCallOptions,
    cache: AttentionCache | null,
    decode: boolean,
    inference: boolean,
  ): { result: ForwardResult; keyMask: tf.Tensor | null } {
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
    const shared = this.sharedRotaryStep(opts.rope, offset, t, positions);
    const step = shared ?? new RotaryStep({ start: offset, length: t, positions });
    const training = opts.training === true;
    let dropoutSeed: number | undefined;
    if (training && this.dropout > 0 && this.seed !== null) {
      dropoutSeed = this.seed + ATTENTION_DROPOUT_SEED_STRIDE * (1 + this.dropoutCounter);
      this.dropoutCounter += 1;
    }
    const past = cache === null ? null : Object.fromEntries(Object.entries(cache.entries).map(([name, e]) => [name, e.tensor]));
    const base = this.ropeMaxWavelength;
    const scaling = this.ropeScalingFactor;
    try {
      const result = this.forward(x, {
        rotary: (dim: number, heads = 1): RotaryFactors => step.factors(dim, base, scaling, heads),
        rotation: (dim: number) => step.matrix(dim, base, scaling),
        bias: combineBiases(biases),
        training,
        past,
        decode,
        inference,
        dropoutSeed,
        causalOffset: causal && t > 1 ? offset : null,
        wantScores: opts.returnAttentionScores === true,
      });
      return { result, keyMask };
    } finally {
      if (shared === null) step.dispose(); // the layer's own factors; a shared step is its model's to free
    }
  }

  /** The model's `RotaryStep` passed as `rope`, checked against this call's positions; null when none. */
  private sharedRotaryStep(rope: unknown, offset: number, t: number, positions: tf.Tensor | null): RotaryStep | null {
    if (rope === undefined || rope === null) return null;
    const owner = this.getClassName();
    if (!(rope instanceof RotaryStep)) throw new ValueError(`${owner}: rope must be a RotaryStep (or null), got ${typeof rope}.`);
    if (rope.isDisposed) throw new ValueError(`${owner}: rope (a RotaryStep) has been disposed; build one per model step.`);
    if (!rope.covers(offset, t, positions)) {
      throw new ValueError(
        `${owner}: rope must describe this call's positions (start ${offset} = cached tokens, length ${t}, ` +
          `${positions === null ? 'no' : 'the same'} positions tensor), got start ${rope.start}, length ${rope.length}` +
          `${rope.positions === positions ? '' : ', another positions tensor'}.`,
      );
    }
    return rope;
  }

  /** Key padding mask over all S keys, or null when every key is real. */
  private fullKeyMask(cache: AttentionCache | null, paddingMask: tf.Tensor | null, b: number, t: number): tf.Tensor | null {
    const offset = cache === null ? 0 : cache.length;
    if (paddingMask !== null) checkMaskValues(paddingMask, 'paddingMask');
    if (paddingMask !== null && paddingMask.shape[1] !== t && paddingMask.shape[1] !== offset + t) {
      throw new ValueError(
        `${this.getClassName()}: paddingMask must cover the ${t} new tokens or all ` +
          `${offset + t} keys, got shape [${paddingMask.shape}].`,
      );
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
      throw new ValueError(
        `${owner}: expected input features (last dimension) ${this.inputDim}, got ` + `${x.shape[2]} (input shape [${x.shape}]).`,
      );
    }
    let attentionMask = (kwargs.attentionMask as tf.Tensor | null | undefined) ?? null;
    let paddingMask = (kwargs.paddingMask as tf.Tensor | null | undefined) ?? null;
    const second = list[1];
    if (second !== undefined) {
      if (second.rank === 3) attentionMask = second;
      else if (second.rank === 2) paddingMask = second;
      else {
        throw new ValueError(
          `${owner}: the second input must be a padding mask [batch, keys] or an ` +
            `attention mask [batch, queries, keys], got shape [${second.shape}].`,
        );
      }
    }
    const kerasMask = kwargs.mask as tf.Tensor | tf.Tensor[] | null | undefined;
    const firstMask = Array.isArray(kerasMask) ? kerasMask[0] : kerasMask;
    if (paddingMask === null && firstMask) paddingMask = firstMask;
    if (paddingMask !== null) {
      if (paddingMask.rank !== 2 || paddingMask.shape[0] !== x.shape[0]) {
        throw new ValueError(
          `${owner}: paddingMask must have shape [batch, keys] = [${x.shape[0]}, keys], ` + `got [${paddingMask.shape}].`,
        );
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
      throw new ValueError(
        `${owner}: the cache belongs to another layer (${cache.owner}, ${cache.kind}), ` + `not to this layer (${me}, ${this.kind}).`,
      );
    }
    if (cache.batchSize !== batch) {
      throw new ValueError(`${owner}: the cache holds batch size ${cache.batchSize} but the input has batch ` + `size ${batch}.`);
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      dropout: this.dropout,
      useBias: this.useBias,
      useCausalMask: this.useCausalMask,
      ropeMaxWavelength: this.ropeMaxWavelength,
      ropeScalingFactor: this.ropeScalingFactor,
      ...this.weightArgsConfig(),
    } as tf.serialization.ConfigDict;
  }
}

/**
 * Whether a gradient scope (`tf.grad`, `tf.variableGrads`, `optimizer.minimize`, ...) is open, also inside
 * a kernel (a custom gradient's forward pass), where `tf.engine().isTapeOn()` is false. Calls made then
 * are not inference calls: they keep no tensors derived from the weights.
 */
function recordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}
