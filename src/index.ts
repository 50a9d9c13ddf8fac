/**
 * tfjs-gta: Keras-style TensorFlow.js layers for efficient attention.
 *
 * The main entry works in browsers, Node and workers: nothing reachable from it imports a Node built-in
 * or an optional package. Its only effect on import is to register the layer classes with tfjs's
 * serialization, so `tf.loadLayersModel` finds them. Node-only parts (file:// save/load, checkpoint
 * folders, corpus files, comparisons, reports and plots) are in `tfjs-gta/node` (src/node.ts).
 */
export { ValueError } from './utils/errors.js';
export type { InitializerIdentifier, RegularizerIdentifier, ConstraintIdentifier, SerializedObject } from './utils/serialization.js';
export { buildLayer } from './layers/layer_utils.js';
export {
  AttentionLayer,
  type AttentionBaseArgs,
  type AttentionCallOptions,
  type CachedCallOptions,
  type CachedCallResult,
} from './layers/attention_base.js';
export {
  GroupedQueryAttention,
  groupedQueryAttention,
  multiHeadAttention,
  multiQueryAttention,
  type GroupedQueryAttentionArgs,
  type MultiHeadAttentionArgs,
} from './layers/gqa_attention.js';
export { GroupedHeadLatentAttention, groupedHeadLatentAttention, type GroupedHeadLatentAttentionArgs } from './layers/gta_attention.js';
export { MultiHeadLatentAttention, multiHeadLatentAttention, type MultiHeadLatentAttentionArgs } from './layers/mla_attention.js';
export { RotaryEmbedding, rotaryEmbedding, type RotaryEmbeddingArgs } from './layers/rotary_embedding.js';
export { RMSNormalization, rmsNormalization, type RMSNormalizationArgs } from './layers/rms_normalization.js';
export { AttentionCache, type AttentionKind } from './cache/attention_cache.js';
export {
  importTorchWeights,
  exportTorchWeights,
  torchWeightSpecs,
  type TorchTensorLike,
  type ImportTorchOptions,
} from './io/torch_weights.js';
export type { TorchMappable, TorchWeightSpec, TorchLayout } from './io/torch_layout.js';
export {
  kvCacheElementsPerToken,
  kvCacheBytesPerToken,
  attentionCoefficient,
  linearMacsPerToken,
  attentionMacs,
  attentionParams,
  mlaReexpansionPerCachedToken,
  specOf,
  type AttentionSpec,
  type GqaSpec,
  type GtaSpec,
  type MlaSpec,
  type Costs,
  type CostOptions,
} from './analysis/costs.js';
export { applyRotary, rotaryRange, rotaryAt, RotaryStep, MAX_ROPE_POSITIONS, type RotaryStepPositions } from './ops/rope.js';
export {
  MECHANISMS,
  mechanismOf,
  mechanismOfConfig,
  mechanismOfLayer,
  createAttentionLayer,
  type AnyMechanism,
} from './mechanisms/registry.js';
export type { Mechanism } from './mechanisms/mechanism.js';
export { ATTENTION_KINDS, isAttentionKind } from './mechanisms/kinds.js';
export type { GqaAttentionConfig } from './mechanisms/gqa.js';
export type { GtaAttentionConfig } from './mechanisms/gta.js';
export type { MlaAttentionConfig } from './mechanisms/mla.js';
export { MASK_VALUE } from './ops/masks.js';
export {
  groupedAttention,
  ATTENTION_DEFAULTS,
  type AttentionImplementation,
  type GroupedAttentionOptions,
  type GroupedAttentionResult,
} from './ops/attention_core.js';
export {
  hasFusedAttention,
  hasFusedTrainingKernels,
  TRAINING_KERNELS,
  usesFusedKernel,
  usesFusedTrainingKernels,
} from './ops/capabilities.js';
export { withKernelPath, type KernelPath } from './ops/kernel_path.js';
export { rmsNorm } from './ops/rms_norm.js';
export { useBestBackend, setBackendStrict, loadBackend, defaultBackendOrder, IS_NODE, type BackendChoice } from './backend.js';
export {
  parseReferenceFile,
  runReferenceCase,
  layerForCase,
  normRelativeError,
  type ReferenceFile,
  type ReferenceCase,
  type CaseResult,
  type MaskMode,
} from './conformance/reference_vectors.js';
export { SwiGLUFeedForward, swiGLU, swiGLUFeedForward, type SwiGLUFeedForwardArgs } from './layers/swiglu_mlp.js';
export {
  TransformerDecoderBlock,
  transformerDecoderBlock,
  createAttention,
  type TransformerDecoderBlockArgs,
  type AttentionConfig,
} from './layers/decoder_block.js';
export { TokenEmbedding, LMHead, type TokenEmbeddingArgs, type LMHeadArgs } from './layers/token_embedding.js';
export { CausalLM, type TokenIds, type CachedForwardOptions, type CachedForwardResult } from './models/causal_lm.js';
export { ModelCache } from './models/model_cache.js';
export { generate, sampleToken, type GenerateOptions, type GenerateResult } from './models/generate.js';
export {
  resolveCausalLMConfig,
  causalLMParams,
  causalLMCacheElementsPerToken,
  attentionSpec,
  smallAttention,
  smallPreset,
  PAPER_PRESETS,
  type CausalLMConfig,
  type ResolvedCausalLMConfig,
} from './models/config.js';
export {
  sparseCrossEntropyFromLogits,
  sparseCategoricalCrossentropyFromLogits,
  compileForSparseTargets,
  type SparseCompileArgs,
} from './models/losses.js';
export { parseSafetensors, parseTensorJSON, type NamedTensor } from './io/safetensors.js';
export { causalLMConfigFromHF, causalLMFromHF, importHFWeights, detectMechanism } from './io/hf_checkpoint.js';
export { exportHF, type HFExport, type ExportHFOptions } from './io/hf_export.js';
export { serializeSafetensors, type F32Tensor } from './io/safetensors_write.js';
export {
  parseReferenceModelFile,
  runReferenceModelCase,
  type ReferenceModelFile,
  type ReferenceModelCase,
  type ModelCaseResult,
} from './conformance/reference_models.js';

export * from './data/index.js';
export {
  train,
  resumeTraining,
  type TrainOptions,
  type TrainResult,
  type StepRecord,
  type EvalRecord,
  type CheckpointStore,
  type TrainingCheckpoint,
  type TrainerCheckpointState,
} from './train/trainer.js';
export { evaluate, type EvaluateOptions, type EvaluateResult } from './train/evaluate.js';
export {
  variantConfig,
  makeTokenizer,
  estimateTrainingBytes,
  COMPARE_PRESETS,
  VARIANTS,
  type ComparePreset,
  type VariantName,
  type TokenizerKind,
} from './train/presets.js';
export { AdamW, clipByGlobalNorm, clipFactor, clipScale, type AdamWOptions, type AdamWState } from './train/adamw.js';
export { warmupCosine, type ScheduleOptions } from './train/schedule.js';
export { MissingPackageError } from './utils/optional.js';
