/**
 * Folders this package writes (reports, checkpoints, exported models), replaced atomically and never
 * at the cost of anything a user owns (Node only).
 *
 * Rules:
 * - a target is written only if it is missing, an empty folder, or a folder that holds our marker
 *   file (`.tfjs-gta`, whose first line names the kind of folder); anything else, a regular file
 *   included, is refused with a ValueError and left untouched;
 * - the new contents are written to a sibling temporary folder, flushed to disk, and swapped in with
 *   renames: the old folder is renamed aside, the new one renamed into place, then the old one removed.
 *   A kill at any moment leaves either the old or the new folder at the target, or the old one aside,
 *   where `recoverOwnedDir` finds it;
 * - one writer at a time: a `<target>.lock` file holds the writer's pid; a lock whose process is gone
 *   is taken over.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ValueError } from '../utils/errors.js';

/** Name of the marker file inside every folder this package writes. */
export const MARKER = '.tfjs-gta';

/** Kinds of folders, written on the marker's first line. */
export type OwnedKind = 'checkpoint' | 'report' | 'hf-checkpoint' | 'model';

async function statOrNull(p: string) {
  try {
    return await fs.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The kind written in `dir`'s marker, or null when `dir` holds no marker of ours. */
export async function ownedKind(dir: string): Promise<OwnedKind | null> {
  try {
    const text = await fs.readFile(path.join(dir, MARKER), 'utf8');
    return text.split('\n')[0].trim() as OwnedKind;
  } catch {
    return null;
  }
}

/**
 * Throws unless `target` may be (re)written as a folder of `kind`: missing, empty, or ours of that kind.
 * `what` names the option in messages (e.g. `--out`).
 */
export async function checkWritableTarget(target: string, kind: OwnedKind, what: string): Promise<void> {
  const st = await statOrNull(target);
  if (st === null) {
    await checkParentWritable(target, what);
    return;
  }
  if (st.isSymbolicLink()) throw new ValueError(`${what}: ${target} is a symbolic link; give a folder path.`);
  if (!st.isDirectory()) throw new ValueError(`${what}: ${target} exists and is not a folder; refusing to replace it.`);
  const entries = await fs.readdir(target);
  if (entries.length === 0) {
    await fs.access(target, fs.constants.W_OK).catch(() => {
      throw new ValueError(`${what}: the folder ${target} is not writable.`);
    });
    return;
  }
  const owner = await ownedKind(target);
  if (owner === null) {
    throw new ValueError(
      `${what}: ${target} is a folder with ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} that tfjs-gta did not ` +
        `write; refusing to replace it. Give a new or empty folder.`,
    );
  }
  if (owner !== kind) throw new ValueError(`${what}: ${target} holds a tfjs-gta ${owner}, not a ${kind}; give another folder.`);
  await checkParentWritable(target, what);
}

async function checkParentWritable(target: string, what: string): Promise<void> {
  // The nearest existing ancestor must be a writable folder (the target and its siblings are created there).
  let dir = path.dirname(path.resolve(target));
  for (;;) {
    const st = await statOrNull(dir);
    if (st !== null) {
      if (!st.isDirectory()) throw new ValueError(`${what}: ${dir} is not a folder, so ${target} cannot be created.`);
      await fs.access(dir, fs.constants.W_OK).catch(() => {
        throw new ValueError(`${what}: cannot create ${target}: ${dir} is not writable.`);
      });
      return;
    }
    const up = path.dirname(dir);
    if (up === dir) return;
    dir = up;
  }
}

/** Takes `<target>.lock` (exclusive create); a stale lock (its pid is gone) is taken over. Returns the release. */
export async function lockTarget(target: string, what: string): Promise<() => Promise<void>> {
  const lock = `${path.resolve(target)}.lock`;
  await fs.mkdir(path.dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await fs.open(lock, 'wx');
      await h.writeFile(String(process.pid));
      await h.close();
      return async () => {
        await fs.rm(lock, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
      if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && processAlive(pid))) {
        throw new ValueError(
          `${what}: ${target} is in use by another run (process ${pid}, lock ${lock}); wait for it or choose another folder.`,
        );
      }
      await fs.rm(lock, { force: true }); // stale: its writer is gone
    }
  }
  throw new ValueError(`${what}: could not lock ${target} (${lock}).`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsyncPath(p: string): Promise<void> {
  const h = await fs.open(p, 'r');
  try {
    await h.sync();
  } catch {
    // Some file systems cannot fsync folders; the rename order still protects the old contents.
  } finally {
    await h.close();
  }
}

async function fsyncTree(dir: string): Promise<void> {
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await fsyncTree(p);
    else await fsyncPath(p);
  }
  await fsyncPath(dir);
}

const TEMP = /\.(tmp|old)-\d+-[0-9a-f]+$/;

/** Removes temporary and aside folders of ours that a killed writer left next to `target`. */
async function removeLeftovers(target: string): Promise<void> {
  const dir = path.dirname(target);
  const base = path.basename(target);
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const full = path.join(dir, name);
    if (!name.startsWith(`${base}.`) || !TEMP.test(name)) continue;
    if ((await ownedKind(full)) !== null) await fs.rm(full, { recursive: true, force: true });
  }
}

/**
 * Writes a folder of `kind` at `target`: `fill(tmp)` writes the contents into a fresh temporary folder,
 * then it replaces `target` as described above. The caller checks the target first
 * (`checkWritableTarget`) when it wants to fail before expensive work; this checks again.
 */
/** Called between the steps of a swap; tests use them to kill a writer at each moment. */
export interface SwapHooks {
  /** The new folder is complete in its temporary place; the target is untouched. */
  beforeSwap?: () => Promise<void> | void;
  /** The old folder has been renamed aside; the target does not exist. */
  afterAside?: () => Promise<void> | void;
  /** The new folder is in place; the old one is still aside. */
  afterSwap?: () => Promise<void> | void;
}

export async function writeOwnedDir(
  target: string,
  kind: OwnedKind,
  what: string,
  fill: (tmp: string) => Promise<void>,
  hooks: SwapHooks = {},
): Promise<void> {
  const abs = path.resolve(target);
  await checkWritableTarget(abs, kind, what);
  const release = await lockTarget(abs, what);
  const tag = `${process.pid}-${Math.floor(Math.random() * 2 ** 32).toString(16)}`;
  const tmp = `${abs}.tmp-${tag}`;
  const aside = `${abs}.old-${tag}`;
  try {
    await fs.mkdir(tmp, { recursive: true });
    try {
      await fs.writeFile(path.join(tmp, MARKER), `${kind}\nwritten by tfjs-gta; this folder may be replaced by the next save\n`);
      await fill(tmp);
      await fsyncTree(tmp);
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw e;
    }
    await hooks.beforeSwap?.();
    const existing = await statOrNull(abs);
    if (existing !== null) {
      const empty = (await fs.readdir(abs)).length === 0;
      if (empty) await fs.rmdir(abs);
      else await fs.rename(abs, aside);
    }
    await hooks.afterAside?.();
    await fs.rename(tmp, abs);
    await fsyncPath(path.dirname(abs));
    await hooks.afterSwap?.();
    await fs.rm(aside, { recursive: true, force: true });
    await removeLeftovers(abs); // what killed writers left, once the new folder is safely in place
  } finally {
    await release();
  }
}

/**
 * The folder to read for `target`: `target` itself when it holds our marker of `kind`; otherwise an
 * aside copy that a writer killed between its two renames left behind (`<target>.old-*`), or null.
 */
export async function recoverOwnedDir(target: string, kind: OwnedKind): Promise<string | null> {
  const abs = path.resolve(target);
  if ((await ownedKind(abs)) === kind) return abs;
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  const candidates: Array<{ p: string; t: number }> = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(`${base}.old-`) || !TEMP.test(name)) continue;
    const full = path.join(dir, name);
    if ((await ownedKind(full)) === kind) candidates.push({ p: full, t: (await fs.stat(full)).mtimeMs });
  }
  candidates.sort((a, b) => b.t - a.t);
  return candidates[0]?.p ?? null;
}

/**
 * Reads `file` if it is a regular file (a FIFO or a device would block or never end); a missing file,
 * or anything else, is a ValueError naming it and `what` (e.g. `checkpoint`).
 */
export async function readRegularFile(file: string, what: string): Promise<Buffer> {
  const st = await fs.stat(file).catch(() => null);
  if (st === null) throw new ValueError(`${what}: ${file} is missing or unreadable.`);
  if (!st.isFile()) throw new ValueError(`${what}: ${file} is not a regular file.`);
  return fs.readFile(file).catch((e: Error) => {
    throw new ValueError(`${what}: cannot read ${file} (${e.message.split('\n')[0]}).`);
  });
}
