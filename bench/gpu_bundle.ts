/**
 * Bundles bench/gpu_entry.ts into .gpu/gpu.mjs for the GPU device machine (Node platform, ESM, one file;
 * the packages' versions and the commit are fixed into it, since the device has no node_modules):
 *
 *   ../shared/gpu/prepare.sh && npx tsx bench/gpu_bundle.ts [--out FILE]
 *
 * then, with the device tool: carry [".gpu"], command
 *   bash .gpu/on-device.sh .gpu/gpu.mjs bench --out $OUT/bench | tee $OUT/log
 * It also writes specs.mjs beside it: the fused-kernel specs under mocha (bench/gpu_specs.ts),
 *   bash .gpu/on-device.sh .gpu/specs.mjs [--grep PATTERN]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { versions } from './machine.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** `--out FILE` writes the bundle elsewhere (e.g. into another checkout's .gpu/); default .gpu/gpu.mjs. */
const outAt = process.argv.indexOf('--out');
const OUT = outAt > 0 && process.argv[outAt + 1] ? process.argv[outAt + 1] : join(ROOT, '.gpu', 'gpu.mjs');

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? ' (with uncommitted changes in the working tree)' : ''}`;
  } catch {
    return 'unknown';
  }
}

mkdirSync(dirname(OUT), { recursive: true });
const build = { versions: versions(), commit: commit(), builtAt: new Date().toISOString() };
const common: esbuild.BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  banner: { js: "import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" },
  define: { __GPU_BUILD__: JSON.stringify(build) },
  // Not used on the device: the browser runners (--browser), tfjs-node, and Dawn's package (DAWN_NODE instead).
  external: ['playwright-core', 'esbuild', '@tensorflow/tfjs-node', 'webgpu'],
};
await esbuild.build({ ...common, entryPoints: [join(ROOT, 'bench/gpu_entry.ts')], outfile: OUT });
console.log(`wrote ${OUT} (${(statSync(OUT).size / 2 ** 20).toFixed(1)} MiB; commit ${build.commit})`);
// The fused-kernel specs under mocha (bench/gpu_specs.ts), next to the entry.
const SPECS_OUT = join(dirname(OUT), 'specs.mjs');
await esbuild.build({ ...common, entryPoints: [join(ROOT, 'bench/gpu_specs.ts')], outfile: SPECS_OUT });
console.log(`wrote ${SPECS_OUT} (${(statSync(SPECS_OUT).size / 2 ** 20).toFixed(1)} MiB)`);
