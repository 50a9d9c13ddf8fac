/**
 * The fused RoPE and embedding-gradient kernels (src/kernels/webgpu/rope.ts, embedding_grad.ts) on a real GPU
 * through Dawn: fused = composed (values, gradients; norm-relative) and milliseconds per forward+backward call,
 * fused against composed. Bundle and run (device machine, see bench/gpu_bundle.ts for the setup):
 *
 *   npx esbuild bench/gpu_rope_embedding.ts --bundle --platform=node --format=esm --target=node20 \
 *     --outfile=.gpu/h16c.mjs --external:@tensorflow/tfjs-node --external:webgpu --external:playwright-core \
 *     --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
 *   bash .gpu/on-device.sh .gpu/h16c.mjs
 */
import { webgpuProblem } from './gpu_preload.js';
import '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict } from '../src/backend.js';
import { normRelativeError } from '../src/conformance/reference_vectors.js';
import { withKernelPath, type KernelPath } from '../src/ops/kernel_path.js';
import { applyRotaryFactors, rotaryFactorsRange } from '../src/ops/rope.js';
import { embeddingLookup } from '../src/layers/token_embedding.js';

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
  for (const [b, t, h, d] of [
    [16, 128, 8, 32],
    [8, 512, 48, 128],
    [4, 2048, 40, 128],
  ]) {
    const f = rotaryFactorsRange(d, 10000, 1, 0, t); // [1, T, 1, d], kept for the run
    const x = tf.randomUniform([b, t, h, d], -2, 2, 'float32', 1);
    const dy = tf.randomUniform([b, t, h, d], -1, 1, 'float32', 2);
    out.push({ name: `RoPE [${b}, ${t}, ${h}, ${d}]`, inputs: [x], dy, f: (a) => applyRotaryFactors(a, f) });
  }
  for (const [v, d, b, t] of [
    [512, 128, 16, 128],
    [32000, 128, 16, 128],
    [32000, 1024, 16, 128],
    [65536, 1024, 16, 128],
    [16384, 4096, 8, 1024],
  ]) {
    const table = tf.randomUniform([v, d], -1, 1, 'float32', 3);
    const ids = tf.randomUniform([b, t], 0, v, 'int32', 4);
    const dy = tf.randomUniform([b, t, d], -1, 1, 'float32', 5);
    out.push({ name: `embedding [${v}, ${d}] ids [${b}, ${t}]`, inputs: [table], dy, f: (tb) => embeddingLookup(tb, ids) });
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
