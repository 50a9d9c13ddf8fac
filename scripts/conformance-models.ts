/**
 * npm run conformance:models -- <models.json> [more files] [--backend cpu|wasm|tensorflow]
 *
 * Imports each model of a `gta-refmodel-1` file from its safetensors weights (path relative to the
 * JSON), checks its logits (norm-relative error at most 1e-4) and its greedy continuation through the
 * cached decode path, prints one line per case and exits 1 on any failure (2 on bad usage).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict, useBestBackend } from '../src/backend.js';
import { parseSafetensors, parseTensorJSON } from '../src/io/safetensors.js';
import { parseReferenceModelFile, runReferenceModelCase } from '../src/conformance/reference_models.js';

const LOGITS_TOL = 1e-4;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { backend: { type: 'string' } } });
  if (positionals.length === 0) {
    console.error('usage: npm run conformance:models -- <models.json> [...] [--backend cpu|wasm|tensorflow]');
    return 2;
  }
  if (values.backend) await setBackendStrict(values.backend);
  else await useBestBackend();
  console.log(`backend: ${tf.getBackend()}  (logits tolerance ${LOGITS_TOL}; greedy continuation must match exactly)`);
  let failed = 0;
  let total = 0;
  for (const path of positionals) {
    const file = parseReferenceModelFile(readFileSync(path, 'utf8'), path);
    for (const c of file.cases) {
      total += 1;
      try {
        const weightsPath = resolve(dirname(path), c.weights_file);
        const tensors = weightsPath.endsWith('.json')
          ? parseTensorJSON(readFileSync(weightsPath, 'utf8'), weightsPath)
          : parseSafetensors(readFileSync(weightsPath), weightsPath);
        const r = await runReferenceModelCase(c, tensors);
        const ok = r.logitsError <= LOGITS_TOL && r.greedyMatches;
        if (!ok) failed += 1;
        console.log(`${ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(10)} ${r.mechanism}  logits ${r.logitsError.toExponential(2)}  greedy ` +
          `${r.greedyMatches ? 'matches' : `differs: got ${JSON.stringify(r.continuation)} expected ${JSON.stringify(r.expected)}`}`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL  ${String(c.name).padEnd(10)} ${c.mechanism}  error: ${(e as Error).message}`);
      }
    }
  }
  console.log(`${total - failed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`conformance:models: ${(e as Error).message}`);
  process.exit(2);
});
