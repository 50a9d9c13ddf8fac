/**
 * Browser backends (webgl, and webgpu as `webgpu-browser`) in headless Chromium: bundles
 * bench/browser_entry.ts, opens it in a page served from 127.0.0.1 (WebGPU needs a secure context) through
 * scripts/lib/chromium.ts and collects the records. Uses the Chromium at `/usr/bin/chromium` (or
 * `CHROMIUM_PATH`); browsers are never downloaded. Without a GPU, WebGL and WebGPU both run on SwiftShader
 * (software), so their numbers describe this setup, not a GPU. `performance.now()` in the page has a
 * coarser resolution than in Node (about 0.1 ms), which only matters for sub-millisecond cells.
 */
import { appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_ARGS, chromiumExecutable, openBundledPage, type BrowserPage } from '../scripts/lib/chromium.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export { CHROMIUM_ARGS };

export async function runBrowserBackend(backend: string, opts: { quick: boolean; filters: string[]; resultFile: string }): Promise<void> {
  const emit = (obj: unknown) => appendFileSync(opts.resultFile, `${JSON.stringify(obj)}\n`);
  if (chromiumExecutable() === null) {
    emit({
      type: 'backend',
      backend,
      status: 'unavailable',
      error: 'no Chromium at /usr/bin/chromium (set CHROMIUM_PATH; browsers are never downloaded)',
    });
    return;
  }
  let page: BrowserPage | null = null;
  try {
    page = await openBundledPage({
      entry: join(ROOT, 'bench/browser_entry.ts'),
      // The tfjs-layers peer's Node loader (static node: imports); the page loads that peer another way.
      external: ['./tfjs_mha_node.js'],
      onLog: (line) => {
        if (/page error|Failed to load|blocked by CORS/.test(line)) console.error(`[${backend}] ${line}`);
      },
      expose: {
        __benchEmit: (line: string) => appendFileSync(opts.resultFile, `${line}\n`),
        __benchLog: (line: string) => console.log(line),
      },
    });
    await page.call('run', { backend, quick: opts.quick, filters: opts.filters });
  } catch (e) {
    emit({ type: 'crash', backend, code: null, signal: null, stderr: (e as Error).message });
  } finally {
    await page?.close();
  }
}
