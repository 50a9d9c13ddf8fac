import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from '../kit/index.js';

const root = new URL('../..', import.meta.url).pathname;

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx/esm'), join(root, 'src/cli/main.ts'), ...args],
    { cwd, encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' }, timeout: 240000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('command line', function () {
  this.timeout(300000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-cli-'));
    writeFileSync(join(dir, 'text.txt'), 'Call me Ishmael. Some years ago - never mind how long precisely - having little money. '.repeat(80));
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
    const r = cli(['--quick', '--steps', '4', '--eval-every', '2', '--text', 'text.txt', '--variants', 'gta,gqa', '--backend', 'cpu', '--out', 'out'], dir);
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.contain('backend: cpu');
    expect(r.out).to.match(/\| gta \|/);
    const report = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'));
    expect(report.variants.map((v: { name: string }) => v.name)).to.deep.equal(['gta', 'gqa']);
    expect(existsSync(join(dir, 'out', 'loss.png'))).to.equal(true);
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
