/**
 * The squared global norm of many tensors (gradient clipping): on webgpu and webgl the fused kernel
 * (src/kernels/webgpu/squared_norm.ts, webgl/squared_norm.ts; up to 7 tensors per kernel) against the
 * composed square and sum per tensor and a float64 sum, <= 1e-5 relative, across the 7-input chunk
 * boundaries, for sizes that are not multiples of a workgroup, for tensors large enough to need several
 * workgroups, with empty and rank-0 tensors; kernels per call under tf.profile. On other backends
 * `globalNormSquared` is exactly the composed sum and the fused entry refuses with a clear error.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fusedSquaredNorm, MAX_INPUTS, registerSquaredNorm, SQUARED_NORM_KERNEL } from '../../src/kernels/webgpu/squared_norm.js';
import type { WebGLBackendLike } from '../../src/kernels/webgl/program.js';
import { usesFusedKernel } from '../../src/ops/capabilities.js';
import { globalNormSquared } from '../../src/train/adamw.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, withImplementation } from '../kit/fused.js';

const TOL = 1e-5;

/** Shapes of one case: `count` tensors of assorted odd sizes, and the default model's largest gradients. */
function shapes(count: number): number[][] {
  const pool = [[37], [5, 13], [129, 3], [1], [257], [96, 128], [128, 512], [3, 4, 5], []];
  return Array.from({ length: count }, (_, i) => pool[i % pool.length]);
}

/** The reference: the sum of every tensor's squares, summed on the CPU in float64 from the values. */
async function reference(xs: tf.Tensor[]): Promise<number> {
  let total = 0;
  for (const x of xs) for (const v of await x.data()) total += v * v;
  return total;
}

const CASES = [1, MAX_INPUTS, MAX_INPUTS + 1, 2 * MAX_INPUTS, 20, 62];

describeBackends(
  'squared global norm (kernels/webgpu/squared_norm, kernels/webgl/squared_norm) against the composed ops',
  ({ backend }) => {
    registerSquaredNorm();
    if (backend !== 'webgpu' && backend !== 'webgl') {
      it('globalNormSquared is the composed sum; the fused entry refuses', async () => {
        expect(usesFusedKernel(SQUARED_NORM_KERNEL)).to.equal(false);
        const xs = shapes(9).map((s, i) => randomTensor(s, i + 1, 0.5));
        const got = globalNormSquared(xs);
        const want = withImplementation('composed', () => globalNormSquared(xs));
        checkError('auto = composed', normRelativeError(await got.data(), await want.data()), 0);
        checkError('composed = float64 reference', Math.abs((await want.data())[0] - (await reference(xs))) / (await reference(xs)), TOL);
        expectThrows(() => fusedSquaredNorm(xs), /fused squared norm: the kernel needs the webgpu or webgl backend/, new RegExp(backend));
        tf.dispose([got, want, ...xs]);
      });
      return;
    }

    for (const count of CASES) {
      it(`${count} tensors: fused = composed = float64 reference (<= ${TOL}), ${Math.ceil(count / MAX_INPUTS)} dispatches`, async () => {
        expect(usesFusedKernel(SQUARED_NORM_KERNEL)).to.equal(true);
        const xs = shapes(count).map((s, i) => randomTensor(s, 10 * count + i, 0.5));
        const ref = await reference(xs);
        const info = await tf.profile(() => globalNormSquared(xs));
        const fused = (await (info.result as tf.Tensor).data())[0];
        const composed = withImplementation('composed', () => globalNormSquared(xs));
        const c = (await composed.data())[0];
        checkError('fused against float64', Math.abs(fused - ref) / ref, TOL);
        checkError('fused against composed', Math.abs(fused - c) / c, TOL);
        const dispatches = info.kernels.filter((k) => k.name === SQUARED_NORM_KERNEL).length;
        const nonEmpty = xs.filter((x) => x.size > 0).length;
        expect(dispatches).to.equal(Math.ceil(nonEmpty / MAX_INPUTS));
        // The partials are summed by one Sum (and one Concat where there are several dispatches).
        expect(info.kernels.length).to.equal(dispatches + (dispatches > 1 ? 2 : 1));
        tf.dispose([info.result as tf.Tensor, composed, ...xs]);
      });
    }

    it('sums tensors that need many workgroups (2^20 + 3 elements) and all-empty lists to 0', async () => {
      const big = randomTensor([1024 * 1024 + 3], 5, 1);
      const small = randomTensor([3, 3], 6, 1);
      const got = fusedSquaredNorm([big, small]);
      checkError(
        '2^20 + 3 elements',
        Math.abs((await got.data())[0] - (await reference([big, small]))) / (await reference([big, small])),
        TOL,
      );
      const empty = tf.zeros([0, 4]);
      const zero = fusedSquaredNorm([empty]);
      expect((await zero.data())[0]).to.equal(0);
      tf.dispose([big, small, got, empty, zero]);
    });

    it('sums tensors that other ops left packed, with odd axes (slices of larger tensors, products, batched sums)', async () => {
      const xs = tf.tidy(() => {
        const big = tf.add(randomTensor([6, 14], 7, 1), 1); // nonzero everywhere, also where a slice's padding could read
        const a = randomTensor([5, 9], 8, 1);
        const b = randomTensor([9, 13], 9, 1);
        return [
          tf.slice(big, [0, 0], [5, 13]),
          tf.matMul(a, b),
          tf.add(randomTensor([3, 5, 7], 10, 1), randomTensor([3, 5, 7], 11, 1)),
          tf.slice(tf.add(randomTensor([14], 12, 1), 2), [1], [11]),
        ];
      });
      const got = fusedSquaredNorm(xs);
      const ref = await reference(xs);
      checkError('packed, odd axes', Math.abs((await got.data())[0] - ref) / ref, TOL);
      tf.dispose([got, ...xs]);
    });

    if (backend === 'webgl') {
      it('webgl: ignores what a packed texture holds outside the tensor (padding texels of odd axes)', async () => {
        // A packed program that writes 3 into all four values of every texel, the padding included.
        const webgl = tf.backend() as unknown as WebGLBackendLike;
        const filled = (shape: number[]) => {
          const userCode = 'void main() { setOutput(vec4(3.0)); }';
          const info = webgl.runWebGLProgram(
            { variableNames: [], outputShape: shape, userCode, packedInputs: true, packedOutput: true },
            [],
            'float32',
          );
          return tf.engine().makeTensorFromTensorInfo(info);
        };
        const xs = [filled([5, 13]), filled([3, 5, 7]), filled([1, 9])];
        const got = fusedSquaredNorm(xs);
        expect((await got.data())[0]).to.equal(9 * (5 * 13 + 3 * 5 * 7 + 9));
        tf.dispose([got, ...xs]);
      });
    }

    it('refuses int32 tensors by name; globalNormSquared takes the composed path for them', async () => {
      const xs = [tf.tensor1d([1, 2], 'int32'), tf.tensor1d([0.5])];
      expectThrows(() => fusedSquaredNorm(xs), /fused squared norm: tensor 0 is int32/);
      const got = globalNormSquared(xs);
      expect((await got.data())[0]).to.be.closeTo(5.25, 1e-6);
      tf.dispose([...xs, got]);
    });
  },
);
