/**
 * The default `npm start` model's training on the active backend (for the GPU entry): throughput with
 * tfjs-gta's own trainer (AdamW, clipping, one asynchronous read per step) and the kernels one training
 * step dispatches (tf.profile), for GTA and GQA. The data are seeded pseudo-random token ids over a
 * character-sized vocabulary: the time of a step does not depend on the values.
 */
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../src/models/causal_lm.js';
import { COMPARE_PRESETS, variantConfig, type VariantName } from '../src/train/presets.js';
import { train } from '../src/train/trainer.js';
import { withKernelPath, type KernelPath } from '../src/ops/kernel_path.js';
import { TRAINING_KERNELS } from '../src/ops/capabilities.js';

/** Vocabulary of the character tokenizer on the built-in Moby-Dick (about this size). */
const VOCAB = 96;

export interface LMTrainingResult {
  variant: VariantName;
  /**
   * 'fused': the fused kernels, and on webgpu the GPU training step (no tape, src/train/gpu_step.ts);
   * 'fused-tape': the same kernels under a gradient tape (`TRAINING_KERNELS.wholeStep` false; the path before
   * the GPU step); 'composed': composed ops only.
   */
  path: KernelPath | 'fused-tape';
  /** Training loss of each step (the same seed and data for both paths). */
  losses: number[];
  preset: { hiddenSize: number; numLayers: number; numHeads: number; batchSize: number; sequenceLength: number };
  params: number;
  steps: number;
  /** Median over the steps after the first three (shader compilation) of tokens per second. */
  tokensPerSecondMedian: number;
  /** Tokens of all measured steps over their summed time. */
  tokensPerSecondMean: number;
  medianStepMs: number;
  /** Kernels dispatched by one training step (forward, backward, norm, AdamW), from tf.profile. */
  kernelsPerStep: number;
  /** Of `kernelsPerStep`, those that dispatch work (not Identity, Reshape or customGrad scopes; see `kernelsOf`). */
  dispatchingKernelsPerStep: number;
  /** Kernels of the forward pass alone (one batch). */
  kernelsForward: number;
}

function stream(n: number): Int32Array {
  let s = 12345;
  return Int32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % VOCAB;
  });
}

/**
 * Kernels that `fn` runs (tf.profile's count) and how many of them dispatch work: all but Identity and
 * Reshape (on webgpu both only add a reference to their input's buffer) and entries that are no kernel
 * of the backend (tf.customGrad's scopes).
 */
async function kernelsOf(fn: () => Promise<unknown>): Promise<{ kernels: number; dispatching: number }> {
  const info = await tf.profile(async () => {
    await fn();
    return null as unknown as tf.Tensor;
  });
  const backend = tf.getBackend();
  const dispatching = info.kernels.filter(
    (k) => k.name !== 'Identity' && k.name !== 'Reshape' && tf.getKernel(k.name, backend) !== undefined,
  );
  return { kernels: info.kernels.length, dispatching: dispatching.length };
}

async function measureVariant(variant: VariantName, steps: number): Promise<LMTrainingResult> {
  const p = COMPARE_PRESETS.default;
  const lm = CausalLM.create(variantConfig(variant, p, VOCAB, 0), `lm_${variant}`);
  const ids = stream(200_000);
  const common = {
    model: lm,
    train: ids.subarray(0, 180_000),
    validation: ids.subarray(180_000),
    batchSize: p.batchSize,
    sequenceLength: p.sequenceLength,
    learningRate: p.learningRate,
    evalBatches: 1,
    seed: 0,
  };
  try {
    const r = await train({ ...common, steps, evalEvery: steps + 1 });
    const measured = r.history.slice(3);
    const tokens = p.batchSize * p.sequenceLength;
    const rates = measured.map((h) => h.tokensPerSecond).sort((a, b) => a - b);
    const seconds = measured.reduce((a, h) => a + tokens / h.tokensPerSecond, 0);
    // One step's kernels: a run of two steps minus a run of one. Both evaluate only at the end: with train's
    // default evalEvery (steps / 5, at least 1) the two-step run also evaluated after its first step, and the
    // difference counted that forward pass too (about 160 kernels for GTA, 145 for GQA, until 2026-12-02).
    const one = await kernelsOf(() => train({ ...common, steps: 1, warmupSteps: 0, evalEvery: 10 }));
    const two = await kernelsOf(() => train({ ...common, steps: 2, warmupSteps: 0, evalEvery: 10 }));
    const batch = tf.tidy(() => tf.tensor2d(Array.from(ids.subarray(0, tokens)), [p.batchSize, p.sequenceLength], 'int32'));
    const { kernels: kernelsForward } = await kernelsOf(async () => {
      const logits = lm.model.apply(batch, { training: false }) as tf.Tensor;
      await logits.data();
      logits.dispose();
    });
    batch.dispose();
    const median = rates[Math.floor(rates.length / 2)];
    return {
      variant,
      path: 'fused',
      losses: r.history.map((h) => h.loss),
      preset: {
        hiddenSize: p.hiddenSize,
        numLayers: p.numLayers,
        numHeads: p.numHeads,
        batchSize: p.batchSize,
        sequenceLength: p.sequenceLength,
      },
      params: lm.countParams(),
      steps,
      tokensPerSecondMedian: Math.round(median),
      tokensPerSecondMean: Math.round((measured.length * tokens) / seconds),
      medianStepMs: Math.round(((1000 * tokens) / median) * 10) / 10,
      kernelsPerStep: two.kernels - one.kernels,
      dispatchingKernelsPerStep: two.dispatching - one.dispatching,
      kernelsForward,
    };
  } finally {
    lm.dispose();
  }
}

/**
 * Measures GTA and GQA on the default preset, each on the GPU step, under a tape over the fused kernels and with
 * composed ops only (same seed and data, so the loss curves should agree); `log` receives one line per run.
 */
export async function measureLMTraining(steps: number, log: (line: string) => void): Promise<LMTrainingResult[]> {
  const out: LMTrainingResult[] = [];
  for (const v of ['gta', 'gqa'] as const) {
    for (const path of ['fused', 'fused-tape', 'composed'] as const) {
      TRAINING_KERNELS.wholeStep = path !== 'fused-tape';
      let measured: LMTrainingResult;
      try {
        measured = await withKernelPath(path === 'composed' ? 'composed' : 'fused', () => measureVariant(v, steps));
      } finally {
        TRAINING_KERNELS.wholeStep = true;
      }
      const r = { ...measured, path };
      log(
        `[${tf.getBackend()}] LM training ${v} ${path}: ${r.tokensPerSecondMedian} tokens/s (median step ${r.medianStepMs} ms), ` +
          `${r.kernelsPerStep} kernels per step (${r.dispatchingKernelsPerStep} dispatching), ${r.kernelsForward} per forward pass; losses ${r.losses
            .slice(0, 3)
            .concat(r.losses.slice(-1))
            .map((x) => x.toFixed(5))
            .join(', ')}`,
      );
      out.push(r);
    }
  }
  return out;
}
