/**
 * Runs reference cases in the `gta-refvec-1` format (see `../shared/reference/README.md`): builds the
 * layer a case describes, imports its torch-named weights, and compares the output and the gradients
 * of `sum(output * loss_weights)` (with respect to `x` and every weight) with the float64 reference.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { AttentionLayer } from '../layers/attention_base.js';
import { AttentionKind, isAttentionKind } from '../mechanisms/kinds.js';
import { AttentionConfig, createAttentionLayer } from '../mechanisms/registry.js';
import { gtaExpandRate } from '../mechanisms/gta.js';
import { specOf } from '../analysis/costs.js';
import { importTorchWeights, torchToLayer, torchWeightSpecs } from '../io/torch_weights.js';

export interface RefTensor {
  shape: number[];
  data: number[];
}

export interface ReferenceCase {
  name: string;
  mechanism: AttentionKind;
  config: Record<string, unknown>;
  rope?: { convention?: string; theta?: number; positions?: string };
  inputs: { x: RefTensor; attention_mask?: RefTensor; padding_mask?: RefTensor };
  weights: Record<string, RefTensor>;
  output: RefTensor;
  loss_weights: RefTensor;
  grads: Record<string, RefTensor>;
}

export interface ReferenceFile {
  format: string;
  cases: ReferenceCase[];
}

/** How a case's masks are given to the layer. */
export type MaskMode = 'attentionMask' | 'causalPadding';

export interface CaseResult {
  name: string;
  mechanism: string;
  /** Norm-relative error of the output. */
  outputError: number;
  /** Norm-relative error of each gradient, by torch name (`x` for the input). */
  gradErrors: Record<string, number>;
  maxGradError: number;
}

/** `||a - b|| / ||b||` in float64. */
export function normRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new ValueError(`normRelativeError: length ${actual.length} vs ${expected.length}.`);
  }
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    diff += d * d;
    ref += expected[i] * expected[i];
  }
  return ref === 0 ? Math.sqrt(diff) : Math.sqrt(diff / ref);
}

/** Parses and checks a reference file's text. */
export function parseReferenceFile(text: string, source = 'reference file'): ReferenceFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValueError(`${source} is not valid JSON: ${(e as Error).message}`);
  }
  const file = parsed as ReferenceFile;
  if (!file || file.format !== 'gta-refvec-1' || !Array.isArray(file.cases)) {
    throw new ValueError(`${source} is not in the gta-refvec-1 format (expected {"format": "gta-refvec-1", "cases": [...]}).`);
  }
  for (const c of file.cases) {
    for (const key of ['name', 'mechanism', 'config', 'inputs', 'weights', 'output', 'loss_weights', 'grads']) {
      if (!(key in c)) throw new ValueError(`${source}: case ${c.name ?? '?'} has no "${key}".`);
    }
  }
  return file;
}

function num(c: ReferenceCase, key: string): number {
  const v = c.config[key];
  if (typeof v !== 'number') throw new ValueError(`case ${c.name}: config.${key} must be a number, got ${JSON.stringify(v)}.`);
  return v;
}

function checkScale(c: ReferenceCase, expected: number): void {
  const s = c.config.softmax_scale;
  if (typeof s === 'number' && Math.abs(s - expected) > 1e-12 * expected) {
    throw new ValueError(
      `case ${c.name}: softmax_scale ${s} differs from the layer's ${expected}; custom scales ` + '(e.g. YaRN mscale) are not supported.',
    );
  }
}

type CaseConfig<K extends AttentionKind> = Extract<AttentionConfig, { kind: K }>;

/**
 * How a case's (torch-style) config maps to each mechanism's `AttentionConfig`, and the checks that need
 * the constructed layer. Typed over every kind, so a new mechanism is a compile error until it has an entry.
 */
const CASE_CONFIGS: { [K in AttentionKind]: (c: ReferenceCase, theta: number) => CaseConfig<K> } = {
  gqa: (c, theta) => {
    const headDim = num(c, 'head_dim');
    checkScale(c, 1 / Math.sqrt(headDim));
    return {
      kind: 'gqa',
      headDim,
      numQueryHeads: num(c, 'num_query_heads'),
      numKeyValueHeads: num(c, 'num_key_value_heads'),
      useBias: (c.config.use_bias as boolean | undefined) ?? 'q_proj.bias' in c.weights,
      ropeMaxWavelength: theta,
    };
  },
  gta: (c, theta) => {
    const headDim = num(c, 'head_dim');
    for (const key of ['query_dim', 'key_dim']) {
      if (c.config[key] !== undefined && c.config[key] !== headDim) {
        throw new ValueError(`case ${c.name}: ${key} (${c.config[key]}) must equal head_dim (${headDim}).`);
      }
    }
    return {
      kind: 'gta',
      numHeads: num(c, 'num_attention_heads'),
      headDim,
      numQueryHeads: num(c, 'num_query_heads'),
      numKeyHeads: num(c, 'num_key_heads'),
      numValueHeads: num(c, 'num_value_heads'),
      valueDim: num(c, 'value_dim'),
      useBias: 'q_proj.bias' in c.weights,
      ropeMaxWavelength: theta,
    };
  },
  mla: (c, theta) => {
    if (c.config.rope_interleave === true) {
      throw new ValueError(`case ${c.name}: interleaved RoPE is not supported (rotate_half only).`);
    }
    const nope = num(c, 'qk_nope_head_dim');
    const rope = num(c, 'qk_rope_head_dim');
    checkScale(c, 1 / Math.sqrt(nope + rope));
    return {
      kind: 'mla',
      numHeads: num(c, 'num_heads'),
      qLoraRank: (c.config.q_lora_rank as number | null | undefined) ?? null,
      kvLoraRank: num(c, 'kv_lora_rank'),
      qkNopeHeadDim: nope,
      qkRopeHeadDim: rope,
      vHeadDim: num(c, 'v_head_dim'),
      rmsNormEpsilon: (c.config.rms_norm_eps as number | undefined) ?? 1e-6,
      useBias: 'o_proj.bias' in c.weights,
      ropeMaxWavelength: theta,
    };
  },
};

/** GTA cases may state the decoder's expansion rate: it must be the one the sizes imply. */
function checkExpandRate(c: ReferenceCase, layer: AttentionLayer): void {
  const r = c.config.expand_rate;
  const spec = specOf(layer);
  if (spec.kind === 'gta' && typeof r === 'number' && r !== gtaExpandRate(spec)) {
    throw new ValueError(`case ${c.name}: expand_rate ${r} differs from the derived ${gtaExpandRate(spec)}.`);
  }
}

/** Builds (unbuilt) the layer a reference case describes. */
export function layerForCase(c: ReferenceCase): AttentionLayer {
  const convention = c.rope?.convention ?? 'rotate_half';
  if (convention !== 'rotate_half') {
    throw new ValueError(`case ${c.name}: RoPE convention ${JSON.stringify(convention)} is not supported (rotate_half only).`);
  }
  if (c.rope?.positions !== undefined && c.rope.positions !== '0..T-1') {
    throw new ValueError(`case ${c.name}: RoPE positions ${JSON.stringify(c.rope.positions)} are not supported (0..T-1 only).`);
  }
  const theta = (c.config.rope_theta as number | undefined) ?? c.rope?.theta ?? 10000;
  if (!isAttentionKind(c.mechanism)) {
    throw new ValueError(`case ${(c as ReferenceCase).name}: unknown mechanism ${JSON.stringify((c as ReferenceCase).mechanism)}.`);
  }
  const toConfig = CASE_CONFIGS[c.mechanism] as (k: ReferenceCase, theta: number) => AttentionConfig;
  const layer = createAttentionLayer(toConfig(c, theta));
  checkExpandRate(c, layer);
  return layer;
}

function tensorOf(t: RefTensor): tf.Tensor {
  return tf.tensor(Float32Array.from(t.data), t.shape, 'float32');
}

/** A case's computed output and gradients (kept tensors) with what each is compared with. */
interface CaseTensors {
  output: tf.Tensor;
  /** By torch name (`x` for the input): the gradient and the reference in the layer's layout. */
  grads: Record<string, { actual: tf.Tensor; expected: tf.Tensor }>;
}

/** Runs the layer forward and backward on a case's inputs; returns kept tensors (nothing is read). */
function computeCase(c: ReferenceCase, layer: AttentionLayer, maskMode: MaskMode): CaseTensors {
  importTorchWeights(layer, c.weights);
  const specs = torchWeightSpecs(layer);
  const x = tf.tidy(() => tf.variable(tensorOf(c.inputs.x), true, `refcase_x_${c.name}_${Date.now()}`));
  try {
    return tf.tidy(() => {
      const lossWeights = tensorOf(c.loss_weights);
      const opts: Record<string, unknown> = {};
      if (maskMode === 'attentionMask' && c.inputs.attention_mask) opts.attentionMask = tensorOf(c.inputs.attention_mask);
      if (maskMode === 'causalPadding') {
        opts.useCausalMask = true;
        if (c.inputs.padding_mask) opts.paddingMask = tensorOf(c.inputs.padding_mask);
      }
      let output: tf.Tensor | null = null;
      const vars = [...specs.map((s) => s.variable.read() as tf.Variable), x];
      const { grads } = tf.variableGrads(() => {
        output = tf.keep(layer.call(x, opts) as tf.Tensor);
        return tf.sum(tf.mul(output, lossWeights)) as tf.Scalar;
      }, vars);
      const pairs: CaseTensors['grads'] = {};
      for (const spec of specs) {
        const expected = c.grads[spec.torchName];
        if (expected === undefined) continue;
        pairs[spec.torchName] = {
          actual: grads[(spec.variable.read() as tf.Variable).name],
          expected: torchToLayer(spec, tensorOf(expected)),
        };
      }
      if (c.grads.x) pairs.x = { actual: grads[x.name], expected: tensorOf(c.grads.x) };
      return { output: output as unknown as tf.Tensor, grads: pairs };
    });
  } finally {
    x.dispose();
  }
}

function disposeCase(t: CaseTensors): void {
  tf.dispose([t.output, ...Object.values(t.grads).flatMap((g) => [g.actual, g.expected])]);
}

function caseResult(
  c: ReferenceCase,
  output: ArrayLike<number>,
  grads: Record<string, [ArrayLike<number>, ArrayLike<number>]>,
): CaseResult {
  const outputError = normRelativeError(output, c.output.data);
  const gradErrors: Record<string, number> = {};
  for (const [name, [actual, expected]] of Object.entries(grads)) gradErrors[name] = normRelativeError(actual, expected);
  const maxGradError = Math.max(0, ...Object.values(gradErrors));
  return { name: c.name, mechanism: c.mechanism, outputError, gradErrors, maxGradError };
}

/**
 * Runs one case on the current backend. `maskMode` 'attentionMask' passes the case's `[B, T, T]` mask;
 * 'causalPadding' passes its padding mask with causal masking instead (the same mask, built by the layer).
 * Reads the results synchronously (`dataSync`), which tfjs's webgpu backend cannot do in Node: use
 * `runReferenceCaseAsync` there (same results).
 */
export function runReferenceCase(c: ReferenceCase, maskMode: MaskMode = 'attentionMask'): CaseResult {
  const layer = layerForCase(c);
  try {
    const t = computeCase(c, layer, maskMode);
    try {
      const grads = Object.fromEntries(
        Object.entries(t.grads).map(([k, g]) => [k, [g.actual.dataSync(), g.expected.dataSync()]]),
      ) as Record<string, [ArrayLike<number>, ArrayLike<number>]>;
      return caseResult(c, t.output.dataSync(), grads);
    } finally {
      disposeCase(t);
    }
  } finally {
    layer.dispose();
  }
}

/** `runReferenceCase` with asynchronous reads: works on every backend, webgpu in Node included. */
export async function runReferenceCaseAsync(c: ReferenceCase, maskMode: MaskMode = 'attentionMask'): Promise<CaseResult> {
  const layer = layerForCase(c);
  try {
    const t = computeCase(c, layer, maskMode);
    try {
      const grads: Record<string, [ArrayLike<number>, ArrayLike<number>]> = {};
      for (const [k, g] of Object.entries(t.grads)) grads[k] = await Promise.all([g.actual.data(), g.expected.data()]);
      return caseResult(c, await t.output.data(), grads);
    } finally {
      disposeCase(t);
    }
  } finally {
    layer.dispose();
  }
}
