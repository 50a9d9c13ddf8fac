/**
 * Browser backends (webgl) in headless Chromium: bundles bench/browser_entry.ts with esbuild, opens it
 * in a page through playwright-core and collects the records. Uses the Chromium at `/usr/bin/chromium`
 * (or `CHROMIUM_PATH`); browsers are never downloaded. WebGL runs on SwiftShader (software) here, so its
 * numbers describe this setup, not a GPU. `performance.now()` in the page has a coarser resolution than
 * in Node (about 0.1 ms), which only matters for sub-millisecond cells.
 */
import { appendFileSync, existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--enable-unsafe-swiftshader', '--use-angle=swiftshader'];

export async function runBrowserBackend(backend: string, opts: { quick: boolean; filters: string[]; resultFile: string }): Promise<void> {
  const emit = (obj: unknown) => appendFileSync(opts.resultFile, `${JSON.stringify(obj)}\n`);
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    emit({ type: 'backend', backend, status: 'unavailable', error: `no Chromium at ${executablePath} (set CHROMIUM_PATH; browsers are never downloaded)` });
    return;
  }
  let browser: { close(): Promise<void> } | null = null;
  try {
    const esbuild = await import('esbuild');
    const built = await esbuild.build({
      entryPoints: [join(ROOT, 'bench/browser_entry.ts')], bundle: true, format: 'esm', platform: 'browser',
      target: 'chrome120', write: false, logLevel: 'silent',
      // Node-only code is reached only through dynamic imports the page never runs.
      external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), '@tensorflow/tfjs-node', './tfjs_mha_node.js'],
      loader: { '.node': 'empty' },
    });
    const code = built.outputFiles[0].text;
    const { chromium } = await import('playwright-core');
    const b = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
    browser = b;
    const page = await b.newPage();
    page.setDefaultTimeout(0);
    await page.exposeFunction('__benchEmit', (line: string) => appendFileSync(opts.resultFile, `${line}\n`));
    await page.exposeFunction('__benchLog', (line: string) => console.log(line));
    page.on('pageerror', (e) => console.error(`[${backend}] page error: ${e.message}`));
    await page.goto('about:blank');
    await page.addScriptTag({ content: code, type: 'module' });
    await page.waitForFunction(() => typeof (globalThis as { __runBench?: unknown }).__runBench === 'function');
    await page.evaluate(async (o) => {
      await (globalThis as unknown as { __runBench: (x: typeof o) => Promise<void> }).__runBench(o);
    }, { backend, quick: opts.quick, filters: opts.filters });
  } catch (e) {
    emit({ type: 'crash', backend, code: null, signal: null, stderr: (e as Error).message });
  } finally {
    await browser?.close();
  }
}
