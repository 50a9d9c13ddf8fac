/**
 * Hugging Face checkpoint folders in Node: `saveHFCheckpoint` writes `config.json` and
 * `model.safetensors` (the layouts of `exportHF`), and `loadHFCheckpoint` reads such a folder back
 * into a `CausalLM`. Writing follows the rules of every folder this package writes (`writeOwnedDir`):
 * only into a missing or empty folder or an earlier export, swapped in atomically.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { ExportHFOptions, exportHF } from './hf_export.js';
import { serializeSafetensors } from './safetensors_write.js';
import { parseSafetensors } from './safetensors.js';
import { causalLMFromHF } from './hf_checkpoint.js';
import { readRegularFile, writeOwnedDir } from './owned_dir.js';

/** Extra files an export may carry beside the checkpoint (e.g. our tokenizer, which HF tokenizers cannot describe). */
export interface SaveHFOptions extends ExportHFOptions {
  extraFiles?: Record<string, string>;
}

/** Writes `lm` as a Hugging Face checkpoint folder `dir` (config.json, model.safetensors); returns the paths. */
export async function saveHFCheckpoint(lm: CausalLM, dir: string, options: SaveHFOptions = {}): Promise<string[]> {
  const { extraFiles = {}, ...exportOptions } = options;
  const { config, tensors } = exportHF(lm, exportOptions);
  const bytes = serializeSafetensors(tensors);
  const names = ['config.json', 'model.safetensors', ...Object.keys(extraFiles)];
  for (const name of Object.keys(extraFiles)) {
    if (!/^[\w.-]+$/.test(name) || name === 'config.json' || name === 'model.safetensors') {
      throw new ValueError(
        `saveHFCheckpoint: extraFiles name ${JSON.stringify(name)} must be a plain file name other than config.json and model.safetensors.`,
      );
    }
  }
  await writeOwnedDir(dir, 'hf-checkpoint', 'saveHFCheckpoint', async (tmp) => {
    await fs.writeFile(path.join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    await fs.writeFile(path.join(tmp, 'model.safetensors'), bytes);
    for (const [name, text] of Object.entries(extraFiles)) await fs.writeFile(path.join(tmp, name), text);
  });
  return names.map((n) => path.join(path.resolve(dir), n));
}

/** Reads a Hugging Face checkpoint folder (config.json and model.safetensors) into a `CausalLM`. */
export async function loadHFCheckpoint(dir: string): Promise<CausalLM> {
  const read = (name: string) => readRegularFile(path.join(dir, name), 'loadHFCheckpoint');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse((await read('config.json')).toString('utf8'));
  } catch (e) {
    if (e instanceof ValueError) throw e;
    throw new ValueError(`loadHFCheckpoint: ${dir}/config.json is not valid JSON.`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ValueError(`loadHFCheckpoint: ${dir}/config.json must hold a JSON object.`);
  }
  const bytes = await read('model.safetensors');
  const tensors = parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), `${dir}/model.safetensors`);
  return causalLMFromHF(config, tensors);
}
