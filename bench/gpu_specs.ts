/**
 * The fused-kernel specs on a real GPU: mocha in Node on tfjs's webgpu backend through Dawn, for the device
 * machine (no node_modules there). Bundled by bench/gpu_bundle.ts into .gpu/specs.mjs with the GPU entry:
 *
 *   bash .gpu/on-device.sh .gpu/specs.mjs [--grep PATTERN] [--backend webgpu]   (in the repository root)
 *
 * Prints mocha's spec report and a last line `N passed, N failed`; exits non-zero on a failure or when the
 * backend cannot start (the kit requires every requested backend here). A real GPU finds races, limits
 * and precision problems that SwiftShader, where CI runs the same specs, does not.
 */
import { webgpuProblem } from './gpu_preload.js';
import '@tensorflow/tfjs-backend-webgpu';
import Mocha from 'mocha';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * The specs of the fused kernels and of training on the fused path. (The attention layers' own specs read
 * values synchronously, which tfjs's webgpu backend cannot do in Node; they run on webgpu in the browser suite.)
 */
const SPECS: Array<() => Promise<unknown>> = [
  () => import('../test/ops/attention_fused.test.js'),
  () => import('../test/ops/rms_norm_fused.test.js'),
  () => import('../test/ops/rope_fused.test.js'),
  () => import('../test/layers/swiglu_fused.test.js'),
  () => import('../test/layers/embedding_fused.test.js'),
  () => import('../test/models/losses_fused.test.js'),
  () => import('../test/train/adamw_fused.test.js'),
  () => import('../test/train/global_norm_fused.test.js'),
  () => import('../test/train/fused_training.test.js'),
  () => import('../test/train/gpu_step.test.js'),
  () => import('../test/layers/fused_decode.test.js'),
  () => import('../test/ops/gated_decoder_fused.test.js'),
  () => import('../test/io/hf_checkpoint.test.js'),
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { grep: { type: 'string' }, backend: { type: 'string', default: 'webgpu' } },
  });
  if (values.backend === 'webgpu' && webgpuProblem !== null) {
    console.error(`webgpu unavailable: ${webgpuProblem}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  process.env.TFJS_BACKENDS = values.backend;
  // The specs' fixtures from the checkout the command runs in (the device runs it in the repository root).
  process.env.TFJS_GTA_FIXTURES ??= join(process.cwd(), 'test', 'fixtures');
  process.env.REQUIRE_BACKENDS = '1';
  const mocha = new Mocha({ timeout: 600_000, reporter: 'spec', grep: values.grep });
  mocha.suite.emit('pre-require', globalThis, 'gpu-specs', mocha);
  for (const load of SPECS) await load();
  const counts = { passed: 0, failed: 0 };
  await new Promise<void>((done) => {
    const runner = mocha.run(() => done());
    runner.on('pass', () => (counts.passed += 1));
    runner.on('fail', () => (counts.failed += 1));
  });
  console.log(`${counts.passed} passed, ${counts.failed} failed`);
  return counts.failed === 0 ? 0 : 1;
}

process.exitCode = await main();
