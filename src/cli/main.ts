#!/usr/bin/env node
/**
 * The tfjs-gta command line (`npm start` runs `compare` with the default preset).
 *
 *   compare   train GTA, GQA, MLA and MHA side by side and write a report (default command)
 *   train     train one variant with checkpoints; --resume continues a run exactly
 *   generate  generate text from a trained checkpoint
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../utils/errors.js';
import { backendLoadError, setBackendStrict, useBestBackend } from '../backend.js';
import { isNativeBackend } from '../ops/capabilities.js';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import {
  COMPARE_PRESETS,
  ComparePreset,
  VARIANTS,
  VariantName,
  compare,
  estimateTrainingBytes,
  makeTokenizer,
  variantConfig,
} from '../train/compare.js';
import { causalLMParams } from '../models/config.js';
import { comparisonTable, writeReport } from '../report/report.js';
import { createProgress } from './progress.js';
import { CausalLM } from '../models/causal_lm.js';
import { loadCorpus } from '../data/corpus_files.js';
import { splitTokens } from '../data/dataset.js';
import { TokenizerJSON, tokenizerFromJSON } from '../data/tokenizer.js';
import { resumeTraining, train } from '../train/trainer.js';
import { directoryCheckpoint, loadCheckpoint } from '../train/checkpoint.js';
import { checkWritableTarget, readRegularFile, recoverOwnedDir, writeOwnedDir } from '../io/owned_dir.js';
import { loadHFCheckpoint, saveHFCheckpoint } from '../io/hf_files.js';
import { fileSystemHandler } from '../io/file_handler.js';

process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

function int(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer.`);
    return n;
  };
}

function num(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number.`);
    return n;
  };
}

function variantList(value: string): VariantName[] {
  const list = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const v of list) {
    if (!(VARIANTS as readonly string[]).includes(v)) {
      throw new InvalidArgumentError(`unknown variant "${v}"; choose from ${VARIANTS.join(', ')}.`);
    }
  }
  if (list.length === 0) throw new InvalidArgumentError('give at least one variant.');
  return list as VariantName[];
}

async function chooseBackend(name?: string): Promise<string> {
  if (name) {
    await setBackendStrict(name);
  } else {
    const choice = await useBestBackend();
    for (const s of choice.skipped) {
      const why = backendLoadError(s.backend) ?? s.reason;
      console.log(
        `note: backend ${s.backend} unavailable (${why.split('\n')[0]})` +
          (isNativeBackend(s.backend) ? '; run `npm run setup:tfjs-node` for the fast native backend' : ''),
      );
    }
  }
  console.log(`backend: ${tf.getBackend()}`);
  return tf.getBackend();
}

interface StopFlag {
  requested: boolean;
}

function installInterrupt(onFirst: string): StopFlag {
  const flag = { requested: false };
  process.on('SIGINT', () => {
    if (flag.requested) {
      console.log('\ninterrupted again: exiting now');
      process.exit(130);
    }
    flag.requested = true;
    console.log(`\n${onFirst} (Ctrl-C again to exit immediately)`);
  });
  return flag;
}

function overrides(o: Record<string, unknown>): Partial<ComparePreset> {
  const out: Partial<ComparePreset> = {};
  if (o.steps !== undefined) out.steps = o.steps as number;
  if (o.batchSize !== undefined) out.batchSize = o.batchSize as number;
  if (o.seqLen !== undefined) out.sequenceLength = o.seqLen as number;
  if (o.lr !== undefined) out.learningRate = o.lr as number;
  if (o.evalEvery !== undefined) out.evalEvery = o.evalEvery as number;
  return out;
}

function commonOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--preset <name>', 'model size and token budget').choices(Object.keys(COMPARE_PRESETS)).default('default'))
    .option('--quick', 'the ~1 minute smoke-test preset (same as --preset quick)')
    .option('--steps <n>', 'training steps per variant', int('--steps'))
    .option('--batch-size <n>', 'sequences per batch', int('--batch-size'))
    .option('--seq-len <n>', 'tokens per training sequence', int('--seq-len'))
    .option('--lr <x>', 'peak learning rate', num('--lr'))
    .option('--eval-every <n>', 'evaluate every n steps', int('--eval-every'))
    .option(
      '--seed <n>',
      'seed of weights and data order',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n)) throw new InvalidArgumentError('--seed must be an integer.');
        return n;
      },
      0,
    )
    .option('--text <path>', 'UTF-8 text file or directory to train on (default: the built-in Moby-Dick)')
    .addOption(new Option('--tokenizer <kind>', 'tokenizer').choices(['char', 'byte', 'bpe']).default('char'))
    .option('--bpe-vocab <n>', 'BPE vocabulary size', int('--bpe-vocab'), 1024)
    .option('--backend <name>', 'force a backend (tensorflow, wasm, cpu)')
    .option('--max-memory <MiB>', 'refuse models whose training needs more memory than this', num('--max-memory'));
}

/**
 * Steps of the default comparison on backends slower than tfjs-node: the default budget (400 steps)
 * takes about 8 minutes on 2 cores with tfjs-node (measured) and several times longer on wasm, so without
 * it the default run trains fewer steps (an explicit --steps wins). The wasm time of this preset was not
 * measured; 180 steps was chosen for the earlier, smaller default.
 */
export const DEFAULT_STEPS_WITHOUT_TFJS_NODE = 180;

async function runCompare(o: Record<string, unknown>, cmd: Command): Promise<void> {
  if (o.quick && cmd.getOptionValueSource('preset') === 'cli' && o.preset !== 'quick') {
    throw new ValueError(`--quick is the quick preset; it cannot be combined with --preset ${o.preset}.`);
  }
  // Checked before training, so a folder we may not write costs no training time.
  await checkWritableTarget((o.out as string) ?? 'results', 'report', '--out');
  const backend = await chooseBackend(o.backend as string | undefined);
  const preset = (o.quick ? 'quick' : o.preset) as keyof typeof COMPARE_PRESETS;
  if (preset === 'default' && o.steps === undefined && !isNativeBackend(backend)) {
    o.steps = DEFAULT_STEPS_WITHOUT_TFJS_NODE;
    console.log(
      `note: without tfjs-node the default run trains ${DEFAULT_STEPS_WITHOUT_TFJS_NODE} steps per variant instead of ` +
        `${COMPARE_PRESETS.default.steps} (wasm and cpu train several times slower); pass --steps to choose.`,
    );
  }
  const out = (o.out as string) ?? 'results';
  const progress = await createProgress();
  const stop = installInterrupt(`stopping after this step; saving a checkpoint to ${o.checkpointDir}`);
  const started = Date.now();
  const report = await compare({
    variants: o.variants as VariantName[],
    preset,
    overrides: overrides(o),
    source: o.text as string | undefined,
    tokenizer: o.tokenizer as 'char',
    bpeVocabSize: o.bpeVocab as number,
    seed: o.seed as number,
    seeds: o.seeds as number,
    checkpointDir: o.checkpointDir as string,
    maxMemoryBytes: o.maxMemory ? (o.maxMemory as number) * 2 ** 20 : undefined,
    shouldStop: () => stop.requested,
    onVariantStart: (v, i, n, total, seed) =>
      progress.start(`${v}${(o.seeds as number) > 1 ? ` seed ${seed}` : ''} (${i + 1}/${n})`, total),
    onStep: (_v, r) => progress.step(r),
    onEval: (_v, e) => progress.evaluation(e),
    onLog: (line) => progress.log(line),
  });
  progress.stop();
  if (report.stopped) {
    console.log(`stopped: checkpoint of the interrupted variant saved under ${o.checkpointDir}; no report written.`);
    process.exitCode = 130;
    return;
  }
  const files = await writeReport(report, out);
  console.log('');
  console.log(comparisonTable(report));
  console.log('');
  console.log(
    `unigram baseline ${report.baseline.unigramLoss.toFixed(4)} nats/token; backend ${report.backend}; ` +
      `wall time ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(`report: ${files[0]}`);
}

/** Options a resumed run takes from its checkpoint; giving a different value on the command line is an error. */
const RESUME_KEPT = ['variant', 'preset', 'batchSize', 'seqLen', 'lr', 'seed', 'tokenizer', 'bpeVocab', 'text', 'evalEvery'] as const;

function flag(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The run's settings: from the command line, or on --resume from the checkpoint (conflicts are errors). */
async function trainSettings(o: Record<string, unknown>, cmd: Command): Promise<Record<string, unknown>> {
  if (o.quick && cmd.getOptionValueSource('preset') === 'cli' && o.preset !== 'quick') {
    throw new ValueError(`--quick is the quick preset; it cannot be combined with --preset ${o.preset}.`);
  }
  const settings: Record<string, unknown> = { ...o, preset: o.quick ? 'quick' : o.preset };
  delete settings.quick;
  if (!o.resume) return settings;
  const saved = (await checkpointExtra(o.checkpointDir as string)).settings as Record<string, unknown> | undefined;
  if (saved === undefined)
    throw new ValueError(`--resume: ${o.checkpointDir} was not written by \`tfjs-gta train\` (no run settings in it).`);
  for (const key of RESUME_KEPT) {
    const given = key === 'preset' ? (o.quick ? 'cli' : cmd.getOptionValueSource('preset')) : cmd.getOptionValueSource(key);
    if (given === 'cli' && JSON.stringify(settings[key]) !== JSON.stringify(saved[key])) {
      throw new ValueError(
        `--resume: ${flag(key)} ${String(settings[key])} differs from the checkpoint's ${String(saved[key] ?? '(none)')}; ` +
          `a resumed run keeps its settings (leave ${flag(key)} out, or train a new run in another folder).`,
      );
    }
    settings[key] = saved[key];
  }
  return settings;
}

async function runTrain(o: Record<string, unknown>, cmd: Command): Promise<void> {
  const dir = o.checkpointDir as string;
  const store = await directoryCheckpoint(dir); // fails now, before training, if dir is not ours to write
  const s = await trainSettings(o, cmd);
  const preset = s.preset as keyof typeof COMPARE_PRESETS;
  const p = { ...COMPARE_PRESETS[preset], ...overrides(s) };
  const corpus = await loadCorpus(s.text as string | undefined);
  // The tokenizer travels inside every checkpoint (trainer.json), so a checkpoint is complete on its own.
  const tokenizer = o.resume
    ? tokenizerFromJSON((await checkpointExtra(dir)).tokenizer as TokenizerJSON)
    : await makeTokenizer(s.tokenizer as 'char', corpus.text, s.bpeVocab as number);
  const config = variantConfig(s.variant as VariantName, p, tokenizer.vocabSize, s.seed as number);
  if (o.maxMemory !== undefined) {
    const needed = estimateTrainingBytes(config, p, causalLMParams(config));
    if (needed > (o.maxMemory as number) * 2 ** 20) {
      throw new ValueError(
        `--max-memory: training this model needs about ${(needed / 2 ** 20).toFixed(0)} MiB, more than ` +
          `${o.maxMemory} MiB; lower --batch-size, --seq-len or choose a smaller --preset.`,
      );
    }
  }
  await chooseBackend(o.backend as string | undefined);
  const progress = await createProgress();
  const stop = installInterrupt(`stopping after this step; saving a checkpoint to ${dir}`);
  const ids = Int32Array.from(tokenizer.encode(corpus.text));
  const { train: trainIds, validation } = splitTokens(ids, { validationFraction: 0.05, sequenceLength: p.sequenceLength });
  const settings = Object.fromEntries(RESUME_KEPT.map((k) => [k, s[k]]));
  const common = {
    train: trainIds,
    validation,
    batchSize: p.batchSize,
    sequenceLength: p.sequenceLength,
    steps: p.steps,
    learningRate: p.learningRate,
    evalEvery: p.evalEvery,
    evalBatches: p.evalBatches,
    seed: s.seed as number,
    checkpoint: store,
    checkpointExtra: { tokenizer: tokenizer.toJSON(), settings },
    checkpointEvery: o.checkpointEvery as number | undefined,
    shouldStop: () => stop.requested,
    onStep: (r: Parameters<typeof progress.step>[0]) => progress.step(r),
    onEval: (e: Parameters<typeof progress.evaluation>[0]) => progress.evaluation(e),
  };
  let lm: CausalLM;
  let result;
  progress.start(String(s.variant), p.steps);
  if (o.resume) {
    ({ model: lm, result } = await resumeTraining(store, common));
    const mechanism = lm.config.attention.kind;
    if (mechanism !== config.attention.kind || lm.config.vocabSize !== tokenizer.vocabSize) {
      lm.dispose();
      throw new ValueError(
        `--resume: the checkpoint's model (${mechanism}, vocabulary ${lm.config.vocabSize}) does not match its ` +
          `settings (${config.attention.kind}, vocabulary ${tokenizer.vocabSize}); the folder is damaged.`,
      );
    }
  } else {
    lm = CausalLM.create(config, `lm_${s.variant}`);
    result = await train({ model: lm, ...common });
  }
  progress.stop();
  for (const w of result.warnings) console.log(`warning: ${w}`);
  const outcome = result.stopped ? 'stopped' : result.warnings.length > 0 ? 'finished with warnings' : 'finished';
  console.log(
    `${outcome} at step ${result.steps}/${p.steps}: validation loss ` +
      `${result.finalValidationLoss.toFixed(4)} nats/token, ${result.tokensPerSecond.toFixed(0)} tokens/s; checkpoint ${dir}`,
  );
  if (result.stopped) process.exitCode = 130;
  lm.dispose();
}

/** The `extra` that `train` stored with the checkpoint in `dir` (tokenizer, variant, preset). */
async function checkpointExtra(dir: string): Promise<Record<string, unknown>> {
  const found = await recoverOwnedDir(dir, 'checkpoint');
  const text = found === null ? null : (await readRegularFile(path.join(found, 'trainer.json'), dir)).toString('utf8');
  let extra: Record<string, unknown> | undefined;
  try {
    extra = text === null ? undefined : (JSON.parse(text) as { extra?: Record<string, unknown> }).extra;
  } catch {
    throw new ValueError(`${dir}/trainer.json is not valid JSON; the checkpoint is damaged.`);
  }
  if (!extra?.tokenizer) {
    throw new ValueError(
      `${dir} holds no checkpoint written by \`tfjs-gta train\` (no trainer.json with a tokenizer); ` +
        'train one with `tfjs-gta train --checkpoint-dir DIR`.',
    );
  }
  return extra;
}

/** The file beside an exported or imported model that holds our tokenizer (HF tokenizer files cannot describe it). */
const TOKENIZER_FILE = 'tfjs-gta-tokenizer.json';

/** A model and its tokenizer: from a training checkpoint (`--checkpoint`) or an imported model folder (`--model`). */
async function modelAndTokenizer(o: Record<string, unknown>): Promise<{ lm: CausalLM; tokenizer: ReturnType<typeof tokenizerFromJSON> }> {
  if (o.model !== undefined) {
    const dir = o.model as string;
    const file = path.join(dir, TOKENIZER_FILE);
    const text = (
      await readRegularFile(file, '--model').catch(() => {
        throw new ValueError(
          `--model: ${dir} has no ${TOKENIZER_FILE} (folders written by \`tfjs-gta import\` carry one when the export did).`,
        );
      })
    ).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ValueError(`--model: ${file} is not valid JSON.`);
    }
    const tokenizer = tokenizerFromJSON(json as TokenizerJSON);
    return { lm: await CausalLM.load(fileSystemHandler(path.resolve(dir))), tokenizer };
  }
  const dir = o.checkpoint as string;
  const tokenizer = tokenizerFromJSON((await checkpointExtra(dir)).tokenizer as TokenizerJSON);
  return { lm: (await loadCheckpoint(dir)).lm, tokenizer };
}

async function runGenerate(o: Record<string, unknown>): Promise<void> {
  await chooseBackend(o.backend as string | undefined);
  const { lm, tokenizer } = await modelAndTokenizer(o);
  try {
    const prompt = Array.from(tokenizer.encode(o.prompt as string));
    if (prompt.length === 0) throw new ValueError('--prompt must not be empty.');
    process.stdout.write(o.prompt as string);
    const g = await lm.generate(prompt, {
      maxNewTokens: o.tokens as number,
      temperature: o.temperature as number,
      topK: o.topK as number | undefined,
      seed: o.seed as number,
      onToken: (e) => {
        process.stdout.write(tokenizer.decode([e.tokens[0]]));
      },
    });
    console.log(`\n\nprefill ${g.prefillMs.toFixed(1)} ms, decode ${g.decodeTokensPerSecond.toFixed(1)} tokens/s`);
  } finally {
    lm.dispose();
  }
}

/** `export`: a training checkpoint as a Hugging Face folder (config.json, model.safetensors, our tokenizer). */
async function runExport(o: Record<string, unknown>): Promise<void> {
  await checkWritableTarget(o.hf as string, 'hf-checkpoint', '--hf');
  await chooseBackend(o.backend as string | undefined);
  const { lm, tokenizer } = await modelAndTokenizer(o);
  try {
    const files = await saveHFCheckpoint(lm, o.hf as string, { extraFiles: { [TOKENIZER_FILE]: JSON.stringify(tokenizer.toJSON()) } });
    const config = JSON.parse(await fs.readFile(files[0], 'utf8')) as { architectures: string[] };
    console.log(
      `exported ${lm.config.attention.kind} (${lm.countParams().toLocaleString('en-US')} parameters) as ` +
        `${config.architectures.join(', ')}: ${files.join(', ')}`,
    );
  } finally {
    lm.dispose();
  }
}

/** `import`: a Hugging Face folder as a tfjs model folder (model.json, weights.bin) that browsers and `generate --model` load. */
async function runImport(o: Record<string, unknown>): Promise<void> {
  const out = o.out as string;
  await checkWritableTarget(out, 'model', '--out');
  await chooseBackend(o.backend as string | undefined);
  const lm = await loadHFCheckpoint(o.hf as string);
  try {
    const tokenizerFile = path.join(o.hf as string, TOKENIZER_FILE);
    const tokenizer =
      (await fs.stat(tokenizerFile).catch(() => null)) === null ? null : (await readRegularFile(tokenizerFile, '--hf')).toString('utf8');
    await writeOwnedDir(out, 'model', '--out', async (tmp) => {
      await lm.save(fileSystemHandler(tmp));
      if (tokenizer !== null) await fs.writeFile(path.join(tmp, TOKENIZER_FILE), tokenizer);
    });
    console.log(
      `imported ${lm.config.attention.kind} (${lm.countParams().toLocaleString('en-US')} parameters) into ${out}` +
        (tokenizer === null ? ` (no ${TOKENIZER_FILE} in ${o.hf}: bring your own tokenizer)` : ''),
    );
  } finally {
    lm.dispose();
  }
}

export function buildProgram(): Command {
  const program = new Command('tfjs-gta')
    .description('Train and compare GTA, GQA, MLA and MHA language models with TensorFlow.js')
    .addHelpText(
      'after',
      '\nExit status: 0 done; 1 a failure (one line; TFJS_GTA_DEBUG=1 prints the stack); 2 a usage error or ' +
        'refused input; 130 stopped by Ctrl-C (a checkpoint was saved).',
    )
    .showSuggestionAfterError()
    .exitOverride(); // usage errors reach main(): one `error:` line (commander prints it), exit status 2
  commonOptions(program.command('compare', { isDefault: true }).description('train the variants side by side and write a report'))
    .option('--variants <list>', `comma-separated, from ${VARIANTS.join(', ')}`, variantList, ['gta', 'gqa', 'mla', 'mha'])
    .option('--out <dir>', 'results folder', 'results')
    .option('--checkpoint-dir <dir>', 'per-variant checkpoints (written at the end and on Ctrl-C)', 'checkpoints/compare')
    .option('--seeds <n>', 'training runs per variant (seeds seed, seed+1, ...); the report gives mean ± sd', int('--seeds'), 1)
    .action((o, cmd) => runCompare(o, cmd));
  commonOptions(program.command('train').description('train one variant; --resume continues from its checkpoint'))
    .addOption(new Option('--variant <name>', 'attention variant').choices([...VARIANTS]).default('gta'))
    .option('--checkpoint-dir <dir>', 'checkpoint folder', 'checkpoints/train')
    .option('--checkpoint-every <n>', 'also checkpoint every n steps', int('--checkpoint-every'))
    .option('--resume', 'continue the run saved in --checkpoint-dir')
    .action((o, cmd) => runTrain(o, cmd));
  program
    .command('generate')
    .description('generate text from a checkpoint written by `train`')
    .option('--checkpoint <dir>', 'checkpoint folder', 'checkpoints/train')
    .option('--prompt <text>', 'prompt', 'Call me Ishmael.')
    .option('--tokens <n>', 'tokens to generate', int('--tokens'), 200)
    .option('--temperature <x>', 'sampling temperature (0 = greedy)', (v) => Number(v), 0)
    .option('--top-k <n>', 'sample among the k most likely tokens', int('--top-k'))
    .option('--seed <n>', 'sampler seed', (v) => Number(v), 0)
    .option('--model <dir>', 'a model folder written by `import` (instead of --checkpoint)')
    .option('--backend <name>', 'force a backend (tensorflow, wasm, cpu)')
    .action((o) => runGenerate(o));
  program
    .command('export')
    .description('write a checkpoint as a Hugging Face folder (config.json, model.safetensors) for PyTorch')
    .option('--checkpoint <dir>', 'checkpoint folder written by `train`', 'checkpoints/train')
    .option('--model <dir>', 'a model folder written by `import` (instead of --checkpoint)')
    .requiredOption('--hf <dir>', 'the Hugging Face folder to write (missing, empty, or an earlier export)')
    .option('--backend <name>', 'force a backend (tensorflow, wasm, cpu)')
    .action((o) => runExport(o));
  program
    .command('import')
    .description('read a Hugging Face folder (Llama, DeepSeek-V3 dense, GTA) into a tfjs model folder')
    .requiredOption('--hf <dir>', 'folder with config.json and model.safetensors')
    .requiredOption('--out <dir>', 'the model folder to write (model.json, weights.bin)')
    .option('--backend <name>', 'force a backend (tensorflow, wasm, cpu)')
    .action((o) => runImport(o));
  return program;
}

/** What a failure that is not a usage error says: one line, the system's error code first when it has one. */
function failureLine(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const first = String(err?.message ?? e)
    .split('\n')[0]
    .slice(0, 300);
  const known: Record<string, string> = {
    ENOSPC: 'the disk is full',
    EACCES: 'permission denied',
    EROFS: 'the file system is read-only',
    EPERM: 'operation not permitted',
  };
  return err?.code && known[err.code] ? `${known[err.code]} (${first})` : first;
}

/**
 * Runs the CLI. Exit status: 0 done, 2 a usage error or refused input (one line, no stack trace),
 * 1 any other failure (one line; TFJS_GTA_DEBUG=1 prints the stack), 130 stopped by Ctrl-C.
 */
export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here too (exit 0); usage errors were printed by commander as one line.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
    } else if (e instanceof ValueError) {
      console.error(`error: ${e.message}`);
      process.exitCode = 2;
    } else {
      console.error(`error: ${failureLine(e)}`);
      if (process.env.TFJS_GTA_DEBUG === '1') console.error((e as Error)?.stack);
      process.exitCode = 1;
    }
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop() ?? '');
if (invokedDirectly) await main();
