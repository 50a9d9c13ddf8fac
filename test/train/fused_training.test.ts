/**
 * Training a model with the fused kernels (webgpu: attention forward and backward, RMSNorm, SwiGLU, RoPE, the
 * loss, the embedding gradient and AdamW; docs/KERNELS.md) follows the same loss curve as with composed ops
 * only: the same seed and data give losses equal to 1e-4 relative at every step, for every mechanism, with
 * gradient clipping active. One step dispatches fewer than half the kernels (train's countKernels, GTA) on
 * webgpu, and fewer kernels on webgl (only RMSNorm, SwiGLU and the loss are fused there). On backends
 * without the fused kernels both switches change nothing, so the two runs are bit-identical there.
 */
import { expect } from 'chai';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { withKernelPath, type KernelPath } from '../../src/ops/kernel_path.js';
import { hasFusedAttention, hasFusedTrainingKernels, usesFusedKernel } from '../../src/ops/capabilities.js';
import { CROSS_ENTROPY_KERNELS } from '../../src/kernels/webgpu/cross_entropy.js';
import { RMS_NORM_KERNELS } from '../../src/kernels/webgpu/rms_norm.js';
import { SWIGLU_KERNELS } from '../../src/kernels/webgpu/swiglu.js';
import { train } from '../../src/train/trainer.js';
import { describeBackends, it, recordError } from '../kit/index.js';

const V = 13;
const STEPS = 4;
const stream = Int32Array.from({ length: 1200 }, (_, i) => (i * 7 + ((i * i) % 5)) % V);

/** Losses of STEPS training steps of a fresh seeded model, and the kernels of one more step (tf.profile). */
async function run(kind: 'gta' | 'gqa' | 'mla', path: KernelPath, profile: boolean): Promise<{ losses: number[]; kernels: number }> {
  return withKernelPath(path, async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', kind, V), seed: 3 });
    try {
      const options = {
        model: lm,
        train: stream.subarray(0, 1000),
        validation: stream.subarray(1000),
        batchSize: 4,
        sequenceLength: 16,
        learningRate: 0.01,
        gradClip: 0.5, // small enough that clipping scales most steps
        evalBatches: 1,
        seed: 0,
      };
      const r = await train({ ...options, steps: STEPS, evalEvery: STEPS + 1, countKernels: profile });
      if (!profile && r.kernelsPerStep !== null) throw new Error('kernelsPerStep without countKernels');
      if (profile && !(r.kernelsPerStep! > 0)) throw new Error(`countKernels gave ${r.kernelsPerStep}`);
      return { losses: r.history.map((h) => h.loss), kernels: r.kernelsPerStep ?? -1 };
    } finally {
      lm.dispose();
    }
  });
}

describeBackends('training with the fused kernels against composed ops', ({ backend }) => {
  for (const kind of ['gta', 'gqa', 'mla'] as const) {
    const profile = kind === 'gta'; // one step's kernels (train's countKernels), for one mechanism
    it(`${kind}: ${STEPS} steps give the composed run's losses (1e-4 relative)${profile ? ', with fewer kernels where fused' : ''}`, async () => {
      const fused = await run(kind, 'fused', profile);
      const composed = await run(kind, 'composed', profile);
      expect(fused.losses).to.have.length(STEPS);
      expect(composed.losses.every(Number.isFinite), `losses ${composed.losses}`).to.equal(true);
      const worst = Math.max(...fused.losses.map((x, i) => Math.abs(x - composed.losses[i]) / Math.abs(composed.losses[i])));
      recordError(`${kind}: loss curve fused vs composed`, worst, 1e-4);
      expect(worst, `fused ${fused.losses} vs composed ${composed.losses}`).to.be.at.most(1e-4);
      expect(composed.losses[STEPS - 1]).to.be.lessThan(composed.losses[0]);
      const someFused = [SWIGLU_KERNELS.forward, RMS_NORM_KERNELS.forward, CROSS_ENTROPY_KERNELS.rows].some(usesFusedKernel);
      if (hasFusedTrainingKernels() && hasFusedAttention()) {
        if (!profile) return;
        console.log(`      kernels per training step (${kind}, webgpu): fused ${fused.kernels}, composed ${composed.kernels}`);
        expect(fused.kernels, `kernels per step: fused ${fused.kernels}, composed ${composed.kernels}`).to.be.lessThan(
          composed.kernels / 2,
        );
      } else if (someFused) {
        if (!profile) return;
        console.log(`      kernels per training step (${kind}, ${backend}): fused ${fused.kernels}, composed ${composed.kernels}`);
        expect(fused.kernels, `kernels per step: fused ${fused.kernels}, composed ${composed.kernels}`).to.be.lessThan(composed.kernels);
      } else {
        expect(worst, `${backend} has no fused kernels: the runs must be identical`).to.equal(0);
        expect(fused.kernels).to.equal(composed.kernels);
      }
    });
  }
});
