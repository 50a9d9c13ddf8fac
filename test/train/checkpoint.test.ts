// browser-tests: node-only: runs the command line in child processes and kills them
/**
 * A training run killed with SIGKILL at any moment (real child processes, checkpoints every step, so
 * kills land inside saves) leaves a checkpoint that loads, and resuming after every kill ends exactly
 * where an uninterrupted run ends.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { it } from '../kit/index.js';

const root = new URL('../..', import.meta.url).pathname;
const cliArgs = (dir: string) => [
  '--import',
  import.meta.resolve('tsx/esm'),
  join(root, 'src/cli/main.ts'),
  'train',
  '--quick',
  '--steps',
  '14',
  '--eval-every',
  '7',
  '--checkpoint-every',
  '1',
  '--text',
  'text.txt',
  '--backend',
  'cpu',
  '--variant',
  'gqa',
  '--checkpoint-dir',
  dir,
];
const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' };

/** Runs the training command and SIGKILLs it `delayMs` after it reports step `afterStep` (or lets it finish). */
function runAndKill(cwd: string, dir: string, resume: boolean, afterStep: number, delayMs: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgs(dir), ...(resume ? ['--resume'] : [])], { cwd, env });
    let out = '';
    let armed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no progress in time:\n${out}`));
    }, 180000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = [...out.matchAll(/step (\d+)\/14 loss/g)].at(-1);
      if (!armed && m && Number(m[1]) >= afterStep) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal);
    });
  });
}

function losses(dir: string): number[] {
  return JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')).history.map((h: { loss: number }) => h.loss);
}

describe('checkpoints under SIGKILL', function () {
  this.timeout(900000);
  let cwd = '';
  before(() => {
    cwd = mkdtempSync(join(tmpdir(), 'tfjs-gta-kill-'));
    writeFileSync(
      join(cwd, 'text.txt'),
      'Call me Ishmael. Some years ago - never mind how long precisely - having little money. '.repeat(80),
    );
  });
  after(() => rmSync(cwd, { recursive: true, force: true }));

  it('resumes exactly after kills at several moments, each leaving a checkpoint that loads', async () => {
    const straight = spawnSync(process.execPath, cliArgs('ck-straight'), { cwd, env, encoding: 'utf8', timeout: 300000 });
    expect(straight.status, straight.stderr).to.equal(0);
    const reference = losses(join(cwd, 'ck-straight'));
    expect(reference.length).to.equal(14);

    // Kill moments: right after a step is reported (inside its checkpoint save) and a little later.
    const moments: Array<[number, number]> = [
      [2, 0],
      [5, 40],
      [8, 15],
      [11, 90],
    ];
    let killed = 0;
    for (const [i, [afterStep, delay]] of moments.entries()) {
      const signal = await runAndKill(cwd, 'ck-kill', i > 0, afterStep, delay);
      if (signal !== 'SIGKILL') break; // finished before the kill landed
      killed += 1;
      const ck = await loadCheckpoint(join(cwd, 'ck-kill'));
      expect(ck.state.step).to.be.within(1, 14);
      expect(ck.state.history.length).to.equal(ck.state.step);
      expect(ck.state.history.map((h) => h.loss)).to.deep.equal(reference.slice(0, ck.state.step));
      ck.lm.dispose();
    }
    expect(killed).to.be.at.least(2);
    const rest = spawnSync(process.execPath, [...cliArgs('ck-kill'), '--resume'], { cwd, env, encoding: 'utf8', timeout: 300000 });
    expect(rest.status, rest.stderr).to.equal(0);
    expect(rest.stdout).to.match(/finished at step 14\/14/);
    expect(losses(join(cwd, 'ck-kill'))).to.deep.equal(reference);
  });
});
