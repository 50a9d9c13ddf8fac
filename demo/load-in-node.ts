// Run: npx tsx demo/load-in-node.ts <name>.json [--prompt "Call me Ishmael."] [--tokens 200] [--temperature 0.8]
//      npx tsx demo/load-in-node.ts <folder with model.json>     (after renaming <name>.json to model.json)
// Loads a model the browser demo downloaded (<name>.json + <name>.weights.bin, side by side in one folder)
// through the package's Node file handler and continues the prompt, e.g.
//   gta, 89,744 parameters, trained 60 steps in the browser on Moby-Dick (Herman Melville, 1851), chapters 1–2
//   Call me Ishmael. the sea the ...
//   40 tokens, decode 310.2 tokens/s on wasm
// With --json it prints what the e2e test compares with the browser instead: the logits at the last prompt
// position and a greedy continuation, plus a check that tf.loadLayersModel reads the same weights.
// A folder with config.json + model.safetensors + tfjs-gta-tokenizer.json (the page's "Download for PyTorch")
// is read with loadHFCheckpoint instead. In an app, import from 'tfjs-gta/node' instead of '../src/node.js'.
import * as tf from '@tensorflow/tfjs';
import { resolve, join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CausalLM, fileSystemHandler, loadHFCheckpoint, setBackendStrict, tokenizerFromJSON } from '../src/node.js';

const VALUE_OPTIONS = ['--prompt', '--tokens', '--temperature', '--backend'];
const args = process.argv.slice(2);
const values: Record<string, string> = {};
const positional: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (VALUE_OPTIONS.includes(args[i]) && i + 1 < args.length) values[args[i]] = args[++i];
  else if (!args[i].startsWith('--')) positional.push(args[i]);
}
const option = (name: string, fallback: string) => values[name] ?? fallback;
const target = positional[0];
if (!target) {
  console.error(
    'usage: npx tsx demo/load-in-node.ts <name>.json|<folder> [--prompt text] [--tokens n] [--temperature t] [--backend wasm|cpu] [--json]',
  );
  process.exit(2);
}
const prompt = option('--prompt', 'Call me Ishmael.');
const tokens = Number(option('--tokens', '200'));
const temperature = Number(option('--temperature', args.includes('--json') ? '0' : '0.8'));
// wasm or cpu: the package's own file:// handler serves the files (with tfjs-node loaded, tfjs-node's would).
await setBackendStrict(option('--backend', 'wasm'));

const path = resolve(target);
const hf = existsSync(join(path, 'config.json'));
// a Hugging Face folder, a <name>.json file, or a folder holding model.json
const lm = hf ? await loadHFCheckpoint(path) : await CausalLM.load(`file://${path}`);
type DemoMeta = { tokenizer: object; variant: string; steps: number; text: string };
const meta = hf
  ? ({
      tokenizer: JSON.parse(await readFile(join(path, 'tfjs-gta-tokenizer.json'), 'utf8')),
      variant: lm.config.attention.kind,
      steps: 0,
      text: 'the page (exported for PyTorch)',
    } as DemoMeta)
  : (lm.model.getUserDefinedMetadata() as Record<string, DemoMeta>).tfjsGtaDemo;
if (!meta?.tokenizer) throw new Error(`${target} has no tokenizer in its metadata; was it downloaded from the demo page?`);
const tokenizer = tokenizerFromJSON(meta.tokenizer);
const promptIds = Array.from(tokenizer.encode(prompt));

if (args.includes('--json')) {
  // The same files through tf.loadLayersModel and the handler directly: the weights must be identical.
  const direct = hf ? lm.model : await tf.loadLayersModel(fileSystemHandler(path.endsWith('.json') ? path : join(path, 'model.json')));
  const a = lm.model.getWeights();
  const b = direct.getWeights();
  let weightDiff = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    weightDiff = Math.max(
      weightDiff,
      tf.tidy(() => tf.max(tf.abs(tf.sub(a[i], b[i]))).dataSync()[0]),
    );
  }
  const logits = lm.logits([promptIds]);
  const lastLogits = Array.from(tf.tidy(() => tf.slice(logits, [0, promptIds.length - 1, 0], [1, 1, -1])).dataSync());
  logits.dispose();
  const g = await lm.generate(promptIds, { maxNewTokens: tokens });
  console.log(
    JSON.stringify({
      backend: tf.getBackend(),
      variant: meta.variant,
      params: lm.countParams(),
      weights: a.length,
      weightDiff,
      promptIds,
      lastLogits,
      greedy: g.tokens[0],
      text: tokenizer.decode(g.tokens[0]),
    }),
  );
} else {
  console.log(
    `${meta.variant}, ${lm.countParams().toLocaleString('en-US')} parameters, trained ${meta.steps} steps in the browser on ${meta.text}`,
  );
  process.stdout.write(prompt);
  const result = await lm.generate(promptIds, {
    maxNewTokens: tokens,
    temperature,
    seed: 1,
    onToken: ({ tokens: t }) => {
      process.stdout.write(tokenizer.decode([t[0]]));
    },
  });
  console.log(`\n${result.tokens[0].length} tokens, decode ${result.decodeTokensPerSecond.toFixed(1)} tokens/s on ${tf.getBackend()}`);
}
