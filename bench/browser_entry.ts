/**
 * The benchmark inside a browser page (bundled by bench/browser.ts): runs the cells of one browser
 * backend and reports each record through functions the Node side exposes on the page.
 */
import * as tf from '@tensorflow/tfjs';
import { backendFlags } from './flags.js';
import { runCells } from './worker.js';

declare global {
  // eslint-disable-next-line no-var
  var __benchEmit: (line: string) => Promise<void>;
  // eslint-disable-next-line no-var
  var __benchLog: (line: string) => Promise<void>;
  // eslint-disable-next-line no-var
  var __runBench: (opts: { backend: string; quick: boolean; filters: string[] }) => Promise<void>;
}

globalThis.__runBench = async ({ backend, quick, filters }) => {
  const emit = (obj: unknown) => globalThis.__benchEmit(JSON.stringify(obj));
  const started = performance.now();
  // Shape-generic shaders: without this, every decode step (the cache grows by one token) compiles new
  // WebGL programs for each shape-dependent kernel, and compilation dominates the step.
  if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
  const ok = await tf.setBackend(backend);
  await tf.ready();
  if (!ok || tf.getBackend() !== backend) {
    await emit({ type: 'backend', backend, status: 'unavailable', error: `backend ${backend} did not start (active: ${tf.getBackend()})` });
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
    quick, filters,
    onResult: (r) => { pending.push(emit({ type: 'cell', ...r })); },
    onProgress: (line) => { pending.push(globalThis.__benchLog(line)); },
  });
  await Promise.all(pending);
  await emit({ type: 'done', ...info, wallSeconds: (performance.now() - started) / 1000 });
};
