/**
 * The fused SwiGLU kernels (src/kernels/webgpu/swiglu.ts) against the composed ops: on webgpu, values
 * <= 1e-5 and gradients wrt gate and up <= 1e-4 norm-relative for odd widths, rank 2 and 3, and the whole
 * SwiGLUFeedForward layer's output and weight gradients (tf.variableGrads); kernels per call under
 * tf.profile. On every other backend the capability is false and the layer is exactly the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedSwiGLU, SWIGLU_KERNELS } from '../../src/kernels/webgpu/swiglu.js';
import { hasFusedTrainingKernels, TRAINING_KERNELS, usesFusedKernel, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { SwiGLUFeedForward, swiGLU } from '../../src/layers/swiglu_mlp.js';
import { RMSNormalization } from '../../src/layers/rms_normalization.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, checkLayerValueAndGrads, layerValueAndGrads } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

/** Runs `fn` (sync or async) with `TRAINING_KERNELS.implementation` = 'composed', restoring it afterwards. */
async function composedPath<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = 'composed';
  try {
    return await fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

/** Output and gradients (wrt gate and up) of `swiGLU` for an output gradient `dh`. */
function valueAndGrads(g: tf.Tensor, u: tf.Tensor, dh: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => [swiGLU(g, u), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => swiGLU(a, b))([g, u], dh)]);
}

/** Registered kernel names `fn` runs, less `Identity` (tfjs's clone of a saved tensor: no dispatch on webgpu). */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => n !== 'Identity' && tf.getKernel(n, backend) !== undefined);
}

const SHAPES = [
  [5, 7],
  [3, 4, 100],
  [2, 9, 128],
  [3, 1000],
  [2, 17, 1000],
];

/** The backends with fused SwiGLU kernels (src/kernels/webgpu/swiglu.ts, src/kernels/webgl/swiglu.ts). */
const FUSED_BACKENDS = ['webgpu', 'webgl'];

describeBackends('fused SwiGLU (kernels/webgpu, kernels/webgl) against the composed ops', ({ backend }) => {
  if (!FUSED_BACKENDS.includes(backend)) {
    it('has no fused training kernels; the layer is exactly the composed ops; the fused entry refuses', async () => {
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels() || usesFusedKernel(SWIGLU_KERNELS.forward))
        throw new Error(`fused training kernels reported on ${backend}`);
      const layer = new SwiGLUFeedForward({ intermediateDim: 12, seed: 3 });
      const x = randomTensor([2, 3, 8], 1);
      const w = randomTensor([2, 3, 8], 2);
      const auto = layerValueAndGrads(layer, x, w);
      const composed = await composedPath(() => layerValueAndGrads(layer, x, w));
      try {
        auto.forEach((t, i) => checkError(`auto = composed [${i}]`, normRelativeError(t.dataSync(), composed[i].dataSync()), 0));
        tf.tidy(() => {
          expectThrows(() => fusedSwiGLU(x, x), /fused SwiGLU: the fused kernels need the webgpu or webgl backend/, new RegExp(backend));
        });
      } finally {
        tf.dispose([x, w, ...auto, ...composed]);
        layer.dispose();
      }
    });
    return;
  }

  it('reports the capability (all training kernels on webgpu; SwiGLU on webgl), off under TRAINING_KERNELS composed', async () => {
    if (!usesFusedKernel(SWIGLU_KERNELS.forward)) throw new Error(`fused SwiGLU not reported on ${backend}`);
    const all = backend === 'webgpu';
    if (hasFusedTrainingKernels() !== all || usesFusedTrainingKernels() !== all)
      throw new Error(`hasFusedTrainingKernels() should be ${all} on ${backend}`);
    if (await composedPath(() => usesFusedKernel(SWIGLU_KERNELS.forward))) throw new Error('fused SwiGLU reported under composed');
  });

  for (const shape of SHAPES) {
    it(`fused = composed: silu(g) * u [${shape}]`, async () => {
      const g = randomTensor(shape, 11, 6); // into both tails of the sigmoid
      const u = randomTensor(shape, 12, 2);
      const dh = randomTensor(shape, 13);
      const fused = valueAndGrads(g, u, dh);
      const composed = await composedPath(() => valueAndGrads(g, u, dh));
      try {
        const names = ['output', 'grad gate', 'grad up'];
        if (fused.length !== 3) throw new Error(`expected 3 results, got ${fused.length}`);
        for (let i = 0; i < 3; i++) {
          const err = normRelativeError(await fused[i].data(), await composed[i].data());
          checkError(`[${shape}]: ${names[i]}`, err, i === 0 ? OUTPUT_TOL : GRAD_TOL);
        }
      } finally {
        tf.dispose([g, u, dh, ...fused, ...composed]);
      }
    });
  }

  for (const useBias of [false, true]) {
    it(`the layer (useBias ${useBias}) trains through tf.variableGrads with the fused backward (= composed)`, async () => {
      const layer = new SwiGLUFeedForward({ intermediateDim: 100, useBias, seed: 5 });
      const x = randomTensor([2, 7, 24], 21, 2);
      const w = randomTensor([2, 7, 24], 22);
      const fused = layerValueAndGrads(layer, x, w);
      const composed = await composedPath(() => layerValueAndGrads(layer, x, w));
      try {
        await checkLayerValueAndGrads(layer, fused, composed, OUTPUT_TOL, GRAD_TOL);
      } finally {
        tf.dispose([x, w, ...fused, ...composed]);
        layer.dispose();
      }
    });
  }

  it('fit() with RMSNormalization and SwiGLUFeedForward: fused losses = composed losses', async () => {
    const fitLosses = async (): Promise<number[]> => {
      const model = tf.sequential({
        layers: [new RMSNormalization({ inputShape: [5, 24], epsilon: 1e-5 }), new SwiGLUFeedForward({ intermediateDim: 40, seed: 7 })],
      });
      const optimizer = tf.train.sgd(0.1);
      model.compile({ optimizer, loss: 'meanSquaredError' });
      const x = randomTensor([8, 5, 24], 51, 2);
      const y = randomTensor([8, 5, 24], 52);
      try {
        const history = await model.fit(x, y, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
        return history.history.loss as number[];
      } finally {
        tf.dispose([x, y]);
        model.dispose();
        optimizer.dispose();
      }
    };
    const fused = await fitLosses();
    const composed = await composedPath(fitLosses);
    if (fused.length !== 3 || fused[2] >= fused[0]) throw new Error(`losses did not fall: [${fused}]`);
    checkError('fit losses', normRelativeError(Float32Array.from(fused), Float32Array.from(composed)), 1e-4);
  });

  it('is one kernel forward and two more backward', async () => {
    const g = randomTensor([2, 9, 128], 31);
    const u = randomTensor([2, 9, 128], 32);
    const dh = randomTensor([2, 9, 128], 33);
    const grads = () => tf.grads((a: tf.Tensor, b: tf.Tensor) => swiGLU(a, b))([g, u], dh);
    try {
      const forward = await kernelNames(backend, () => swiGLU(g, u));
      const backward = await kernelNames(backend, grads);
      const composedForward = await composedPath(() => kernelNames(backend, () => swiGLU(g, u)));
      const composedBackward = await composedPath(() => kernelNames(backend, grads));
      console.log(
        `      SwiGLU kernels: fused forward ${forward.length}, forward+backward ${backward.length} [${backward}]; ` +
          `composed forward ${composedForward.length}, forward+backward ${composedBackward.length} [${composedBackward}]`,
      );
      const { forward: f, gradGate, gradUp } = SWIGLU_KERNELS;
      if (forward.join() !== f) throw new Error(`forward ran [${forward}]`);
      if ([...backward].sort().join() !== [f, gradGate, gradUp].sort().join()) throw new Error(`forward and backward ran [${backward}]`);
      if (composedForward.length !== 3) throw new Error(`composed forward ran [${composedForward}]`);
    } finally {
      tf.dispose([g, u, dh]);
    }
  });

  it('falls back for unequal shapes and refuses bad inputs in the fused entry', async () => {
    const g = randomTensor([2, 3], 41);
    const row = randomTensor([3], 42);
    // The composed ops broadcast; the fused kernel does not.
    const [broadcast, expected] = tf.tidy(() => [swiGLU(g, row), tf.mul(tf.mul(g, tf.sigmoid(g)), row)]);
    checkError('broadcast fallback', normRelativeError(await broadcast.data(), await expected.data()), OUTPUT_TOL);
    const ints = tf.zeros([2, 3], 'int32');
    expectThrows(() => fusedSwiGLU(g, row), /fused SwiGLU: gate \[2,3\] and up \[3\] must have the same shape/);
    expectThrows(() => fusedSwiGLU(ints, g), /gate and up must be float32/);
    tf.dispose([g, row, broadcast, expected, ints]);
  });
});
