/**
 * npm run conformance -- <file.json> [more files] [--backend cpu|wasm|tensorflow] [--mask attention|causal]
 *
 * Runs every case of each reference file (gta-refvec-1 format) on one backend and prints one line per
 * case with the norm-relative errors of the output and of the worst gradient. Exits 1 if any output
 * error exceeds 1e-5 or any gradient error exceeds 1e-4, 2 on bad usage or an unreadable file.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { setBackendStrict, useBestBackend } from '../src/backend.js';
import { parseReferenceFile, runReferenceCase, type MaskMode } from '../src/conformance/reference_vectors.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { backend: { type: 'string' }, mask: { type: 'string', default: 'attention' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    console.log('usage: npm run conformance -- <vectors.json> [...] [--backend cpu|wasm|tensorflow] [--mask attention|causal]');
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const maskMode: MaskMode = values.mask === 'causal' ? 'causalPadding' : 'attentionMask';
  if (values.mask !== 'attention' && values.mask !== 'causal') {
    console.error(`--mask must be "attention" or "causal", got ${JSON.stringify(values.mask)}`);
    return 2;
  }
  if (values.backend) await setBackendStrict(values.backend);
  else await useBestBackend();
  console.log(`backend: ${tf.getBackend()}  (tolerances: output ${OUTPUT_TOL}, gradients ${GRAD_TOL})`);
  let failed = 0;
  let total = 0;
  for (const path of positionals) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      console.error(`cannot read ${path}: ${(e as Error).message}`);
      return 2;
    }
    const file = parseReferenceFile(text, path);
    for (const c of file.cases) {
      total += 1;
      try {
        const r = runReferenceCase(c, maskMode);
        const worst = Object.entries(r.gradErrors).sort((a, b) => b[1] - a[1])[0];
        const ok = r.outputError <= OUTPUT_TOL && r.maxGradError <= GRAD_TOL;
        if (!ok) failed += 1;
        console.log(`${ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(12)} ${r.mechanism}  output ${r.outputError.toExponential(2)}  ` +
          `grads max ${r.maxGradError.toExponential(2)} (${worst ? worst[0] : '-'}, ${Object.keys(r.gradErrors).length} tensors)`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL  ${String(c.name).padEnd(12)} ${c.mechanism}  error: ${(e as Error).message}`);
      }
    }
  }
  console.log(`${total - failed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`conformance: ${(e as Error).message}`);
  process.exit(2);
});
