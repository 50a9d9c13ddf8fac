/** Flags of the active backend that change its speed (Node and browser). */
import * as tf from '@tensorflow/tfjs';

/** Flags of the active backend that change its speed, plus the native library for `tensorflow`. */
export async function backendFlags(backend: string): Promise<Record<string, unknown>> {
  const env = tf.env();
  const flags: Record<string, unknown> = { backend: tf.getBackend() };
  const read = async (name: string) => {
    try {
      flags[name] = await env.getAsync(name);
    } catch {
      /* flag not registered for this build */
    }
  };
  if (backend === 'wasm') {
    await read('WASM_HAS_SIMD_SUPPORT');
    await read('WASM_HAS_MULTITHREAD_SUPPORT');
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      flags.wasmThreads = (wasm as unknown as { getThreadsCount?: () => number }).getThreadsCount?.() ?? null;
    } catch {
      flags.wasmThreads = null;
    }
  }
  if (backend === 'tensorflow') {
    const b = tf.backend() as unknown as { binding?: { TF_Version?: string } };
    flags.libtensorflow = b.binding?.TF_Version ?? null;
    flags.TF_ENABLE_ONEDNN_OPTS = globalThis.process?.env?.TF_ENABLE_ONEDNN_OPTS ?? null;
  }
  if (backend === 'webgl') {
    await read('WEBGL_VERSION');
    await read('WEBGL_RENDER_FLOAT32_ENABLED');
    await read('WEBGL_PACK');
    await read('WEBGL_USE_SHAPES_UNIFORMS');
  }
  if (backend === 'webgpu' || backend === 'webgpu-browser') {
    await read('WEBGPU_CPU_FORWARD');
    await read('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
    await read('WEBGPU_USE_LOW_POWER_GPU');
    const b = tf.backend() as unknown as {
      adapterInfo?: { vendor?: string; architecture?: string };
      supportTimestampQuery?: boolean;
      device?: { limits?: { maxStorageBuffersPerShaderStage?: number; maxComputeInvocationsPerWorkgroup?: number } };
    };
    flags.adapter = [b.adapterInfo?.vendor, b.adapterInfo?.architecture].filter(Boolean).join(' ') || null;
    flags.timestampQuery = b.supportTimestampQuery ?? null;
    flags.maxStorageBuffersPerShaderStage = b.device?.limits?.maxStorageBuffersPerShaderStage ?? null;
  }
  flags.float32Epsilon = tf.backend().epsilon();
  return flags;
}
