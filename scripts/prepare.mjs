#!/usr/bin/env node
// `prepare`: npm runs it after a plain `npm install` in this repository (never when the package is
// installed into someone else's project). It makes the fast tfjs-node backend work here by building it
// offline (scripts/setup-tfjs-node.mjs); a failure only prints a note, so the install itself succeeds
// and the CLI falls back to wasm. Skipped when packing or publishing, and with TFJS_GTA_SKIP_SETUP=1.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const command = process.env.npm_command ?? '';
if (['pack', 'publish'].includes(command) || process.env.TFJS_GTA_SKIP_SETUP === '1') process.exit(0);
const script = fileURLToPath(new URL('./setup-tfjs-node.mjs', import.meta.url));
const env = { ...process.env };
delete env.npm_config_loglevel; // `npm install -s` must not silence the inner npm that setup reads
const r = spawnSync(process.execPath, [script], { stdio: 'inherit', env });
if (r.status !== 0) {
  console.log(
    '\nnote: the offline tfjs-node build did not complete (see above); the install is fine, and the CLI will use the ' +
      'wasm backend. Run `npm run setup:tfjs-node` to try again.',
  );
}
