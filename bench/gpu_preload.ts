/**
 * Imported first by bench/gpu_entry.ts: provides `navigator.gpu` from Dawn (DAWN_NODE, else the `webgpu`
 * package) before '@tensorflow/tfjs-backend-webgpu' is evaluated, which registers its backend only if
 * `navigator.gpu` exists then. Without an adapter it keeps the reason; the tools report webgpu unavailable.
 */
import { installWebGPU } from '../src/backend.js';

/** null when WebGPU is ready, else why not (printed by the entry). */
export let webgpuProblem: string | null = null;
try {
  await installWebGPU();
} catch (e) {
  webgpuProblem = (e as Error).message;
}
