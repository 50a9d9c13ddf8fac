/**
 * CausalLM: token embedding, N pre-norm decoder blocks (any attention mechanism), final RMSNorm and a
 * tied or untied output head. `model` is an ordinary functional `tf.LayersModel` (fit, predict,
 * save, load); the class adds eager cached decoding and generation.
 *
 * Notation: B batch, T new tokens, S cached + new tokens, V vocabulary, D width.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { AttentionCache } from '../cache/attention_cache.js';
import { TransformerDecoderBlock } from '../layers/decoder_block.js';
import { RMSNormalization } from '../layers/rms_normalization.js';
import { LMHead, TokenEmbedding } from '../layers/token_embedding.js';
import { GenerateOptions, GenerateResult, generate } from './generate.js';
import { withFlatAttentionWeights } from './weight_layout.js';

import { ModelCache } from './model_cache.js';
import { RotaryStep } from '../ops/rope.js';
import { CausalLMConfig, ResolvedCausalLMConfig, resolveCausalLMConfig } from './config.js';

/** Token ids: a tensor `[B, T]` int32 or nested arrays. */
export type TokenIds = tf.Tensor | number[][];

export interface CachedForwardOptions {
  /** `[B, T]` 1 for real tokens, 0 for (left) padding; only for the first call on a new cache. */
  paddingMask?: number[][] | null;
}

export interface CachedForwardResult {
  logits: tf.Tensor3D; // [B, T, V]
  cache: ModelCache;
}

const METADATA_KEY = 'tfjsGta';
let modelCounter = 0;

export class CausalLM {
  readonly model: tf.LayersModel;
  readonly config: ResolvedCausalLMConfig;
  readonly embedding: TokenEmbedding;
  readonly blocks: TransformerDecoderBlock[];
  readonly finalNorm: RMSNormalization;
  readonly head: LMHead | null;
  /** Identifies this model as the owner of its caches. */
  readonly id = `causal_lm#${++modelCounter}`;

  private constructor(model: tf.LayersModel, config: ResolvedCausalLMConfig) {
    this.model = model;
    this.config = config;
    this.embedding = model.getLayer('token_embedding') as TokenEmbedding;
    this.blocks = Array.from({ length: config.numLayers }, (_, i) => model.getLayer(`block_${i}`) as TransformerDecoderBlock);
    this.finalNorm = model.getLayer('final_norm') as RMSNormalization;
    this.head = config.tieWordEmbeddings ? null : (model.getLayer('lm_head') as LMHead);
  }

  /** Builds a new model with freshly initialised weights. */
  static create(config: CausalLMConfig, name = 'causal_lm'): CausalLM {
    const c = resolveCausalLMConfig(config);
    const seed = (k: number) => (c.seed === null ? {} : { seed: c.seed + k });
    const ids = tf.input({ shape: [null], dtype: 'int32', name: 'token_ids' });
    const embedding = new TokenEmbedding({ name: 'token_embedding', inputDim: c.vocabSize, outputDim: c.hiddenSize, ...seed(0) });
    let h = embedding.apply(ids) as tf.SymbolicTensor;
    for (let i = 0; i < c.numLayers; i++) {
      const attention = { ...c.attention, ...(c.dropout > 0 ? { dropout: c.dropout } : {}) };
      const block = new TransformerDecoderBlock({
        name: `block_${i}`,
        attention,
        intermediateDim: c.intermediateSize,
        normEpsilon: c.normEpsilon,
        dropout: c.dropout,
        ...seed(100 * (i + 1)),
      });
      h = block.apply(h) as tf.SymbolicTensor;
    }
    h = new RMSNormalization({ name: 'final_norm', epsilon: c.normEpsilon }).apply(h) as tf.SymbolicTensor;
    const logits = c.tieWordEmbeddings
      ? (embedding.apply(h) as tf.SymbolicTensor)
      : (new LMHead({ name: 'lm_head', units: c.vocabSize, ...seed(1) }).apply(h) as tf.SymbolicTensor);
    const model = tf.model({ inputs: ids, outputs: logits, name });
    model.setUserDefinedMetadata({ [METADATA_KEY]: { config: c } });
    return new CausalLM(model, c);
  }

  /** Wraps a `LayersModel` built by `CausalLM.create` (e.g. after `tf.loadLayersModel`). */
  static fromModel(model: tf.LayersModel): CausalLM {
    const meta = model.getUserDefinedMetadata() as Record<string, { config?: CausalLMConfig }> | undefined;
    const config = meta?.[METADATA_KEY]?.config;
    if (!config) throw new ValueError('CausalLM.fromModel: the model has no tfjs-gta metadata (was it built by CausalLM.create?).');
    return new CausalLM(model, resolveCausalLMConfig(config));
  }

  /** Saves through any tfjs handler or URL (`file://dir`, `indexeddb://name`, `downloads://name`). */
  async save(handlerOrUrl: string | tf.io.IOHandler): Promise<tf.io.SaveResult> {
    return this.model.save(handlerOrUrl);
  }

  /**
   * Loads a model saved by `save()`; a `file://` URL may name the folder or its `model.json`. Models saved
   * with the older 3-D attention kernels load too (`withFlatAttentionWeights`). `file://` URLs are read by
   * this package's handler (weight files confined to the model folder, sizes checked before reading),
   * also when tfjs-node is loaded. A load that fails disposes everything it built.
   */
  static async load(handlerOrUrl: string | tf.io.IOHandler): Promise<CausalLM> {
    const handler = await loadHandlerFor(handlerOrUrl);
    const artifacts = await withFlatAttentionWeights(handler).load!();
    const model = await modelFromArtifacts(artifacts);
    try {
      return CausalLM.fromModel(model);
    } catch (e) {
      disposeLayersModel(model);
      throw e;
    }
  }

  countParams(): number {
    return this.model.countParams();
  }

  /** Checks ids and returns them as an int32 tensor (the caller disposes it if it was created here). */
  private idsTensor(ids: TokenIds, what: string): tf.Tensor2D {
    const v = this.config.vocabSize;
    if (ids instanceof tf.Tensor) {
      if (ids.dtype !== 'int32') throw new ValueError(`CausalLM: ${what} must be an int32 tensor of token ids, got dtype ${ids.dtype}.`);
      if (ids.rank !== 2) throw new ValueError(`CausalLM: ${what} must have shape [batch, tokens], got [${ids.shape}].`);
      const [lo, hi] = tf.tidy(() => [tf.min(ids).dataSync()[0], tf.max(ids).dataSync()[0]]);
      if (ids.size > 0 && (lo < 0 || hi >= v)) {
        throw new ValueError(`CausalLM: ${what} must be in [0, ${v}), got values in [${lo}, ${hi}].`);
      }
      return ids as tf.Tensor2D;
    }
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((row) => Array.isArray(row) && row.length === ids[0].length)) {
      throw new ValueError(`CausalLM: ${what} must be a non-empty [batch][tokens] array with equal row lengths.`);
    }
    for (const row of ids) {
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= v) {
          throw new ValueError(`CausalLM: ${what} must be integers in [0, ${v}), got ${id}.`);
        }
      }
    }
    return tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
  }

  /** Logits `[B, T, V]` of a full forward pass (no cache). */
  logits(ids: TokenIds): tf.Tensor3D {
    const t = this.idsTensor(ids, 'ids');
    if (t.shape[1] > this.config.maxSequenceLength) {
      if (t !== ids) t.dispose();
      throw new ValueError(`CausalLM: ${t.shape[1]} tokens exceed maxSequenceLength ${this.config.maxSequenceLength}.`);
    }
    // One set of RoPE factors for the pass, shared by every block (tfjs hands these kwargs to each layer).
    const rope = new RotaryStep({ start: 0, length: t.shape[1] });
    try {
      return tf.tidy(() => this.model.apply(t, { training: false, rope }) as tf.Tensor3D);
    } finally {
      rope.dispose();
      if (t !== ids) t.dispose();
    }
  }

  /**
   * Runs `ids` after `cache` (null = empty) and returns their logits and the extended cache. The cache
   * passed in is not modified: dispose it when you no longer need it.
   */
  callWithCache(ids: TokenIds, cache: ModelCache | null, options: CachedForwardOptions = {}): CachedForwardResult {
    const t = this.idsTensor(ids, 'ids');
    try {
      const [b, n] = t.shape;
      if (cache !== null) this.checkCache(cache, b);
      const past = cache?.length ?? 0;
      if (past + n > this.config.maxSequenceLength) {
        throw new ValueError(`CausalLM: ${past} cached + ${n} new tokens exceed maxSequenceLength ${this.config.maxSequenceLength}.`);
      }
      const mask = options.paddingMask ?? null;
      if (mask !== null && cache !== null)
        throw new ValueError('CausalLM: paddingMask is only accepted on the first call (an empty cache).');
      if (mask !== null && (mask.length !== b || mask.some((row) => row.length !== n))) {
        throw new ValueError(`CausalLM: paddingMask must have shape [${b}, ${n}].`);
      }
      const start = cache?.positions ?? new Array<number>(b).fill(0);
      const realTokens = mask === null ? new Array<number>(b).fill(n) : mask.map((row) => row.reduce((s, m) => s + (m ? 1 : 0), 0));
      const padded = (cache?.padded ?? false) || (mask !== null && realTokens.some((r) => r !== n));
      // Per-row RoPE positions: count real tokens only (left padding keeps its positions at 0).
      const positionRows = Array.from({ length: b }, (_, r) => {
        let p = start[r];
        return Array.from({ length: n }, (_, j) => {
          const isReal = mask === null || mask[r][j];
          const pos = isReal ? p : Math.max(0, p - 1);
          if (isReal) p += 1;
          return pos;
        });
      });
      const layerCaches: AttentionCache[] = [];
      const logits = tf.tidy(() => {
        const positions = padded ? tf.tensor2d(positionRows, [b, n], 'int32') : null;
        const paddingMask = mask === null ? null : tf.tensor2d(mask, [b, n], 'float32');
        // One set of RoPE factors for the step, shared by every block.
        const rope = new RotaryStep({ start: past, length: n, positions });
        let h = this.embedding.call(t, {}) as tf.Tensor; // [B, T, D]
        try {
          this.blocks.forEach((block, i) => {
            const r = block.callWithCache(h, { cache: cache?.layers[i] ?? null, paddingMask, positions, rope });
            for (const x of r.cache.tensors()) tf.keep(x);
            layerCaches.push(r.cache);
            h = r.output;
          });
        } finally {
          rope.dispose();
        }
        h = this.finalNorm.call(h, {}) as tf.Tensor;
        return (this.head ? this.head.call(h, {}) : this.embedding.call(h, {})) as tf.Tensor3D; // [B, T, V]
      });
      const positionsAfter = start.map((p, r) => p + realTokens[r]);
      return { logits, cache: new ModelCache(this.id, layerCaches, positionsAfter, padded) };
    } finally {
      if (t !== ids) t.dispose();
    }
  }

  private checkCache(cache: ModelCache, batch: number): void {
    if (cache.isDisposed) throw new ValueError('CausalLM: the cache passed in has been disposed.');
    if (cache.owner !== this.id) throw new ValueError(`CausalLM: the cache belongs to another model (${cache.owner}), not ${this.id}.`);
    if (cache.batchSize !== batch) {
      throw new ValueError(`CausalLM: the cache holds batch size ${cache.batchSize} but the ids have batch size ${batch}.`);
    }
  }

  /**
   * Generates up to `maxNewTokens` tokens after each prompt: one prefill over the (left-padded) prompts,
   * then cached decoding one token at a time. See `GenerateOptions`.
   */
  generate(prompts: number[] | number[][], options: GenerateOptions): Promise<GenerateResult> {
    return generate(this, prompts, options);
  }

  /** Frees every weight and kept tensor of the model. */
  dispose(): void {
    this.model.dispose();
    for (const block of this.blocks) block.attention.releaseDerivedTensors();
    // A layer applied twice (the tied embedding: lookup and output projection) keeps a reference count
    // that LayersModel.dispose() decrements only once, so its weights would outlive the model.
    for (const w of this.model.weights) {
      if (!(w as unknown as { val: tf.Variable }).val.isDisposed) w.dispose(); // LayerVariable.val: its tf.Variable
    }
  }
}

// ---------------------------------------------------------------- load helpers

/**
 * The handler for `file://` URLs, set by `tfjs-gta/node` on import (this package's confined file handler,
 * also when tfjs-node is loaded). The main entry reaches no Node module, so it cannot set it itself.
 */
let fileHandler: ((url: string) => tf.io.IOHandler) | null = null;

/** Sets the handler `CausalLM.load` uses for `file://` URLs (`tfjs-gta/node` does this on import). */
export function setFileHandler(make: (url: string) => tf.io.IOHandler): void {
  fileHandler = make;
}

/** The handler `CausalLM.load` reads: this package's for `file://`, else tfjs's routers, else http. */
async function loadHandlerFor(handlerOrUrl: string | tf.io.IOHandler): Promise<tf.io.IOHandler> {
  let handler: tf.io.IOHandler;
  if (typeof handlerOrUrl !== 'string') {
    handler = handlerOrUrl;
  } else if (handlerOrUrl.startsWith('file://')) {
    if (fileHandler === null) {
      throw new ValueError(
        "CausalLM.load: file:// URLs are read in Node by the handler of 'tfjs-gta/node'; import that entry " +
          '(in a browser, load from http(s), indexeddb:// or files).',
      );
    }
    handler = fileHandler(handlerOrUrl);
  } else {
    const found = tf.io.getLoadHandlers(handlerOrUrl);
    handler = found.length > 0 ? found[0] : tf.io.http(handlerOrUrl);
  }
  if (handler === null || typeof handler !== 'object' || typeof handler.load !== 'function') {
    throw new ValueError('CausalLM.load: the handler cannot load (it has no load()).');
  }
  return handler;
}

type VariableRegistry = Record<string, tf.Variable>;

/** tfjs's registry of live variables (engine internals; null if its layout ever changes). */
function variableRegistry(): VariableRegistry | null {
  const engine = tf.engine() as unknown as { state?: { registeredVariables?: VariableRegistry } };
  return engine.state?.registeredVariables ?? null;
}

/**
 * Deserializes a topology into an uncompiled model with initial weights. `tf.models.modelFromJSON` builds
 * the layers synchronously before its first await, so the variables registered between the two snapshots
 * below are exactly those of this model: if deserialization fails part way, they are disposed.
 */
async function deserializeModel(topology: object): Promise<tf.LayersModel> {
  const before = new Set(Object.keys(variableRegistry() ?? {}));
  const pending = tf.models.modelFromJSON({ modelTopology: topology } as Parameters<typeof tf.models.modelFromJSON>[0]);
  const created = Object.entries(variableRegistry() ?? {})
    .filter(([name]) => !before.has(name))
    .map(([, v]) => v);
  try {
    return await pending;
  } catch (e) {
    for (const v of created) if (!v.isDisposed) v.dispose();
    throw e;
  }
}

/** Writes the artifacts' weights into `model` (strict: every weight, right shapes); decoded tensors are freed. */
async function loadWeightsInto(model: tf.LayersModel, artifacts: tf.io.ModelArtifacts): Promise<void> {
  const specs = artifacts.weightSpecs;
  if (artifacts.weightData === undefined) return;
  if (specs === undefined) throw new ValueError('CausalLM.load: the artifacts hold weight data but no weight specs.');
  const decoded = tf.tidy(() => tf.io.decodeWeights(artifacts.weightData!, specs));
  try {
    const isOptimizer = new Set(specs.filter((s) => s.group === 'optimizer').map((s) => s.name));
    const modelWeights: tf.NamedTensorMap = {};
    for (const [name, t] of Object.entries(decoded)) if (!isOptimizer.has(name)) modelWeights[name] = t;
    model.loadWeights(modelWeights, true);
    if (model.optimizer != null && isOptimizer.size > 0) {
      await model.optimizer.setWeights([...isOptimizer].map((name) => ({ name, tensor: decoded[name] })));
    }
  } finally {
    tf.dispose(decoded);
  }
}

/** The `LayersModel` of loaded artifacts, with its weights; on any failure everything it built is disposed. */
async function modelFromArtifacts(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  const topology = artifacts.modelTopology;
  if (topology === undefined || topology === null || topology instanceof ArrayBuffer || typeof topology !== 'object') {
    throw new ValueError('CausalLM.load: the artifacts have no JSON model topology.');
  }
  const inner = (topology as { model_config?: object }).model_config;
  const model = await deserializeModel(inner ?? topology);
  try {
    if (artifacts.trainingConfig != null) {
      model.loadTrainingConfig(artifacts.trainingConfig as unknown as Parameters<typeof model.loadTrainingConfig>[0]);
    }
    if (artifacts.userDefinedMetadata != null) model.setUserDefinedMetadata(artifacts.userDefinedMetadata);
    await loadWeightsInto(model, artifacts);
    return model;
  } catch (e) {
    disposeLayersModel(model);
    throw e;
  }
}

/** Frees a `LayersModel` that no `CausalLM` owns yet, including weights a twice-applied layer keeps. */
function disposeLayersModel(model: tf.LayersModel): void {
  try {
    model.dispose();
  } finally {
    for (const w of model.weights) {
      if (!(w as unknown as { val: tf.Variable }).val.isDisposed) w.dispose();
    }
  }
}
