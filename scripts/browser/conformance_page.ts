/**
 * The conformance runners inside a browser page (`npm run conformance -- FILE --browser`, and the same
 * for `conformance:models`): bundled and driven by scripts/lib/chromium.ts. Every backend package is
 * imported here, so any of webgl, webgpu, wasm and cpu can be selected.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';
import { setBackendStrict } from '../../src/backend.js';
import { parseReferenceFile, runReferenceCaseAsync, type CaseResult, type MaskMode } from '../../src/conformance/reference_vectors.js';
import { parseReferenceModelFile, runReferenceModelCase, type ModelCaseResult } from '../../src/conformance/reference_models.js';
import { parseSafetensors, parseTensorJSON } from '../../src/io/safetensors.js';

setWasmPaths('/wasm/');

/** Flags that make the GPU backends run every op in a shader, even on the small tensors of the cases. */
const GPU_ONLY_FLAGS: Record<string, Record<string, boolean>> = {
  webgl: { WEBGL_CPU_FORWARD: false },
  webgpu: { WEBGPU_CPU_FORWARD: false },
};

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

const api = {
  /** Activates `backend` (strictly) and describes it. */
  async start(backend: string): Promise<Record<string, unknown>> {
    for (const [flag, value] of Object.entries(GPU_ONLY_FLAGS[backend] ?? {})) tf.env().set(flag, value);
    await setBackendStrict(backend);
    const info: Record<string, unknown> = {
      backend: tf.getBackend(),
      userAgent: navigator.userAgent,
      flags: GPU_ONLY_FLAGS[backend] ?? {},
    };
    const adapter = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
    if (backend === 'webgpu' && adapter) info.adapter = `${adapter.vendor ?? '?'} ${adapter.architecture ?? '?'}`;
    return info;
  },
  /** Every case of a gta-refvec-1 file (served at `url`); a case that throws gives its message. */
  async vectors(
    url: string,
    source: string,
    mode: MaskMode,
  ): Promise<Array<CaseResult | { name: string; mechanism: string; error: string }>> {
    const file = parseReferenceFile(await (await fetchOk(url)).text(), source);
    const out: Array<CaseResult | { name: string; mechanism: string; error: string }> = [];
    for (const c of file.cases) {
      try {
        out.push(await runReferenceCaseAsync(c, mode));
      } catch (e) {
        out.push({ name: String(c.name), mechanism: String(c.mechanism), error: (e as Error).message });
      }
    }
    return out;
  },
  /** Every case of a gta-refmodel-1 file; `weights` maps each case's weights_file to the URL serving it. */
  async models(
    url: string,
    source: string,
    weights: Record<string, string>,
  ): Promise<Array<ModelCaseResult | { name: string; mechanism: string; error: string }>> {
    const file = parseReferenceModelFile(await (await fetchOk(url)).text(), source);
    const out: Array<ModelCaseResult | { name: string; mechanism: string; error: string }> = [];
    for (const c of file.cases) {
      try {
        const r = await fetchOk(weights[c.weights_file]);
        const tensors = c.weights_file.endsWith('.json')
          ? parseTensorJSON(await r.text(), c.weights_file)
          : parseSafetensors(new Uint8Array(await r.arrayBuffer()), c.weights_file);
        out.push(await runReferenceModelCase(c, tensors));
      } catch (e) {
        out.push({ name: String(c.name), mechanism: String(c.mechanism), error: (e as Error).message });
      }
    }
    return out;
  },
};

(globalThis as unknown as { __page: typeof api }).__page = api;
