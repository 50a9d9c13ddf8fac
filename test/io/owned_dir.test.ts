// browser-tests: node-only: writes folders and kills child processes
/**
 * Folders we write never replace what a user owns, and a writer killed at any moment (real child
 * processes, SIGKILL) leaves the old or the new folder complete.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MARKER, checkWritableTarget, lockTarget, recoverOwnedDir, writeOwnedDir } from '../../src/io/owned_dir.js';
import { it } from '../kit/index.js';

const root = new URL('../..', import.meta.url).pathname;

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  let error: Error | null = null;
  await p.catch((e: Error) => {
    error = e;
  });
  expect(error, 'expected a rejection').to.not.equal(null);
  expect(error!.name).to.equal('ValueError');
  expect(error!.message).to.match(pattern);
}

/** Writes `version` as `data.txt` (in two parts, with a pause between them) in a child process killed at `at`. */
function childWrite(target: string, version: string, at: 'none' | 'fill' | 'beforeSwap' | 'afterAside' | 'afterSwap') {
  const script = `
    import { writeFile } from 'node:fs/promises';
    import { join } from 'node:path';
    import { writeOwnedDir } from ${JSON.stringify(join(root, 'src/io/owned_dir.ts'))};
    const die = (point) => async () => { if (${JSON.stringify(at)} === point) process.kill(process.pid, 'SIGKILL'); };
    await writeOwnedDir(${JSON.stringify(target)}, 'report', 'test', async (tmp) => {
      await writeFile(join(tmp, 'data.txt'), ${JSON.stringify(version)}.slice(0, 2));
      await die('fill')();
      await writeFile(join(tmp, 'data.txt'), ${JSON.stringify(version)});
    }, { beforeSwap: die('beforeSwap'), afterAside: die('afterAside'), afterSwap: die('afterSwap') });
  `;
  const file = join(target, '..', `writer-${at}.mts`);
  writeFileSync(file, script);
  return spawnSync(process.execPath, ['--import', import.meta.resolve('tsx/esm'), file], { encoding: 'utf8', timeout: 60000 });
}

describe('owned output folders', function () {
  this.timeout(120000);
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-owned-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a folder with files it did not write, and leaves them untouched', async () => {
    mkdirSync(join(dir, 'photos/sub'), { recursive: true });
    writeFileSync(join(dir, 'photos/a.jpg'), 'jpg');
    writeFileSync(join(dir, 'photos/sub/b.jpg'), 'jpg');
    await rejects(
      writeOwnedDir(join(dir, 'photos'), 'report', '--out', async () => {}),
      /--out: .*photos is a folder with 2 entries that tfjs-gta did not write/,
    );
    expect(readFileSync(join(dir, 'photos/a.jpg'), 'utf8')).to.equal('jpg');
    expect(readFileSync(join(dir, 'photos/sub/b.jpg'), 'utf8')).to.equal('jpg');
    expect(readdirSync(dir)).to.deep.equal(['photos']); // no temporary folder left beside it
  });

  it('refuses a regular file, a symbolic link and the current folder', async () => {
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await rejects(
      writeOwnedDir(join(dir, 'notes.txt'), 'checkpoint', 'checkpoint', async () => {}),
      /exists and is not a folder/,
    );
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    await rejects(checkWritableTarget(join(dir, 'link'), 'report', '--out'), /symbolic link/);
    await rejects(checkWritableTarget('.', 'report', '--out'), /did not write; refusing to replace it/); // the repository
  });

  it('writes into a missing or empty folder, replaces its own folders, and refuses one of another kind', async () => {
    mkdirSync(join(dir, 'empty'));
    for (const target of ['empty', 'new/deeper']) {
      await writeOwnedDir(join(dir, target), 'report', '--out', async (tmp) => writeFileSync(join(tmp, 'r.md'), 'one'));
      await writeOwnedDir(join(dir, target), 'report', '--out', async (tmp) => writeFileSync(join(tmp, 'r.md'), 'two'));
      expect(readFileSync(join(dir, target, 'r.md'), 'utf8')).to.equal('two');
      expect(readFileSync(join(dir, target, MARKER), 'utf8')).to.match(/^report\n/);
    }
    await rejects(
      writeOwnedDir(join(dir, 'empty'), 'checkpoint', 'checkpoint', async () => {}),
      /holds a tfjs-gta report, not a checkpoint/,
    );
  });

  it('removes its temporary folder when filling fails, and keeps the old contents', async () => {
    await writeOwnedDir(join(dir, 'out'), 'report', '--out', async (tmp) => writeFileSync(join(tmp, 'r.md'), 'old'));
    await writeOwnedDir(join(dir, 'out'), 'report', '--out', async () => {
      throw new Error('disk full');
    }).catch(() => {});
    expect(readFileSync(join(dir, 'out/r.md'), 'utf8')).to.equal('old');
    expect(readdirSync(dir).sort()).to.deep.equal(['out']);
  });

  it('lets one writer at a time hold a folder, and takes over a lock whose process is gone', async () => {
    const release = await lockTarget(join(dir, 'out'), '--out');
    await rejects(
      writeOwnedDir(join(dir, 'out'), 'report', '--out', async () => {}),
      /in use by another run \(process \d+/,
    );
    await release();
    writeFileSync(join(dir, 'out.lock'), '999999999'); // no such process
    await writeOwnedDir(join(dir, 'out'), 'report', '--out', async (tmp) => writeFileSync(join(tmp, 'r.md'), 'x'));
    expect(existsSync(join(dir, 'out.lock'))).to.equal(false);
  });

  for (const at of ['fill', 'beforeSwap', 'afterAside', 'afterSwap'] as const) {
    it(`a writer killed (SIGKILL) at ${at} leaves the old or the new folder complete, and the next write cleans up`, async () => {
      const target = join(dir, 'out');
      expect(childWrite(target, 'version-1', 'none').status).to.equal(0);
      const killed = childWrite(target, 'version-2', at);
      expect(killed.signal).to.equal('SIGKILL');
      const found = await recoverOwnedDir(target, 'report');
      expect(found, 'no complete folder after the kill').to.not.equal(null);
      const text = readFileSync(join(found!, 'data.txt'), 'utf8');
      // Before the swap the old folder is what is there; once the new one is in place, the new one.
      expect(text).to.equal(at === 'afterSwap' ? 'version-2' : 'version-1');
      expect(childWrite(target, 'version-3', 'none').status).to.equal(0);
      expect(readFileSync(join(target, 'data.txt'), 'utf8')).to.equal('version-3');
      expect(
        readdirSync(dir)
          .filter((n) => n.startsWith('out'))
          .sort(),
      ).to.deep.equal(['out']); // no .tmp-/.old-/.lock left
    });
  }
});
