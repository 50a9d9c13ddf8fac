/**
 * Training checkpoint folders with damaged files: trainer.json missing, not JSON, of another format, with
 * a bad step, history, optimizer or batcher state; optimizer.bin missing, truncated, too long, a folder,
 * a FIFO, holding NaN; the model folder missing or cut short; folders that are not checkpoints. Each
 * case loads (or resumes training from) a damaged copy of one real checkpoint of a tiny model.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Case } from '../classify.js';
import { EditableJSON, once, tempDir } from './common.js';
import { CausalLM } from '../../../src/models/causal_lm.js';
import { directoryCheckpoint, loadCheckpoint } from '../../../src/train/checkpoint.js';
import { resumeTraining, train } from '../../../src/train/trainer.js';

const CATEGORY = 'checkpoint folders';
const IDS = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % 11);
const RUN = { train: IDS, validation: IDS, batchSize: 2, sequenceLength: 4, evalBatches: 1, learningRate: 1e-3 };

/** One real checkpoint after 1 training step of a tiny GQA model. */
const fixture = once(async () => {
  const root = tempDir('checkpoints');
  const lm = CausalLM.create({
    vocabSize: 11,
    hiddenSize: 8,
    numLayers: 1,
    intermediateSize: 16,
    maxSequenceLength: 8,
    attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 },
    seed: 1,
  });
  try {
    await train({ ...RUN, model: lm, steps: 1, checkpoint: await directoryCheckpoint(join(root, 'ck')) });
  } finally {
    lm.dispose();
  }
  return root;
});

let copies = 0;

/** A fresh copy of the checkpoint, changed by `damage`; returns its path. */
async function damaged(damage: (dir: string) => void): Promise<string> {
  const root = await fixture();
  const dir = join(root, `ck-${++copies}`);
  cpSync(join(root, 'ck'), dir, { recursive: true });
  damage(dir);
  return dir;
}

/** Rewrites trainer.json of `dir` after `edit` changes it. */
function trainer(edit: (j: EditableJSON) => void): (dir: string) => void {
  return (dir) => {
    const file = join(dir, 'trainer.json');
    const j = JSON.parse(readFileSync(file, 'utf8'));
    edit(j);
    writeFileSync(file, JSON.stringify(j));
  };
}

/** Loads the damaged checkpoint; returns its step and optimizer step (the model is disposed). */
async function load(dir: string): Promise<number[]> {
  const ck = await loadCheckpoint(dir);
  ck.lm.dispose();
  return [ck.state.step, ck.optimizer.step];
}

/** Resumes training from the damaged checkpoint for one more step; returns the final validation loss. */
async function resume(dir: string): Promise<number> {
  const { model, result } = await resumeTraining(await directoryCheckpoint(dir), { ...RUN, steps: 2 });
  model.dispose();
  return result.finalValidationLoss;
}

function loadCase(name: string, damage: (dir: string) => void, mentions?: RegExp, isolate = false): Case {
  return {
    category: CATEGORY,
    name: `load: ${name}`,
    run: async () => load(await damaged(damage)),
    expect: mentions ? 'error' : 'ok',
    ...(mentions ? { mentions } : {}),
    isolate,
  };
}

function resumeCase(name: string, damage: (dir: string) => void, mentions?: RegExp): Case {
  return {
    category: CATEGORY,
    name: `resume: ${name}`,
    run: async () => resume(await damaged(damage)),
    expect: mentions ? 'error' : 'ok',
    ...(mentions ? { mentions } : {}),
  };
}

const optimizerBin = (dir: string) => join(dir, 'optimizer.bin');

/** Every checkpoint-folder case. */
export function checkpointCases(): Case[] {
  return [
    loadCase('the checkpoint as saved', () => {}),
    loadCase('trainer.json missing', (d) => rmSync(join(d, 'trainer.json')), /trainer\.json is missing/),
    loadCase('trainer.json not JSON', (d) => writeFileSync(join(d, 'trainer.json'), '{"step": 1,'), /trainer\.json is not valid JSON/),
    loadCase('trainer.json an array', (d) => writeFileSync(join(d, 'trainer.json'), '[]'), /not a tfjs-gta checkpoint/),
    loadCase(
      'trainer.json of another format',
      trainer((j) => {
        j.format = 'other-1';
      }),
      /not a tfjs-gta checkpoint/,
    ),
    loadCase(
      'trainer.json a FIFO',
      (d) => {
        rmSync(join(d, 'trainer.json'));
        execFileSync('mkfifo', [join(d, 'trainer.json')]);
      },
      /trainer\.json/,
      true,
    ),
    loadCase(
      'step -1',
      trainer((j) => {
        j.step = -1;
      }),
      /step must be a non-negative integer/,
    ),
    loadCase(
      'step 1.5',
      trainer((j) => {
        j.step = 1.5;
      }),
      /step must be a non-negative integer/,
    ),
    loadCase(
      'step "1"',
      trainer((j) => {
        j.step = '1';
      }),
      /step must be a non-negative integer/,
    ),
    loadCase(
      'step null',
      trainer((j) => {
        j.step = null;
      }),
      /step must be a non-negative integer/,
    ),
    loadCase(
      'step 1e21',
      trainer((j) => {
        j.step = 1e21;
      }),
      /step/,
    ),
    loadCase(
      'history not an array',
      trainer((j) => {
        j.history = {};
      }),
      /history and evals must be arrays/,
    ),
    loadCase(
      'evals missing',
      trainer((j) => {
        delete j.evals;
      }),
      /history and evals must be arrays/,
    ),
    loadCase(
      'optimizer missing',
      trainer((j) => {
        delete j.optimizer;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer step -1',
      trainer((j) => {
        j.optimizer.step = -1;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer step 1.5',
      trainer((j) => {
        j.optimizer.step = 1.5;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer sizes not an array',
      trainer((j) => {
        j.optimizer.sizes = 5;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer sizes holding -1',
      trainer((j) => {
        j.optimizer.sizes[0] = -1;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer sizes holding 1.5',
      trainer((j) => {
        j.optimizer.sizes[0] = 1.5;
      }),
      /optimizer must be/,
    ),
    loadCase(
      'optimizer sizes one short',
      trainer((j) => {
        j.optimizer.sizes.pop();
      }),
      /optimizer\.bin has \d+ bytes, expected/,
    ),
    loadCase(
      'optimizer sizes [2^40]',
      trainer((j) => {
        j.optimizer.sizes = [2 ** 40];
      }),
      /optimizer\.bin has \d+ bytes, expected/,
    ),
    loadCase('optimizer.bin missing', (d) => rmSync(optimizerBin(d)), /optimizer\.bin is missing/),
    loadCase(
      'optimizer.bin 4 bytes short',
      (d) => truncateSync(optimizerBin(d), readFileSync(optimizerBin(d)).length - 4),
      /optimizer\.bin has \d+ bytes, expected/,
    ),
    loadCase(
      'optimizer.bin 8 bytes too long',
      (d) => writeFileSync(optimizerBin(d), Buffer.concat([readFileSync(optimizerBin(d)), Buffer.alloc(8)])),
      /optimizer\.bin has \d+ bytes, expected/,
    ),
    loadCase(
      'optimizer.bin a folder',
      (d) => {
        rmSync(optimizerBin(d));
        mkdirSync(optimizerBin(d));
      },
      /optimizer\.bin/,
    ),
    loadCase(
      'optimizer.bin a FIFO',
      (d) => {
        rmSync(optimizerBin(d));
        execFileSync('mkfifo', [optimizerBin(d)]);
      },
      /optimizer\.bin/,
      true,
    ),
    loadCase('model folder missing', (d) => rmSync(join(d, 'model'), { recursive: true }), /model\.json/),
    loadCase('model weights cut short', (d) => truncateSync(join(d, 'model', 'weights.bin'), 100), /weights\.bin/),
    loadCase('without the marker file (reading is allowed)', (d) => rmSync(join(d, '.tfjs-gta'))),
    loadCase(
      'a regular file instead of a folder',
      (d) => {
        rmSync(d, { recursive: true });
        writeFileSync(d, 'not a checkpoint');
      },
      /checkpoint/,
    ),
    {
      category: CATEGORY,
      name: 'store: directoryCheckpoint on a folder of user files',
      expect: 'error',
      mentions: /refusing to replace it/,
      run: async () => {
        const dir = join(await fixture(), `user-${++copies}`);
        mkdirSync(dir);
        writeFileSync(join(dir, 'photo.jpg'), 'jpg');
        return directoryCheckpoint(dir);
      },
    },
    resumeCase('the checkpoint as saved', () => {}),
    resumeCase(
      'optimizer sizes swapped (right total, wrong variables)',
      trainer((j) => {
        const s = j.optimizer.sizes as number[];
        const k = s.findIndex((x) => x !== s[0]);
        [s[0], s[k]] = [s[k], s[0]];
      }),
      /moment|values/,
    ),
    resumeCase(
      'optimizer.bin holding NaN',
      (d) => {
        const bytes = readFileSync(optimizerBin(d));
        new DataView(bytes.buffer, bytes.byteOffset).setFloat32(0, NaN, true);
        writeFileSync(optimizerBin(d), bytes);
      },
      /optimizer|NaN|finite/,
    ),
    resumeCase(
      'batcher of another kind',
      trainer((j) => {
        j.batcher.kind = 'xorshift';
      }),
      /mulberry32/,
    ),
    resumeCase(
      'batcher with another batch size',
      trainer((j) => {
        j.batcher.batchSize = 3;
      }),
      /batchSize/,
    ),
    resumeCase(
      'batcher rng -1',
      trainer((j) => {
        j.batcher.rng = -1;
      }),
      /state/,
    ),
    resumeCase(
      'batcher missing',
      trainer((j) => {
        delete j.batcher;
      }),
      /batcher|state/,
    ),
    resumeCase(
      "step beyond the run's steps",
      trainer((j) => {
        j.step = 5;
      }),
      /step/,
    ),
  ];
}
