/**
 * `file://` save/load in Node without tfjs-node: `model.json` plus one `weights.bin`, the same layout
 * tfjs-node writes (so either can read the other's files). Registered on import of the package; when
 * tfjs-node is loaded its own handler serves `file://` and this one steps aside.
 */
import * as tf from '@tensorflow/tfjs';
import { IS_NODE } from '../backend.js';
import { ValueError } from '../utils/errors.js';

const SCHEME = 'file://';

type Fs = typeof import('node:fs/promises');
type PathMod = typeof import('node:path');

async function nodeModules(): Promise<{ fs: Fs; path: PathMod }> {
  const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
  return { fs, path };
}

function stripScheme(url: string): string {
  return url.startsWith(SCHEME) ? url.slice(SCHEME.length) : url;
}

/** A handler that saves to / loads from `dir/model.json` and `dir/weights.bin` (or a model.json path). */
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
      const weights = artifacts.weightData === undefined
        ? new ArrayBuffer(0)
        : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
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
          dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength,
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
        },
      };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const { fs, path } = await nodeModules();
      const jsonPath = target.endsWith('.json') ? target : path.join(target, 'model.json');
      let text: string;
      try {
        text = await fs.readFile(jsonPath, 'utf8');
      } catch {
        throw new ValueError(`file handler: cannot read ${jsonPath}.`);
      }
      const modelJSON = JSON.parse(text) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const data = await fs.readFile(path.join(path.dirname(jsonPath), p));
            buffers.push(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
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
