import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { CausalLM } from '../../src/models/causal_lm.js';
import type { CausalLMConfig } from '../../src/models/config.js';
import type { AttentionConfig } from '../../src/layers/decoder_block.js';
import { hfTensorShapes } from '../../src/io/hf_shapes.js';
import { torchWeightSpecs } from '../../src/io/torch_weights.js';
import { causalLMFromHF, checkHFTensors } from '../../src/io/hf_checkpoint.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { parseReferenceModelFile } from '../../src/conformance/reference_models.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const file = parseReferenceModelFile(readFileSync(new URL('../fixtures/models/models.json', import.meta.url), 'utf8'));
const weightsOf = (name: string) => parseSafetensors(readFileSync(new URL(`../fixtures/models/${name}`, import.meta.url)));

/** HF name -> torch shape of every weight of a built model, read from its layers' torch weight specs. */
function modelTorchShapes(lm: CausalLM): Map<string, number[]> {
  const out = new Map<string, number[]>([['model.embed_tokens.weight', lm.embedding.embeddings.shape as number[]]]);
  lm.blocks.forEach((block, i) => {
    for (const s of torchWeightSpecs(block)) out.set(`model.layers.${i}.${s.torchName}`, s.torchShape);
  });
  for (const s of torchWeightSpecs(lm.finalNorm)) out.set(`model.norm.${s.torchName}`, s.torchShape);
  if (lm.head) out.set('lm_head.weight', [...lm.head.weight.shape].reverse() as number[]);
  return out;
}

const ATTENTIONS: AttentionConfig[] = [
  { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, useBias: false },
  { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 1, useBias: true },
  { kind: 'gqa', headDim: 8, numQueryHeads: 2, numKeyValueHeads: 2, useBias: true, useOutputBias: false },
  { kind: 'gta', numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8, useBias: true },
  { kind: 'gta', numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 2, numValueHeads: 1, valueDim: 4, useBias: false },
  { kind: 'mla', numHeads: 4, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 6 },
  { kind: 'mla', numHeads: 2, qLoraRank: 10, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 6, useBias: true },
];

describeBackends('HF checkpoint shapes', () => {
  it('hfTensorShapes lists exactly the weights (names and torch shapes) of the model the config builds', () => {
    for (const attention of ATTENTIONS) {
      for (const tieWordEmbeddings of [true, false]) {
        const config: CausalLMConfig = {
          vocabSize: 19,
          hiddenSize: 32,
          numLayers: 2,
          intermediateSize: 40,
          maxSequenceLength: 64,
          attention,
          tieWordEmbeddings,
        };
        const lm = CausalLM.create(config);
        const built = modelTorchShapes(lm);
        lm.dispose();
        const computed = hfTensorShapes(config);
        expect([...computed.entries()].sort(), `${attention.kind} tied=${tieWordEmbeddings}`).to.deep.equal([...built.entries()].sort());
      }
    }
  });

  it('rejects a config that does not fit its tensors before building the model (vocab_size 2e6, 97-row tensors)', () => {
    const c = file.cases.find((k) => k.mechanism === 'gqa')!;
    const tensors = weightsOf(c.weights_file);
    const before = tf.memory().numTensors;
    const started = performance.now();
    const e = expectThrows(
      () => causalLMFromHF({ ...c.config, vocab_size: 2_000_000 }, tensors),
      /model\.embed_tokens\.weight has shape \[97,64\] but the config needs \[2000000,64\]/,
    );
    expect(e).to.be.instanceOf(ValueError);
    expect(performance.now() - started, 'ms').to.be.below(1000);
    expect(tf.memory().numTensors).to.equal(before);
    expectThrows(
      () => causalLMFromHF({ ...c.config, num_hidden_layers: 1e9 }, tensors),
      /model\.layers\.2\.input_layernorm\.weight is missing \(expected shape \[64\]/,
    );
    expectThrows(
      () => causalLMFromHF({ ...c.config, intermediate_size: 4096 }, tensors),
      /model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128,64\] but the config needs \[4096,64\]/,
    );
    expectThrows(
      () => causalLMFromHF({ ...c.config, num_key_value_heads: 4 }, tensors),
      /model\.layers\.0\.self_attn\.k_proj\.weight has shape \[32,64\] but the config needs \[64,64\]/,
    );
    expectThrows(
      () =>
        causalLMFromHF(
          { ...c.config, tie_word_embeddings: true },
          { ...tensors, 'lm_head.weight': { shape: [97, 32], data: new Float32Array(97 * 32) } },
        ),
      /lm_head\.weight has shape \[97,32\] but the config needs \[97,64\]/,
    );
    expectThrows(
      () => causalLMFromHF(c.config, { ...tensors, 'model.norm.weight': { shape: [64], data: new Float32Array(3) } }),
      /model\.norm\.weight has 3 values but shape \[64\] needs 64/,
    );
    expectThrows(() => causalLMFromHF({ ...c.config, hidden_size: -64 }, tensors), /hiddenSize must be a positive integer/);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('accepts every reference checkpoint (the check and the import agree)', () => {
    for (const c of file.cases) {
      const tensors = weightsOf(c.weights_file);
      const lm = causalLMFromHF(c.config, tensors);
      expect(() => checkHFTensors(lm.config, tensors)).to.not.throw();
      lm.dispose();
    }
  });
});
