/**
 * `file://` save/load in Node without tfjs-node: `model.json` plus one `weights.bin`, the same layout
 * tfjs-node writes (so either can read the other's files). Registered on import of the package; when
 * tfjs-node is loaded its own handler serves `file://` and this one steps aside (`CausalLM.load` uses
 * this handler for `file://` URLs either way).
 *
 * Loading treats `model.json` as untrusted: every weight path must name a regular file inside the
 * model's folder (no absolute paths, no `..` escapes, no symlinks leading out, no FIFOs or devices), and
 * each weight group's files must hold exactly the bytes its weight specs need (element count x dtype
 * size), checked before anything is read. `model.json` itself is read only if it is a regular file of at
 * most `MAX_MODEL_JSON_BYTES`.
 */
import * as tf from '@tensorflow/tfjs';
import { IS_NODE } from '../backend.js';
import { ValueError } from '../utils/errors.js';

const SCHEME = 'file://';

/** Largest `model.json` the loader reads (64 MiB); topologies are far smaller, weights live in other files. */
export const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;

type Fs = typeof import('node:fs/promises');
type PathMod = typeof import('node:path');
type FsConstants = typeof import('node:fs').constants;
type WeightGroup = tf.io.WeightsManifestConfig[number];

/**
 * Node's fs/promises, path and fs constants. The specifiers are variables so that bundlers for the
 * browser (`CausalLM.load` reaches this module through a dynamic import) leave them alone.
 */
async function nodeModules(): Promise<{ fs: Fs; path: PathMod; constants: FsConstants }> {
  if (!IS_NODE) throw new ValueError('file handler: file:// URLs are served only in Node.');
  const names = ['node:fs/promises', 'node:path', 'node:fs'];
  const [fs, path, fsSync] = await Promise.all(names.map((name) => import(/* @vite-ignore */ name)));
  return { fs: fs as Fs, path: path as PathMod, constants: (fsSync as { constants: FsConstants }).constants };
}

function stripScheme(url: string): string {
  return url.startsWith(SCHEME) ? url.slice(SCHEME.length) : url;
}

const OWNER = 'file handler';

/** Bytes per element of weight dtypes (quantized weights use their quantization dtype). */
const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
});

/** Bytes one weight spec occupies in the weight files, or a ValueError for a malformed spec. */
export function weightSpecBytes(spec: tf.io.WeightsManifestEntry): number {
  const what = `${OWNER}: weight ${JSON.stringify(spec?.name)}`;
  if (spec === null || typeof spec !== 'object' || typeof spec.name !== 'string') {
    throw new ValueError(`${OWNER}: each weight spec must be an object with a string name, got ${JSON.stringify(spec)}.`);
  }
  if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ValueError(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(spec.shape)}.`);
  }
  const stored = spec.quantization?.dtype ?? spec.dtype;
  const width = Object.hasOwn(DTYPE_BYTES, stored) ? DTYPE_BYTES[stored] : undefined;
  if (width === undefined) {
    throw new ValueError(`${what}: dtype ${JSON.stringify(stored)} is not supported (${Object.keys(DTYPE_BYTES).join(', ')}).`);
  }
  const bytes = spec.shape.reduce((a, b) => a * b, 1) * width;
  if (!Number.isSafeInteger(bytes)) throw new ValueError(`${what}: shape [${spec.shape}] is too large.`);
  return bytes;
}

/** Checks the parsed `model.json`: an object with a topology and a well-formed weights manifest. */
function checkModelJSON(parsed: unknown, jsonPath: string): tf.io.ModelJSON {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ValueError(`${OWNER}: ${jsonPath} must hold a JSON object.`);
  }
  const json = parsed as tf.io.ModelJSON;
  if (json.modelTopology === null || typeof json.modelTopology !== 'object') {
    throw new ValueError(`${OWNER}: ${jsonPath} has no modelTopology object.`);
  }
  const manifest = json.weightsManifest as unknown;
  if (manifest === undefined) return json;
  const groupOk = (g: unknown) =>
    g !== null && typeof g === 'object' && Array.isArray((g as WeightGroup).paths) && Array.isArray((g as WeightGroup).weights);
  if (!Array.isArray(manifest) || !manifest.every(groupOk)) {
    throw new ValueError(`${OWNER}: ${jsonPath}: weightsManifest must be an array of {paths: string[], weights: [...]}.`);
  }
  return json;
}

/** Whether `child` (an absolute, resolved path) lies strictly inside `folder`. */
function isInside(path: PathMod, folder: string, child: string): boolean {
  const rel = path.relative(folder, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/**
 * The real path of weight file `p` of the model in `folder` (itself a real path). Rejects absolute
 * paths, paths that leave the folder, and symlinks whose target lies outside it.
 */
async function confinedPath(fs: Fs, path: PathMod, folder: string, p: unknown): Promise<string> {
  if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) {
    throw new ValueError(`${OWNER}: weight paths must be non-empty strings, got ${JSON.stringify(p)}.`);
  }
  if (path.posix.isAbsolute(p) || path.win32.isAbsolute(p)) {
    throw new ValueError(`${OWNER}: weight path ${JSON.stringify(p)} is absolute; paths must be relative to the model folder.`);
  }
  if (!isInside(path, folder, path.resolve(folder, p))) {
    throw new ValueError(`${OWNER}: weight path ${JSON.stringify(p)} leaves the model folder ${folder}.`);
  }
  let real: string;
  try {
    real = await fs.realpath(path.resolve(folder, p));
  } catch {
    throw new ValueError(`${OWNER}: cannot read weight file ${JSON.stringify(p)} in ${folder}.`);
  }
  if (!isInside(path, folder, real)) {
    throw new ValueError(`${OWNER}: weight path ${JSON.stringify(p)} is a link to ${real}, outside the model folder ${folder}.`);
  }
  return real;
}

/** Size of the regular file at `file`; a ValueError for FIFOs, devices, folders and the like. */
async function regularFileSize(fs: Fs, file: string, what: string): Promise<number> {
  let stat;
  try {
    stat = await fs.lstat(file);
  } catch {
    throw new ValueError(`${OWNER}: cannot read ${what}.`);
  }
  if (!stat.isFile()) throw new ValueError(`${OWNER}: ${what} is not a regular file.`);
  return stat.size;
}

/**
 * Reads exactly `bytes` bytes of the regular file `file`. Opened without following a final symlink and
 * without blocking (a FIFO swapped in after the checks cannot hang the read); re-checked on the handle.
 */
async function readExactly(fs: Fs, file: string, bytes: number, what: string): Promise<Uint8Array> {
  const c = (await nodeModules()).constants;
  const handle = await fs.open(file, c.O_RDONLY | (c.O_NONBLOCK ?? 0) | (c.O_NOFOLLOW ?? 0)).catch(() => {
    throw new ValueError(`${OWNER}: cannot open ${what}.`);
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new ValueError(`${OWNER}: ${what} is not a regular file.`);
    if (stat.size !== bytes) throw new ValueError(`${OWNER}: ${what} changed size while loading (${stat.size} bytes, expected ${bytes}).`);
    const out = new Uint8Array(bytes);
    for (let at = 0; at < bytes;) {
      const { bytesRead } = await handle.read(out, at, bytes - at, at);
      if (bytesRead === 0) throw new ValueError(`${OWNER}: ${what} ended after ${at} of ${bytes} bytes.`);
      at += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Reads `model.json` (a regular file of at most MAX_MODEL_JSON_BYTES) and checks its structure. */
async function readModelJSON(fs: Fs, jsonPath: string): Promise<tf.io.ModelJSON> {
  let real: string;
  try {
    real = await fs.realpath(jsonPath);
  } catch {
    throw new ValueError(`${OWNER}: cannot read ${jsonPath}.`);
  }
  const size = await regularFileSize(fs, real, jsonPath);
  if (size > MAX_MODEL_JSON_BYTES) {
    throw new ValueError(`${OWNER}: ${jsonPath} has ${size} bytes, more than MAX_MODEL_JSON_BYTES (${MAX_MODEL_JSON_BYTES}).`);
  }
  const text = new TextDecoder().decode(await readExactly(fs, real, size, jsonPath));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValueError(`${OWNER}: ${jsonPath} is not valid JSON (${(e as Error).message}).`);
  }
  return checkModelJSON(parsed, jsonPath);
}

/** Reads one weight group: its files must be regular files in `folder` whose sizes add up to what the specs need. */
async function readGroup(fs: Fs, path: PathMod, folder: string, group: WeightGroup): Promise<ArrayBuffer[]> {
  const expected = group.weights.reduce((sum, spec) => sum + weightSpecBytes(spec), 0);
  const files: Array<{ real: string; size: number; what: string }> = [];
  for (const p of group.paths) {
    const real = await confinedPath(fs, path, folder, p);
    const what = `weight file ${JSON.stringify(p)}`;
    files.push({ real, size: await regularFileSize(fs, real, what), what });
  }
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total !== expected) {
    throw new ValueError(
      `${OWNER}: the weight files ${JSON.stringify(group.paths)} hold ${total} bytes but their ` +
        `${group.weights.length} weight specs need ${expected}.`,
    );
  }
  const buffers: ArrayBuffer[] = [];
  for (const f of files) buffers.push((await readExactly(fs, f.real, f.size, f.what)).buffer as ArrayBuffer);
  return buffers;
}

/** Loads `model.json` and its weights from `target` (a folder or a model.json path) with the checks above. */
async function loadModelFolder(target: string): Promise<tf.io.ModelArtifacts> {
  const { fs, path } = await nodeModules();
  const jsonPath = target.endsWith('.json') ? target : path.join(target, 'model.json');
  const modelJSON = await readModelJSON(fs, jsonPath);
  let folder: string;
  try {
    folder = await fs.realpath(path.dirname(path.resolve(jsonPath)));
  } catch {
    throw new ValueError(`${OWNER}: cannot resolve the folder of ${jsonPath}.`);
  }
  return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      buffers.push(...(await readGroup(fs, path, folder, group)));
    }
    return [specs, tf.io.concatenateArrayBuffers(buffers)];
  });
}

/**
 * A handler that saves to / loads from `dir/model.json` and `dir/weights.bin` (or a model.json path).
 * Loading confines weight paths to the model's folder and checks sizes first (see the module comment).
 */
export function fileSystemHandler(location: string): tf.io.IOHandler {
  const target = stripScheme(location);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new ValueError('file handler: binary model topologies are not supported.');
      }
      const { fs, path } = await nodeModules();
      const dir = target.endsWith('.json') ? path.dirname(target) : target;
      const jsonPath = target.endsWith('.json') ? target : path.join(dir, 'model.json');
      await fs.mkdir(dir, { recursive: true });
      const weights = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJSON: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      // Write to temporary names, then rename, so a crash never leaves a half-written model.
      const tmpJson = `${jsonPath}.tmp-${process.pid}`;
      const binPath = path.join(dir, 'weights.bin');
      const tmpBin = `${binPath}.tmp-${process.pid}`;
      await fs.writeFile(tmpBin, new Uint8Array(weights));
      await fs.writeFile(tmpJson, JSON.stringify(modelJSON));
      await fs.rename(tmpBin, binPath);
      await fs.rename(tmpJson, jsonPath);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weights.byteLength,
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
        },
      };
    },
    load: () => loadModelFolder(target),
  };
}

let registered = false;

/** Registers the `file://` routers (Node only; idempotent). They defer to tfjs-node when it is loaded. */
export function registerFileSystemRouter(): void {
  if (registered || !IS_NODE) return;
  registered = true;
  const router = (url: string | string[]) => {
    const u = Array.isArray(url) ? url[0] : url;
    if (typeof u !== 'string' || !u.startsWith(SCHEME)) return null;
    if (tf.findBackendFactory('tensorflow')) return null; // tfjs-node serves file:// itself
    return fileSystemHandler(u);
  };
  // tfjs's IORouter type says IOHandler, but routers return null for URLs they do not serve.
  tf.io.registerSaveRouter(router as (url: string | string[]) => tf.io.IOHandler);
  tf.io.registerLoadRouter(router as (url: string | string[]) => tf.io.IOHandler);
}
