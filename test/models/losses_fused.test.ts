/**
 * The fused cross-entropy kernels (src/kernels/webgpu/cross_entropy.ts, webgl/cross_entropy.ts) against the
 * composed losses: on webgpu and webgl, loss values <= 1e-5 and logits gradients <= 1e-4 norm-relative for odd vocabularies and several
 * row counts, through both `sparseCrossEntropyFromLogits` (mean) and the Keras-style per-token loss;
 * kernels per forward+backward under tf.profile. Elsewhere the capability is false and the losses are the
 * composed ones.
 */
import * as tf from '@tensorflow/tfjs';
import { CROSS_ENTROPY_KERNELS } from '../../src/kernels/webgpu/cross_entropy.js';
import { hasFusedTrainingKernels, TRAINING_KERNELS, usesFusedKernel, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { sparseCategoricalCrossentropyFromLogits, sparseCrossEntropyFromLogits } from '../../src/models/losses.js';
import { describeBackends, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError } from '../kit/fused.js';

const LOSS_TOL = 1e-5;
const GRAD_TOL = 1e-4;

/** Seeded ids in [0, v) shaped `shape`, int32. */
function ids(shape: number[], v: number, seed: number): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.floor(tf.randomUniform(shape, 0, v - 1e-3, 'float32', seed)), 'int32'));
}

/** Runs `fn` with the composed reference path, restoring the switch afterwards. */
function composed<T>(fn: () => T): T {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = 'composed';
  try {
    return fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

/** `composed` for an asynchronous body: the switch is restored once the body has settled. */
async function composedAsync<T>(fn: () => Promise<T>): Promise<T> {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = 'composed';
  try {
    return await fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

type Loss = (targets: tf.Tensor, logits: tf.Tensor) => tf.Tensor;

/** The loss (summed to a scalar for the gradient) and d loss / d logits. */
function lossAndGrad(loss: Loss, targets: tf.Tensor, logits: tf.Tensor): { value: tf.Tensor; grad: tf.Tensor } {
  const value = tf.tidy(() => loss(targets, logits));
  const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(loss(targets, x), tf.range(1, value.size + 1).reshape(value.shape))))(logits);
  return { value, grad };
}

async function compare(name: string, loss: Loss, shape: number[], v: number, seed: number): Promise<void> {
  const logits = randomTensor([...shape, v], seed, 4);
  const targets = ids(shape, v, seed + 1);
  const ran = await tf.profile(() => loss(targets, logits));
  tf.dispose(ran.result as tf.Tensor);
  if (!ran.kernels.some((k) => k.name === CROSS_ENTROPY_KERNELS.rows)) throw new Error(`${name}: the fused kernel did not run`);
  const fused = lossAndGrad(loss, targets, logits);
  const ref = composed(() => lossAndGrad(loss, targets, logits));
  try {
    checkError(`${name}: loss`, normRelativeError(await fused.value.data(), await ref.value.data()), LOSS_TOL);
    checkError(`${name}: logits grad`, normRelativeError(await fused.grad.data(), await ref.grad.data()), GRAD_TOL);
  } finally {
    tf.dispose([logits, targets, fused.value, fused.grad, ref.value, ref.grad]);
  }
}

/** Names of the registered kernels run by a loss forward and backward (customGrad's scopes filtered out). */
async function kernelsOfStep(backend: string, loss: Loss, targets: tf.Tensor, logits: tf.Tensor): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(() => tf.grad((x: tf.Tensor) => loss(targets, x) as tf.Scalar)(logits)));
  tf.dispose(info.result as tf.Tensor);
  return info.kernels.map((k) => k.name).filter((n) => tf.getKernel(n, backend) !== undefined);
}

const CASES: Array<{ shape: number[]; v: number }> = [
  { shape: [3], v: 37 },
  { shape: [2, 5], v: 1000 },
  { shape: [4, 33], v: 5000 },
  { shape: [1, 1], v: 257 },
];

/** The backends with fused cross-entropy kernels. */
const FUSED_BACKENDS = ['webgpu', 'webgl'];

describeBackends('fused cross-entropy (kernels/webgpu, kernels/webgl) against the composed loss', ({ backend }) => {
  if (!FUSED_BACKENDS.includes(backend)) {
    it('has no fused training kernels, and the losses are the composed ones', async () => {
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels() || usesFusedKernel(CROSS_ENTROPY_KERNELS.rows))
        throw new Error(`the capability is true on ${backend}`);
      const logits = randomTensor([2, 3, 37], 5, 3);
      const targets = ids([2, 3], 37, 6);
      try {
        const a = tf.tidy(() => sparseCrossEntropyFromLogits(targets, logits));
        const b = composed(() => tf.tidy(() => sparseCrossEntropyFromLogits(targets, logits)));
        const names = await kernelsOfStep(backend, sparseCrossEntropyFromLogits, targets, logits);
        try {
          checkError('auto = composed', normRelativeError(await a.data(), await b.data()), 0);
          if (names.some((n) => n.startsWith('GtaCrossEntropy'))) throw new Error(`ran a fused kernel: [${names}]`);
        } finally {
          tf.dispose([a, b]);
        }
      } finally {
        tf.dispose([logits, targets]);
      }
    });
    return;
  }

  it('reports the capability (all training kernels on webgpu; the cross-entropy on webgl), off under composed', () => {
    if (!usesFusedKernel(CROSS_ENTROPY_KERNELS.rows)) throw new Error(`the fused cross-entropy is off on ${backend}`);
    const all = backend === 'webgpu';
    if (hasFusedTrainingKernels() !== all || usesFusedTrainingKernels() !== all)
      throw new Error(`hasFusedTrainingKernels() should be ${all} on ${backend}`);
    if (composed(() => usesFusedKernel(CROSS_ENTROPY_KERNELS.rows))) throw new Error('the fused cross-entropy is on under composed');
  });

  for (const c of CASES) {
    it(`mean loss: fused = composed, rows [${c.shape}], V=${c.v}`, () =>
      compare(`mean [${c.shape}] V=${c.v}`, sparseCrossEntropyFromLogits, c.shape, c.v, 10 + c.v));
    it(`per-token loss: fused = composed, rows [${c.shape}], V=${c.v}`, () =>
      compare(`per-token [${c.shape}] V=${c.v}`, sparseCategoricalCrossentropyFromLogits, c.shape, c.v, 20 + c.v));
  }

  it('takes float32 ids like int32 ids', async () => {
    const logits = randomTensor([2, 7, 101], 3, 2);
    const targets = ids([2, 7], 101, 4);
    const asFloat = tf.cast(targets, 'float32');
    const a = tf.tidy(() => sparseCrossEntropyFromLogits(targets, logits));
    const b = tf.tidy(() => sparseCrossEntropyFromLogits(asFloat, logits));
    try {
      checkError('float ids = int ids', normRelativeError(await b.data(), await a.data()), 0);
    } finally {
      tf.dispose([logits, targets, asFloat, a, b]);
    }
  });

  it('gives NaN, not a finite loss, for an id outside [0, V)', async () => {
    const logits = randomTensor([1, 3, 11], 3, 2);
    const targets = tf.tensor2d([[1, 11, 2]], [1, 3], 'int32');
    const loss = tf.tidy(() => sparseCrossEntropyFromLogits(targets, logits));
    try {
      const value = (await loss.data())[0];
      if (!Number.isNaN(value)) throw new Error(`an out-of-range id gave the loss ${value}`);
    } finally {
      tf.dispose([logits, targets, loss]);
    }
  });

  it('runs few kernels per forward+backward (tf.profile), against the composed loss', async () => {
    const logits = randomTensor([4, 32, 1000], 7, 3);
    const targets = ids([4, 32], 1000, 8);
    try {
      const fused = await kernelsOfStep(backend, sparseCrossEntropyFromLogits, targets, logits);
      const reference = await composedAsync(() => kernelsOfStep(backend, sparseCrossEntropyFromLogits, targets, logits));
      // eslint-disable-next-line no-console
      console.log(`    cross-entropy forward+backward kernels: fused ${fused.length} [${fused}], composed ${reference.length}`);
      if (!fused.includes(CROSS_ENTROPY_KERNELS.rows) || !fused.includes(CROSS_ENTROPY_KERNELS.grad))
        throw new Error(`the fused kernels did not run: [${fused}]`);
      if (fused.length >= reference.length) throw new Error(`fused ran ${fused.length} kernels, composed ${reference.length}`);
    } finally {
      tf.dispose([logits, targets]);
    }
  });
});
