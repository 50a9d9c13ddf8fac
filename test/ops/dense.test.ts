/**
 * `project` (src/ops/dense.ts): `x @ kernel + bias` and its gradients against a float64 reference on every
 * backend, including webgl's bias gradient as a product with a row of ones (`sumsRowsByProduct`), and the
 * programs that bias gradient runs there (no Sum, no unpack or pack).
 */
import * as tf from '@tensorflow/tfjs';
import { project } from '../../src/ops/dense.js';
import { sumsRowsByProduct } from '../../src/ops/capabilities.js';
import { describeBackends, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError } from '../kit/fused.js';

describeBackends('project (dense)', ({ backend }) => {
  it('x @ kernel + bias and the gradients of x, kernel and bias, against float64 (rank-3 x, odd sizes)', async () => {
    const [b, t, din, dout] = [2, 5, 7, 9];
    const x = randomTensor([b, t, din], 1);
    const kernel = randomTensor([din, dout], 2);
    const bias = randomTensor([dout], 3);
    const dy = randomTensor([b, t, dout], 4);
    try {
      const [y, gx, gk, gb] = tf.tidy(() => {
        const f = (xs: tf.Tensor, ks: tf.Tensor, bs: tf.Tensor) => project(xs, ks, bs);
        const grads = tf.grads((xs: tf.Tensor, ks: tf.Tensor, bs: tf.Tensor) => f(xs, ks, bs))([x, kernel, bias], dy);
        return [f(x, kernel, bias), ...grads];
      });
      const [xv, kv, bv, dv] = await Promise.all([x.data(), kernel.data(), bias.data(), dy.data()]);
      const n = b * t;
      const ey = new Float64Array(n * dout);
      const egx = new Float64Array(n * din);
      const egk = new Float64Array(din * dout);
      const egb = new Float64Array(dout);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < dout; c++) {
          let acc = bv[c];
          for (let j = 0; j < din; j++) acc += xv[r * din + j] * kv[j * dout + c];
          ey[r * dout + c] = acc;
          const g = dv[r * dout + c];
          egb[c] += g;
          for (let j = 0; j < din; j++) {
            egx[r * din + j] += g * kv[j * dout + c];
            egk[j * dout + c] += xv[r * din + j] * g;
          }
        }
      }
      const pairs: Array<[string, tf.Tensor, Float64Array]> = [
        ['y', y, ey],
        ['dx', gx, egx],
        ['dkernel', gk, egk],
        ['dbias', gb, egb],
      ];
      for (const [what, got, want] of pairs) checkError(what, normRelativeError(await got.data(), want), 1e-5);
      if (gb.shape.join() !== `${dout}`) throw new Error(`the bias gradient has shape [${gb.shape}]`);
      tf.dispose([y, gx, gk, gb]);
    } finally {
      tf.dispose([x, kernel, bias, dy]);
    }
  });

  if (backend === 'webgl') {
    it('webgl: the bias gradient is one product (no Sum, no unpack or pack program)', async () => {
      if (!sumsRowsByProduct()) throw new Error('sumsRowsByProduct() is false on webgl');
      const x = randomTensor([64, 16], 1);
      const kernel = randomTensor([16, 8], 2);
      const bias = randomTensor([8], 3);
      const gl = tf.backend() as unknown as { runWebGLProgram: (...args: unknown[]) => unknown };
      const run = gl.runWebGLProgram;
      const names: string[] = [];
      try {
        const dy = randomTensor([64, 8], 4);
        const grad = () => tf.tidy(() => tf.grads((bs: tf.Tensor) => project(x, kernel, bs))([bias], dy)[0]);
        const first = grad();
        await first.data(); // compiles
        first.dispose();
        gl.runWebGLProgram = (...args: unknown[]) => {
          names.push((args[0] as { constructor: { name: string } }).constructor.name);
          return run.apply(gl, args);
        };
        const g = grad();
        gl.runWebGLProgram = run;
        g.dispose();
        dy.dispose();
        const products = names.filter((n) => n === 'MatMulPackedProgram').length;
        if (names.some((n) => n === 'ReduceProgram' || n === 'UnpackProgram' || n === 'PackProgram') || products !== 2) {
          throw new Error(`the forward and the bias gradient ran [${names}]`);
        }
      } finally {
        gl.runWebGLProgram = run;
        tf.dispose([x, kernel, bias]);
      }
    });
  }
});
