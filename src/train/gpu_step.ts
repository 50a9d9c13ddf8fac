/**
 * The GPU training step: a `CausalLM`'s mean cross-entropy on a batch and the gradient of every weight, as
 * one forward pass that keeps what the backward needs and a backward written out layer by layer, both as
 * direct calls of the fused kernels (src/kernels/webgpu) and tfjs's matrix products. No gradient tape runs.
 *
 * Why: under `tf.variableGrads` every kernel that saves an input for its gradient adds a copy (an Identity
 * entry), every `tf.customGrad` adds a scope, and every 3-D projection adds two Reshapes. For the default
 * `npm start` model (width 144, 4 blocks) that was 328 of the 683 kernels of a GTA step (tf.profile) and a
 * large part of the JavaScript time per step. Here a step is the kernels below and nothing else
 * (docs/KERNELS.md, "The GPU training step", has the counts).
 *
 * Where: `gpuStepUnsupported` says why a model or batch cannot take this step (then the trainer uses the
 * tape): it needs the webgpu backend with the fused kernels switched on (`withKernelPath('fused')`,
 * `TRAINING_KERNELS.wholeStep`), GQA/MHA/MQA or GTA blocks with a causal mask and no dropout, SwiGLU MLPs,
 * and shapes the fused attention takes. MLA models, dropout and other backends train through the tape.
 * The tests check its loss and gradients against the composed ops under a tape (test/train/gpu_step.test.ts).
 *
 * Notation: B batch, T sequence, N = B T rows, D width, V vocabulary, I SwiGLU width; per block x the
 * residual stream [N, D], a = RMSNorm(x), h = x + Attention(a), a2 = RMSNorm(h), x' = h + MLP(a2).
 * GQA: Hq query heads, Hk key/value heads, Dh head dim. GTA: Hq maps, Hk key heads, Hc latent heads,
 * Dl latent dim, W = numHeads Dh gate width, Delta [Hq, Dl, r Dl] the decoder (docs/ATTENTION_SPEC.md).
 * For a product y = a W (+ b): da = dy W^T, dW = a^T dy, db = column sums of dy.
 */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM } from '../models/causal_lm.js';
import type { RotaryStep } from '../ops/rope.js';
import { TRAINING_KERNELS, hasFusedAttention, registerFusedKernels, usesFusedTrainingKernels } from '../ops/capabilities.js';
import { ATTENTION_DEFAULTS } from '../ops/attention_core.js';
import { GroupedQueryAttention } from '../layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../layers/gta_attention.js';
import { SwiGLUFeedForward } from '../layers/swiglu_mlp.js';
import type { RMSNormalization } from '../layers/rms_normalization.js';
import { RMS_NORM_KERNELS, fusedRmsNormUnsupported, runRmsNorm } from '../kernels/webgpu/rms_norm.js';
import { runSwiGLU } from '../kernels/webgpu/swiglu.js';
import { ROPE_HEADS_KERNEL, type HeadsAttrs } from '../kernels/webgpu/rope.js';
import { CROSS_ENTROPY_KERNELS } from '../kernels/webgpu/cross_entropy.js';
import { EMBEDDING_GRAD_KERNEL, fusedEmbeddingGradUnsupported, registerEmbeddingGradKernel } from '../kernels/webgpu/embedding_grad.js';
import { gatedDecoderDims, runGatedDecoder } from '../kernels/webgpu/gated_decoder.js';
import {
  FUSED_ATTENTION_KERNEL,
  fusedAttentionBackwardParts,
  fusedAttentionGradUnsupported,
  fusedAttentionUnsupported,
  headGradients,
  registerFusedAttention,
} from '../kernels/webgpu/fused_attention.js';

type Var = tf.LayerVariable;

/** A product's kernel `[in, out]` and bias `[out]` (or null). */
interface Projection {
  kernel: Var;
  bias: Var | null;
}

interface Norm {
  gain: Var;
  epsilon: number;
}

interface RopeSpec {
  base: number;
  scaling: number;
}

interface GqaPlan {
  kind: 'gqa';
  q: Projection;
  k: Projection;
  v: Projection;
  o: Projection;
  hq: number;
  hk: number;
  dh: number;
  /** RoPE on q and k, or null (`useRope: false`). */
  rope: RopeSpec | null;
}

interface GtaPlan {
  kind: 'gta';
  q: Projection;
  k: Projection;
  c: Projection;
  g: Projection;
  decoder: Var;
  o: Var;
  hq: number;
  hk: number;
  hc: number;
  dh: number;
  dl: number;
  rope: RopeSpec;
}

interface BlockPlan {
  norm1: Norm;
  attention: GqaPlan | GtaPlan;
  norm2: Norm;
  mlp: { gate: Projection; up: Projection; down: Projection };
}

/** Every weight the step reads, by role. */
interface StepPlan {
  table: Var;
  blocks: BlockPlan[];
  finalNorm: Norm;
  /** The untied head's kernel `[D, V]`, or null when the logits reuse the table. */
  head: Var | null;
}

/** A layer's weight whose name ends with `/suffix` (the names the layers give their weights; also what checkpoints use). */
function weightOf(layer: tf.layers.Layer, suffix: string): Var | null {
  return layer.trainableWeights.find((w) => w.originalName === suffix || w.originalName.endsWith(`/${suffix}`)) ?? null;
}

function projectionOf(layer: tf.layers.Layer, name: string, withBias: boolean): Projection | string {
  const kernel = weightOf(layer, `${name}/kernel`);
  const bias = withBias ? weightOf(layer, `${name}/bias`) : null;
  if (kernel === null || kernel.shape.length !== 2) return `${layer.name} has no trainable 2-D ${name}/kernel`;
  if (withBias && bias === null) return `${layer.name} has no trainable ${name}/bias`;
  return { kernel, bias };
}

function normOf(layer: RMSNormalization): Norm | string {
  const gain = weightOf(layer, 'scale');
  return gain === null ? `${layer.name} has no trainable scale` : { gain, epsilon: layer.epsilon };
}

/** The attention of a block as the step computes it, or why it cannot. */
function attentionPlan(layer: tf.layers.Layer): GqaPlan | GtaPlan | string {
  if (layer instanceof GroupedQueryAttention) {
    if (layer.dropout > 0) return `${layer.name} has attention dropout`;
    if (!layer.useCausalMask) return `${layer.name} is not causal`;
    const parts = ['query', 'key', 'value'].map((n) => projectionOf(layer, n, layer.useBias));
    const o = projectionOf(layer, 'attention_output', layer.useOutputBias);
    for (const p of [...parts, o]) if (typeof p === 'string') return p;
    const [q, k, v] = parts as Projection[];
    const rope = layer.useRope ? { base: layer.ropeMaxWavelength, scaling: layer.ropeScalingFactor } : null;
    return { kind: 'gqa', q, k, v, o: o as Projection, hq: layer.numQueryHeads, hk: layer.numKeyValueHeads, dh: layer.headDim, rope };
  }
  if (layer instanceof GroupedHeadLatentAttention) {
    if (layer.dropout > 0) return `${layer.name} has attention dropout`;
    if (!layer.useCausalMask) return `${layer.name} is not causal`;
    const parts = ['query', 'key', 'value', 'gate'].map((n) => projectionOf(layer, n, layer.useBias));
    for (const p of parts) if (typeof p === 'string') return p;
    const [q, k, c, g] = parts as Projection[];
    const decoder = weightOf(layer, 'value_decoder/kernel');
    const o = weightOf(layer, 'attention_output/kernel');
    if (decoder === null || o === null || o.shape.length !== 2) return `${layer.name} lacks its decoder or 2-D output kernel`;
    return {
      kind: 'gta',
      q,
      k,
      c,
      g,
      decoder,
      o,
      hq: layer.numQueryHeads,
      hk: layer.numKeyHeads,
      hc: layer.numValueHeads,
      dh: layer.headDim,
      dl: layer.valueDim,
      rope: { base: layer.ropeMaxWavelength, scaling: layer.ropeScalingFactor },
    };
  }
  return `${layer.name} is a ${layer.getClassName()} (the step computes GQA, MHA, MQA and GTA)`;
}

/** The model's weights by role, or why the step cannot compute it. */
function stepPlan(lm: CausalLM): StepPlan | string {
  const table = weightOf(lm.embedding, 'embeddings');
  if (table === null) return 'the embedding table is not trainable';
  const blocks: BlockPlan[] = [];
  for (const block of lm.blocks) {
    if (block.dropout > 0) return `${block.name} has residual dropout`;
    if (!(block.mlp instanceof SwiGLUFeedForward)) return `${block.name}'s MLP is not a SwiGLUFeedForward`;
    if (block.mlp.dropout > 0) return `${block.name}'s MLP has dropout`;
    const attention = attentionPlan(block.attention);
    const [norm1, norm2] = [normOf(block.attentionNorm), normOf(block.mlpNorm)];
    const mlp = ['gate', 'up', 'down'].map((n) => projectionOf(block.mlp, n, block.mlp.useBias));
    for (const p of [attention, norm1, norm2, ...mlp]) if (typeof p === 'string') return p;
    const [gate, up, down] = mlp as Projection[];
    blocks.push({ norm1: norm1 as Norm, attention: attention as GqaPlan | GtaPlan, norm2: norm2 as Norm, mlp: { gate, up, down } });
  }
  const finalNorm = normOf(lm.finalNorm);
  if (typeof finalNorm === 'string') return finalNorm;
  const head = lm.head === null ? null : weightOf(lm.head, 'kernel');
  if (lm.head !== null && head === null) return 'the output head is not trainable';
  return { table, blocks, finalNorm, head };
}

/** Shape-only stand-in for the kernels' support checks, which read dtype, rank and shape (no tensor is made). */
const shaped = (shape: number[], dtype: tf.DataType = 'float32') =>
  ({ dtype, rank: shape.length, shape, size: shape.reduce((a, x) => a * x, 1) }) as unknown as tf.Tensor4D;

/**
 * Why `gpuLossAndGradients` cannot compute this model's step for `inputs [B, T]` here, or null when it can.
 * Off webgpu, with the composed path chosen, or with `TRAINING_KERNELS.wholeStep` false, the answer is never null.
 */
export function gpuStepUnsupported(lm: CausalLM, inputs: tf.Tensor): string | null {
  if (!TRAINING_KERNELS.wholeStep) return 'TRAINING_KERNELS.wholeStep is false';
  if (!usesFusedTrainingKernels() || ATTENTION_DEFAULTS.implementation === 'composed' || !hasFusedAttention())
    return `the fused kernels are off or absent on ${tf.getBackend()} (the step needs webgpu's)`;
  if (inputs.rank !== 2 || inputs.dtype !== 'int32') return `inputs must be int32 [B, T] (got ${inputs.dtype} [${inputs.shape}])`;
  const [b, t] = inputs.shape;
  if (t < 2) return 'the step needs at least 2 tokens per row';
  const plan = stepPlan(lm);
  if (typeof plan === 'string') return plan;
  const d = lm.config.hiddenSize;
  const why = fusedRmsNormUnsupported(shaped([b * t, d]), shaped([d]));
  if (why !== null) return `RMSNorm: ${why}`;
  const embedding = fusedEmbeddingGradUnsupported(shaped([lm.config.vocabSize, d]), shaped([b * t], 'int32'));
  if (embedding !== null) return `embedding gradient: ${embedding}`;
  for (const { attention: a } of plan.blocks) {
    const dv = a.kind === 'gqa' ? a.dh : a.dl;
    const q = shaped([b, a.hq, t, a.dh]);
    const v = shaped([b, a.kind === 'gqa' ? a.hk : a.hc, t, dv]);
    const attention =
      fusedAttentionUnsupported(q, shaped([b, a.hk, t, a.dh]), v, null, null) ?? fusedAttentionGradUnsupported(q, v, null, null);
    if (attention !== null) return `attention: ${attention}`;
    if (a.rope !== null && a.dh % 2 !== 0) return `RoPE needs an even head dim (got ${a.dh})`;
  }
  return null;
}

// ------------------------------------------------------------------ kernels, called directly

const read = (v: Var): tf.Tensor => v.read();

/** `a @ b` with optional transposes and an added `bias` broadcast over the output (a residual, a bias row). */
function product(a: tf.Tensor, b: tf.Tensor, options: { ta?: boolean; tb?: boolean; add?: tf.Tensor | null } = {}): tf.Tensor {
  const attrs = { transposeA: options.ta === true, transposeB: options.tb === true };
  if (options.add === undefined || options.add === null) return tf.engine().runKernel('BatchMatMul', { a, b }, attrs) as tf.Tensor;
  const fused = { ...attrs, activation: 'linear', leakyreluAlpha: 0 } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel('_FusedMatMul', { a, b, bias: options.add }, fused) as tf.Tensor;
}

/** `x [N, in] @ W (+ b)` -> `[N, out]`, with `add` ([N, out]) added too when given. */
function project(x: tf.Tensor, p: Projection, add: tf.Tensor | null = null): tf.Tensor {
  if (p.bias === null) return product(x, read(p.kernel), { add });
  const y = product(x, read(p.kernel), { add: read(p.bias) });
  return add === null ? y : tf.add(y, add);
}

const rmsNorm = (x: tf.Tensor, n: Norm) => runRmsNorm(RMS_NORM_KERNELS.forward, { x, gain: read(n.gain) }, n.epsilon);

/** RMSNorm's backward: dgain, and dx plus `residual` (the gradient reaching x around the norm) in one pass. */
function rmsNormBackward(x: tf.Tensor, dy: tf.Tensor, n: Norm, residual: tf.Tensor | null, grads: Grads): tf.Tensor {
  grads.set(n.gain, runRmsNorm(RMS_NORM_KERNELS.gradGain, { x, dy }, n.epsilon));
  const inputs: tf.NamedTensorMap = { x, dy, gain: read(n.gain) };
  if (residual !== null) inputs.residual = residual;
  return runRmsNorm(RMS_NORM_KERNELS.gradInput, inputs, n.epsilon);
}

/** `GtaRopeHeads` (`HeadsAttrs`): RoPE with `factors`, or only the move of the heads without. */
function heads(x: tf.Tensor, factors: tf.Tensor[] | null, attrs: HeadsAttrs): tf.Tensor {
  const inputs: tf.NamedTensorMap = factors === null ? { x } : { x, cos: factors[0], sinSigned: factors[1] };
  const all = { ...attrs, rotate: factors !== null } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(ROPE_HEADS_KERNEL, inputs, all) as tf.Tensor;
}

/** `[N, H*d]` rows -> `[B, H, T, d]` heads, rotated by RoPE when `factors` are given: one kernel. */
function toHeads(rows: tf.Tensor, b: number, t: number, h: number, d: number, factors: tf.Tensor[] | null): tf.Tensor4D {
  return heads(rows, factors, { transpose: false, view: [b, t, h, d] }) as tf.Tensor4D;
}

/**
 * `toHeads`' backward: `[B, H, T, d]` -> `[N, H*d]` (the transposed rotation when rotated): one kernel. `columns`
 * reads the heads from a wider `[B, H, T, W]` (`[offset, d]` of its last axis).
 */
function fromHeads(dy: tf.Tensor, factors: tf.Tensor[] | null, columns?: [number, number]): tf.Tensor {
  return heads(dy, factors, { transpose: true, flat: true, ...(columns ? { columns } : {}) });
}

/** The attention forward kernel alone: its packed output `[B, nQ, T, Dv + 1]` (each row's output, then its log-sum-exp). */
function attendPacked(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor4D {
  const attrs = { scale, causalOffset: 0, withLse: true } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(FUSED_ATTENTION_KERNEL, { query: q, key: k, value: v }, attrs) as tf.Tensor4D;
}

/**
 * The attention backward from its output gradient `dOut [B, nQ, T, Dv]`: the rows `[N, H*d]` of dq and dk (RoPE's
 * transposed rotation applied) and of dv. Where each group of the fused backward is one head, they are read from
 * its outputs as they are (columns of its key/value sums, their row splits summed while reading); otherwise the
 * groups sharing a head are summed first.
 */
function attentionGradRows(
  kept: Record<string, tf.Tensor>,
  dOut: tf.Tensor4D,
  scale: number,
  rot: tf.Tensor[] | null,
): { dq: tf.Tensor; dk: tf.Tensor; dv: tf.Tensor } {
  const [q, k, v] = [kept.q, kept.k, kept.v] as tf.Tensor4D[];
  const [nK, nV, dk] = [k.shape[1], v.shape[1], k.shape[3]];
  const direct = (groups: number) => groups === nK && groups === nV;
  const parts = fusedAttentionBackwardParts(q, k, v, null, kept.packed as tf.Tensor4D, dOut, { scale, causalOffset: 0 }, false);
  const { dQ, groups, splits } = parts;
  let dKV = parts.dKV; // [P, B, G, S, W] (P = splits > 1) or [B, G, S, W]
  if (splits > 1 && !direct(groups)) dKV = tf.sum(dKV, 0);
  const summed = splits > 1 && direct(groups) ? splits : 1;
  const w = dKV.shape[dKV.rank - 1];
  const rows = (from: number, width: number, count: number, factors: tf.Tensor[] | null): tf.Tensor => {
    if (groups === count) return heads(dKV, factors, { transpose: true, flat: true, columns: [from, width], splits: summed });
    return fromHeads(headGradients(dKV as tf.Tensor4D, from, width, count), factors); // [B, heads, S, width] -> rows
  };
  return { dq: fromHeads(dQ, rot), dk: rows(0, dk, nK, rot), dv: rows(dk, w - dk, nV, null) };
}

type Grads = Map<Var, tf.Tensor>;

/** The gradient of the projections `p_i` that all read `a [N, in]`: each kernel's and bias's, and `da` (+ `add`). */
function projectionsBackward(a: tf.Tensor, parts: Array<[Projection, tf.Tensor]>, grads: Grads): tf.Tensor {
  let da: tf.Tensor | null = null;
  for (const [p, dy] of parts) {
    grads.set(p.kernel, product(a, dy, { ta: true })); // [in, N] @ [N, out] -> [in, out]
    if (p.bias !== null) grads.set(p.bias, tf.sum(dy, 0)); // [out]
    da = product(dy, read(p.kernel), { tb: true, add: da }); // [N, out] @ [out, in] (+ the previous parts) -> [N, in]
  }
  return da!;
}

// ------------------------------------------------------------------ the step

/** What one block's forward keeps for its backward. */
interface BlockTape {
  x: tf.Tensor;
  a: tf.Tensor;
  h: tf.Tensor;
  a2: tf.Tensor;
  gate: tf.Tensor;
  up: tf.Tensor;
  s: tf.Tensor;
  attention: Record<string, tf.Tensor>;
}

/**
 * The loss (mean cross-entropy of `targets [B, T]` under the logits of `inputs [B, T]`) and the gradient of
 * each of `variables` (in their order), computed without a tape. Call only where `gpuStepUnsupported` gives null.
 * `rope` holds the step's RoPE factors (one `RotaryStep` for all blocks, start 0, length T).
 */
export function gpuLossAndGradients(
  lm: CausalLM,
  inputs: tf.Tensor,
  targets: tf.Tensor,
  rope: RotaryStep,
  variables: tf.Variable[],
): { loss: tf.Scalar; grads: tf.Tensor[] } {
  const plan = stepPlan(lm);
  if (typeof plan === 'string') throw new Error(`gpuLossAndGradients: ${plan} (check gpuStepUnsupported first)`);
  registerFusedKernels(); // RMSNorm, SwiGLU, RoPE, the loss, the gated decoder, ...
  registerEmbeddingGradKernel();
  registerFusedAttention();
  const [b, t] = inputs.shape;
  const n = b * t;
  const out = tf.tidy(() => {
    const grads: Grads = new Map();
    const factors = (r: RopeSpec | null, dim: number): tf.Tensor[] | null => {
      if (r === null) return null;
      const f = rope.factors(dim, r.base, r.scaling, 1); // [1, T, 1, dim]
      return [f.cos, f.sinSigned];
    };
    // Forward.
    const ids = tf.reshape(inputs, [n]); // [B, T] -> [N]
    const table = read(plan.table);
    let x = tf.gather(table, ids); // [N, D]
    const tapes: BlockTape[] = [];
    for (const block of plan.blocks) {
      const a = rmsNorm(x, block.norm1);
      const { h, kept } = attentionForward(block.attention, x, a, b, t, factors);
      const a2 = rmsNorm(h, block.norm2);
      const gate = project(a2, block.mlp.gate); // [N, I]
      const up = project(a2, block.mlp.up); // [N, I]
      const s = runSwiGLU('forward', { g: gate, u: up }); // silu(gate) * up
      tapes.push({ x, a, h, a2, gate, up, s, attention: kept });
      x = project(s, block.mlp.down, h); // h + s Wd (+ bd): [N, D]
    }
    const f = rmsNorm(x, plan.finalNorm);
    const logits = plan.head === null ? product(f, table, { tb: true }) : product(f, read(plan.head)); // [N, V]
    // The loss kernels read the targets flat: [B, T] serves as [N].
    const classes = { classes: lm.config.vocabSize } as unknown as tf.NamedAttrMap;
    const rows = tf.engine().runKernel(CROSS_ENTROPY_KERNELS.rows, { logits, targets }, classes) as tf.Tensor; // [N]
    const loss = tf.mean(rows) as tf.Scalar;

    // Backward.
    const gradAttrs = { classes: lm.config.vocabSize, dyScale: 1 / n } as unknown as tf.NamedAttrMap;
    const dLogits = tf
      .engine()
      .runKernel(CROSS_ENTROPY_KERNELS.grad, { logits, targets, loss: rows, dy: tf.scalar(1) }, gradAttrs) as tf.Tensor; // [N, V]
    let df: tf.Tensor;
    if (plan.head === null) {
      df = product(dLogits, table); // [N, V] @ [V, D] -> [N, D]
    } else {
      grads.set(plan.head, product(f, dLogits, { ta: true })); // [D, N] @ [N, V] -> [D, V]
      df = product(dLogits, read(plan.head), { tb: true }); // [N, V] @ [V, D] -> [N, D]
    }
    let dx = rmsNormBackward(x, df, plan.finalNorm, null, grads);
    for (let i = plan.blocks.length - 1; i >= 0; i--) {
      const block = plan.blocks[i];
      const k = tapes[i];
      // MLP: x' = h + s Wd (+ bd), s = silu(gate) up, gate = a2 Wg (+ bg), up = a2 Wu (+ bu).
      const ds = product(dx, read(block.mlp.down.kernel), { tb: true }); // [N, D] @ [D, I] -> [N, I]
      grads.set(block.mlp.down.kernel, product(k.s, dx, { ta: true })); // [I, D]
      if (block.mlp.down.bias !== null) grads.set(block.mlp.down.bias, tf.sum(dx, 0));
      const dGate = runSwiGLU('gradGate', { g: k.gate, u: k.up, dh: ds });
      const dUp = runSwiGLU('gradUp', { g: k.gate, dh: ds });
      const da2 = projectionsBackward(
        k.a2,
        [
          [block.mlp.gate, dGate],
          [block.mlp.up, dUp],
        ],
        grads,
      );
      const dh = rmsNormBackward(k.h, da2, block.norm2, dx, grads); // dx reaches h around the MLP too
      const da = attentionBackward(block.attention, k, dh, b, t, factors, grads);
      dx = rmsNormBackward(k.x, da, block.norm1, dh, grads);
    }
    const dTable = tf
      .engine()
      .runKernel(EMBEDDING_GRAD_KERNEL, { ids, dy: dx }, { vocabSize: lm.config.vocabSize } as unknown as tf.NamedAttrMap) as tf.Tensor;
    // A tied table is also the head: its gradient as the head, dLogits^T f [V, D], is added by the same product.
    grads.set(plan.table, plan.head === null ? product(dLogits, f, { ta: true, add: dTable }) : dTable);
    const byVariable = new Map<tf.Variable, tf.Tensor>();
    for (const [v, g] of grads) byVariable.set(v.read() as tf.Variable, g);
    const ordered = variables.map((v) => {
      const g = byVariable.get(v);
      if (g === undefined) throw new Error(`gpuLossAndGradients: the step has no gradient for ${v.name}`);
      return g;
    });
    return [loss, ...ordered];
  });
  return { loss: out[0] as tf.Scalar, grads: out.slice(1) };
}

/** The attention sublayer forward: `h = x + Attention(a)`, and what its backward needs. */
function attentionForward(
  p: GqaPlan | GtaPlan,
  x: tf.Tensor,
  a: tf.Tensor,
  b: number,
  t: number,
  factors: (r: RopeSpec | null, dim: number) => tf.Tensor[] | null,
): { h: tf.Tensor; kept: Record<string, tf.Tensor> } {
  const rot = factors(p.rope, p.dh);
  const scale = 1 / Math.sqrt(p.dh);
  const q = toHeads(project(a, p.q), b, t, p.hq, p.dh, rot); // [B, Hq, T, Dh]
  const k = toHeads(project(a, p.k), b, t, p.hk, p.dh, rot); // [B, Hk, T, Dh]
  if (p.kind === 'gqa') {
    const v = toHeads(project(a, p.v), b, t, p.hk, p.dh, null); // [B, Hk, T, Dh]
    const packed = attendPacked(q, k, v, scale); // [B, Hq, T, Dh + 1]
    const m = fromHeads(packed, null, [0, p.dh]); // the outputs' heads side by side: [N, Hq*Dh]
    return { h: project(m, p.o, x), kept: { q, k, v, packed, m } }; // x + m Wo (+ bo)
  }
  const c = toHeads(project(a, p.c), b, t, p.hc, p.dl, null); // [B, Hc, T, Dl]
  const g = project(a, p.g); // [N, W]
  const packed = attendPacked(q, k, c, scale); // [B, Hq, T, Dl + 1]
  const delta = read(p.decoder);
  const dims = gatedDecoderDims([b, p.hq, t, p.dl], delta.shape);
  // o [B, Hq, T, Dl] read as the first Dl columns of each packed row (the decoder kernels take wider rows).
  const u = runGatedDecoder('forward', { O: packed, G: g, DELTA: delta }, dims); // [N, W]
  return { h: product(u, read(p.o), { add: x }), kept: { q, k, v: c, packed, o: packed, g, u } }; // x + u Wo
}

/** The attention sublayer backward from `dh` (the gradient of h): the weights' gradients, and that of a. */
function attentionBackward(
  p: GqaPlan | GtaPlan,
  k: BlockTape,
  dh: tf.Tensor,
  b: number,
  t: number,
  factors: (r: RopeSpec | null, dim: number) => tf.Tensor[] | null,
  grads: Grads,
): tf.Tensor {
  const kept = k.attention;
  const rot = factors(p.rope, p.dh);
  const scale = 1 / Math.sqrt(p.dh);
  if (p.kind === 'gqa') {
    // h = x + m Wo (+ bo); m = the heads of softmax(q k^T / sqrt(Dh)) v side by side.
    grads.set(p.o.kernel, product(kept.m, dh, { ta: true })); // [Hq*Dh, D]
    if (p.o.bias !== null) grads.set(p.o.bias, tf.sum(dh, 0));
    const dm = product(dh, read(p.o.kernel), { tb: true }); // [N, Hq*Dh]
    const g = attentionGradRows(kept, toHeads(dm, b, t, p.hq, p.dh, null), scale, rot);
    return projectionsBackward(
      k.a,
      [
        [p.q, g.dq],
        [p.k, g.dk],
        [p.v, g.dv],
      ],
      grads,
    );
  }
  // h = x + u Wo; u = sigmoid(g) * (o expanded by R + Delta per map); o = softmax(q k^T / sqrt(Dh)) c per map.
  grads.set(p.o, product(kept.u, dh, { ta: true })); // [W, D]
  const du = product(dh, read(p.o), { tb: true }); // [N, W]
  const delta = read(p.decoder);
  const dims = gatedDecoderDims([b, p.hq, t, p.dl], delta.shape);
  const dO = runGatedDecoder('gradInput', { G: kept.g, DELTA: delta, DY: du }, dims) as tf.Tensor4D; // [B, Hq, T, Dl]
  const dg = runGatedDecoder('gradGate', { O: kept.o, G: kept.g, DELTA: delta, DY: du }, dims); // [N, W]
  grads.set(p.decoder, runGatedDecoder('gradDecoder', { O: kept.o, G: kept.g, DY: du }, dims)); // [Hq, Dl, r*Dl]
  const g = attentionGradRows(kept, dO, scale, rot);
  return projectionsBackward(
    k.a,
    [
      [p.q, g.dq],
      [p.k, g.dk],
      [p.c, g.dv],
      [p.g, dg],
    ],
    grads,
  );
}
