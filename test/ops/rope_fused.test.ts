/**
 * The fused RoPE kernel (src/kernels/webgpu/rope.ts, src/kernels/webgl/rope.ts) against the composed ops: on
 * webgpu and webgl, values <= 1e-5 and
 * gradients wrt x <= 1e-4 norm-relative for odd half dims, several heads, factors repeated per head, positions
 * from an offset (decode), per-row positions (left padding), the T = 1 layout `[B, h, r, d]`, `applyRotary`'s
 * angles, the `RotaryStep` path as the projections use it (q and k rotated together, the step disposed before
 * the backward), a GQA layer trained through tf.variableGrads, and `fusedRope` with arbitrary (non-RoPE)
 * factors in every view layout of the webgl program (rank 1 to 6, factors broadcast or not over the rows);
 * kernels per call under tf.profile. The heads-first variant (`applyRotaryFactorsToHeads`, x `[B, T, H, d]` ->
 * `[B, H, T, d]`) is one `GtaRopeHeads` kernel each way on webgpu and equals the rotation plus a transpose
 * (the composed path, and webgl's fused RoPE plus a Transpose). On every other backend the kernels are absent
 * and applyRotaryFactors is exactly the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedRope, fusedRopeToHeads, registerRopeKernel, ROPE_HEADS_KERNEL, ROPE_KERNEL } from '../../src/kernels/webgpu/rope.js';
import { hasFusedTrainingKernels, usesFusedKernel, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import {
  applyRotary,
  applyRotaryFactors,
  applyRotaryFactorsToHeads,
  composedRotaryFactors,
  RotaryStep,
  rotaryFactorsAt,
  rotaryFactorsRange,
  rotaryRange,
  type RotaryFactors,
} from '../../src/ops/rope.js';
import { GroupedQueryAttention } from '../../src/layers/gqa_attention.js';
import { randomizeWeights } from '../kit/layers.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, withImplementation, withImplementationAsync } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;
const BASE = 10000;

/** The rotation of x, and its gradient wrt x for the output gradient dy. */
function valueAndGrad(rotate: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => [rotate(x), tf.grad(rotate)(x, dy)]);
}

/** Registered kernel names `fn` runs, less `Identity` (customGrad's saves: on webgpu a reference count, no dispatch). */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => n !== 'Identity' && tf.getKernel(n, backend) !== undefined);
}

interface Case {
  name: string;
  x: number[];
  /** The factors of the case (kept by the caller, disposed after). */
  factors: () => RotaryFactors;
}

const leftPadded = (): tf.Tensor =>
  tf.tensor2d(
    [
      [0, 0, 0, 1, 2, 3],
      [0, 1, 2, 3, 4, 5],
      [0, 0, 1, 2, 3, 4],
    ],
    [3, 6],
    'int32',
  );

const CASES: Case[] = [
  { name: 'd=6 (odd half), 3 heads, positions 0..4', x: [2, 5, 3, 6], factors: () => rotaryFactorsRange(6, BASE, 1, 0, 5) },
  { name: 'd=10, 4 heads, positions from 37 (offset)', x: [2, 7, 4, 10], factors: () => rotaryFactorsRange(10, BASE, 1, 37, 7) },
  {
    name: 'd=8, factors repeated per head (5 heads), scaling 2',
    x: [1, 9, 5, 8],
    factors: () => rotaryFactorsRange(8, BASE, 2, 3, 9, 5),
  },
  {
    name: 'd=14, per-row positions (left padding), 3 heads',
    x: [3, 6, 3, 14],
    factors: () => {
      const p = leftPadded();
      try {
        return rotaryFactorsAt(14, BASE, 1, p, 6);
      } finally {
        p.dispose();
      }
    },
  },
  {
    name: 'decode T=1 at position 300, [B, h, r, d] = [2, 3, 4, 16]',
    x: [2, 3, 4, 16],
    factors: () => rotaryFactorsRange(16, BASE, 1, 300, 1),
  },
  { name: 'd=64, 8 heads, 33 positions from 1000', x: [2, 33, 8, 64], factors: () => rotaryFactorsRange(64, 500000, 1, 1000, 33) },
  { name: 'd=2 (smallest), 1 head', x: [2, 3, 1, 2], factors: () => rotaryFactorsRange(2, BASE, 1, 4, 3) },
  { name: 'd=10, 3 heads, 7 positions from 5', x: [2, 7, 3, 10], factors: () => rotaryFactorsRange(10, BASE, 1, 5, 7) },
  { name: 'd=32, 4 heads, 128 positions (the default model)', x: [16, 128, 4, 32], factors: () => rotaryFactorsRange(32, BASE, 1, 0, 128) },
];

/** Arbitrary factor layouts (random factors, not RoPE's): x's shape and the factors'. */
const LAYOUTS: Array<{ x: number[]; f: number[] }> = [
  { x: [8], f: [8] }, // rank 1
  { x: [4, 6], f: [1, 6] }, // one factor row for all rows, odd half
  { x: [4, 6], f: [4, 6] },
  { x: [3, 5, 12], f: [5, 12] }, // rows read per row, leading axis broadcast
  { x: [2, 3, 5, 6], f: [2, 1, 5, 6] },
  { x: [2, 3, 4, 3, 8], f: [1, 3, 1, 3, 8] }, // three groups of leading axes: a rank-5 view
  { x: [2, 3, 2, 3, 5, 4], f: [2, 1, 2, 1, 1, 4] }, // four groups: a rank-6 view
  { x: [3, 1, 5, 2], f: [3, 1, 1, 2] }, // d = 2, rows broadcast
];

/** The backends with the fused RoPE kernel. */
const FUSED_BACKENDS = ['webgpu', 'webgl'];

describeBackends('fused RoPE (kernels/webgpu, kernels/webgl) against the composed ops', ({ backend }) => {
  if (!FUSED_BACKENDS.includes(backend)) {
    it('has no fused RoPE kernel; applyRotaryFactors is exactly the composed ops; the fused entry refuses', () => {
      registerRopeKernel();
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels() || usesFusedKernel(ROPE_KERNEL))
        throw new Error(`fused training kernels reported on ${backend}`);
      tf.tidy(() => {
        const x = randomTensor([2, 5, 3, 6], 1, 2);
        const dy = randomTensor([2, 5, 3, 6], 2);
        const f = rotaryFactorsRange(6, BASE, 1, 3, 5);
        const auto = valueAndGrad((a) => applyRotaryFactors(a, f), x, dy);
        const composed = valueAndGrad((a) => composedRotaryFactors(a, f), x, dy);
        auto.forEach((t, i) => checkError(`auto = composed [${i}]`, normRelativeError(t.dataSync(), composed[i].dataSync()), 0));
        expectThrows(
          () => fusedRope(x, f.cos, f.sinSigned),
          /fused RoPE: the fused kernel needs the webgpu or webgl backend/,
          new RegExp(backend),
        );
        const heads = valueAndGrad((a) => applyRotaryFactorsToHeads(a as tf.Tensor4D, f), x, tf.transpose(dy, [0, 2, 1, 3]));
        checkError(
          'heads first = transposed composed',
          normRelativeError(heads[0].dataSync(), tf.transpose(composed[0], [0, 2, 1, 3]).dataSync()),
          0,
        );
        checkError('heads first: grad = composed', normRelativeError(heads[1].dataSync(), composed[1].dataSync()), 0);
        expectThrows(() => fusedRopeToHeads(x as tf.Tensor4D, f.cos, f.sinSigned), /needs the webgpu backend/);
      });
    });
    return;
  }

  it('reports the capability', () => {
    registerRopeKernel();
    if (!usesFusedKernel(ROPE_KERNEL)) throw new Error(`usesFusedKernel(${ROPE_KERNEL}) is false on ${backend}`);
    if (backend === 'webgpu' && (!hasFusedTrainingKernels() || !usesFusedTrainingKernels()))
      throw new Error('fused training kernels not reported on webgpu');
    if (withImplementation('composed', () => usesFusedKernel(ROPE_KERNEL))) throw new Error(`'composed' still reports ${ROPE_KERNEL}`);
  });

  for (const { x: shape, f: fShape } of LAYOUTS) {
    it(`fusedRope = composed with arbitrary factors: x [${shape}], factors [${fShape}]`, async () => {
      const x = randomTensor(shape, 71, 2);
      const dy = randomTensor(shape, 72);
      const factors = { cos: randomTensor(fShape, 73), sinSigned: randomTensor(fShape, 74) };
      const fused = valueAndGrad((a) => fusedRope(a, factors.cos, factors.sinSigned), x, dy);
      const composed = valueAndGrad((a) => composedRotaryFactors(a, factors), x, dy);
      try {
        const what = `x [${shape}], factors [${fShape}]`;
        checkError(`${what}: output`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`${what}: grad x`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
      } finally {
        tf.dispose([x, dy, factors.cos, factors.sinSigned, ...fused, ...composed]);
      }
    });
  }

  for (const c of CASES) {
    it(`fused = composed: ${c.name}`, async () => {
      const f = c.factors();
      const x = randomTensor(c.x, 11, 2);
      const dy = randomTensor(c.x, 13);
      const fused = valueAndGrad((a) => applyRotaryFactors(a, f), x, dy);
      const composed = withImplementation('composed', () => valueAndGrad((a) => applyRotaryFactors(a, f), x, dy));
      const direct = valueAndGrad((a) => composedRotaryFactors(a, f), x, dy);
      try {
        checkError(`${c.name}: output`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`${c.name}: grad x`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
        checkError(
          `${c.name}: composed switch = composedRotaryFactors`,
          normRelativeError(await direct[0].data(), await composed[0].data()),
          0,
        );
        const names = await kernelNames(backend, () => applyRotaryFactors(x, f));
        if (names.join() !== ROPE_KERNEL) throw new Error(`${c.name}: ran [${names}], expected [${ROPE_KERNEL}]`);
      } finally {
        tf.dispose([x, dy, f.cos, f.sinSigned, ...fused, ...composed, ...direct]);
      }
    });
  }

  for (const c of CASES) {
    it(`heads first (x [B, T, H, d] -> [B, H, T, d]), fused = composed: ${c.name}`, async () => {
      const f = c.factors();
      const x = randomTensor(c.x, 15, 2) as tf.Tensor4D;
      const dy = randomTensor([c.x[0], c.x[2], c.x[1], c.x[3]], 17);
      const rotate = (a: tf.Tensor) => applyRotaryFactorsToHeads(a as tf.Tensor4D, f);
      const fused = valueAndGrad(rotate, x, dy);
      const composed = withImplementation('composed', () => valueAndGrad(rotate, x, dy));
      try {
        if (fused[0].shape.join() !== [c.x[0], c.x[2], c.x[1], c.x[3]].join()) throw new Error(`output shape [${fused[0].shape}]`);
        checkError(`${c.name}: heads first, output`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`${c.name}: heads first, grad x`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
        const expected = backend === 'webgpu' ? [ROPE_HEADS_KERNEL] : [ROPE_KERNEL, 'Transpose'];
        const names = await kernelNames(backend, () => rotate(x));
        if (names.join() !== expected.join()) throw new Error(`${c.name}: ran [${names}], expected [${expected}]`);
        const both = await kernelNames(backend, () => tf.grad(rotate)(x, dy));
        const expectedBoth = backend === 'webgpu' ? [ROPE_HEADS_KERNEL, ROPE_HEADS_KERNEL] : [...expected, 'Transpose', ROPE_KERNEL];
        if (both.join() !== expectedBoth.join())
          throw new Error(`${c.name}: forward and backward ran [${both}], expected [${expectedBoth}]`);
      } finally {
        tf.dispose([x, dy, f.cos, f.sinSigned, ...fused, ...composed]);
      }
    });
  }

  it('fused = composed through applyRotary (angles [T, d], x of rank 3 and 5)', async () => {
    const angles = rotaryRange(12, BASE, 1, 5, 4);
    const out: tf.Tensor[] = [];
    try {
      for (const shape of [
        [3, 4, 12],
        [2, 4, 2, 3, 12],
      ]) {
        const x = randomTensor(shape, 21, 2);
        const dy = randomTensor(shape, 22);
        out.push(x, dy);
        const fused = valueAndGrad((a) => applyRotary(a, angles), x, dy);
        const composed = withImplementation('composed', () => valueAndGrad((a) => applyRotary(a, angles), x, dy));
        out.push(...fused, ...composed);
        checkError(`applyRotary [${shape}]: output`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`applyRotary [${shape}]: grad x`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
      }
    } finally {
      tf.dispose([angles.cos, angles.sin, ...out]);
    }
  });

  it('the RotaryStep path: q and k rotated in one dispatch, the step disposed before the backward', async () => {
    const [b, t, hq, hk, dim] = [2, 6, 4, 2, 6];
    const positions = tf.tidy(() => leftPadded().slice([0, 0], [2, 6]));
    const y = randomTensor([b, t, hq + hk, dim], 31, 2);
    const dy = randomTensor([b, t, hq + hk, dim], 32);
    const run = (where: { start: number; positions: tf.Tensor | null }) =>
      valueAndGrad(
        (a) => {
          const step = new RotaryStep({ start: where.start, length: t, positions: where.positions });
          const rotated = applyRotaryFactors(a, step.factors(dim, BASE, 1));
          step.dispose(); // as a model does at the end of its forward pass
          return rotated;
        },
        y,
        dy,
      );
    const results: tf.Tensor[] = [];
    try {
      for (const where of [
        { start: 9, positions: null },
        { start: 0, positions },
      ]) {
        const fused = run(where);
        const composed = withImplementation('composed', () => run(where));
        results.push(...fused, ...composed);
        const what = where.positions === null ? 'offset 9' : 'per-row positions';
        checkError(`RotaryStep ${what}: output`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`RotaryStep ${what}: grad`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
      }
    } finally {
      tf.dispose([positions, y, dy, ...results]);
    }
  });

  it('trains a GQA layer through tf.variableGrads with the fused RoPE (= composed)', async () => {
    const layer = new GroupedQueryAttention({ headDim: 6, numQueryHeads: 4, numKeyValueHeads: 2, useCausalMask: true });
    const x = randomTensor([2, 7, 16], 41);
    const w = randomTensor([2, 7, 16], 42);
    tf.dispose(layer.apply(x) as tf.Tensor);
    randomizeWeights(layer, 43);
    const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
    const run = () => tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, w)) as tf.Scalar, vars);
    const fused = run();
    const composed = withImplementation('composed', run);
    try {
      checkError('GQA loss', normRelativeError(await fused.value.data(), await composed.value.data()), OUTPUT_TOL);
      for (const name of Object.keys(fused.grads)) {
        checkError(`GQA grad ${name}`, normRelativeError(await fused.grads[name].data(), await composed.grads[name].data()), GRAD_TOL);
      }
      const names = await kernelNames(backend, () => layer.apply(x) as tf.Tensor);
      const rope = backend === 'webgpu' ? ROPE_HEADS_KERNEL : ROPE_KERNEL; // projections rotate heads first on webgpu
      if (!names.includes(rope)) throw new Error(`the layer did not run ${rope}: [${names}]`);
    } finally {
      tf.dispose([x, w, fused.value, composed.value, ...Object.values(fused.grads), ...Object.values(composed.grads)]);
      layer.dispose();
    }
  });

  it('is one kernel forward and one more backward (composed: more)', async () => {
    const f = rotaryFactorsRange(16, BASE, 1, 0, 32);
    const x = randomTensor([4, 32, 6, 16], 51);
    const dy = randomTensor([4, 32, 6, 16], 52);
    try {
      const rotate = (a: tf.Tensor) => applyRotaryFactors(a, f);
      const forward = await kernelNames(backend, () => rotate(x));
      const both = await kernelNames(backend, () => tf.grad(rotate)(x, dy));
      const composedForward = await withImplementationAsync('composed', () => kernelNames(backend, () => rotate(x)));
      const composedBoth = await withImplementationAsync('composed', () => kernelNames(backend, () => tf.grad(rotate)(x, dy)));
      console.log(
        `      RoPE kernels: fused forward ${forward.length}, forward+backward ${both.length}; ` +
          `composed forward ${composedForward.length} [${composedForward}], forward+backward ${composedBoth.length} [${composedBoth}]`,
      );
      if (forward.join() !== ROPE_KERNEL) throw new Error(`forward ran [${forward}]`);
      if (both.join() !== [ROPE_KERNEL, ROPE_KERNEL].join()) throw new Error(`forward and backward ran [${both}]`);
      if (composedForward.length < 4) throw new Error(`composed forward ran only [${composedForward}]`);
    } finally {
      tf.dispose([x, dy, f.cos, f.sinSigned]);
    }
  });

  it('GtaRopeHeads layouts of the GPU training step: a flat view, heads moved without rotation, columns of wider rows, summed splits, flat output', async () => {
    if (backend !== 'webgpu') return; // the heads-first kernel exists for webgpu only
    const [b, t, h, d, w, p] = [2, 5, 3, 8, 13, 3];
    const f = rotaryFactorsRange(d, BASE, 1, 4, t); // [1, T, 1, d]
    const rows = randomTensor([b * t, h * d], 21, 2); // [N, H*d]
    const wide = randomTensor([p, b, h, t, w], 22); // [P, B, H, T, W]: columns [3, 3 + d) are dy
    const run = (x: tf.Tensor, rot: boolean, attrs: Record<string, unknown>) =>
      tf.engine().runKernel(ROPE_HEADS_KERNEL, rot ? { x, cos: f.cos, sinSigned: f.sinSigned } : { x }, {
        ...attrs,
        rotate: rot,
      } as never) as tf.Tensor;
    const out = tf.tidy(() => {
      const x4 = tf.reshape(rows, [b, t, h, d]);
      const dy = tf.sum(tf.slice(wide, [0, 0, 0, 0, 3], [p, b, h, t, d]), 0); // [B, H, T, d]
      const back = (y: tf.Tensor) => tf.reshape(y, [b * t, h * d]); // [B, T, H, d] -> [N, H*d]
      return [
        // [got, want] pairs
        run(rows, true, { transpose: false, view: [b, t, h, d] }),
        tf.transpose(composedRotaryFactors(x4, f), [0, 2, 1, 3]),
        run(rows, false, { transpose: false, view: [b, t, h, d] }),
        tf.transpose(x4, [0, 2, 1, 3]),
        run(wide, true, { transpose: true, columns: [3, d], splits: p, flat: true }),
        // the transposed rotation: the gradient of the rotation at dy
        back(tf.grad((a: tf.Tensor) => tf.transpose(composedRotaryFactors(a, f), [0, 2, 1, 3]))(x4, dy)),
        run(wide, false, { transpose: true, columns: [3, d], splits: p }),
        tf.transpose(dy, [0, 2, 1, 3]),
      ];
    });
    try {
      for (let i = 0; i < out.length; i += 2) {
        if (out[i].shape.join() !== out[i + 1].shape.join())
          throw new Error(`case ${i / 2}: shape [${out[i].shape}], want [${out[i + 1].shape}]`);
        checkError(`heads layout case ${i / 2}`, normRelativeError(await out[i].data(), await out[i + 1].data()), OUTPUT_TOL);
      }
      expectThrows(() => run(wide, true, { transpose: true, columns: [8, d], splits: p }), /columns \[8,8\] exceed dy's last axis \(13\)/);
      expectThrows(() => run(wide, true, { transpose: true, splits: 2 }), /with splits 2, dy must be \[2, B, H, T, W\]/);
    } finally {
      tf.dispose([rows, wide, f.cos, f.sinSigned, ...out]);
    }
  });

  it('falls back to the composed ops for factor layouts it does not take, and refuses bad inputs in the fused entry', async () => {
    // Factors alternating between full and broadcast axes five times: more groups than the shader resolves.
    const shape = [2, 3, 2, 3, 2, 4];
    const fShape = [2, 1, 2, 1, 2, 4];
    const x = randomTensor(shape, 61);
    const cos = randomTensor(fShape, 62);
    const sin = randomTensor(fShape, 63);
    try {
      const names = await kernelNames(backend, () => applyRotaryFactors(x, { cos, sinSigned: sin }));
      if (names.includes(ROPE_KERNEL)) throw new Error('five groups of axes ran the fused kernel');
      expectThrows(() => fusedRope(x, cos, sin), /fused RoPE: the factors \[2,1,2,1,2,4\] must broadcast over x/);
      tf.tidy(() => {
        expectThrows(() => fusedRope(tf.zeros([2, 5]), tf.ones([1, 5]), tf.ones([1, 5])), /the last axis of x \(5\) must be even/);
        expectThrows(() => fusedRope(tf.zeros([2, 4], 'int32'), tf.ones([1, 4]), tf.ones([1, 4])), /must be float32/);
        expectThrows(() => fusedRope(tf.zeros([2, 4]), tf.ones([1, 4]), tf.ones([2, 4])), /must have the same shape/);
        expectThrows(() => fusedRope(tf.zeros([2, 4]), tf.ones([3, 4]), tf.ones([3, 4])), /must broadcast over x/);
      });
    } finally {
      tf.dispose([x, cos, sin]);
    }
  });
});
