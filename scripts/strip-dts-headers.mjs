/**
 * Build step after `tsc` (npm run build): removes each dist/**\/*.d.ts file's leading comment when an import
 * follows it. That comment is the source file's notation block (the module's overview), which tsc copies into
 * the declarations although no declaration carries it, so editors never show it; the shipped .js files lose it
 * to --removeComments already. Doc comments on declarations are kept. About 60 kB of the installed package.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;

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
