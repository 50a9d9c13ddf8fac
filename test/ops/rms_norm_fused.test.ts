/**
 * The fused RMSNorm kernels (src/kernels/webgpu/rms_norm.ts, webgl/rms_norm.ts) against the composed ops:
 * on webgpu and webgl, values <= 1e-5 and gradients wrt x and the gain <= 1e-4 norm-relative for odd row
 * lengths and odd row counts, rank 1, 2 and 3, with and without gain, through tf.grads and through
 * tf.variableGrads of the layer; kernels per call under tf.profile; on webgl, no pack or unpack program
 * (only the kernels' own) for packed inputs. On every other backend the capability is false and rmsNorm is
 * exactly the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedRmsNorm, registerRmsNormKernels, RMS_NORM_KERNELS, RMS_NORM_MAX_DIM } from '../../src/kernels/webgpu/rms_norm.js';
import { hasFusedTrainingKernels, usesFusedKernel, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { WEBGL_RMS_NORM_MAX_DIM } from '../../src/kernels/webgl/rms_norm.js';
import { composedRmsNorm, rmsNorm } from '../../src/ops/rms_norm.js';
import { RMSNormalization } from '../../src/layers/rms_normalization.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, withImplementation, withImplementationAsync } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;
const EPS = 1e-5;

/** Output and gradients (wrt x and the gain) of rmsNorm for an output gradient `dy`. */
function valueAndGrads(x: tf.Tensor, gain: tf.Tensor | null, dy: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const y = rmsNorm(x, gain, EPS);
    const grads =
      gain === null
        ? tf.grads((a: tf.Tensor) => rmsNorm(a, null, EPS))([x], dy)
        : tf.grads((a: tf.Tensor, g: tf.Tensor) => rmsNorm(a, g, EPS))([x, gain], dy);
    return [y, ...grads];
  });
}

/**
 * Registered kernel names `fn` runs, less customGrad's own scopes and `Identity` (tfjs's clone of each tensor
 * saved for the backward: on webgpu a reference count, no dispatch).
 */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => n !== 'Identity' && tf.getKernel(n, backend) !== undefined);
}

const CASES: Array<{ shape: number[]; gain: boolean }> = [
  { shape: [5, 7], gain: true },
  { shape: [5, 7], gain: false },
  { shape: [3, 4, 100], gain: true },
  { shape: [2, 9, 128], gain: true },
  { shape: [2, 9, 128], gain: false },
  { shape: [300, 128], gain: true }, // more rows than one dgain chunk (256)
  { shape: [3, 1000], gain: true },
  { shape: [2, 2, 1000], gain: false },
  { shape: [3, 5, 33], gain: true }, // odd rows per batch, odd row length: the packed texels' padding
  { shape: [2, 7, 9], gain: false },
  { shape: [4, 1, 5], gain: true }, // one row per batch
  { shape: [9], gain: true }, // a vector
];

/** The backends with fused RMSNorm kernels. */
const FUSED_BACKENDS = ['webgpu', 'webgl'];

describeBackends('fused RMSNorm (kernels/webgpu, kernels/webgl) against the composed ops', ({ backend }) => {
  if (!FUSED_BACKENDS.includes(backend)) {
    it('has no fused training kernels; rmsNorm is exactly the composed ops; the fused entry refuses', () => {
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels() || usesFusedKernel(RMS_NORM_KERNELS.forward))
        throw new Error(`fused training kernels reported on ${backend}`);
      tf.tidy(() => {
        const x = randomTensor([3, 7], 1, 2);
        const gain = randomTensor([7], 2);
        const dy = randomTensor([3, 7], 3);
        const auto = valueAndGrads(x, gain, dy);
        const composed = withImplementation('composed', () => valueAndGrads(x, gain, dy));
        auto.forEach((t, i) => checkError(`auto = composed [${i}]`, normRelativeError(t.dataSync(), composed[i].dataSync()), 0));
        checkError('composedRmsNorm', normRelativeError(rmsNorm(x, gain, EPS).dataSync(), composedRmsNorm(x, gain, EPS).dataSync()), 0);
        expectThrows(
          () => fusedRmsNorm(x, gain, EPS),
          /fused rmsNorm: the fused kernels need the webgpu or webgl backend/,
          new RegExp(backend),
        );
      });
    });
    return;
  }

  it('reports the capability (all training kernels on webgpu; RMSNorm on webgl), off under composed', () => {
    if (!usesFusedKernel(RMS_NORM_KERNELS.forward)) throw new Error(`fused RMSNorm not reported on ${backend}`);
    const all = backend === 'webgpu';
    if (hasFusedTrainingKernels() !== all || usesFusedTrainingKernels() !== all)
      throw new Error(`hasFusedTrainingKernels() should be ${all} on ${backend}`);
    if (withImplementation('composed', () => usesFusedKernel(RMS_NORM_KERNELS.forward))) throw new Error('fused RMSNorm on under composed');
  });

  for (const c of CASES) {
    const name = `[${c.shape}] ${c.gain ? 'with' : 'without'} gain`;
    it(`fused = composed: ${name}`, async () => {
      const d = c.shape[c.shape.length - 1];
      const x = randomTensor(c.shape, 11, 2);
      const gain = c.gain ? tf.tidy(() => tf.add(randomTensor([d], 12, 0.5), 1)) : null;
      const dy = randomTensor(c.shape, 13);
      const fused = valueAndGrads(x, gain, dy);
      const composed = withImplementation('composed', () => valueAndGrads(x, gain, dy));
      try {
        const names = ['output', 'grad x', 'grad gain'];
        for (let i = 0; i < fused.length; i++) {
          const err = normRelativeError(await fused[i].data(), await composed[i].data());
          checkError(`${name}: ${names[i]}`, err, i === 0 ? OUTPUT_TOL : GRAD_TOL);
        }
        if (fused.length !== (c.gain ? 3 : 2)) throw new Error(`expected ${c.gain ? 3 : 2} results, got ${fused.length}`);
      } finally {
        tf.dispose([x, dy, ...(gain ? [gain] : []), ...fused, ...composed]);
      }
    });
  }

  it('trains the layer through tf.variableGrads with the fused backward (= composed)', async () => {
    const layer = new RMSNormalization({ epsilon: EPS });
    const x = randomTensor([4, 6, 100], 21, 3);
    const w = randomTensor([4, 6, 100], 22);
    tf.dispose(layer.apply(x) as tf.Tensor);
    const scale = layer.trainableWeights[0].read() as tf.Variable;
    tf.tidy(() => scale.assign(tf.add(randomTensor([100], 23, 0.5), 1)));
    const run = () => tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, w)) as tf.Scalar, [scale]);
    const fused = run();
    const composed = withImplementation('composed', run);
    try {
      checkError('layer loss', normRelativeError(await fused.value.data(), await composed.value.data()), OUTPUT_TOL);
      const g = Object.keys(fused.grads)[0];
      checkError('layer grad scale', normRelativeError(await fused.grads[g].data(), await composed.grads[g].data()), GRAD_TOL);
    } finally {
      tf.dispose([x, w, fused.value, composed.value, ...Object.values(fused.grads), ...Object.values(composed.grads)]);
      layer.dispose();
    }
  });

  it("the input gradient adds a residual gradient in the same pass on webgpu (the GPU training step's pre-norm blocks); webgl refuses one", async () => {
    registerRmsNormKernels();
    if (backend !== 'webgpu') {
      // webgl's kernel of the same name has no residual input: it refuses one rather than ignoring it.
      const [x, dy] = [randomTensor([2, 8], 65), randomTensor([2, 8], 66)];
      try {
        const attrs = { epsilon: 1e-6 } as unknown as tf.NamedAttrMap;
        expectThrows(
          () => tf.engine().runKernel(RMS_NORM_KERNELS.gradInput, { x, dy, residual: dy }, attrs),
          /residual input is webgpu-only/,
        );
      } finally {
        tf.dispose([x, dy]);
      }
      return;
    }
    const [x, dy, gain, residual] = [
      randomTensor([6, 40], 61, 2),
      randomTensor([6, 40], 62),
      randomTensor([40], 63),
      randomTensor([6, 40], 64),
    ];
    const attrs = { epsilon: 1e-6 } as unknown as tf.NamedAttrMap;
    const [got, want] = tf.tidy(() => [
      tf.engine().runKernel(RMS_NORM_KERNELS.gradInput, { x, dy, gain, residual }, attrs) as tf.Tensor,
      tf.add(residual, tf.grad((a: tf.Tensor) => composedRmsNorm(a, gain, 1e-6))(x, dy)),
    ]);
    try {
      checkError('gradInput + residual', normRelativeError(await got.data(), await want.data()), GRAD_TOL);
      const bad = tf.zeros([3, 40]);
      try {
        expectThrows(
          () => tf.engine().runKernel(RMS_NORM_KERNELS.gradInput, { x, dy, gain, residual: bad }, attrs),
          /residual \[3,40\] must have x's shape \[6,40\]/,
        );
      } finally {
        bad.dispose();
      }
    } finally {
      tf.dispose([x, dy, gain, residual, got, want]);
    }
  });

  it('is one kernel forward, and two more backward (one without gain)', async () => {
    const x = randomTensor([2, 9, 128], 31);
    const gain = randomTensor([128], 32);
    const dy = randomTensor([2, 9, 128], 33);
    try {
      const forward = await kernelNames(backend, () => rmsNorm(x, gain, EPS));
      const backward = await kernelNames(backend, () => tf.grads((a: tf.Tensor, g: tf.Tensor) => rmsNorm(a, g, EPS))([x, gain], dy));
      const backwardNoGain = await kernelNames(backend, () => tf.grads((a: tf.Tensor) => rmsNorm(a, null, EPS))([x], dy));
      const composedForward = await withImplementationAsync('composed', () => kernelNames(backend, () => rmsNorm(x, gain, EPS)));
      const composedBackward = await withImplementation('composed', () =>
        kernelNames(backend, () => tf.grads((a: tf.Tensor, g: tf.Tensor) => rmsNorm(a, g, EPS))([x, gain], dy)),
      );
      console.log(
        `      RMSNorm kernels: fused forward ${forward.length}, forward+backward ${backward.length} [${backward}] ` +
          `(no gain ${backwardNoGain.length}); composed forward ${composedForward.length}, forward+backward ${composedBackward.length}`,
      );
      const expect = (what: string, got: string[], want: string[]) => {
        if (got.join() !== want.join()) throw new Error(`${what}: ran [${got}], expected [${want}]`);
      };
      const { forward: f, gradInput, gradGain } = RMS_NORM_KERNELS;
      expect('forward', forward, [f]);
      expect('forward and backward', [...backward].sort(), [f, gradInput, gradGain].sort());
      expect('forward and backward, no gain', [...backwardNoGain].sort(), [f, gradInput].sort());
      if (composedForward.length < 4) throw new Error(`composed forward ran only [${composedForward}]`);
    } finally {
      tf.dispose([x, gain, dy]);
    }
  });

  if (backend === 'webgl') {
    it('runs no pack or unpack program for packed x, dy and gain (webgl packed kernels)', async () => {
      const [b, r, d] = [2, 5, 33];
      const x = tf.tidy(() => tf.matMul(randomTensor([b, r, 6], 51), randomTensor([b, 6, d], 52)));
      const dy = tf.tidy(() => tf.matMul(randomTensor([b, r, 6], 53), randomTensor([b, 6, d], 54)));
      const gain = tf.tidy(() => tf.add(randomTensor([d], 55, 0.5), 1));
      const webgl = tf.backend() as unknown as { runWebGLProgram: (...args: unknown[]) => unknown };
      const original = webgl.runWebGLProgram;
      const programs: string[] = [];
      let results: tf.Tensor[] | undefined;
      try {
        await Promise.all([x.data(), dy.data(), gain.data()]);
        webgl.runWebGLProgram = function (this: unknown, ...args: unknown[]) {
          programs.push((args[0] as { constructor: { name: string } }).constructor.name);
          return original.apply(webgl, args);
        };
        results = valueAndGrads(x, gain, dy);
      } finally {
        webgl.runWebGLProgram = original;
      }
      try {
        const hidden = programs.filter((name) => name === 'PackProgram' || name === 'UnpackProgram');
        console.log(`      RMSNorm on packed [${b}, ${r}, ${d}] forward+backward: ${programs.length} programs [${programs}]`);
        if (hidden.length > 0) throw new Error(`ran ${hidden.length} pack/unpack programs: [${programs}]`);
        // Two programs per kernel: the forward twice (y alone, then under tf.grads), gradInput, gradGain.
        if (programs.length !== 8) throw new Error(`expected the fused kernels' 8 programs, ran [${programs}]`);
        const composed = withImplementation('composed', () => valueAndGrads(x, gain, dy));
        try {
          for (let i = 0; i < results!.length; i++)
            checkError(
              `packed inputs [${i}]`,
              normRelativeError(await results![i].data(), await composed[i].data()),
              i === 0 ? OUTPUT_TOL : GRAD_TOL,
            );
        } finally {
          tf.dispose(composed);
        }
      } finally {
        tf.dispose([x, dy, gain, ...(results ?? [])]);
      }
    });
  }

  it('falls back to the composed ops for rows longer than the backend maximum and refuses bad inputs in the fused entry', async () => {
    const maxDim = backend === 'webgl' ? WEBGL_RMS_NORM_MAX_DIM : RMS_NORM_MAX_DIM;
    const d = maxDim + 1;
    const x = randomTensor([2, d], 41);
    try {
      const names = await kernelNames(backend, () => rmsNorm(x, null, EPS));
      if (names.includes(RMS_NORM_KERNELS.forward)) throw new Error(`D=${d} ran the fused kernel`);
      expectThrows(() => fusedRmsNorm(x, null, EPS), new RegExp(`fused rmsNorm: the last axis \\(${d}\\) must be at most ${maxDim}`));
      tf.tidy(() => {
        expectThrows(() => fusedRmsNorm(tf.zeros([2, 4], 'int32'), null, EPS), /x must be float32/);
        expectThrows(() => fusedRmsNorm(tf.zeros([2, 4]), tf.ones([5]), EPS), /gain must be float32 of shape \[4\]/);
      });
    } finally {
      x.dispose();
    }
  });
});
