/**
 * The fused RMSNorm and SwiGLU kernels (src/kernels/webgpu) on a real GPU through Dawn: fused = composed
 * (values, gradients; norm-relative) and milliseconds per forward+backward call, fused against composed.
 * Bundle and run (device machine, see bench/gpu_bundle.ts for the setup):
 *
 *   npx esbuild bench/gpu_training_kernels.ts --bundle --platform=node --format=esm --target=node20 \
 *     --outfile=.gpu/h16a.mjs --external:@tensorflow/tfjs-node --external:webgpu --external:playwright-core \
 *     --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
 *   bash .gpu/on-device.sh .gpu/h16a.mjs
 */
import { webgpuProblem } from './gpu_preload.js';
import '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict } from '../src/backend.js';
import { normRelativeError } from '../src/conformance/reference_vectors.js';
import { withKernelPath, type KernelPath } from '../src/ops/kernel_path.js';
import { rmsNorm } from '../src/ops/rms_norm.js';
import { swiGLU } from '../src/layers/swiglu_mlp.js';

interface Case {
  name: string;
  inputs: tf.Tensor[];
  dy: tf.Tensor;
  f: (...xs: tf.Tensor[]) => tf.Tensor;
}

function valueAndGrads(c: Case): tf.Tensor[] {
  return tf.tidy(() => [c.f(...c.inputs), ...tf.grads((...xs: tf.Tensor[]) => c.f(...xs))(c.inputs, c.dy)]);
}

async function timeMs(c: Case, path: KernelPath, reps: number): Promise<number> {
  for (let i = 0; i < 3; i++) {
    const r = withKernelPath(path, () => valueAndGrads(c));
    await r[r.length - 1].data();
    tf.dispose(r);
  }
  const t0 = performance.now();
  let last: tf.Tensor[] = [];
  for (let i = 0; i < reps; i++) {
    tf.dispose(last);
    last = withKernelPath(path, () => valueAndGrads(c));
  }
  await last[last.length - 1].data();
  const ms = (performance.now() - t0) / reps;
  tf.dispose(last);
  return ms;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const [n, d] of [
    [2048, 128],
    [2048, 1024],
    [4096, 4096],
    [37, 1000],
  ]) {
    const x = tf.randomUniform([n, d], -2, 2, 'float32', 1);
    const gain = tf.randomUniform([d], 0.5, 1.5, 'float32', 2);
    const dy = tf.randomUniform([n, d], -1, 1, 'float32', 3);
    out.push({ name: `rmsNorm [${n}, ${d}] with gain`, inputs: [x, gain], dy, f: (a, g) => rmsNorm(a, g, 1e-5) });
    out.push({ name: `rmsNorm [${n}, ${d}] no gain`, inputs: [x], dy, f: (a) => rmsNorm(a, null, 1e-5) });
  }
  for (const [n, i] of [
    [2048, 512],
    [8192, 2816],
  ]) {
    const g = tf.randomUniform([n, i], -6, 6, 'float32', 4);
    const u = tf.randomUniform([n, i], -2, 2, 'float32', 5);
    const dy = tf.randomUniform([n, i], -1, 1, 'float32', 6);
    out.push({ name: `swiGLU [${n}, ${i}]`, inputs: [g, u], dy, f: (a, b) => swiGLU(a, b) });
  }
  return out;
}

async function main(): Promise<void> {
  if (webgpuProblem !== null) throw new Error(`webgpu unavailable: ${webgpuProblem}`);
  await setBackendStrict('webgpu');
  tf.env().set('WEBGPU_CPU_FORWARD', false); // every op on the GPU, as in the browser specs
  let worst = 0;
  for (const c of cases()) {
    const fused = valueAndGrads(c);
    const composed = withKernelPath('composed', () => valueAndGrads(c));
    const errs: string[] = [];
    for (let i = 0; i < fused.length; i++) {
      const e = normRelativeError(await fused[i].data(), await composed[i].data());
      const tol = i === 0 ? 1e-5 : 1e-4;
      worst = Math.max(worst, e / tol);
      errs.push(`${i === 0 ? 'value' : `grad${i - 1}`} ${e.toExponential(2)}${e <= tol ? '' : ' FAIL'}`);
    }
    tf.dispose([...fused, ...composed]);
    const big = c.inputs[0].size > 1e7;
    const reps = big ? 10 : 50;
    const fusedMs = await timeMs(c, 'fused', reps);
    const composedMs = await timeMs(c, 'composed', reps);
    console.log(
      `${c.name}: ${errs.join(', ')}; fwd+bwd fused ${fusedMs.toFixed(3)} ms, composed ${composedMs.toFixed(3)} ms (${(composedMs / fusedMs).toFixed(1)}x)`,
    );
  }
  console.log(worst <= 1 ? 'all equal within tolerance' : `FAILED: worst error/tolerance ${worst.toFixed(2)}`);
}

await main();
