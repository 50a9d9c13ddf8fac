/**
 * The command line given bad flag values, unknown options and damaged inputs (missing, FIFO and
 * non-UTF-8 texts, checkpoints and model folders without or with a broken tokenizer, folders it must not
 * replace). Each case spawns `node --import tsx/esm src/cli/main.ts ...` in a folder of fixtures; the runs
 * start together in `startCli` (two at a time) and each case waits for its own. Exit status 2 with
 * exactly one `error:` line on stderr and no stack trace is a clear error; any other failure is a crash;
 * a run killed at the time limit is a hang; exit 0 is `ok` (or `silent` where an error was expected).
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Case, HangError } from '../classify.js';
import { tempDir } from './common.js';
import { ValueError } from '../../../src/utils/errors.js';
import { CausalLM } from '../../../src/models/causal_lm.js';
import { CharTokenizer } from '../../../src/data/tokenizer.js';
import { Batcher } from '../../../src/data/dataset.js';
import { saveCheckpoint } from '../../../src/train/checkpoint.js';
import { fileSystemHandler } from '../../../src/io/file_handler.js';

const CATEGORY = 'CLI arguments';
const ROOT = new URL('../../../', import.meta.url).pathname;
/** Seconds a run may take before it is killed (a CLI start costs a few seconds on a busy machine). */
const RUN_LIMIT_S = 120;
const TEXT = 'Call me Ishmael. Some years ago - never mind how long precisely - having little money. '.repeat(40);

interface CliRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

interface CliCase {
  name: string;
  args: string[];
  /** What the one error line must say; undefined for runs that must succeed. */
  mentions?: RegExp;
}

const CASES: CliCase[] = [
  // Flag values the option parser refuses.
  { name: '--steps 0', args: ['--steps', '0'], mentions: /--steps/ },
  { name: '--steps 1.5', args: ['--steps', '1.5'], mentions: /--steps/ },
  { name: '--lr -1', args: ['--lr', '-1'], mentions: /--lr/ },
  { name: '--lr NaN', args: ['--lr', 'NaN'], mentions: /--lr/ },
  { name: '--batch-size abc', args: ['--batch-size', 'abc'], mentions: /--batch-size/ },
  { name: '--seed 1.5', args: ['--seed', '1.5'], mentions: /--seed/ },
  { name: '--max-memory 0', args: ['--max-memory', '0'], mentions: /--max-memory/ },
  { name: '--variants gta,gpt', args: ['--variants', 'gta,gpt'], mentions: /unknown variant "gpt"/ },
  { name: '--variants ","', args: ['--variants', ','], mentions: /variant/ },
  { name: '--tokenizer wordpiece', args: ['--tokenizer', 'wordpiece'], mentions: /--tokenizer|wordpiece/ },
  { name: '--preset huge', args: ['--preset', 'huge'], mentions: /--preset|huge/ },
  { name: 'an unknown option --bogus', args: ['--bogus'], mentions: /--bogus/ },
  { name: 'train --checkpoint-every 0', args: ['train', '--checkpoint-every', '0'], mentions: /--checkpoint-every/ },
  { name: 'generate --tokens -5', args: ['generate', '--tokens', '-5'], mentions: /--tokens/ },
  { name: 'generate --top-k 1.5', args: ['generate', '--top-k', '1.5'], mentions: /--top-k/ },
  { name: 'export without --hf', args: ['export'], mentions: /--hf/ },
  // Values the library refuses.
  { name: '--text missing.txt', args: ['--quick', '--text', 'missing.txt', '--backend', 'cpu', '--out', 'r1'], mentions: /missing\.txt/ },
  { name: '--text a FIFO', args: ['--quick', '--text', 'fifo', '--backend', 'cpu', '--out', 'r2'], mentions: /fifo/ },
  {
    name: '--text a Latin-1 file',
    args: ['--quick', '--text', 'latin1.txt', '--backend', 'cpu', '--out', 'r3'],
    mentions: /latin1\.txt.*UTF-8/,
  },
  { name: '--backend nonsense', args: ['--quick', '--text', 'text.txt', '--backend', 'nonsense', '--out', 'r4'], mentions: /nonsense/ },
  { name: '--quick with --preset small', args: ['--quick', '--preset', 'small', '--text', 'text.txt'], mentions: /--quick/ },
  {
    name: '--out a regular file',
    args: ['--quick', '--text', 'text.txt', '--out', 'notes.txt', '--backend', 'cpu'],
    mentions: /notes\.txt.*refusing/,
  },
  {
    name: '--batch-size 200000 with --max-memory 64',
    args: ['--quick', '--text', 'text.txt', '--batch-size', '200000', '--max-memory', '64', '--backend', 'cpu', '--out', 'r5'],
    mentions: /more than/,
  },
  {
    name: 'train --max-memory 1',
    args: ['train', '--quick', '--text', 'text.txt', '--max-memory', '1', '--checkpoint-dir', 'ck-mem', '--backend', 'cpu'],
    mentions: /--max-memory/,
  },
  {
    name: 'train --tokenizer bpe --bpe-vocab 100',
    args: [
      'train',
      '--quick',
      '--text',
      'text.txt',
      '--tokenizer',
      'bpe',
      '--bpe-vocab',
      '100',
      '--checkpoint-dir',
      'ck-bpe',
      '--backend',
      'cpu',
    ],
    mentions: /vocabSize/,
  },
  {
    name: 'train --resume from an empty folder',
    args: ['train', '--quick', '--text', 'text.txt', '--resume', '--checkpoint-dir', 'empty-dir', '--backend', 'cpu'],
    mentions: /empty-dir/,
  },
  {
    name: 'train --resume with another --variant',
    args: ['train', '--quick', '--text', 'text.txt', '--resume', '--checkpoint-dir', 'ck', '--variant', 'mla', '--backend', 'cpu'],
    mentions: /--variant mla differs/,
  },
  { name: 'generate from a missing checkpoint', args: ['generate', '--checkpoint', 'missing', '--backend', 'cpu'], mentions: /missing/ },
  { name: 'generate --prompt ""', args: ['generate', '--checkpoint', 'ck', '--prompt', '', '--backend', 'cpu'], mentions: /--prompt/ },
  {
    name: 'generate --temperature abc',
    args: ['generate', '--checkpoint', 'ck', '--tokens', '3', '--temperature', 'abc', '--backend', 'cpu'],
    mentions: /temperature/,
  },
  {
    name: 'generate --seed 1.5',
    args: ['generate', '--checkpoint', 'ck', '--tokens', '3', '--seed', '1.5', '--backend', 'cpu'],
    mentions: /seed/,
  },
  {
    name: 'generate --tokens 100000',
    args: ['generate', '--checkpoint', 'ck', '--tokens', '100000', '--backend', 'cpu'],
    mentions: /maxSequenceLength/,
  },
  {
    name: 'generate from a checkpoint whose tokenizer has a regular expression',
    args: ['generate', '--checkpoint', 'ck-bad-tokenizer', '--backend', 'cpu'],
    mentions: /pre-tokenizer/,
  },
  {
    name: 'generate --model without a tokenizer file',
    args: ['generate', '--model', 'model-no-tokenizer', '--backend', 'cpu'],
    mentions: /tfjs-gta-tokenizer\.json/,
  },
  {
    name: 'generate --model with a tokenizer file that is not JSON',
    args: ['generate', '--model', 'model-bad-tokenizer', '--backend', 'cpu'],
    mentions: /tfjs-gta-tokenizer\.json/,
  },
  {
    name: 'export into a folder of user files',
    args: ['export', '--checkpoint', 'ck', '--hf', 'photos', '--backend', 'cpu'],
    mentions: /refusing/,
  },
  {
    name: 'import from a missing folder',
    args: ['import', '--hf', 'missing', '--out', 'imported-1', '--backend', 'cpu'],
    mentions: /config\.json/,
  },
  {
    name: 'import a broken config.json',
    args: ['import', '--hf', 'hf-broken', '--out', 'imported-2', '--backend', 'cpu'],
    mentions: /config\.json/,
  },
  // Boundary-valid runs.
  { name: '--help', args: ['--help'] },
  { name: 'generate 3 tokens', args: ['generate', '--checkpoint', 'ck', '--tokens', '3', '--prompt', 'Call', '--backend', 'cpu'] },
  {
    name: 'generate with --top-k above the vocabulary',
    args: ['generate', '--checkpoint', 'ck', '--tokens', '3', '--top-k', '1000', '--temperature', '1', '--backend', 'cpu'],
  },
];

/** Writes the fixtures the cases name into a new folder; returns it. */
async function makeFixtures(): Promise<string> {
  const dir = tempDir('cli');
  writeFileSync(join(dir, 'text.txt'), TEXT);
  writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  mkdirSync(join(dir, 'empty-dir'));
  mkdirSync(join(dir, 'photos'));
  writeFileSync(join(dir, 'photos', 'a.jpg'), 'jpg');
  mkdirSync(join(dir, 'hf-broken'));
  writeFileSync(join(dir, 'hf-broken', 'config.json'), '{"hidden_size": 8,');
  writeFileSync(join(dir, 'hf-broken', 'model.safetensors'), 'garbage');
  const tokenizer = CharTokenizer.fromText(TEXT);
  const lm = CausalLM.create({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 8,
    numLayers: 1,
    intermediateSize: 16,
    maxSequenceLength: 64,
    attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1, useBias: false },
    seed: 1,
  });
  try {
    const ids = tokenizer.encode(TEXT);
    const zeros = lm.model.trainableWeights.map((w) => new Float32Array((w.shape as number[]).reduce((a, b) => a * b, 1)));
    const settings = { variant: 'gqa', preset: 'quick', seed: 0, tokenizer: 'char', bpeVocab: 1024, text: 'text.txt' };
    await saveCheckpoint(join(dir, 'ck'), {
      lm,
      optimizer: { step: 0, m: zeros, v: zeros.map((z) => z.slice()) },
      state: {
        step: 0,
        batcher: new Batcher(ids, { batchSize: 2, sequenceLength: 4 }).state(),
        history: [],
        evals: [],
        extra: { tokenizer: tokenizer.toJSON(), settings },
      },
    });
    await lm.save(fileSystemHandler(join(dir, 'model-no-tokenizer')));
  } finally {
    lm.dispose();
  }
  cpSync(join(dir, 'model-no-tokenizer'), join(dir, 'model-bad-tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'model-bad-tokenizer', 'tfjs-gta-tokenizer.json'), '{"kind": "char",');
  cpSync(join(dir, 'ck'), join(dir, 'ck-bad-tokenizer'), { recursive: true });
  const trainer = join(dir, 'ck-bad-tokenizer', 'trainer.json');
  const state = JSON.parse(readFileSync(trainer, 'utf8'));
  state.extra.tokenizer = { kind: 'bpe', version: 1, pattern: '(a+)+$', merges: [] };
  writeFileSync(trainer, JSON.stringify(state));
  return dir;
}

/** Runs the CLI with `args` in `cwd`, killing it after RUN_LIMIT_S. */
function runCli(args: string[], cwd: string): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx/esm'), join(ROOT, 'src/cli/main.ts'), ...args], {
      cwd,
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', TFJS_GTA_DEBUG: '' },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_LIMIT_S * 1000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

const runs = new Map<string, Promise<CliRun>>();

/**
 * Makes the fixtures (awaited: they use tfjs in this process), then starts the runs of the cases named
 * in `names` (default: all), two at a time, without waiting for them; each case waits for its own run.
 */
export async function startCli(names?: string[]): Promise<void> {
  const dir = await makeFixtures();
  const queue = CASES.filter((c) => names === undefined || names.includes(c.name));
  const waiting = new Map<string, (r: CliRun) => void>();
  for (const c of queue) runs.set(c.name, new Promise((resolve) => waiting.set(c.name, resolve)));
  const worker = async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) waiting.get(c.name)!(await runCli(c.args, dir));
  };
  void Promise.all([worker(), worker()]);
}

/** tfjs's notice, printed once when the cpu backend starts in Node, which the CLI does not control. */
const TFJS_NOTICE = /^(=+|Hi, looks like you are running TensorFlow\.js in Node\.js\..*)$/;

/** The lines a run wrote to stderr, without blank ones and without tfjs's cpu-backend notice. */
function errorLines(r: CliRun): string[] {
  return r.stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !TFJS_NOTICE.test(l));
}

/**
 * Turns a finished run into what `classify` expects from a case: exit 2 with one `error:` line and no
 * stack trace throws a ValueError with that line; exit 0 returns the output's last line; a killed run
 * throws HangError; anything else throws a plain Error (a crash) describing the exit and stderr.
 */
function verdict(c: CliCase, r: CliRun): string {
  if (r.timedOut) throw new HangError(`the CLI was still running after ${RUN_LIMIT_S} s (killed)`);
  const lines = errorLines(r);
  const stack = lines.some((l) => /^\s+at /.test(l));
  if (r.code === 2 && lines.length === 1 && lines[0].startsWith('error: ') && !stack) throw new ValueError(lines[0]);
  if (r.code === 0 && lines.length === 0) return r.stdout.trim().split('\n').at(-1) ?? '';
  const first = lines.find((l) => l.startsWith('error')) ?? lines[0] ?? '(nothing on stderr)';
  throw new Error(
    `exit ${r.code ?? r.signal} with ${lines.length} stderr line(s)${stack ? ' and a stack trace' : ''}; ` +
      `${first.slice(0, 200)} [args: ${c.args.join(' ')}]`,
  );
}

/** Every CLI case (the runs must have been started with `startCli`). */
export function cliCases(): Case[] {
  return CASES.map((c) => ({
    category: CATEGORY,
    name: c.name,
    expect: c.mentions ? 'error' : 'ok',
    ...(c.mentions ? { mentions: c.mentions } : {}),
    limitMs: 30 * 60_000,
    run: async () => {
      const run = runs.get(c.name);
      if (run === undefined) throw new Error('startCli() was not called before the case');
      return verdict(c, await run);
    },
  }));
}
