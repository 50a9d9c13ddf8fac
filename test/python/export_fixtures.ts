/**
 * Writes Hugging Face checkpoints exported by `exportHF`, and our logits for fixed token ids, for
 * `check_hf_export.py` to compare with PyTorch. Run by `node scripts/check-hf-export.mjs`, or alone:
 *
 *   npx tsx test/python/export_fixtures.ts <out-dir>
 *
 * Each case gets `<out-dir>/<case>/config.json`, `model.safetensors` and `expected.json`
 * (`{mechanism, input_ids, logits: {shape, data}}`); `<out-dir>/cases.json` lists the cases.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM } from '../../src/models/causal_lm.js';
import { CausalLMConfig } from '../../src/models/config.js';
import { AttentionConfig } from '../../src/layers/decoder_block.js';
import { exportHF } from '../../src/io/hf_export.js';
import { serializeSafetensors } from '../../src/io/safetensors_write.js';

interface FixtureCase {
  name: string;
  mechanism: 'gqa' | 'mha' | 'mqa' | 'gta' | 'mla';
  tied: boolean;
  attention: AttentionConfig;
  normEpsilon?: number;
}

const gqa = (q: number, kv: number, useBias: boolean, extra: object = {}): AttentionConfig => ({
  kind: 'gqa',
  headDim: 16,
  numQueryHeads: q,
  numKeyValueHeads: kv,
  useBias,
  ...extra,
});
const gta = (useBias: boolean, numQueryHeads: number, numValueHeads: number, valueDim: number): AttentionConfig => ({
  kind: 'gta',
  numHeads: 4,
  headDim: 16,
  numQueryHeads,
  numKeyHeads: 1,
  numValueHeads,
  valueDim,
  useBias,
});
const mla = (qLoraRank: number | null, useBias: boolean): AttentionConfig => ({
  kind: 'mla',
  numHeads: 4,
  qLoraRank,
  kvLoraRank: 24,
  qkNopeHeadDim: 16,
  qkRopeHeadDim: 8,
  vHeadDim: 12,
  useBias,
});

/** Every mechanism, tied and untied, with and without biases, MLA with and without query compression. */
const CASES: FixtureCase[] = [
  { name: 'gqa_bias_untied', mechanism: 'gqa', tied: false, attention: gqa(4, 2, true, { ropeMaxWavelength: 500 }) },
  { name: 'gqa_qkv_bias_tied', mechanism: 'gqa', tied: true, attention: gqa(4, 2, true, { useOutputBias: false }) },
  { name: 'mha_nobias_tied', mechanism: 'mha', tied: true, attention: gqa(4, 4, false) },
  { name: 'mqa_bias_tied', mechanism: 'mqa', tied: true, attention: gqa(4, 1, true, { ropeMaxWavelength: 1e6 }) },
  { name: 'gta_bias_tied', mechanism: 'gta', tied: true, attention: gta(true, 2, 1, 16) },
  { name: 'gta_nobias_untied', mechanism: 'gta', tied: false, attention: gta(false, 4, 2, 8) },
  { name: 'mla_nobias_tied', mechanism: 'mla', tied: true, attention: mla(null, false), normEpsilon: 1e-6 },
  { name: 'mla_qlora_bias_untied', mechanism: 'mla', tied: false, attention: mla(20, true), normEpsilon: 1e-6 },
  // rms_norm_eps 1e-5 while the latent norms keep transformers' fixed 1e-6.
  { name: 'mla_qlora_eps1e-5_tied', mechanism: 'mla', tied: true, attention: mla(20, false), normEpsilon: 1e-5 },
];

const INPUT_IDS = [
  [5, 71, 0, 33, 98, 14, 62, 7, 7, 41, 86, 23, 50, 3],
  [90, 2, 17, 64, 64, 39, 11, 75, 28, 99, 6, 45, 12, 81],
];

/** Random weights everywhere (biases and norm gains included), seeded per case. */
function randomize(lm: CausalLM, seed: number): void {
  lm.model.weights.forEach((w, i) => {
    const offset = w.name.includes('norm') ? 1 : 0;
    const scale = w.name.includes('norm') ? 0.2 : 0.15;
    tf.tidy(() => {
      w.write(tf.add(tf.mul(tf.randomNormal(w.shape as number[], 0, 1, 'float32', seed + i), scale), offset));
    });
  });
}

function writeCase(dir: string, c: FixtureCase, seed: number): void {
  const config: CausalLMConfig = {
    vocabSize: 101,
    hiddenSize: 64,
    numLayers: 2,
    intermediateSize: 96,
    maxSequenceLength: 128,
    normEpsilon: c.normEpsilon ?? 1e-5,
    tieWordEmbeddings: c.tied,
    attention: c.attention,
  };
  const lm = CausalLM.create(config);
  try {
    randomize(lm, seed);
    const { config: hf, tensors } = exportHF(lm);
    const logits = lm.logits(INPUT_IDS);
    const expected = { mechanism: c.mechanism, input_ids: INPUT_IDS, logits: { shape: logits.shape, data: Array.from(logits.dataSync()) } };
    logits.dispose();
    const out = join(dir, c.name);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'config.json'), JSON.stringify(hf, null, 2));
    writeFileSync(join(out, 'model.safetensors'), serializeSafetensors(tensors));
    writeFileSync(join(out, 'expected.json'), JSON.stringify(expected));
  } finally {
    lm.dispose();
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: tsx test/python/export_fixtures.ts <out-dir>');
  await tf.setBackend(process.env.TFJS_BACKEND ?? 'cpu');
  mkdirSync(dir, { recursive: true });
  CASES.forEach((c, i) => writeCase(dir, c, 7919 * (i + 1)));
  writeFileSync(
    join(dir, 'cases.json'),
    JSON.stringify({ backend: tf.getBackend(), cases: CASES.map((c) => ({ name: c.name, mechanism: c.mechanism })) }, null, 2),
  );
  console.log(`wrote ${CASES.length} exported checkpoints to ${dir} (logits on ${tf.getBackend()})`);
}

await main();
