/**
 * Node loader of the multi-head attention that ships, unexported, inside `@tensorflow/tfjs-layers` 4.22
 * (`dist/layers/nlp/multihead_attention.js`).
 *
 * Its ESM files use extensionless relative imports that Node cannot resolve, so it is bundled with esbuild
 * (cached under node_modules/.cache/tfjs-gta-bench) into a CommonJS file that keeps `@tensorflow/tfjs-core`
 * external: `require` then returns the very tfjs-core instance `@tensorflow/tfjs` uses (checked here: same
 * `Tensor` class, same engine). The bundle also carries private copies of some tfjs-layers classes whose
 * registration would overwrite tfjs-layers' own serialization entries (`Dense`, `Dropout`, ...): the
 * registry is restored right after loading, and the bundle's entries are returned so that the peer can
 * put them back only while it builds.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function bundleTfjsMultiHeadAttention(): Promise<{ ctor: unknown; registry: Record<string, unknown> }> {
  const require = createRequire(join(ROOT, 'package.json'));
  const entry = join(ROOT, 'node_modules/@tensorflow/tfjs-layers/dist/layers/nlp/multihead_attention.js');
  const outDir = join(ROOT, 'node_modules/.cache/tfjs-gta-bench');
  const outfile = join(outDir, 'tfjs-layers-multihead-attention.cjs');
  if (!existsSync(entry)) throw new Error(`${entry} not found`);
  if (!existsSync(outfile) || statSync(outfile).mtimeMs < statSync(entry).mtimeMs) {
    mkdirSync(outDir, { recursive: true });
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      format: 'cjs',
      platform: 'node',
      outfile,
      logLevel: 'silent',
      external: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-core/*'],
    });
  }
  const registry = tf.serialization.SerializationMap.getMap().classNameMap as Record<string, unknown>;
  const saved = { ...registry };
  const bundleRegistry: Record<string, unknown> = {};
  let mod: { MultiHeadAttention: unknown };
  try {
    mod = require(outfile) as { MultiHeadAttention: unknown };
  } finally {
    for (const [key, value] of Object.entries(registry)) if (saved[key] !== value) bundleRegistry[key] = value;
    for (const key of Object.keys(registry)) if (!(key in saved)) delete registry[key];
    Object.assign(registry, saved);
  }
  const core = require('@tensorflow/tfjs-core') as typeof tf;
  if (core.Tensor !== tf.Tensor || core.engine() !== tf.engine()) {
    throw new Error('the bundled MultiHeadAttention resolved a different tfjs-core instance');
  }
  return { ctor: mod.MultiHeadAttention, registry: bundleRegistry };
}
