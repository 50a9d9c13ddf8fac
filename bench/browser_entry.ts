/**
 * The benchmark inside a browser page (bundled by bench/browser.ts): runs the cells of one browser
 * backend (`webgl`, or `webgpu-browser` for tfjs's webgpu) and reports each record through functions the
 * Node side exposes on the page.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu'; // registers webgpu when the page has navigator.gpu
import { setBackendStrict } from '../src/backend.js';
import { backendFlags } from './flags.js';
import { tfjsBackendOf } from './matrix.js';
import { runCells } from './worker.js';

declare global {
  var __benchEmit: (line: string) => Promise<void>;
  var __benchLog: (line: string) => Promise<void>;
}

async function run({ backend, quick, filters }: { backend: string; quick: boolean; filters: string[] }): Promise<void> {
  const emit = (obj: unknown) => globalThis.__benchEmit(JSON.stringify(obj));
  const started = performance.now();
  // Shape-generic shaders: without this, every decode step (the cache grows by one token) compiles new
  // WebGL programs for each shape-dependent kernel, and compilation dominates the step.
  if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
  try {
    await setBackendStrict(tfjsBackendOf(backend));
  } catch (e) {
    await emit({ type: 'backend', backend, status: 'unavailable', error: (e as Error).message });
    return;
  }
  const flags: Record<string, unknown> = { ...(await backendFlags(backend)), userAgent: navigator.userAgent };
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    if (gl && ext) flags.renderer = gl.getParameter(ext.UNMASKED_RENDERER_WEBGL);
  } catch {
    /* no renderer string */
  }
  await emit({ type: 'backend', backend, status: 'ok', flags });
  const pending: Array<Promise<void>> = [];
  const info = await runCells(backend, {
    quick,
    filters,
    onResult: (r) => {
      pending.push(emit({ type: 'cell', ...r }));
    },
    onProgress: (line) => {
      pending.push(globalThis.__benchLog(line));
    },
  });
  await Promise.all(pending);
  await emit({ type: 'done', ...info, wallSeconds: (performance.now() - started) / 1000 });
}

(globalThis as unknown as { __page: { run: typeof run } }).__page = { run };
