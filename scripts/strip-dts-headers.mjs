/**
 * Build step after `tsc` (npm run build), on dist/**\/*.d.ts:
 * 1. removes each declaration file's leading comment when an import follows it. That comment is the source
 *    file's notation block (the module's overview), which tsc copies into the declarations although no
 *    declaration carries it, so editors never show it; the shipped .js files lose it to --removeComments
 *    already. Doc comments on declarations are kept. About 60 kB of the installed package.
 * 2. deletes the declaration files that no entry's types reach (the kernels, the CLI, internal helpers):
 *    package.json's `exports` lets an app import only `tfjs-gta` and `tfjs-gta/node`, so nothing can read
 *    them. The reachable set follows the relative imports and exports of dist/index.d.ts and dist/node.d.ts.
 *    About 60 kB and 40 files.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;
const ENTRIES = ['index.d.ts', 'node.d.ts'];

function* declarations(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* declarations(p);
    else if (e.name.endsWith('.d.ts')) yield p;
  }
}

let files = 0;
let bytes = 0;
for (const file of declarations(dist)) {
  const text = readFileSync(file, 'utf8');
  const m = /^\s*\/\*[\s\S]*?\*\/\s*/.exec(text);
  if (m === null || !text.slice(m[0].length).startsWith('import ')) continue;
  writeFileSync(file, text.slice(m[0].length));
  files += 1;
  bytes += m[0].length;
}
console.log(`strip-dts-headers: ${files} module overviews removed from declarations (${(bytes / 1024).toFixed(1)} KiB)`);

/** The declaration files that `file` imports or re-exports by relative path (`import('./x.js')` types included). */
function references(file) {
  const text = readFileSync(file, 'utf8');
  const found = [];
  const pattern = /(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of text.matchAll(pattern)) {
    const target = normalize(join(dirname(file), m[1])).replace(/\.js$/, '');
    found.push(`${target}.d.ts`);
  }
  return found;
}

const reached = new Set();
const stack = ENTRIES.map((e) => join(dist, e));
for (const entry of stack) if (!existsSync(entry)) throw new Error(`strip-dts-headers: missing entry ${entry}`);
while (stack.length > 0) {
  const file = stack.pop();
  if (reached.has(file) || !existsSync(file)) continue;
  reached.add(file);
  stack.push(...references(file));
}
let pruned = 0;
let prunedBytes = 0;
for (const file of declarations(dist)) {
  if (reached.has(file)) continue;
  prunedBytes += readFileSync(file).length;
  rmSync(file);
  pruned += 1;
}
console.log(`strip-dts-headers: ${pruned} declaration files no entry reaches removed (${(prunedBytes / 1024).toFixed(1)} KiB)`);
