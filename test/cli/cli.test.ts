import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from '../kit/index.js';

const root = new URL('../..', import.meta.url).pathname;

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx/esm'), join(root, 'src/cli/main.ts'), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
    timeout: 240000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts the CLI, sends SIGINT a few seconds after training has started, and resolves with its output. */
function cliInterrupted(args: string[], cwd: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx/esm'), join(root, 'src/cli/main.ts'), ...args], {
      cwd,
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
    });
    let out = '';
    let err = '';
    let sent = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the run did not end in time:\n${out}\n${err}`));
    }, 200000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && /training \d+ steps/.test(out)) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 4000);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('command line', function () {
  this.timeout(300000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-cli-'));
    writeFileSync(
      join(dir, 'text.txt'),
      'Call me Ishmael. Some years ago - never mind how long precisely - having little money. '.repeat(80),
    );
    writeFileSync(join(dir, 'empty.txt'), '');
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints help', () => {
    const r = cli(['--help'], dir);
    expect(r.code).to.equal(0);
    expect(r.out).to.contain('compare');
    expect(r.out).to.contain('generate');
  });

  for (const [args, pattern] of [
    [['--variants', 'gta,gpt'], /unknown variant "gpt"/],
    [['--text', 'missing.txt', '--backend', 'cpu'], /missing\.txt/],
    [['--text', 'empty.txt', '--backend', 'cpu'], /empty/],
    [['--text', 'latin1.txt', '--backend', 'cpu'], /UTF-8/],
    [['--quick', '--text', 'text.txt', '--seq-len', '4000', '--backend', 'cpu'], /fewer than two windows/],
    [['--quick', '--text', 'text.txt', '--max-memory', '1', '--backend', 'cpu'], /more than the allowed 1 MiB/],
    [['--steps', 'ten'], /--steps must be a positive integer/],
  ] as Array<[string[], RegExp]>) {
    it(`fails clearly without a stack trace: ${args.join(' ')}`, () => {
      const r = cli(args, dir);
      expect(r.code).to.not.equal(0);
      expect(r.err).to.match(pattern);
      expect(r.err).to.not.match(/\n\s+at /); // no stack trace
      expect(existsSync(join(dir, 'results'))).to.equal(false);
    });
  }

  it('runs a tiny comparison and writes the results folder', () => {
    const r = cli(
      ['--quick', '--steps', '4', '--eval-every', '2', '--text', 'text.txt', '--variants', 'gta,gqa', '--backend', 'cpu', '--out', 'out'],
      dir,
    );
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.contain('backend: cpu');
    expect(r.out).to.match(/\| gta \|/);
    const report = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'));
    expect(report.variants.map((v: { name: string }) => v.name)).to.deep.equal(['gta', 'gqa']);
    expect(existsSync(join(dir, 'out', 'loss.png'))).to.equal(true);
  });

  it('Ctrl-C during training saves a checkpoint that --resume continues', async () => {
    const args = [
      'train',
      '--quick',
      '--steps',
      '5000',
      '--eval-every',
      '1000',
      '--text',
      'text.txt',
      '--backend',
      'cpu',
      '--checkpoint-dir',
      'ck-int',
      '--variant',
      'gqa',
    ];
    const r = await cliInterrupted(args, dir);
    expect(r.code, r.err).to.equal(130);
    expect(r.out).to.match(/stopping after this step/);
    const stoppedAt = Number(/stopped at step (\d+)\/5000/.exec(r.out)?.[1]);
    expect(stoppedAt).to.be.within(1, 4999);
    // The checkpoint is complete on its own: the tokenizer and the run's settings are inside trainer.json.
    const saved = JSON.parse(readFileSync(join(dir, 'ck-int', 'trainer.json'), 'utf8'));
    expect(saved.step).to.equal(stoppedAt);
    expect(saved.extra.tokenizer.kind).to.equal('char');
    expect(saved.extra.settings.variant).to.equal('gqa');
    const more = cli([...args.map((a) => (a === '5000' ? String(stoppedAt + 2) : a)), '--resume'], dir);
    expect(more.code, more.err).to.equal(0);
    expect(more.out).to.match(new RegExp(`finished at step ${stoppedAt + 2}/${stoppedAt + 2}`));
  });

  it('never writes into a folder or file it did not create, and says so before training', () => {
    mkdirSync(join(dir, 'photos'), { recursive: true });
    writeFileSync(join(dir, 'photos', 'a.jpg'), 'jpg');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    for (const args of [
      ['--quick', '--steps', '2', '--variants', 'gta', '--text', 'text.txt', '--backend', 'cpu', '--out', 'photos'],
      ['--quick', '--steps', '2', '--variants', 'gta', '--text', 'text.txt', '--backend', 'cpu', '--out', '.'],
      ['train', '--quick', '--steps', '2', '--text', 'text.txt', '--backend', 'cpu', '--checkpoint-dir', 'photos'],
      ['train', '--quick', '--steps', '2', '--text', 'text.txt', '--backend', 'cpu', '--checkpoint-dir', 'notes.txt'],
    ]) {
      const r = cli(args, dir);
      expect(r.code, r.out).to.equal(2);
      expect(r.err).to.match(/refusing to replace it/);
      expect(r.out).to.not.match(/training \d+ steps/); // refused before any training
    }
    expect(readFileSync(join(dir, 'photos', 'a.jpg'), 'utf8')).to.equal('jpg');
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(existsSync(join(dir, 'text.txt'))).to.equal(true);
  });

  it('stops before applying a non-finite step; the checkpoint keeps the last good state', async () => {
    const r = cli(
      [
        'train',
        '--quick',
        '--steps',
        '30',
        '--checkpoint-every',
        '1',
        '--lr',
        '10000',
        '--text',
        'text.txt',
        '--backend',
        'cpu',
        '--checkpoint-dir',
        'ck-nan',
        '--variant',
        'gta',
      ],
      dir,
    );
    expect(r.code, r.out + r.err).to.equal(2);
    expect(r.err).to.match(
      /became (NaN|Infinity|-Infinity); the update was not applied, so the model and the last checkpoint keep step (\d+)\. Lower learningRate/,
    );
    const kept = Number(/keep step (\d+)/.exec(r.err)![1]);
    const { loadCheckpoint } = await import('../../src/train/checkpoint.js');
    const ck = await loadCheckpoint(join(dir, 'ck-nan'));
    expect(ck.state.step).to.equal(kept);
    for (const w of ck.lm.model.getWeights()) expect(Array.from(w.dataSync()).every(Number.isFinite)).to.equal(true);
    expect(ck.optimizer.m.every((m) => m.every(Number.isFinite))).to.equal(true);
    ck.lm.dispose();
  });

  it('refuses --resume with settings that differ from the checkpoint, and --quick with another --preset', () => {
    const base = ['train', '--quick', '--steps', '2', '--text', 'text.txt', '--backend', 'cpu', '--checkpoint-dir', 'ck-settings'];
    expect(cli([...base, '--variant', 'gta'], dir).code).to.equal(0);
    for (const [extra, pattern] of [
      [['--variant', 'mla'], /--variant mla differs from the checkpoint's gta/],
      [['--lr', '0.01'], /--lr 0\.01 differs from the checkpoint's/],
      [['--tokenizer', 'byte'], /--tokenizer byte differs from the checkpoint's char/],
    ] as Array<[string[], RegExp]>) {
      const r = cli([...base.map((a) => (a === '2' ? '3' : a)), '--resume', ...extra], dir);
      expect(r.code, r.out).to.equal(2);
      expect(r.err).to.match(pattern);
    }
    const q = cli(['--quick', '--preset', 'small', '--text', 'text.txt', '--backend', 'cpu'], dir);
    expect(q.code).to.equal(2);
    expect(q.err).to.match(/--quick is the quick preset; it cannot be combined with --preset small/);
  });

  it('exports a checkpoint as a Hugging Face folder and imports it back with identical logits', async () => {
    const train = cli(
      ['train', '--quick', '--steps', '2', '--text', 'text.txt', '--backend', 'cpu', '--checkpoint-dir', 'ck-hf', '--variant', 'gta'],
      dir,
    );
    expect(train.code, train.err).to.equal(0);
    const exp = cli(['export', '--checkpoint', 'ck-hf', '--hf', 'hf-out', '--backend', 'cpu'], dir);
    expect(exp.code, exp.err).to.equal(0);
    expect(exp.out).to.match(/exported gta .* as GTAForCausalLM/);
    for (const f of ['config.json', 'model.safetensors', 'tfjs-gta-tokenizer.json'])
      expect(existsSync(join(dir, 'hf-out', f))).to.equal(true);
    const imp = cli(['import', '--hf', 'hf-out', '--out', 'imported', '--backend', 'cpu'], dir);
    expect(imp.code, imp.err).to.equal(0);
    const gen = cli(['generate', '--model', 'imported', '--prompt', 'Call me', '--tokens', '5', '--backend', 'cpu'], dir);
    expect(gen.code, gen.err).to.equal(0);
    const { loadCheckpoint } = await import('../../src/train/checkpoint.js');
    const { fileSystemHandler } = await import('../../src/io/file_handler.js');
    const { CausalLM } = await import('../../src/models/causal_lm.js');
    const original = (await loadCheckpoint(join(dir, 'ck-hf'))).lm;
    const back = await CausalLM.load(fileSystemHandler(join(dir, 'imported')));
    const ids = [[1, 2, 3, 4, 5]];
    const a = original.logits(ids);
    const b = back.logits(ids);
    expect(Array.from(b.dataSync())).to.deep.equal(Array.from(a.dataSync()));
    a.dispose();
    b.dispose();
    original.dispose();
    back.dispose();
    const again = cli(['export', '--checkpoint', 'ck-hf', '--hf', 'text.txt', '--backend', 'cpu'], dir);
    expect(again.code).to.equal(2);
    expect(again.err).to.match(/--hf: .*text\.txt exists and is not a folder/);
  });

  it('trains, resumes and generates from a checkpoint', () => {
    const args = ['--quick', '--steps', '4', '--eval-every', '2', '--text', 'text.txt', '--backend', 'cpu', '--checkpoint-dir', 'ck'];
    const first = cli(['train', ...args, '--variant', 'mla'], dir);
    expect(first.code, first.err).to.equal(0);
    expect(first.out).to.match(/finished at step 4\/4/);
    const more = cli(['train', ...args.map((a) => (a === '4' ? '6' : a)), '--variant', 'mla', '--resume'], dir);
    expect(more.code, more.err).to.equal(0);
    expect(more.out).to.match(/finished at step 6\/6/);
    const gen = cli(['generate', '--checkpoint', 'ck', '--prompt', 'Call me', '--tokens', '10', '--backend', 'cpu'], dir);
    expect(gen.code, gen.err).to.equal(0);
    expect(gen.out).to.match(/^backend: cpu\nCall me/);
    expect(gen.out).to.match(/decode [\d.]+ tokens\/s/);
  });
});
