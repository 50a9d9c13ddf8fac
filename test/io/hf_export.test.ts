import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { CausalLMConfig } from '../../src/models/config.js';
import { AttentionConfig } from '../../src/layers/decoder_block.js';
import { causalLMFromHF } from '../../src/io/hf_checkpoint.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { exportHF, HFExport } from '../../src/io/hf_export.js';
import { F32Tensor, serializeSafetensors } from '../../src/io/safetensors_write.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const IDS = [
  [3, 17, 0, 29, 8, 41, 12],
  [5, 5, 38, 1, 20, 33, 9],
];

/** Tiny attention configs of every mechanism; `bias` switches every bias the mechanism has. */
function attention(mechanism: string, bias: boolean, qLoraRank: number | null = null): AttentionConfig {
  const rope = { ropeMaxWavelength: 500 };
  switch (mechanism) {
    case 'gqa':
      return { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, useBias: bias, ...rope };
    case 'mha':
      return { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 4, useBias: bias, ...rope };
    case 'mqa':
      return { kind: 'gqa', headDim: 8, numQueryHeads: 4, numKeyValueHeads: 1, useBias: bias, ...rope };
    case 'gta':
      return {
        kind: 'gta',
        numHeads: 4,
        headDim: 8,
        numQueryHeads: 2,
        numKeyHeads: 1,
        numValueHeads: 1,
        valueDim: 8,
        useBias: bias,
        ...rope,
      };
    default:
      return {
        kind: 'mla',
        numHeads: 4,
        qLoraRank,
        kvLoraRank: 12,
        qkNopeHeadDim: 8,
        qkRopeHeadDim: 4,
        vHeadDim: 6,
        useBias: bias,
        ...rope,
      };
  }
}

function modelConfig(att: AttentionConfig, tied: boolean, normEpsilon = 1e-5): CausalLMConfig {
  return {
    vocabSize: 45,
    hiddenSize: 32,
    numLayers: 2,
    intermediateSize: 48,
    maxSequenceLength: 64,
    normEpsilon,
    tieWordEmbeddings: tied,
    attention: att,
  };
}

/** A model whose every weight (biases and norm gains included) is random, so nothing passes by being zero or one. */
function randomModel(config: CausalLMConfig, seed: number): CausalLM {
  const lm = CausalLM.create(config);
  lm.model.weights.forEach((w, i) => {
    const offset = w.name.includes('norm') ? 1 : 0; // norm gains near 1, everything else near 0
    tf.tidy(() => {
      w.write(tf.add(tf.mul(tf.randomNormal(w.shape as number[], 0, 1, 'float32', seed + i), 0.3), offset));
    });
  });
  return lm;
}

/** Bits of float32 values (distinguishes -0 and NaN payloads, unlike ===). */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function logits(lm: CausalLM): Float32Array {
  const t = lm.logits(IDS);
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

/** export -> serializeSafetensors -> parseSafetensors -> causalLMFromHF. */
function roundTrip(lm: CausalLM): { exported: HFExport; back: CausalLM } {
  const exported = exportHF(lm);
  const bytes = serializeSafetensors(exported.tensors);
  const config = JSON.parse(JSON.stringify(exported.config)) as Record<string, unknown>;
  return { exported, back: causalLMFromHF(config, parseSafetensors(bytes)) };
}

function expectSameTensors(actual: Record<string, F32Tensor>, expected: Record<string, F32Tensor>): void {
  expect(Object.keys(actual).sort()).to.deep.equal(Object.keys(expected).sort());
  for (const [name, t] of Object.entries(expected)) {
    expect(actual[name].shape, name).to.deep.equal(t.shape);
    expect(bits(actual[name].data), name).to.deep.equal(bits(t.data));
  }
}

interface Case {
  mechanism: string;
  tied: boolean;
  bias: boolean;
  qLoraRank?: number;
}
const CASES: Case[] = [];
for (const mechanism of ['gqa', 'mha', 'mqa', 'gta', 'mla']) {
  for (const tied of [true, false]) {
    for (const bias of [false, true]) {
      CASES.push({ mechanism, tied, bias });
      if (mechanism === 'mla') CASES.push({ mechanism, tied, bias, qLoraRank: 10 });
    }
  }
}

describeBackends('exportHF round trip (export -> safetensors -> causalLMFromHF)', () => {
  CASES.forEach((c, k) => {
    const title = `${c.mechanism}${c.qLoraRank ? ' (qLoraRank)' : ''}, ${c.tied ? 'tied' : 'untied'}, ${c.bias ? 'with' : 'without'} biases`;
    // The authors' GTA code always has q/k/v/g biases, so a bias-free GTA comes back with zero biases.
    const zeroFilled = c.mechanism === 'gta' && !c.bias;
    it(`${title}: bit-identical weights and logits`, () => {
      // The blocks' norms at 1e-5; MLA's latent norms stay at 1e-6 (transformers' DeepSeek-V3 fixes them there).
      const eps = 1e-5;
      const lm = randomModel(modelConfig(attention(c.mechanism, c.bias, c.qLoraRank ?? null), c.tied, eps), 1000 * k);
      const { exported, back } = roundTrip(lm);
      try {
        expect('lm_head.weight' in exported.tensors).to.equal(!c.tied);
        expect(back.config.tieWordEmbeddings).to.equal(c.tied);
        expect(bits(logits(back))).to.deep.equal(bits(logits(lm)));
        const reexported = exportHF(back);
        expect(reexported.config).to.deep.equal(exported.config);
        const again = reexported.tensors;
        expectSameTensors(again, exported.tensors);
        if (zeroFilled) {
          const biases = Object.keys(again).filter((n) => n.endsWith('.bias'));
          expect(biases).to.have.length(8); // q, k, v, g in each of 2 layers
          for (const n of biases)
            expect(
              Array.from(again[n].data).every((v) => v === 0),
              n,
            ).to.equal(true);
        } else {
          // Same architecture, so the same variables in the same order: compare them directly.
          const a = back.model.getWeights();
          const b = lm.model.getWeights();
          expect(a.length).to.equal(b.length);
          a.forEach((w, i) =>
            expect(bits(w.dataSync() as Float32Array), lm.model.weights[i].name).to.deep.equal(bits(b[i].dataSync() as Float32Array)),
          );
        }
      } finally {
        lm.dispose();
        back.dispose();
      }
    });
  });

  it('GQA with q/k/v biases but no output bias (the paper baselines) exports o_proj.bias as zeros, same logits', () => {
    const att = { ...attention('gqa', true), useOutputBias: false } as AttentionConfig;
    const lm = randomModel(modelConfig(att, true), 77);
    const { exported, back } = roundTrip(lm);
    try {
      expect(exported.config.attention_bias).to.equal(true);
      expect(Array.from(exported.tensors['model.layers.1.self_attn.o_proj.bias'].data).every((v) => v === 0)).to.equal(true);
      expect(exported.tensors['model.layers.1.self_attn.o_proj.bias'].shape).to.deep.equal([32]);
      expect(bits(logits(back))).to.deep.equal(bits(logits(lm)));
    } finally {
      lm.dispose();
      back.dispose();
    }
  });

  it('GQA with only an output bias exports zero q/k/v biases, same logits', () => {
    const att = { ...attention('gqa', false), useOutputBias: true } as AttentionConfig;
    const lm = randomModel(modelConfig(att, false), 78);
    const { exported, back } = roundTrip(lm);
    try {
      expect(exported.tensors['model.layers.0.self_attn.k_proj.bias'].shape).to.deep.equal([16]);
      for (const p of ['q', 'k', 'v']) {
        expect(Array.from(exported.tensors[`model.layers.0.self_attn.${p}_proj.bias`].data).every((v) => v === 0)).to.equal(true);
      }
      expect(bits(logits(back))).to.deep.equal(bits(logits(lm)));
    } finally {
      lm.dispose();
      back.dispose();
    }
  });

  it('the exported tensors are copies: training the model afterwards does not change them', () => {
    const lm = randomModel(modelConfig(attention('gqa', false), true), 5);
    try {
      const { tensors } = exportHF(lm);
      const before = bits(tensors['model.embed_tokens.weight'].data);
      tf.tidy(() => {
        lm.embedding.embeddings.write(tf.zerosLike(lm.embedding.embeddings.read()));
      });
      expect(bits(tensors['model.embed_tokens.weight'].data)).to.deep.equal(before);
    } finally {
      lm.dispose();
    }
  });
});

describe('exportHF config', () => {
  function configOf(att: AttentionConfig, tied = true, extra: Partial<CausalLMConfig> = {}): Record<string, unknown> {
    const lm = CausalLM.create({ ...modelConfig(att, tied), ...extra });
    try {
      return exportHF(lm).config;
    } finally {
      lm.dispose();
    }
  }

  it('GQA/MHA/MQA are Llama with every key transformers needs', () => {
    const c = configOf(attention('mqa', false), false);
    expect(c).to.include({
      model_type: 'llama',
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 8,
      attention_bias: false,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      vocab_size: 45,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-5,
      rope_theta: 500,
      rope_scaling: null,
      hidden_act: 'silu',
      mlp_bias: false,
      tie_word_embeddings: false,
      torch_dtype: 'float32',
      dtype: 'float32',
    });
    expect(c.architectures).to.deep.equal(['LlamaForCausalLM']);
    expect(Object.keys(c)).to.deep.equal(Object.keys(c).sort());
  });

  it('MLA is DeepSeek-V3 with rotate-half RoPE and a dense MLP in every layer', () => {
    const c = configOf(attention('mla', true, 10));
    expect(c).to.include({
      model_type: 'deepseek_v3',
      num_attention_heads: 4,
      num_key_value_heads: 4,
      q_lora_rank: 10,
      kv_lora_rank: 12,
      qk_nope_head_dim: 8,
      qk_rope_head_dim: 4,
      v_head_dim: 6,
      attention_bias: true,
      rope_interleave: false,
      first_k_dense_replace: 2,
      n_routed_experts: 0,
      num_nextn_predict_layers: 0,
      tie_word_embeddings: true,
    });
    expect(c.architectures).to.deep.equal(['DeepseekV3ForCausalLM']);
    expect(configOf(attention('mla', false)).q_lora_rank).to.equal(null);
  });

  it("GTA uses the authors' GTAForCausalLM keys", () => {
    const c = configOf({ ...attention('gta', true), numValueHeads: 2 } as AttentionConfig);
    expect(c).to.include({
      model_type: 'llama',
      num_attention_heads: 4,
      head_dim: 8,
      num_query_heads: 2,
      query_dim: 8,
      num_key_heads: 1,
      key_dim: 8,
      num_value_heads: 2,
      value_dim: 8,
    });
    expect(c.architectures).to.deep.equal(['GTAForCausalLM']);
  });

  it('records special token ids when given and checks them', () => {
    const lm = CausalLM.create(modelConfig(attention('gqa', false), true));
    try {
      expect(exportHF(lm).config).to.include({ bos_token_id: null, eos_token_id: null });
      expect(exportHF(lm, { bosTokenId: 1, eosTokenId: 2 }).config).to.include({ bos_token_id: 1, eos_token_id: 2 });
      expectThrows(() => exportHF(lm, { eosTokenId: 45 }), /options\.eosTokenId must be null or an integer in \[0, 45\), got 45/);
      expectThrows(() => exportHF(lm, { bosTokenId: 1.5 }), /options\.bosTokenId/);
    } finally {
      lm.dispose();
    }
  });

  it('rejects what the Hugging Face configs cannot express', () => {
    expectThrows(() => exportHF({} as CausalLM), /exportHF: lm must be a CausalLM/);
    expectThrows(
      () => configOf({ ...attention('gqa', false), ropeScalingFactor: 2 } as AttentionConfig),
      /ropeScalingFactor must be 1 .*got 2/,
    );
    expectThrows(() => configOf({ ...attention('gqa', false), useRope: false } as AttentionConfig), /useRope must be true/);
    expectThrows(
      () => configOf({ ...attention('mla', false), rmsNormEpsilon: 1e-5 } as AttentionConfig),
      /MLA rmsNormEpsilon must be 0\.000001.*q_a_layernorm and kv_a_layernorm, got 0\.00001/,
    );
  });
});

describe('serializeSafetensors', () => {
  const t = (shape: number[], values: number[]): F32Tensor => ({ dtype: 'F32', shape, data: Float32Array.from(values) });

  it('writes the safetensors layout: 8-byte length, padded JSON header sorted by name, contiguous data', () => {
    const bytes = serializeSafetensors({ 'b.w': t([2, 2], [1, 2, 3, 4]), a: t([3], [5, 6, 7]), 'c.empty': t([0, 4], []) });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(view.getBigUint64(0, true));
    expect(n % 8).to.equal(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd().length).to.be.greaterThan(n - 8);
    const header = JSON.parse(text);
    expect(Object.keys(header)).to.deep.equal(['__metadata__', 'a', 'b.w', 'c.empty']);
    expect(header.__metadata__).to.deep.equal({ format: 'pt' });
    expect(header.a).to.deep.equal({ dtype: 'F32', shape: [3], data_offsets: [0, 12] });
    expect(header['b.w']).to.deep.equal({ dtype: 'F32', shape: [2, 2], data_offsets: [12, 28] });
    expect(header['c.empty']).to.deep.equal({ dtype: 'F32', shape: [0, 4], data_offsets: [28, 28] });
    expect(bytes.byteLength).to.equal(8 + n + 28);
    expect(view.getFloat32(8 + n + 12, true)).to.equal(1);
    expect(view.getFloat32(8 + n, true)).to.equal(5);
  });

  it('round-trips through parseSafetensors bit for bit, NaN, infinities, -0 and scalars included', () => {
    const special = Float32Array.from([NaN, Infinity, -Infinity, -0, 0, 1.1754942e-38, 3.4028235e38, -1e-45]);
    const tensors = { x: { dtype: 'F32' as const, shape: [2, 4], data: special }, s: t([], [2.5]), 'ünïcode/näme': t([1], [-3]) };
    const back = parseSafetensors(serializeSafetensors(tensors));
    expect(Object.keys(back).sort()).to.deep.equal(Object.keys(tensors).sort());
    for (const [name, v] of Object.entries(tensors)) {
      expect(back[name].shape).to.deep.equal(v.shape);
      expect(back[name].dtype).to.equal('F32');
      expect(bits(back[name].data)).to.deep.equal(bits(v.data));
    }
  });

  it('reads data from a Float32Array view with an offset', () => {
    const big = Float32Array.from([9, 8, 7, 6, 5]);
    const back = parseSafetensors(serializeSafetensors({ v: { dtype: 'F32', shape: [3], data: big.subarray(1, 4) } }));
    expect(Array.from(back.v.data)).to.deep.equal([8, 7, 6]);
  });

  it('rejects bad input with a ValueError naming the tensor and the rule', () => {
    const bad = (x: unknown) => () => serializeSafetensors(x as Record<string, F32Tensor>);
    expectThrows(bad(null), /tensors must be an object/);
    expectThrows(bad([t([1], [1])]), /tensors must be an object .*got an array/);
    expectThrows(bad({ '': t([1], [1]) }), /names must be non-empty strings/);
    expectThrows(bad({ __metadata__: t([1], [1]) }), /"__metadata__" is reserved/);
    expectThrows(bad({ w: { dtype: 'F16', shape: [1], data: new Float32Array(1) } }), /tensors\["w"\]\.dtype must be 'F32'.*got "F16"/);
    expectThrows(bad({ w: { shape: [1], data: new Float32Array(1) } }), /dtype must be 'F32'.*got undefined/);
    expectThrows(
      bad({ w: { dtype: 'F32', shape: [2, -1], data: new Float32Array(1) } }),
      /shape must be an array of non-negative integers/,
    );
    expectThrows(bad({ w: { dtype: 'F32', shape: [1.5], data: new Float32Array(1) } }), /shape must be an array of non-negative integers/);
    expectThrows(bad({ w: { dtype: 'F32', shape: [2], data: [1, 2] } }), /data must be a Float32Array, got an array/);
    expectThrows(bad({ w: { dtype: 'F32', shape: [2], data: new Float64Array(2) } }), /data must be a Float32Array, got Float64Array/);
    expectThrows(
      bad({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } }),
      /tensors\["w"\] has 5 values but shape \[2,3\] needs 6/,
    );
    expectThrows(bad({ w: 3 }), /tensors\["w"\] must be \{dtype: 'F32', shape, data\}, got number/);
  });
});
