/**
 * File loaders given corrupted or hostile files: safetensors (truncated, bad header lengths, bad JSON,
 * unknown dtypes, huge or non-integer shapes, negative, fractional, overlapping or gapped offsets,
 * trailing bytes, `__proto__`), JSON tensors, tfjs model folders (`model.json` weight paths that escape
 * the folder, symlinks, FIFOs, devices, wrong sizes, dtypes and names, metadata that contradicts the
 * weights, huge files) and Hugging Face folders (`config.json` values swept, unsupported features,
 * missing, extra or mis-shaped tensors, NaN weights).
 */
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Case } from '../classify.js';
import { EditableJSON, once, promptLogits, sweepCases, tempDir } from './common.js';
import { parseSafetensors, parseTensorJSON } from '../../../src/io/safetensors.js';
import { F32Tensor, serializeSafetensors } from '../../../src/io/safetensors_write.js';
import { fileSystemHandler } from '../../../src/io/file_handler.js';
import '../../../src/node.js'; // registers the file:// handler that CausalLM.load uses
import { loadHFCheckpoint, saveHFCheckpoint } from '../../../src/io/hf_files.js';
import { causalLMFromHF } from '../../../src/io/hf_checkpoint.js';
import { CausalLM } from '../../../src/models/causal_lm.js';

const SAFETENSORS = 'safetensors';
const TENSOR_JSON = 'tensor JSON';
const MODEL_JSON = 'model.json';
const HF = 'HF config.json';

// ---------------------------------------------------------------- safetensors

/** A safetensors file: the 8-byte length (`declared`, default the header's), the header, `data` bytes. */
function safetensors(header: unknown, data: number | Uint8Array = 0, declared?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const bytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + bytes.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(bytes, 8 + h.length);
  return out;
}

const f32 = (shape: unknown, offsets: unknown) => ({ dtype: 'F32', shape, data_offsets: offsets });

function stErr(name: string, bytes: () => Uint8Array, mentions: RegExp): Case {
  return { category: SAFETENSORS, name, run: () => parseSafetensors(bytes(), 'w.safetensors'), expect: 'error', mentions, isolate: true };
}

function stOk(name: string, bytes: () => Uint8Array, check: (r: Record<string, { data: Float32Array }>) => void): Case {
  return {
    category: SAFETENSORS,
    name,
    run: () => parseSafetensors(bytes(), 'w.safetensors'),
    expect: 'ok',
    isolate: true,
    check: (r) => check(r as Record<string, { data: Float32Array }>),
  };
}

function expectValues(got: ArrayLike<number>, want: number[]): void {
  if (got.length !== want.length || want.some((v, i) => got[i] !== v)) throw new Error(`values [${Array.from(got)}], expected [${want}]`);
}

function safetensorsCases(): Case[] {
  const one =
    (entry: unknown, data = 8) =>
    () =>
      safetensors({ a: entry }, data);
  return [
    stErr('4-byte file', () => new Uint8Array(4), /w\.safetensors: too short/),
    stErr('header length beyond the file', () => safetensors({}, 0, 1000n), /invalid header length 1000/),
    stErr('header length 0', () => safetensors({}, 0, 0n), /invalid header length 0/),
    stErr('header length 2^63', () => safetensors({}, 0, 2n ** 63n), /invalid header length/),
    stErr('header not JSON', () => safetensors('{"a": '), /header is not valid JSON/),
    stErr(
      'header not UTF-8',
      () => {
        const b = safetensors('{"a": 1}');
        b[10] = 0xff;
        return b;
      },
      /header is not valid JSON/,
    ),
    stErr('header an array', () => safetensors([]), /header must be a JSON object/),
    stErr('header null', () => safetensors('null'), /header must be a JSON object/),
    stErr('header a number', () => safetensors('5'), /header/),
    stErr('entry a string', one('F32'), /tensor "a" must be an object/),
    stErr('dtype I64', one({ dtype: 'I64', shape: [1], data_offsets: [0, 8] }), /unsupported dtype "I64"/),
    stErr('dtype missing', one({ shape: [2], data_offsets: [0, 8] }), /unsupported dtype/),
    stErr('dtype "constructor"', one({ dtype: 'constructor', shape: [2], data_offsets: [0, 8] }), /unsupported dtype "constructor"/),
    stErr('shape [-1]', one(f32([-1], [0, 8])), /tensor "a": shape must be/),
    stErr('shape [1.5]', one(f32([1.5], [0, 8])), /tensor "a": shape must be/),
    stErr("shape ['2']", one(f32(['2'], [0, 8])), /tensor "a": shape must be/),
    stErr('shape a string', one(f32('2', [0, 8])), /tensor "a": shape must be/),
    stErr('shape [2^31] over 8 bytes', one(f32([2 ** 31], [0, 8])), /tensor "a": data_offsets \[0, 8\] span 8 bytes but/),
    stErr('shape [2^53]', one(f32([2 ** 53], [0, 8])), /tensor "a": shape must be/),
    stErr('shape [2^26, 2^26, 2^26]', one(f32([2 ** 26, 2 ** 26, 2 ** 26], [0, 8])), /tensor "a": shape .* too many elements/),
    stErr('negative offsets', one(f32([2], [-8, 0])), /data_offsets must be/),
    stErr('fractional offsets', one(f32([2], [0, 7.5])), /data_offsets must be/),
    stErr('reversed offsets', one(f32([2], [8, 0])), /data_offsets must be/),
    stErr('one offset', one(f32([2], [0])), /data_offsets must be/),
    stErr('string offsets', one(f32([2], ['0', '8'])), /data_offsets must be/),
    stErr('offsets beyond the data', one(f32([4], [0, 16])), /cover 16 bytes but the data section holds 8/),
    stErr('overlapping tensors', () => safetensors({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12), /overlaps/),
    stErr('a gap between tensors', () => safetensors({ a: f32([2], [0, 8]), b: f32([2], [12, 20]) }, 20), /gap/),
    stErr('trailing bytes', one(f32([2], [0, 8]), 12), /cover 8 bytes but the data section holds 12/),
    stErr('offsets not matching shape x dtype', one(f32([3], [0, 8])), /needs 12/),
    stErr('__metadata__ a string', () => safetensors({ __metadata__: 'x' }), /__metadata__ must be an object/),
    stOk(
      'a tensor named __proto__',
      () => safetensors('{"__proto__": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', 8),
      (r) => {
        if (Object.getPrototypeOf(r) !== null || !Object.hasOwn(r, '__proto__'))
          throw new Error('__proto__ is not an own entry of a prototype-free result');
      },
    ),
    stOk(
      'no tensors',
      () => safetensors({}),
      (r) => {
        if (Object.keys(r).length !== 0) throw new Error('expected no tensors');
      },
    ),
    stOk(
      'a zero-size tensor',
      () => safetensors({ a: f32([0, 3], [0, 0]) }),
      (r) => expectValues(r.a.data, []),
    ),
    stOk(
      'F16, BF16 and F64 at unaligned offsets',
      () => {
        const data = new Uint8Array(2 + 2 + 8);
        const v = new DataView(data.buffer);
        v.setUint16(0, 0x3c00, true); // F16 1
        v.setUint16(2, 0xc000, true); // BF16 -2
        v.setFloat64(4, 0.5, true);
        return safetensors(
          {
            h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
            b: { dtype: 'BF16', shape: [1], data_offsets: [2, 4] },
            d: { dtype: 'F64', shape: [1], data_offsets: [4, 12] },
          },
          data,
        );
      },
      (r) => {
        expectValues(r.h.data, [1]);
        expectValues(r.b.data, [-2]);
        expectValues(r.d.data, [0.5]);
      },
    ),
    stOk(
      "our own writer's output",
      () => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } }),
      (r) => expectValues(r.w.data, [1, 2, 3, 4]),
    ),
  ];
}

// ---------------------------------------------------------------- JSON of tensors

function tensorJSONCases(): Case[] {
  const err = (name: string, text: string, mentions: RegExp): Case => ({
    category: TENSOR_JSON,
    name,
    run: () => parseTensorJSON(text, 'w.json'),
    expect: 'error',
    mentions,
    isolate: true,
  });
  const ok = (name: string, text: string, want: number[]): Case => ({
    category: TENSOR_JSON,
    name,
    run: () => parseTensorJSON(text, 'w.json'),
    expect: 'ok',
    isolate: true,
    check: (r) => expectValues((r as Record<string, { data: Float32Array }>).a.data, want),
  });
  const deep = `{"a": ${'['.repeat(100_000)}1${']'.repeat(100_000)}}`;
  return [
    err('not JSON', '{"a": [1, 2', /w\.json: not valid JSON/),
    err('an array', '[[1, 2]]', /w\.json: must be a JSON object/),
    err('an entry that is a string', '{"a": "1, 2"}', /entry "a" must be \{shape, data\}/),
    err('ragged nested arrays', '{"a": [[1, 2], [3]]}', /entry "a": nested arrays must be rectangular/),
    err('count not matching the shape', '{"a": {"shape": [3], "data": [1, 2]}}', /entry "a": shape \[3\] needs 3 values, got 2/),
    err('data a string', '{"a": {"shape": [2], "data": "12"}}', /entry "a": data must be an array/),
    err('a string value', '{"a": [1, "2"]}', /entry "a": values must be finite numbers/),
    err('a null value', '{"a": [1, null]}', /entry "a": values must be finite numbers/),
    err('a value beyond float32', '{"a": [1, 1e39]}', /entry "a": values must be finite numbers within float32 range/),
    err('shape [-1]', '{"a": {"shape": [-1], "data": []}}', /entry "a": shape must be/),
    err('shape [1.5]', '{"a": {"shape": [1.5], "data": [1]}}', /entry "a": shape must be/),
    err('shape [2^31] with two values', '{"a": {"shape": [2147483648], "data": [1, 2]}}', /entry "a": shape \[2147483648\] needs/),
    err('100,000 nested arrays', deep, /w\.json/),
    ok('a tensor named __proto__', '{"__proto__": [1], "a": [2]}', [2]),
    ok('nested arrays', '{"a": [[1, 2], [3, 4]]}', [1, 2, 3, 4]),
    ok('{shape, data} with nested data', '{"a": {"shape": [2, 2], "data": [[1, 2], [3, 4]]}}', [1, 2, 3, 4]),
  ];
}

// ---------------------------------------------------------------- model folders (model.json)

const TINY = {
  vocabSize: 11,
  hiddenSize: 8,
  numLayers: 1,
  intermediateSize: 16,
  maxSequenceLength: 16,
  attention: { kind: 'gta' as const, numHeads: 2, headDim: 4, numQueryHeads: 1, numKeyHeads: 1, numValueHeads: 1, valueDim: 4 },
  seed: 1,
};

/** A saved tiny model folder (model.json + weights.bin) and a HF export of the same model. */
const fixtures = once(async () => {
  const root = tempDir('loaders');
  const lm = CausalLM.create(TINY);
  try {
    await lm.save(fileSystemHandler(join(root, 'model')));
    await saveHFCheckpoint(lm, join(root, 'hf'));
  } finally {
    lm.dispose();
  }
  const outside = join(root, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.bin'), readFileSync(join(root, 'model', 'weights.bin')));
  return { root, model: join(root, 'model'), hf: join(root, 'hf'), outside };
});

let copies = 0;

/** A fresh copy of the fixture folder `which`, changed by `damage`; returns its path. */
async function damaged(which: 'model' | 'hf', damage: (dir: string, f: Awaited<ReturnType<typeof fixtures>>) => void): Promise<string> {
  const f = await fixtures();
  const dir = join(f.root, `${which}-${++copies}`);
  cpSync(f[which], dir, { recursive: true });
  damage(dir, f);
  return dir;
}

/** Loads a model and returns the logits of a 3-token prompt (the model is disposed). */
async function logitsOf(load: () => Promise<CausalLM>): Promise<Float32Array> {
  return promptLogits(await load());
}

function editJSON(file: string, edit: (j: EditableJSON) => unknown): void {
  const j = JSON.parse(readFileSync(file, 'utf8'));
  const replaced = edit(j);
  writeFileSync(file, JSON.stringify(replaced === undefined ? j : replaced));
}

type Damage = (dir: string, f: Awaited<ReturnType<typeof fixtures>>) => void;

function modelCase(name: string, damage: Damage, mentions?: RegExp, url = (dir: string) => `file://${dir}`): Case {
  const run = async () => {
    const dir = await damaged('model', damage);
    return logitsOf(() => CausalLM.load(url(dir)));
  };
  return { category: MODEL_JSON, name, run, expect: mentions ? 'error' : 'ok', ...(mentions ? { mentions } : {}) };
}

const manifest = (dir: string, edit: (group: { paths: unknown[]; weights: Array<Record<string, unknown>> }) => void) =>
  editJSON(join(dir, 'model.json'), (j) => edit(j.weightsManifest[0]));

function modelJSONCases(): Case[] {
  const bin = (dir: string) => join(dir, 'weights.bin');
  return [
    modelCase('the saved folder as is', () => {}),
    modelCase(
      'the model.json path instead of the folder',
      () => {},
      undefined,
      (dir) => `file://${dir}/model.json`,
    ),
    modelCase('a missing folder', (dir) => rmSync(dir, { recursive: true }), /cannot read .*model\.json/),
    modelCase(
      'model.json not JSON',
      (dir) => writeFileSync(join(dir, 'model.json'), '{"modelTopology": '),
      /model\.json is not valid JSON/,
    ),
    modelCase('model.json an array', (dir) => writeFileSync(join(dir, 'model.json'), '[]'), /model\.json must hold a JSON object/),
    modelCase(
      'model.json without modelTopology',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          delete j.modelTopology;
        }),
      /has no modelTopology/,
    ),
    modelCase(
      'weightsManifest an object',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          j.weightsManifest = { paths: [] };
        }),
      /weightsManifest must be an array/,
    ),
    modelCase(
      'a weight group without paths',
      (dir) =>
        manifest(dir, (g) => {
          delete (g as Partial<typeof g>).paths;
        }),
      /weightsManifest must be/,
    ),
    modelCase(
      'an absolute weight path',
      (dir) =>
        manifest(dir, (g) => {
          g.paths = ['/etc/passwd'];
        }),
      /"\/etc\/passwd" is absolute/,
    ),
    modelCase(
      'a weight path to ../../../../dev/zero',
      (dir) =>
        manifest(dir, (g) => {
          g.paths = ['../../../../dev/zero'];
        }),
      /leaves the model folder/,
    ),
    modelCase(
      'a weight path to ../outside/secret.bin',
      (dir) =>
        manifest(dir, (g) => {
          g.paths = ['../outside/secret.bin'];
        }),
      /leaves the model folder/,
    ),
    modelCase(
      'a weight path with a NUL byte',
      (dir) =>
        manifest(dir, (g) => {
          g.paths = ['weights.bin\u0000.txt'];
        }),
      /weight paths must be/,
    ),
    modelCase(
      'a weight path that is a number',
      (dir) =>
        manifest(dir, (g) => {
          g.paths = [5];
        }),
      /weight paths must be/,
    ),
    modelCase(
      'weights.bin a symlink to a file outside',
      (dir, f) => {
        rmSync(bin(dir));
        symlinkSync(join(f.outside, 'secret.bin'), bin(dir));
      },
      /is a link to .*outside the model folder/,
    ),
    modelCase(
      'weights.bin a symlink to /dev/zero',
      (dir) => {
        rmSync(bin(dir));
        symlinkSync('/dev/zero', bin(dir));
      },
      /is a link to \/dev\/zero, outside the model folder/,
    ),
    modelCase('weights.bin a symlink to a file inside the folder', (dir) => {
      mkdirSync(join(dir, 'data'));
      renameSync(bin(dir), join(dir, 'data', 'w.bin'));
      symlinkSync(join(dir, 'data', 'w.bin'), bin(dir));
    }),
    modelCase(
      'weights.bin a FIFO',
      (dir) => {
        rmSync(bin(dir));
        execFileSync('mkfifo', [bin(dir)]);
      },
      /weight file "weights\.bin" is not a regular file/,
    ),
    modelCase(
      'weights.bin a folder',
      (dir) => {
        rmSync(bin(dir));
        mkdirSync(bin(dir));
      },
      /weight file "weights\.bin" is not a regular file/,
    ),
    modelCase('weights.bin missing', (dir) => rmSync(bin(dir)), /cannot read weight file "weights\.bin"/),
    modelCase(
      'weights.bin 4 bytes short',
      (dir) => truncateSync(bin(dir), readFileSync(bin(dir)).length - 4),
      /hold \d+ bytes but .* need/,
    ),
    modelCase(
      'weights.bin 4 bytes too long',
      (dir) => writeFileSync(bin(dir), Buffer.concat([readFileSync(bin(dir)), Buffer.alloc(4)])),
      /hold \d+ bytes but .* need/,
    ),
    modelCase(
      'a weight spec of shape [2^31, 2^31]',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].shape = [2 ** 31, 2 ** 31];
        }),
      /too large|hold \d+ bytes but .* need/,
    ),
    modelCase(
      'a weight spec of shape [-11, 8]',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].shape = [-11, 8];
        }),
      /shape must be/,
    ),
    modelCase(
      'a weight spec of dtype float64',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].dtype = 'float64';
        }),
      /dtype "float64" is not supported/,
    ),
    modelCase(
      'a float weight declared int32',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].dtype = 'int32';
        }),
      /int32|dtype/,
    ),
    modelCase(
      'a weight spec renamed',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].name = 'token_embedding/renamed';
        }),
      /token_embedding\/(renamed|embeddings)/,
    ),
    modelCase(
      'a weight spec with a transposed shape',
      (dir) =>
        manifest(dir, (g) => {
          g.weights[0].shape = [8, 11];
        }),
      /shape/,
    ),
    modelCase(
      'userDefinedMetadata removed',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          delete j.userDefinedMetadata;
        }),
      /tfjs-gta metadata/,
    ),
    modelCase(
      'metadata vocabSize contradicting the weights',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          j.userDefinedMetadata.tfjsGta.config.vocabSize = 50;
        }),
      /vocabSize|vocabulary/,
    ),
    modelCase(
      'metadata numLayers contradicting the weights',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          j.userDefinedMetadata.tfjsGta.config.numLayers = 2;
        }),
      /numLayers|layers/,
    ),
    modelCase(
      'metadata mechanism contradicting the weights',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          j.userDefinedMetadata.tfjsGta.config.attention = { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 };
        }),
      /attention|mechanism|gqa/,
    ),
    modelCase(
      'modelTopology an empty object',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          j.modelTopology = {};
        }),
      /topology/,
    ),
    modelCase(
      'a layer class that is not registered',
      (dir) =>
        editJSON(join(dir, 'model.json'), (j) => {
          const text = JSON.stringify(j.modelTopology).replaceAll('"TransformerDecoderBlock"', '"EvilLayer"');
          j.modelTopology = JSON.parse(text);
        }),
      /EvilLayer/,
    ),
    modelCase('model.json of 65 MiB', (dir) => truncateSync(join(dir, 'model.json'), 65 * 2 ** 20), /MAX_MODEL_JSON_BYTES/),
    modelCase(
      'model.json a FIFO',
      (dir) => {
        rmSync(join(dir, 'model.json'));
        execFileSync('mkfifo', [join(dir, 'model.json')]);
      },
      /model\.json is not a regular file/,
    ),
    modelCase(
      'model.json a folder',
      (dir) => {
        rmSync(join(dir, 'model.json'));
        mkdirSync(join(dir, 'model.json'));
      },
      /model\.json/,
    ),
  ];
}

// ---------------------------------------------------------------- Hugging Face folders

/** The HF fixture's config and tensors, parsed once. */
const hfParts = once(async () => {
  const f = await fixtures();
  const config = JSON.parse(readFileSync(join(f.hf, 'config.json'), 'utf8')) as Record<string, unknown>;
  const tensors = parseSafetensors(new Uint8Array(readFileSync(join(f.hf, 'model.safetensors'))));
  return { config, tensors };
});

function hfCase(name: string, damage: Damage, mentions?: RegExp): Case {
  const run = async () => {
    const dir = await damaged('hf', damage);
    return logitsOf(() => loadHFCheckpoint(dir));
  };
  return { category: HF, name, run, expect: mentions ? 'error' : 'ok', ...(mentions ? { mentions } : {}) };
}

const editConfig =
  (edit: (c: EditableJSON) => unknown): Damage =>
  (dir) =>
    editJSON(join(dir, 'config.json'), edit);

/** Rewrites model.safetensors of `dir` after `edit` changes its tensors. */
function editTensors(dir: string, edit: (t: Record<string, F32Tensor>) => void): void {
  const file = join(dir, 'model.safetensors');
  const tensors = { ...parseSafetensors(new Uint8Array(readFileSync(file))) } as Record<string, F32Tensor>;
  edit(tensors);
  writeFileSync(file, serializeSafetensors(tensors));
}

/**
 * The HF config keys swept over `SWEEP` (through `causalLMFromHF`, so NaN and Infinity survive), the
 * labels each accepts, and what a message may name (the key, the CausalLMConfig argument it becomes, or the
 * tensor shape the config implies).
 */
const HF_SWEEPS: Array<[string, ReadonlySet<string>, RegExp]> = [
  ['hidden_size', new Set(), /hidden_size|hiddenSize|the config needs/],
  ['num_attention_heads', new Set(), /num_attention_heads|numHeads|the config needs/],
  ['num_hidden_layers', new Set(), /num_hidden_layers|numLayers|model\.layers\.1\./],
  ['intermediate_size', new Set(), /intermediate_size|intermediateSize|the config needs/],
  ['vocab_size', new Set(), /vocab_size|vocabSize|embed_tokens/],
  ['max_position_embeddings', new Set(['null']), /max_position_embeddings|maxSequenceLength/],
  ['num_query_heads', new Set(), /num_query_heads|numQueryHeads/],
  ['num_key_heads', new Set(), /num_key_heads|numKeyHeads/],
  ['num_value_heads', new Set(), /num_value_heads|numValueHeads/],
  ['value_dim', new Set(), /value_dim|valueDim/],
  ['head_dim', new Set(['null']), /head_dim|headDim/],
  ['rope_theta', new Set(['null', '1.5', 'huge (1e21)']), /rope_theta|ropeMaxWavelength/],
  ['rms_norm_eps', new Set(['null', '1.5', 'huge (1e21)']), /rms_norm_eps|normEpsilon/],
];

function hfSweeps(): Case[] {
  return HF_SWEEPS.flatMap(([key, valid, mentions]) =>
    sweepCases(
      HF,
      'causalLMFromHF',
      key,
      valid,
      async (value) => {
        const { config, tensors } = await hfParts();
        return logitsOf(async () => causalLMFromHF({ ...config, [key]: value }, tensors));
      },
      { mentions },
    ),
  );
}

function hfCases(): Case[] {
  const first = 'model.layers.0.self_attn.q_proj.weight';
  return [
    hfCase('the exported folder as is', () => {}),
    hfCase(
      'a config with extra HF keys',
      editConfig((c) => {
        c.transformers_version = '5.17.0';
        c.custom_flag = true;
      }),
    ),
    hfCase('a missing folder', (dir) => rmSync(dir, { recursive: true }), /config\.json is missing/),
    hfCase(
      'config.json not JSON',
      (dir) => writeFileSync(join(dir, 'config.json'), '{"hidden_size": 8,'),
      /config\.json is not valid JSON/,
    ),
    hfCase('config.json an array', (dir) => writeFileSync(join(dir, 'config.json'), '[]'), /config\.json must hold a JSON object/),
    hfCase('config.json null', (dir) => writeFileSync(join(dir, 'config.json'), 'null'), /config\.json must hold a JSON object/),
    hfCase(
      'hidden_act gelu',
      editConfig((c) => {
        c.hidden_act = 'gelu';
      }),
      /hidden_act "gelu" is not supported/,
    ),
    hfCase(
      'mlp_bias true',
      editConfig((c) => {
        c.mlp_bias = true;
      }),
      /mlp_bias/,
    ),
    hfCase(
      'rope_scaling linear',
      editConfig((c) => {
        c.rope_scaling = { type: 'linear', factor: 2 };
      }),
      /rope_scaling/,
    ),
    hfCase(
      'rope_interleave true',
      editConfig((c) => {
        c.rope_interleave = true;
      }),
      /rope_interleave/,
    ),
    hfCase(
      'query_dim not head_dim',
      editConfig((c) => {
        c.query_dim = 6;
      }),
      /query_dim must equal head_dim/,
    ),
    hfCase(
      'tie_word_embeddings "yes"',
      editConfig((c) => {
        c.tie_word_embeddings = 'yes';
      }),
      /tie_word_embeddings/,
    ),
    hfCase('model.safetensors missing', (dir) => rmSync(join(dir, 'model.safetensors')), /model\.safetensors is missing/),
    hfCase('model.safetensors truncated to 100 bytes', (dir) => truncateSync(join(dir, 'model.safetensors'), 100), /model\.safetensors/),
    hfCase(
      'model.safetensors a FIFO',
      (dir) => {
        rmSync(join(dir, 'model.safetensors'));
        execFileSync('mkfifo', [join(dir, 'model.safetensors')]);
      },
      /model\.safetensors/,
    ),
    hfCase(
      'config.json a FIFO',
      (dir) => {
        rmSync(join(dir, 'config.json'));
        execFileSync('mkfifo', [join(dir, 'config.json')]);
      },
      /config\.json/,
    ),
    hfCase(
      'a tensor missing',
      (dir) =>
        editTensors(dir, (t) => {
          delete t[first];
        }),
      /q_proj\.weight is missing/,
    ),
    hfCase(
      'an extra tensor',
      (dir) =>
        editTensors(dir, (t) => {
          t['model.layers.0.extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
        }),
      /not used by the model: model\.layers\.0\.extra\.weight/,
    ),
    hfCase(
      'a tensor of the wrong shape',
      (dir) =>
        editTensors(dir, (t) => {
          t[first] = { dtype: 'F32', shape: [2, 8], data: new Float32Array(16) };
        }),
      /q_proj\.weight has shape \[2,8\]/,
    ),
    hfCase(
      'a weight holding NaN',
      (dir) =>
        editTensors(dir, (t) => {
          const data = Float32Array.from(t[first].data);
          data[0] = NaN;
          t[first] = { dtype: 'F32', shape: t[first].shape, data };
        }),
      /q_proj\.weight.*(NaN|finite)/,
    ),
  ].map((c) => (c.name.includes('FIFO') ? { ...c, isolate: true } : c));
}

/** Every loader case. */
export function loaderCases(): Case[] {
  return [...safetensorsCases(), ...tensorJSONCases(), ...modelJSONCases(), ...hfCases(), ...hfSweeps()];
}
