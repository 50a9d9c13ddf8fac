/**
 * The fused embedding gradient (src/kernels/webgpu/embedding_grad.ts) against tfjs's gradient: on webgpu, the
 * table gradient of `embeddingLookup` <= 1e-4 norm-relative (and the lookup itself unchanged) for repeated
 * ids, widths that are not a multiple of the column block, more ids than one tile, rank 1 and 2 ids, and a
 * TokenEmbedding trained through tf.variableGrads; kernels per call under tf.profile; the fallback above
 * EMBEDDING_GRAD_MAX_WORK. On every other backend the capability is false and the gradient is unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { EMBEDDING_GRAD_KERNEL, EMBEDDING_GRAD_MAX_WORK, fusedEmbeddingGrad } from '../../src/kernels/webgpu/embedding_grad.js';
import { hasFusedTrainingKernels, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { embeddingLookup, TokenEmbedding } from '../../src/layers/token_embedding.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, withImplementation, withImplementationAsync } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

/** The lookup and its table gradient for the output gradient dy. */
function valueAndGrad(table: tf.Tensor, ids: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => [embeddingLookup(table, ids), tf.grad((t: tf.Tensor) => embeddingLookup(t, ids))(table, dy)]);
}

/** Registered kernel names `fn` runs, less `Identity` (customGrad's saves: on webgpu a reference count, no dispatch). */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => n !== 'Identity' && tf.getKernel(n, backend) !== undefined);
}

/** int32 ids of the given shape in [0, v), from a fixed pseudo-random sequence (many repeats when v is small). */
function makeIds(shape: number[], v: number, seed: number): tf.Tensor {
  const n = shape.reduce((a, x) => a * x, 1);
  const values = Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729 + ((i * i) % 13)) % v);
  return tf.tensor(values, shape, 'int32');
}

const CASES: Array<{ v: number; d: number; ids: number[] }> = [
  { v: 7, d: 5, ids: [2, 6] }, // many repeats, D below one column block
  { v: 50, d: 130, ids: [3, 70] }, // D = 2 blocks + 2, N = 210 (not a multiple of the tile)
  { v: 1000, d: 64, ids: [4, 128] },
  { v: 3, d: 9, ids: [11] }, // rank-1 ids
  { v: 257, d: 33, ids: [1, 1] }, // one id
];

describeBackends('fused embedding gradient (kernels/webgpu) against tfjs gradient', ({ backend }) => {
  if (backend !== 'webgpu') {
    it('has no fused training kernels; the gradient is exactly the composed one; the fused entry refuses', () => {
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels()) throw new Error(`fused training kernels reported on ${backend}`);
      tf.tidy(() => {
        const table = randomTensor([7, 5], 1);
        const ids = makeIds([2, 6], 7, 1);
        const dy = randomTensor([2, 6, 5], 2);
        const auto = valueAndGrad(table, ids, dy);
        const composed = withImplementation('composed', () => valueAndGrad(table, ids, dy));
        auto.forEach((t, i) => checkError(`auto = composed [${i}]`, normRelativeError(t.dataSync(), composed[i].dataSync()), 0));
        expectThrows(() => fusedEmbeddingGrad(table, ids, dy), /fused embedding gradient: the fused kernel needs the webgpu backend/);
      });
    });
    return;
  }

  it('reports the capability', () => {
    if (!hasFusedTrainingKernels() || !usesFusedTrainingKernels()) throw new Error('fused training kernels not reported on webgpu');
  });

  for (const c of CASES) {
    const name = `V=${c.v}, D=${c.d}, ids [${c.ids}]`;
    it(`fused = composed: ${name}`, async () => {
      const table = randomTensor([c.v, c.d], 11);
      const ids = makeIds(c.ids, c.v, 3);
      const dy = randomTensor([...c.ids, c.d], 13);
      const fused = valueAndGrad(table, ids, dy);
      const composed = withImplementation('composed', () => valueAndGrad(table, ids, dy));
      try {
        checkError(`${name}: lookup`, normRelativeError(await fused[0].data(), await composed[0].data()), OUTPUT_TOL);
        checkError(`${name}: grad table`, normRelativeError(await fused[1].data(), await composed[1].data()), GRAD_TOL);
        const names = await kernelNames(backend, () => tf.grad((t: tf.Tensor) => embeddingLookup(t, ids))(table, dy));
        if (!names.includes(EMBEDDING_GRAD_KERNEL) || names.includes('UnsortedSegmentSum'))
          throw new Error(`${name}: the gradient ran [${names}]`);
      } finally {
        tf.dispose([table, ids, dy, ...fused, ...composed]);
      }
    });
  }

  it('trains a TokenEmbedding through tf.variableGrads with the fused gradient (= composed)', async () => {
    const layer = new TokenEmbedding({ inputDim: 40, outputDim: 24, seed: 5 });
    const ids = makeIds([3, 17], 40, 7);
    const w = randomTensor([3, 17, 24], 21);
    tf.dispose(layer.apply(ids) as tf.Tensor);
    const table = layer.embeddings.read() as tf.Variable;
    const run = () => tf.variableGrads(() => tf.sum(tf.mul(layer.apply(ids) as tf.Tensor, w)) as tf.Scalar, [table]);
    const fused = run();
    const composed = withImplementation('composed', run);
    try {
      checkError('layer loss', normRelativeError(await fused.value.data(), await composed.value.data()), OUTPUT_TOL);
      const g = Object.keys(fused.grads)[0];
      checkError('layer grad table', normRelativeError(await fused.grads[g].data(), await composed.grads[g].data()), GRAD_TOL);
    } finally {
      tf.dispose([ids, w, fused.value, composed.value, ...Object.values(fused.grads), ...Object.values(composed.grads)]);
      layer.dispose();
    }
  });

  it('is one kernel backward (composed: more)', async () => {
    const table = randomTensor([500, 128], 31);
    const ids = makeIds([16, 128], 500, 9);
    const dy = randomTensor([16, 128, 128], 32);
    try {
      const grad = () => tf.grad((t: tf.Tensor) => embeddingLookup(t, ids))(table, dy);
      const forward = await kernelNames(backend, () => embeddingLookup(table, ids));
      const both = await kernelNames(backend, grad);
      const composedBoth = await withImplementationAsync('composed', () => kernelNames(backend, grad));
      console.log(
        `      embedding kernels: forward ${forward.length} [${forward}]; forward+backward fused ${both.length} [${both}], ` +
          `composed ${composedBoth.length} [${composedBoth}]`,
      );
      const backward = both.slice(forward.length);
      if (backward.join() !== EMBEDDING_GRAD_KERNEL) throw new Error(`fused backward ran [${backward}]`);
    } finally {
      tf.dispose([table, ids, dy]);
    }
  });

  it('keeps tfjs gradient above EMBEDDING_GRAD_MAX_WORK, and refuses bad inputs in the fused entry', async () => {
    const v = EMBEDDING_GRAD_MAX_WORK / 1024 + 1;
    const table = tf.zeros([v, 1]);
    const ids = makeIds([1024], v, 2);
    const dy = randomTensor([1024, 1], 41);
    try {
      const names = await kernelNames(backend, () => tf.grad((t: tf.Tensor) => embeddingLookup(t, ids))(table, dy));
      if (names.includes(EMBEDDING_GRAD_KERNEL)) throw new Error('V * N above the bound ran the fused kernel');
      expectThrows(() => fusedEmbeddingGrad(table, ids, dy), /must be at most EMBEDDING_GRAD_MAX_WORK/);
      tf.tidy(() => {
        const t = tf.zeros([4, 3]);
        expectThrows(() => fusedEmbeddingGrad(t, tf.zeros([2], 'float32'), tf.zeros([2, 3])), /ids must be int32/);
        expectThrows(() => fusedEmbeddingGrad(t, tf.zeros([2], 'int32'), tf.zeros([2, 4])), /dy must be float32 \[2,3\]/);
        expectThrows(
          () => fusedEmbeddingGrad(tf.zeros([12]), tf.zeros([2], 'int32'), tf.zeros([2, 3])),
          /the table must be a float32 \[V, D\]/,
        );
      });
    } finally {
      tf.dispose([table, ids, dy]);
    }
  });
});
