/**
 * Runs a bundled module in headless Chromium (Debian's /usr/bin/chromium through playwright-core;
 * browsers are never downloaded) and calls its functions from Node: the conformance runners use it for
 * `--browser`. The page is served from 127.0.0.1 (a secure context, which WebGPU requires) together
 * with tfjs's .wasm files and the files the caller names.
 *
 * WebGL runs on SwiftShader (`--use-angle=swiftshader`); WebGPU is enabled with `--enable-unsafe-webgpu`,
 * which on a machine without a GPU gives Dawn's SwiftShader adapter (Vulkan on the CPU), and Chromium
 * composites with Vulkan on SwiftShader (`--enable-features=Vulkan --use-vulkan=swiftshader`), without which
 * a WebGPU canvas has no shared-image backing and tfjs's synchronous webgpu read loses the device.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADLESS_ARGS, WEBGPU_ARGS } from './chromium_args.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Flags for every headless run: no background traffic, SwiftShader WebGL, and WebGPU. */
export const CHROMIUM_ARGS = [...HEADLESS_ARGS, ...WEBGPU_ARGS];

/** The Chromium executable (`CHROMIUM_PATH`, else Debian's), or null when there is none. */
export function chromiumExecutable(): string | null {
  const candidates = process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p) => existsSync(p)) ?? null;
}

/** A page running one bundled module that set `globalThis.__page` to an object of async functions. */
export interface BrowserPage {
  /** Calls `globalThis.__page[name](...args)` in the page (arguments and result travel as JSON). */
  call<T>(name: string, ...args: unknown[]): Promise<T>;
  close(): Promise<void>;
}

export interface OpenPageOptions {
  /** The module to bundle (TypeScript or JavaScript); it must set `globalThis.__page`. */
  entry: string;
  /** Files the page may fetch: URL path (e.g. `/file/0`) -> absolute path on disk. */
  files?: Record<string, string>;
  /** Lines the page logs (console) and page errors. */
  onLog?: (line: string) => void;
  /** More imports to leave out of the bundle (Node-only modules the page reaches only dynamically). */
  external?: string[];
  /** Node functions the page may call as `globalThis[name](...)` (exposed before the page loads). */
  expose?: Record<string, (...args: never[]) => unknown>;
}

async function bundle(entry: string, more: string[] = []): Promise<string> {
  const esbuild = await import('esbuild');
  const built = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
    absWorkingDir: ROOT,
    // Node-only code is reached only through dynamic imports (IS_NODE branches) that the page never runs.
    external: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), '@tensorflow/tfjs-node', 'webgpu', ...more],
    loader: { '.node': 'empty' },
  });
  return built.outputFiles[0].text;
}

function serve(code: string, files: Record<string, string>): Promise<{ server: Server; url: string }> {
  const wasmDir = join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  const html =
    '<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module" src="/bundle.js"></script></body></html>';
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const wasm = path.startsWith('/wasm/') && /^[\w.-]+\.wasm$/.test(path.slice(6)) ? join(wasmDir, path.slice(6)) : null;
    if (path === '/') send(200, 'text/html; charset=utf-8', html);
    else if (path === '/favicon.ico') send(204, 'text/plain', '');
    else if (path === '/bundle.js') send(200, 'text/javascript; charset=utf-8', code);
    else if (wasm !== null && existsSync(wasm)) send(200, 'application/wasm', readFileSync(wasm));
    else if (files[path] !== undefined && statSync(files[path]).isFile()) send(200, 'application/octet-stream', readFileSync(files[path]));
    else send(404, 'text/plain', `not found: ${path}`);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/` });
    }),
  );
}

/** Bundles `entry`, opens it in headless Chromium and waits until it has set `globalThis.__page`. */
export async function openBundledPage(o: OpenPageOptions): Promise<BrowserPage> {
  const executablePath = chromiumExecutable();
  if (executablePath === null) throw new Error('no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)');
  const code = await bundle(o.entry, o.external);
  const { server, url } = await serve(code, o.files ?? {});
  const { chromium } = await import('playwright-core');
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    page.setDefaultTimeout(0);
    page.on('console', (m) => o.onLog?.(`[page] ${m.text()}`));
    page.on('pageerror', (e) => o.onLog?.(`[page error] ${e.message}`));
    for (const [name, fn] of Object.entries(o.expose ?? {})) await page.exposeFunction(name, fn);
    await page.goto(url);
    await page.waitForFunction(() => (globalThis as { __page?: unknown }).__page !== undefined, undefined, { timeout: 60_000 });
    const opened = browser;
    return {
      call: <T>(name: string, ...args: unknown[]) =>
        page.evaluate(
          ([n, a]) => {
            const api = (globalThis as unknown as { __page: Record<string, (...x: unknown[]) => Promise<unknown>> }).__page;
            return api[n as string](...(a as unknown[]));
          },
          [name, args] as const,
        ) as Promise<T>,
      close: async () => {
        await opened.close();
        server.close();
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    throw e;
  }
}
