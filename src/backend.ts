/**
 * Backend selection. tfjs silently falls back to another backend when one fails to initialise, so
 * `setBackendStrict` checks that the requested backend is really the active one.
 *
 * Preference: in Node `tensorflow` (tfjs-node, when installed), then `webgpu` (through Dawn, the
 * optional `webgpu` package, only where it finds a GPU adapter), then `wasm`, then `cpu`; in a browser
 * `webgl`, then `webgpu`, then `wasm`, then `cpu` (see `defaultBackendOrder` for why webgl comes first).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from './utils/errors.js';

export const IS_NODE =
  typeof process !== 'undefined' &&
  typeof process.versions?.node === 'string' &&
  typeof (globalThis as { window?: unknown }).window === 'undefined';

/** The optional peer that registers the `webgpu` backend (it registers only if `navigator.gpu` exists when imported). */
const WEBGPU_BACKEND_PACKAGE = '@tensorflow/tfjs-backend-webgpu';
/** The optional peer that provides WebGPU in Node (Dawn, Chromium's implementation). */
const DAWN_PACKAGE = 'webgpu';

/** What Dawn's addon (and the `webgpu` package) exports. */
interface DawnModule {
  create(options: string[]): { requestAdapter(options?: object): Promise<unknown> };
  globals: Record<string, unknown>;
}

/** Imports a package by a variable specifier, so that bundlers do not try to resolve optional packages. */
async function importByName<T>(name: string): Promise<T> {
  return import(/* @vite-ignore */ name) as Promise<T>;
}

/** `DAWN_NODE=/path/dawn.node` loads that addon directly (a machine without npm); else the `webgpu` package. */
async function loadDawn(): Promise<DawnModule> {
  const addon = process.env.DAWN_NODE;
  if (addon) {
    // Node's built-in, fetched at run time: no import of a Node module for browser bundlers to trip on.
    const nodeProcess = process as unknown as { getBuiltinModule(name: string): typeof import('node:module') };
    const { createRequire } = nodeProcess.getBuiltinModule('module');
    return createRequire(import.meta.url)(addon) as DawnModule;
  }
  try {
    return await importByName<DawnModule>(DAWN_PACKAGE);
  } catch (e) {
    const err = e as { code?: string };
    if (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') {
      throw new Error(
        `WebGPU in Node needs the optional packages ${DAWN_PACKAGE} and ${WEBGPU_BACKEND_PACKAGE} ` +
          `(npm install ${DAWN_PACKAGE} ${WEBGPU_BACKEND_PACKAGE})`,
        { cause: e },
      );
    }
    throw e;
  }
}

/**
 * Makes `navigator.gpu` available: in Node from Dawn, with Dawn's WebGPU globals (GPUBufferUsage, ...),
 * and only when Dawn finds an adapter, so that tfjs-backend-webgpu never registers a backend that
 * cannot start. In a browser, checks that the page exposes WebGPU and has an adapter.
 */
async function provideWebGPU(): Promise<void> {
  const g = globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } };
  if (g.navigator?.gpu === undefined) {
    if (!IS_NODE) throw new Error('this browser exposes no navigator.gpu (WebGPU disabled, unsupported, or not a secure context)');
    const dawn = await loadDawn();
    const gpu = dawn.create([]);
    if ((await gpu.requestAdapter()) === null) {
      throw new Error('Dawn (the webgpu package) found no WebGPU adapter on this machine (no GPU, or no Vulkan/Metal/D3D12 driver)');
    }
    for (const [name, value] of Object.entries(dawn.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    if (g.navigator !== undefined) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    return;
  }
  if ((await g.navigator.gpu.requestAdapter()) === null) throw new Error('navigator.gpu.requestAdapter() found no WebGPU adapter');
}

let webgpuReady: Promise<void> | undefined;

const loaders: Record<string, () => Promise<unknown>> = {
  // Variable specifiers keep bundlers from trying to resolve the optional native package.
  tensorflow: async () => {
    if (!IS_NODE) throw new Error('tfjs-node runs only in Node');
    return importByName('@tensorflow/tfjs-node');
  },
  // An optional peer: a browser app that wants wasm imports '@tensorflow/tfjs-backend-wasm' itself (and
  // sets its .wasm paths); loading it here by name serves Node, where packages resolve at run time.
  wasm: async () => importByName('@tensorflow/tfjs-backend-wasm'),
  // An optional peer as well: a browser app imports '@tensorflow/tfjs-backend-webgpu' itself (its bundler
  // does not see this import); in Node, Dawn must provide navigator.gpu before the import.
  webgpu: async () => {
    await installWebGPU();
    return importByName(WEBGPU_BACKEND_PACKAGE);
  },
  webgl: async () => undefined, // bundled with @tensorflow/tfjs
  cpu: async () => undefined,
};

/**
 * Makes `navigator.gpu` available (in Node from Dawn, the optional `webgpu` package, with its WebGPU
 * globals) once per process, only where an adapter exists; rejects with the reason otherwise. A program
 * that imports '@tensorflow/tfjs-backend-webgpu' itself (a Node bundle) awaits this before that import,
 * since the package registers its backend only if `navigator.gpu` exists when it is imported.
 */
export function installWebGPU(): Promise<void> {
  webgpuReady ??= provideWebGPU();
  return webgpuReady;
}

const loadErrors: Record<string, string> = {};

function registered(name: string): boolean {
  return tf.findBackendFactory(name) !== null && tf.findBackendFactory(name) !== undefined;
}

/** Makes the backend's package register itself; returns false (and remembers why) when it cannot. */
export async function loadBackend(name: string): Promise<boolean> {
  const load = loaders[name];
  try {
    // webgpu is checked even when registered: the factory exists wherever navigator.gpu does, adapter or not.
    if (name === 'webgpu') await installWebGPU();
    if (registered(name)) return true;
    if (load === undefined) {
      loadErrors[name] = 'unknown backend';
      return false;
    }
    await load();
  } catch (e) {
    loadErrors[name] = (e as Error).message.split('\n')[0];
    return false;
  }
  if (!registered(name) && name === 'webgpu') {
    loadErrors[name] = `${WEBGPU_BACKEND_PACKAGE} was imported before navigator.gpu existed, so it did not register`;
  }
  return registered(name);
}

/** Why a backend could not be loaded, if it could not. */
export function backendLoadError(name: string): string | undefined {
  return loadErrors[name];
}

/** Activates `name` or throws; never accepts tfjs's silent fallback. */
export async function setBackendStrict(name: string): Promise<void> {
  if (!(await loadBackend(name))) {
    throw new ValueError(`backend ${JSON.stringify(name)} is not available: ${loadErrors[name] ?? 'not registered'}.`);
  }
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new ValueError(`backend ${JSON.stringify(name)} failed to initialise (active backend: ${tf.getBackend()}).`);
  }
}

/**
 * The default preference order for this runtime. Node: tfjs-node first (native, multi-threaded), then
 * webgpu (reached only where Dawn finds a GPU adapter), then wasm, then cpu. Browser: webgl before
 * webgpu. On an H200 through Dawn (docs/benchmarks/2026-12-01-webgpu-h200.md) tfjs's webgpu backend is
 * bound by kernel dispatches, and without a GPU Chromium's WebGPU runs on SwiftShader, 3-4x slower than
 * webgl on SwiftShader (docs/PERFORMANCE.md); webgl and webgpu were not measured side by side on one real
 * GPU, so webgl stays first.
 */
export function defaultBackendOrder(): string[] {
  return IS_NODE ? ['tensorflow', 'webgpu', 'wasm', 'cpu'] : ['webgl', 'webgpu', 'wasm', 'cpu'];
}

export interface BackendChoice {
  backend: string;
  /** Backends tried before it and why each was not used. */
  skipped: Array<{ backend: string; reason: string }>;
}

/** Activates the first backend of `order` that works and reports the choice. */
export async function useBestBackend(order: string[] = defaultBackendOrder()): Promise<BackendChoice> {
  const skipped: BackendChoice['skipped'] = [];
  for (const name of order) {
    try {
      await setBackendStrict(name);
      return { backend: name, skipped };
    } catch (e) {
      skipped.push({ backend: name, reason: (e as Error).message });
    }
  }
  throw new ValueError(`no backend could be started: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
}
