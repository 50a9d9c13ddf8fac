/**
 * What the active backend does well or badly, by name: the one place where a backend's name decides
 * how the layers compute. Each capability says what was measured; the layers and ops ask these
 * questions instead of comparing backend names. A new backend gets the general path (all false, no
 * limit) until it is measured.
 */
import * as tf from '@tensorflow/tfjs';
import { registerWebGLAdamWKernels } from '../kernels/webgl/adamw.js';
import { registerSwiGLUKernels } from '../kernels/webgpu/swiglu.js';
import { registerCrossEntropy } from '../kernels/webgpu/cross_entropy.js';
import { registerRmsNormKernels } from '../kernels/webgpu/rms_norm.js';
import { registerRopeKernel } from '../kernels/webgpu/rope.js';
import { registerSquaredNorm } from '../kernels/webgpu/squared_norm.js';
import { registerGatedDecoderKernels } from '../kernels/webgpu/gated_decoder.js';

const active = (): string => tf.getBackend();

/**
 * Batched products are faster as per-entry 2-D products (wasm: XNNPACK runs only 2-D products fast;
 * its batched and transposed products are scalar loops).
 */
export function splitsBatchedProducts(): boolean {
  return active() === 'wasm';
}

/**
 * Slicing and splitting tensors is cheap (tensorflow, webgl, webgpu). cpu and wasm copy slices through
 * JavaScript element by element, so there fused projections are not split afterwards.
 */
export function slicesCheaply(): boolean {
  const backend = active();
  return backend !== 'cpu' && backend !== 'wasm';
}

/**
 * Broadcasting multiplies and strided slices are slow (cpu: a broadcasting multiply runs several times
 * slower than an elementwise one, and slicing a non-contiguous block costs ~50 ns per element), so RoPE
 * factors are repeated per head and halves are swapped with a gather.
 */
export function broadcastsSlowly(): boolean {
  return active() === 'cpu';
}

/**
 * Rows (B*T) up to which one fused q|k|v product beats separate ones. tensorflow (oneDNN) runs one wide
 * product slower than three narrow ones at larger row counts ([1024, 1024] x [1024, 3072] inside the layer:
 * 20.6 against 17.3 ms) but faster with few rows ([8, 1024] x [1024, 3072]: 0.32 against 0.82 ms).
 */
export function fusedProjectionMaxRows(): number {
  return active() === 'tensorflow' ? 128 : Number.POSITIVE_INFINITY;
}

/**
 * Column sums of a matrix (a bias's gradient) are cheaper as a product with a row of ones than as tfjs's Sum
 * (webgl: Sum reads unpacked textures, so a packed gradient is unpacked, summed and packed again for the
 * optimizer, three programs where the product is one and stays packed).
 */
export function sumsRowsByProduct(): boolean {
  return active() === 'webgl';
}

/**
 * Whether values can be read back synchronously (`dataSync`). tfjs's webgpu backend in Node cannot (it
 * needs OffscreenCanvas); there, checks that read tensor values are skipped and reads are async.
 */
export function readsSynchronously(): boolean {
  return !(active() === 'webgpu' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined');
}

/**
 * Whether `backend` (default: the active one) is tfjs-node's native TensorFlow backend, the one fast
 * enough for the default comparison's full budget on a CPU.
 */
export function isNativeBackend(backend: string = active()): boolean {
  return backend === 'tensorflow';
}

/** Whether the active backend implements the kernel `name` (some backends lack e.g. UnsortedSegmentSum). */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, active()) !== undefined;
}

/**
 * Whether the active backend runs the fused attention kernel (src/kernels/webgpu: one compute shader for
 * scores, masks, online softmax and the value product, instead of 18-87 composed kernels per layer call).
 */
export function hasFusedAttention(): boolean {
  return active() === 'webgpu';
}

/**
 * Whether the active backend has the fused score path of attention (webgl: scale, bias, causal mask and
 * softmax of the folded scores in one kernel, src/kernels/webgl/attention_softmax.ts, where the composed
 * path runs a Mul, one or two Adds, a causal bias upload and tfjs's five-kernel softmax; each tfjs kernel
 * costs about a millisecond on SwiftShader).
 */
export function hasFusedAttentionSoftmax(): boolean {
  return active() === 'webgl';
}

/**
 * Whether the active backend has the decode step of src/kernels/webgl/decode_step.ts (webgl: a one-token step of
 * GQA/MHA/MQA or GTA in 6-7 programs over the cache's tensors, where the composed path runs 18-20, each costing
 * about a millisecond on SwiftShader).
 */
export function hasWebGLDecodeStep(): boolean {
  return active() === 'webgl';
}

/**
 * Which path the fused training kernels' callers take (RMSNorm, SwiGLU, the cross-entropy loss and AdamW):
 * 'auto' takes the fused kernel where `hasFusedTrainingKernels()`; 'composed' always takes the composed
 * tfjs ops (the reference path; tests and benchmarks set it to compare the two, and restore it).
 * `wholeStep`: with 'auto' on webgpu, `train` computes a step's loss and gradients without a tape
 * (src/train/gpu_step.ts); false keeps the tape over the same fused kernels (tests compare the two).
 */
export const TRAINING_KERNELS: { implementation: 'auto' | 'composed'; wholeStep: boolean } = { implementation: 'auto', wholeStep: true };

/**
 * Whether the active backend has our fused training kernels (src/kernels/webgpu: RMSNorm, SwiGLU, the
 * cross-entropy loss from logits and integer targets, AdamW), each one dispatch or two where the composed
 * ops take 5-15: on the GPU backends a training step is bound by dispatches (docs/benchmarks).
 */
export function hasFusedTrainingKernels(): boolean {
  return active() === 'webgpu';
}

/** Whether the fused training kernels are used now: the capability, unless `TRAINING_KERNELS` asks for the composed path. */
export function usesFusedTrainingKernels(): boolean {
  return TRAINING_KERNELS.implementation === 'auto' && hasFusedTrainingKernels();
}

/**
 * Whether the fused training kernel `name` (e.g. `SWIGLU_KERNELS.forward`) is used now: `TRAINING_KERNELS`
 * is 'auto' and, once our kernels are registered, the active backend has `name`. SwiGLU, the cross-entropy
 * loss, RMSNorm, RoPE and the squared global norm exist for webgpu and webgl under the same names
 * (src/kernels/webgl: on WebGL each tfjs kernel costs about a millisecond of dispatch, so fewer kernels is
 * faster); AdamW for both under different names (webgpu's kernel per group of variables over packed moments
 * plus one per weight, through `usesFusedTrainingKernels()`; webgl's three per variable over separate m and v,
 * `WEBGL_ADAMW_KERNELS`); the embedding
 * gradient only for webgpu (`usesFusedTrainingKernels()`). GTA's gated value decoder (src/ops/gated_decoder.ts)
 * follows the same switch on both.
 */
export function usesFusedKernel(name: string): boolean {
  if (TRAINING_KERNELS.implementation !== 'auto') return false;
  registerFusedKernels();
  return hasKernel(name);
}

let registered = false;

/** Registers our fused training kernels (webgpu and webgl) once, so that the registry can answer for them. */
export function registerFusedKernels(): void {
  if (registered) return;
  registerSwiGLUKernels();
  registerCrossEntropy();
  registerRmsNormKernels();
  registerWebGLAdamWKernels();
  registerRopeKernel();
  registerSquaredNorm();
  registerGatedDecoderKernels();
  registered = true;
}

/**
 * The largest storage buffer a kernel of the active backend may bind, in bytes: the webgpu device's
 * `maxStorageBufferBindingSize` (WebGPU's default is 128 MiB; tfjs asks the adapter for its own), else
 * unbounded. A cache arena of the fused decode must fit in one.
 */
export function maxStorageBufferBytes(): number {
  const device = (tf.backend() as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device;
  return device?.limits?.maxStorageBufferBindingSize ?? Number.POSITIVE_INFINITY;
}
