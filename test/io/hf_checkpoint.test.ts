import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { DECODE_ATTENTION_KERNEL } from '../../src/kernels/webgpu/decode_step.js';
import { MLA_DECODE_KERNEL } from '../../src/kernels/webgpu/mla_decode.js';
import { causalLMConfigFromHF, causalLMFromHF } from '../../src/io/hf_checkpoint.js';
import { parseSafetensors, parseTensorJSON } from '../../src/io/safetensors.js';
import { parseReferenceModelFile, runReferenceModelCase } from '../../src/conformance/reference_models.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';
import { readFixtureBytes, readFixtureText } from '../kit/fixtures.js';

// Read through the kit, so that the browser suite runs these too: on webgpu the greedy continuation goes
// through each mechanism's fused decode step.
const file = parseReferenceModelFile(await readFixtureText('models/models.json'));
const files = new Map(
  await Promise.all(file.cases.map(async (c) => [c.weights_file, await readFixtureBytes(`models/${c.weights_file}`)] as const)),
);
const weightsOf = (name: string) => parseSafetensors(files.get(name)!);

/** The fused decode kernel each mechanism's one-token steps run on webgpu. */
const DECODE_KERNELS: Record<string, string> = { gta: DECODE_ATTENTION_KERNEL, gqa: DECODE_ATTENTION_KERNEL, mla: MLA_DECODE_KERNEL };

describeBackends('reference models (safetensors import, logits, cached greedy decoding)', ({ backend, tol }) => {
  for (const c of file.cases) {
    it(`${c.name} (${c.mechanism}) matches the reference logits and greedy continuation`, async () => {
      let r: Awaited<ReturnType<typeof runReferenceModelCase>> | null = null;
      const profile = await tf.profile(async () => {
        r = await runReferenceModelCase(c, weightsOf(c.weights_file));
      });
      const result = r!;
      expect(result.logitsError).to.be.at.most(Math.max(1e-4, tol.output));
      expect(result.continuation).to.deep.equal(c.greedy.continuation);
      if (backend === 'webgpu') expect(profile.kernelNames, 'kernels of the run').to.include(DECODE_KERNELS[c.mechanism]);
    });
  }

  it('imports the same model from a plain JSON of arrays', async () => {
    const c = file.cases[0];
    const tensors = weightsOf(c.weights_file);
    const json = JSON.stringify(
      Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }])),
    );
    const r = await runReferenceModelCase(c, parseTensorJSON(json));
    expect(r.logitsError).to.be.at.most(Math.max(1e-4, tol.output));
  });
});

describe('checkpoint formats', () => {
  it('reads F16, BF16 and F64 safetensors tensors', () => {
    const header = JSON.stringify({
      a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] },
      c: { dtype: 'F64', shape: [1], data_offsets: [6, 14] },
    });
    const h = new TextEncoder().encode(header);
    const buf = new Uint8Array(8 + h.length + 14);
    new DataView(buf.buffer).setBigUint64(0, BigInt(h.length), true);
    buf.set(h, 8);
    const d = new DataView(buf.buffer, 8 + h.length);
    d.setUint16(0, 0x3c00, true); // 1.0 in f16
    d.setUint16(2, 0xc000, true); // -2.0 in f16
    d.setUint16(4, 0x4040, true); // 3.0 in bf16
    d.setFloat64(6, 0.25, true);
    const t = parseSafetensors(buf);
    expect(Array.from(t.a.data)).to.deep.equal([1, -2]);
    expect(Array.from(t.b.data)).to.deep.equal([3]);
    expect(Array.from(t.c.data)).to.deep.equal([0.25]);
    expectThrows(() => parseSafetensors(new Uint8Array(4)), /too short/);
    expect(Array.from(parseTensorJSON('{"w": [[1, 2], [3, 4]]}').w.data)).to.deep.equal([1, 2, 3, 4]);
    expect(parseTensorJSON('{"w": [[1, 2], [3, 4]]}').w.shape).to.deep.equal([2, 2]);
  });

  it('maps each Hugging Face config and rejects what it cannot run', () => {
    const [gta, gqa, mla] = file.cases;
    expect(causalLMConfigFromHF(gta.config).attention.kind).to.equal('gta');
    expect(causalLMConfigFromHF(gqa.config).attention).to.include({ kind: 'gqa', numKeyValueHeads: 2 });
    expect(causalLMConfigFromHF(gqa.config).tieWordEmbeddings).to.equal(false);
    expect(causalLMConfigFromHF(mla.config).attention).to.include({ kind: 'mla', kvLoraRank: 32 });
    expectThrows(() => causalLMConfigFromHF({ ...gqa.config, hidden_act: 'gelu' }), /hidden_act "gelu" is not supported/);
    expectThrows(() => causalLMConfigFromHF({ ...mla.config, rope_interleave: true }), /interleaved RoPE/);
    expectThrows(() => causalLMConfigFromHF({ ...gqa.config, vocab_size: 'x' }), /vocab_size must be an integer/);
    const tensors = weightsOf(gqa.weights_file);
    const { ['model.norm.weight']: _n, ...missing } = tensors;
    expectThrows(() => causalLMFromHF(gqa.config, missing), /model\.norm\.weight is missing/);
    expectThrows(
      () => causalLMFromHF(gqa.config, { ...tensors, 'model.extra.weight': { shape: [1], data: new Float32Array(1) } }),
      /not used by the model: model\.extra\.weight/,
    );
  });
});
