/**
 * Training checkpoints on disk (Node): the model (model.json + weights.bin), the optimizer moments
 * (optimizer.bin) and the trainer state (trainer.json: step, data order, history). Written to a
 * temporary folder and renamed, so an interrupted save never leaves a half-written checkpoint.
 */
import { ValueError } from '../utils/errors.js';
import { CausalLM } from '../models/causal_lm.js';
import { fileSystemHandler } from '../io/file_handler.js';
import type { AdamWState } from './adamw.js';

export interface TrainerState {
  format: 'tfjs-gta-checkpoint-1';
  step: number;
  batcher: unknown;
  history: unknown[];
  evals: unknown[];
  optimizer: { step: number; sizes: number[] };
  extra?: Record<string, unknown>;
}

export async function saveCheckpoint(dir: string, lm: CausalLM, optimizer: AdamWState, state: Omit<TrainerState, 'format' | 'optimizer'>): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const tmp = `${dir.replace(/\/+$/, '')}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await lm.model.save(fileSystemHandler(path.join(tmp, 'model')));
  const sizes = optimizer.m.map((m) => m.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const packed = new Float32Array(2 * total);
  let o = 0;
  for (const m of optimizer.m) { packed.set(m, o); o += m.length; }
  for (const v of optimizer.v) { packed.set(v, o); o += v.length; }
  await fs.writeFile(path.join(tmp, 'optimizer.bin'), new Uint8Array(packed.buffer));
  const full: TrainerState = { format: 'tfjs-gta-checkpoint-1', ...state, optimizer: { step: optimizer.step, sizes } };
  await fs.writeFile(path.join(tmp, 'trainer.json'), JSON.stringify(full));
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
}

export interface LoadedCheckpoint {
  lm: CausalLM;
  optimizer: AdamWState;
  state: TrainerState;
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  let state: TrainerState;
  try {
    state = JSON.parse(await fs.readFile(path.join(dir, 'trainer.json'), 'utf8'));
  } catch {
    throw new ValueError(`checkpoint: ${dir} has no readable trainer.json.`);
  }
  if (state.format !== 'tfjs-gta-checkpoint-1') throw new ValueError(`checkpoint: ${dir} is not a tfjs-gta checkpoint.`);
  const lm = await CausalLM.load(fileSystemHandler(path.join(dir, 'model')));
  const raw = await fs.readFile(path.join(dir, 'optimizer.bin'));
  const packed = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const total = state.optimizer.sizes.reduce((a, b) => a + b, 0);
  if (packed.length !== 2 * total) throw new ValueError(`checkpoint: optimizer.bin has ${packed.length} values, expected ${2 * total}.`);
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  let o = 0;
  for (const s of state.optimizer.sizes) { m.push(packed.slice(o, o + s)); o += s; }
  for (const s of state.optimizer.sizes) { v.push(packed.slice(o, o + s)); o += s; }
  return { lm, optimizer: { step: state.optimizer.step, m, v }, state };
}
