/**
 * Training checkpoints in a folder (Node): the model (model/model.json + weights.bin), the optimizer
 * moments (optimizer.bin) and the trainer state (trainer.json: step, data order, history, and the
 * caller's `extra`, such as the tokenizer). Everything is written to a temporary folder and swapped in
 * (`writeOwnedDir`), so a kill at any moment leaves a checkpoint that loads and resumes exactly, and a
 * folder that tfjs-gta did not write is never replaced.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { fileSystemHandler } from '../io/file_handler.js';
import { SwapHooks, checkWritableTarget, readRegularFile, recoverOwnedDir, writeOwnedDir } from '../io/owned_dir.js';
import type { CheckpointStore, TrainerCheckpointState, TrainingCheckpoint } from './trainer.js';

const FORMAT = 'tfjs-gta-checkpoint-1';

interface TrainerJSON extends TrainerCheckpointState {
  format: typeof FORMAT;
  optimizer: { step: number; sizes: number[] };
}

/** Writes `checkpoint` as a folder at `dir` (see the module comment). */
export async function saveCheckpoint(dir: string, checkpoint: TrainingCheckpoint, hooks?: SwapHooks): Promise<void> {
  const { lm, optimizer, state } = checkpoint;
  await writeOwnedDir(
    dir,
    'checkpoint',
    'checkpoint',
    async (tmp) => {
      await lm.model.save(fileSystemHandler(path.join(tmp, 'model')));
      const sizes = optimizer.m.map((m) => m.length);
      const total = sizes.reduce((a, b) => a + b, 0);
      const packed = new Float32Array(2 * total);
      let o = 0;
      for (const m of optimizer.m) {
        packed.set(m, o);
        o += m.length;
      }
      for (const v of optimizer.v) {
        packed.set(v, o);
        o += v.length;
      }
      await fs.writeFile(path.join(tmp, 'optimizer.bin'), new Uint8Array(packed.buffer));
      const full: TrainerJSON = { format: FORMAT, ...state, optimizer: { step: optimizer.step, sizes } };
      await fs.writeFile(path.join(tmp, 'trainer.json'), JSON.stringify(full));
    },
    hooks,
  );
}

function checkState(dir: string, state: TrainerJSON): void {
  const bad = (rule: string) => new ValueError(`checkpoint: ${dir}/trainer.json is damaged: ${rule}.`);
  if (state === null || typeof state !== 'object' || state.format !== FORMAT)
    throw new ValueError(`checkpoint: ${dir} is not a tfjs-gta checkpoint.`);
  if (!Number.isSafeInteger(state.step) || state.step < 0)
    throw bad(`step must be a non-negative integer, got ${JSON.stringify(state.step)}`);
  if (!Array.isArray(state.history) || !Array.isArray(state.evals)) throw bad('history and evals must be arrays');
  const opt = state.optimizer;
  if (
    !opt ||
    !Number.isInteger(opt.step) ||
    opt.step < 0 ||
    !Array.isArray(opt.sizes) ||
    !opt.sizes.every((s) => Number.isInteger(s) && s >= 0)
  ) {
    throw bad('optimizer must be {step, sizes} with non-negative integers');
  }
}

/**
 * Reads the checkpoint at `dir`. When a save was killed between its two renames, the previous
 * checkpoint that it had moved aside is read instead.
 */
export async function loadCheckpoint(dir: string): Promise<TrainingCheckpoint> {
  const found = await recoverOwnedDir(dir, 'checkpoint');
  const from = found ?? path.resolve(dir);
  let state: TrainerJSON;
  const text = (await readRegularFile(path.join(from, 'trainer.json'), 'checkpoint')).toString('utf8');
  try {
    state = JSON.parse(text);
  } catch {
    throw new ValueError(`checkpoint: ${dir}/trainer.json is not valid JSON.`);
  }
  checkState(dir, state);
  const raw = await readRegularFile(path.join(from, 'optimizer.bin'), 'checkpoint');
  const total = state.optimizer.sizes.reduce((a, b) => a + b, 0);
  if (raw.byteLength !== 8 * total) {
    throw new ValueError(`checkpoint: optimizer.bin has ${raw.byteLength} bytes, expected ${8 * total}.`);
  }
  const packed = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  if (!packed.every(Number.isFinite))
    throw new ValueError(`checkpoint: ${dir}/optimizer.bin holds non-finite values; the checkpoint is damaged.`);
  const lm = await CausalLM.load(fileSystemHandler(path.join(from, 'model')));
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  let o = 0;
  for (const s of state.optimizer.sizes) {
    m.push(packed.slice(o, o + s));
    o += s;
  }
  for (const s of state.optimizer.sizes) {
    v.push(packed.slice(o, o + s));
    o += s;
  }
  const { format: _format, optimizer, ...rest } = state;
  return { lm, optimizer: { step: optimizer.step, m, v }, state: rest };
}

/**
 * A `CheckpointStore` over the folder `dir`, for `train({checkpoint})` and `resumeTraining`. Creating it
 * checks at once that `dir` may be written (missing, empty, or a tfjs-gta checkpoint), so a run fails
 * before training rather than at its first save.
 */
export async function directoryCheckpoint(dir: string): Promise<CheckpointStore> {
  await checkWritableTarget(dir, 'checkpoint', 'checkpoint');
  return {
    location: path.resolve(dir),
    save: (checkpoint) => saveCheckpoint(dir, checkpoint),
    load: () => loadCheckpoint(dir),
  };
}
