/**
 * Reads a file from `test/fixtures/` in Node and in the browser suite.
 *
 * Node: reads it from disk, from the directory in `TFJS_GTA_FIXTURES` when set (bundled specs, whose
 * `import.meta.url` is the bundle's, set it: bench/gpu_specs.ts). Browser (scripts/browser-tests.mjs): fetches it from the test server,
 * which serves `test/fixtures/` under `/fixtures/` (override the base with `globalThis.__FIXTURES_URL__`).
 */
import { IS_NODE } from '../../src/backend.js';

/** The text of `test/fixtures/<name>`. */
export async function readFixtureText(name: string): Promise<string> {
  return new TextDecoder().decode(await readFixtureBytes(name));
}

/** The bytes of `test/fixtures/<name>` (e.g. a safetensors file). */
export async function readFixtureBytes(name: string): Promise<Uint8Array> {
  if (IS_NODE) {
    // node:fs is marked external in the browser bundle; this branch never runs there.
    const { readFile } = await import('node:fs/promises');
    const dir = process.env.TFJS_GTA_FIXTURES;
    const data = await readFile(dir ? `${dir}/${name}` : new URL(`../fixtures/${name}`, import.meta.url));
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const base = (globalThis as { __FIXTURES_URL__?: string }).__FIXTURES_URL__ ?? '/fixtures/';
  const url = new URL(name, new URL(base, globalThis.location.href));
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fixture ${name}: HTTP ${response.status} from ${url}`);
  return new Uint8Array(await response.arrayBuffer());
}
