/**
 * Backend selection. tfjs silently falls back to another backend when one fails to initialise, so
 * `setBackendStrict` checks that the requested backend is really the active one.
 *
 * Preference: in Node `tensorflow` (tfjs-node, when installed), then `wasm`, then `cpu`; in a browser
 * `webgl`, then `wasm`, then `cpu`.
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from './utils/errors.js';

export const IS_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string'
  && typeof (globalThis as { window?: unknown }).window === 'undefined';

const loaders: Record<string, () => Promise<unknown>> = {
  // Variable specifiers keep bundlers from trying to resolve the optional native package.
  tensorflow: async () => {
    if (!IS_NODE) throw new Error('tfjs-node runs only in Node');
    const name = '@tensorflow/tfjs-node';
    return import(/* @vite-ignore */ name);
  },
  // An optional peer: a browser app that wants wasm imports '@tensorflow/tfjs-backend-wasm' itself (and
  // sets its .wasm paths); loading it here by name serves Node, where packages resolve at run time.
  wasm: async () => {
    const name = '@tensorflow/tfjs-backend-wasm';
    return import(/* @vite-ignore */ name);
  },
  webgl: async () => undefined, // bundled with @tensorflow/tfjs
  cpu: async () => undefined,
};

const loadErrors: Record<string, string> = {};

/** Makes the backend's package register itself; returns false (and remembers why) when it cannot. */
export async function loadBackend(name: string): Promise<boolean> {
  if (tf.findBackendFactory(name) !== null && tf.findBackendFactory(name) !== undefined) return true;
  const load = loaders[name];
  if (load === undefined) {
    loadErrors[name] = 'unknown backend';
    return false;
  }
  try {
    await load();
  } catch (e) {
    loadErrors[name] = (e as Error).message.split('\n')[0];
    return false;
  }
  return tf.findBackendFactory(name) !== null && tf.findBackendFactory(name) !== undefined;
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

/** The default preference order for this runtime. */
export function defaultBackendOrder(): string[] {
  return IS_NODE ? ['tensorflow', 'wasm', 'cpu'] : ['webgl', 'wasm', 'cpu'];
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
