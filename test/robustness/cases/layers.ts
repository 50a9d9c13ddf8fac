/**
 * Layer and model configurations: every numeric constructor argument of every layer (and of
 * `CausalLMConfig`) swept over `SWEEP`, plus misspelt keys, non-boolean flags, divisibility rules and
 * bad initializer identifiers. A case constructs the layer and builds it on a tiny input; a valid
 * value must give a finite output.
 */
import * as tf from '@tensorflow/tfjs';
import type { Case } from '../classify.js';
import { ArgKind, promptLogits, sweepCases } from './common.js';
import { GroupedQueryAttention } from '../../../src/layers/gqa_attention.js';
import { GroupedHeadLatentAttention } from '../../../src/layers/gta_attention.js';
import { MultiHeadLatentAttention } from '../../../src/layers/mla_attention.js';
import { RotaryEmbedding } from '../../../src/layers/rotary_embedding.js';
import { RMSNormalization } from '../../../src/layers/rms_normalization.js';
import { SwiGLUFeedForward } from '../../../src/layers/swiglu_mlp.js';
import { LMHead, TokenEmbedding } from '../../../src/layers/token_embedding.js';
import { TransformerDecoderBlock } from '../../../src/layers/decoder_block.js';
import { CausalLM } from '../../../src/models/causal_lm.js';
import type { CausalLMConfig } from '../../../src/models/config.js';

const CATEGORY = 'layer configs';
type Args = Record<string, unknown>;
type Make = (args: Args) => tf.layers.Layer;

/** Applies `layer` to a fixed input of `shape` (float32, or int32 ids) and returns the output values. */
function applyTo(layer: tf.layers.Layer, shape: number[], ids = false): Float32Array {
  const y = tf.tidy(() => {
    const x = ids ? tf.zeros(shape, 'int32') : tf.randomNormal(shape, 0, 1, 'float32', 7);
    return layer.apply(x) as tf.Tensor;
  });
  const values = y.dataSync().slice() as Float32Array;
  y.dispose();
  return values;
}

interface LayerSpec {
  owner: string;
  make: Make;
  base: Args;
  /** Input shape used to build and call the layer. */
  input: number[];
  ids?: boolean;
  /** Numeric arguments swept over `SWEEP`. */
  numeric: Array<[string, ArgKind]>;
  /** A misspelt key the layer must reject. */
  misspelt: string;
}

const GQA_BASE: Args = { headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2, seed: 1 };
const GTA_BASE: Args = { numHeads: 4, headDim: 8, numQueryHeads: 2, numKeyHeads: 1, numValueHeads: 1, valueDim: 8, seed: 2 };
const MLA_BASE: Args = { numHeads: 2, kvLoraRank: 8, qkNopeHeadDim: 4, qkRopeHeadDim: 4, vHeadDim: 4, seed: 3 };

const LAYERS: LayerSpec[] = [
  {
    owner: 'GroupedQueryAttention',
    make: (a) => new GroupedQueryAttention(a as never),
    base: GQA_BASE,
    input: [1, 3, 16],
    numeric: [
      ['headDim', 'int'],
      ['numQueryHeads', 'int'],
      ['numKeyValueHeads', 'int'],
      ['dropout', 'rate'],
      ['ropeMaxWavelength', 'num'],
      ['ropeScalingFactor', 'num'],
      ['seed', 'seed'],
    ],
    misspelt: 'numKVHeads',
  },
  {
    owner: 'GroupedHeadLatentAttention',
    make: (a) => new GroupedHeadLatentAttention(a as never),
    base: GTA_BASE,
    input: [1, 3, 16],
    numeric: [
      ['numHeads', 'int'],
      ['headDim', 'int'],
      ['numQueryHeads', 'int'],
      ['numKeyHeads', 'int'],
      ['numValueHeads', 'int'],
      ['valueDim', 'int'],
    ],
    misspelt: 'numValueHead',
  },
  {
    owner: 'MultiHeadLatentAttention',
    make: (a) => new MultiHeadLatentAttention(a as never),
    base: MLA_BASE,
    input: [1, 3, 16],
    numeric: [
      ['numHeads', 'int'],
      ['kvLoraRank', 'int'],
      ['qkNopeHeadDim', 'int'],
      ['qkRopeHeadDim', 'int'],
      ['vHeadDim', 'int'],
      ['qLoraRank', 'optInt'],
      ['rmsNormEpsilon', 'num'],
    ],
    misspelt: 'kvLoRARank',
  },
  {
    owner: 'RotaryEmbedding',
    make: (a) => new RotaryEmbedding(a as never),
    base: {},
    input: [1, 3, 4],
    numeric: [
      ['maxWavelength', 'num'],
      ['scalingFactor', 'num'],
    ],
    misspelt: 'base',
  },
  {
    owner: 'RMSNormalization',
    make: (a) => new RMSNormalization(a as never),
    base: {},
    input: [1, 3, 4],
    numeric: [['epsilon', 'num']],
    misspelt: 'eps',
  },
  {
    owner: 'SwiGLUFeedForward',
    make: (a) => new SwiGLUFeedForward(a as never),
    base: { intermediateDim: 8, seed: 4 },
    input: [1, 3, 4],
    numeric: [
      ['intermediateDim', 'int'],
      ['dropout', 'rate'],
      ['seed', 'seed'],
    ],
    misspelt: 'hiddenDim',
  },
  {
    owner: 'TokenEmbedding',
    make: (a) => new TokenEmbedding(a as never),
    base: { inputDim: 5, outputDim: 4, seed: 5 },
    input: [1, 3],
    ids: true,
    numeric: [
      ['inputDim', 'int'],
      ['outputDim', 'int'],
      ['seed', 'seed'],
    ],
    misspelt: 'vocabSize',
  },
  {
    owner: 'LMHead',
    make: (a) => new LMHead(a as never),
    base: { units: 5, seed: 6 },
    input: [1, 3, 4],
    numeric: [
      ['units', 'int'],
      ['seed', 'seed'],
    ],
    misspelt: 'vocabSize',
  },
  {
    owner: 'TransformerDecoderBlock',
    make: (a) => new TransformerDecoderBlock(a as never),
    base: { attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 }, intermediateDim: 8, seed: 7 },
    input: [1, 3, 8],
    numeric: [
      ['intermediateDim', 'int'],
      ['normEpsilon', 'num'],
      ['dropout', 'rate'],
      ['seed', 'seed'],
    ],
    misspelt: 'attentionConfig',
  },
];

/** Constructs `spec`'s layer with `args` and builds it on its input (a valid config must give finite outputs). */
function tryLayer(spec: LayerSpec, args: Args): Float32Array {
  return applyTo(spec.make(args), spec.input, spec.ids);
}

const TINY_LM: CausalLMConfig = {
  vocabSize: 11,
  hiddenSize: 8,
  numLayers: 1,
  intermediateSize: 16,
  maxSequenceLength: 16,
  attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 },
  seed: 1,
};

/** Creates a CausalLM from `config` and returns the logits of a 3-token prompt. */
function tryModel(config: Args): Float32Array {
  return promptLogits(CausalLM.create(config as unknown as CausalLMConfig));
}

function sweeps(): Case[] {
  const out: Case[] = [];
  for (const spec of LAYERS) {
    for (const [arg, kind] of spec.numeric) {
      out.push(...sweepCases(CATEGORY, spec.owner, arg, kind, (v) => tryLayer(spec, { ...spec.base, [arg]: v })));
    }
  }
  for (const [arg, kind] of [
    ['vocabSize', 'int'],
    ['hiddenSize', 'int'],
    ['numLayers', 'int'],
    ['intermediateSize', 'int'],
    ['maxSequenceLength', 'int'],
    ['normEpsilon', 'num'],
    ['dropout', 'rate'],
    ['seed', 'seed'],
  ] as Array<[string, ArgKind]>) {
    out.push(...sweepCases(CATEGORY, 'CausalLMConfig', arg, kind, (v) => tryModel({ ...TINY_LM, [arg]: v })));
  }
  return out;
}

function errorCase(name: string, run: () => unknown, mentions: RegExp): Case {
  return { category: CATEGORY, name, run, expect: 'error', mentions };
}

function okCase(name: string, run: () => unknown): Case {
  return { category: CATEGORY, name, run, expect: 'ok' };
}

function structural(): Case[] {
  const [gqa, gta, mla, , rms] = LAYERS;
  const out: Case[] = LAYERS.map((spec) =>
    errorCase(
      `${spec.owner} misspelt key ${spec.misspelt}`,
      () => tryLayer(spec, { ...spec.base, [spec.misspelt]: 1 }),
      new RegExp(`unknown argument "${spec.misspelt}"`),
    ),
  );
  out.push(
    errorCase('CausalLMConfig misspelt key numHeads', () => tryModel({ ...TINY_LM, numHeads: 2 }), /unknown argument "numHeads"/),
    errorCase('GroupedQueryAttention useBias="yes"', () => tryLayer(gqa, { ...GQA_BASE, useBias: 'yes' }), /useBias must be a boolean/),
    errorCase(
      'GroupedQueryAttention useCausalMask=1',
      () => tryLayer(gqa, { ...GQA_BASE, useCausalMask: 1 }),
      /useCausalMask must be a boolean/,
    ),
    errorCase('GroupedQueryAttention useRope="false"', () => tryLayer(gqa, { ...GQA_BASE, useRope: 'false' }), /useRope must be a boolean/),
    errorCase(
      'GroupedQueryAttention useOutputBias=0',
      () => tryLayer(gqa, { ...GQA_BASE, useOutputBias: 0 }),
      /useOutputBias must be a boolean/,
    ),
    errorCase(
      'MultiHeadLatentAttention absorbForDecode="true"',
      () => tryLayer(mla, { ...MLA_BASE, absorbForDecode: 'true' }),
      /absorbForDecode must be a boolean/,
    ),
    errorCase(
      'CausalLMConfig tieWordEmbeddings="no"',
      () => tryModel({ ...TINY_LM, tieWordEmbeddings: 'no' }),
      /tieWordEmbeddings must be a boolean/,
    ),
    errorCase(
      'GroupedQueryAttention 4 query heads over 3 KV heads',
      () => tryLayer(gqa, { ...GQA_BASE, numKeyValueHeads: 3 }),
      /numQueryHeads \(4\) must be divisible by numKeyValueHeads \(3\)/,
    ),
    errorCase('GroupedQueryAttention odd headDim with RoPE', () => tryLayer(gqa, { ...GQA_BASE, headDim: 5 }), /headDim must be even/),
    okCase('GroupedQueryAttention odd headDim without RoPE', () => tryLayer(gqa, { ...GQA_BASE, headDim: 5, useRope: false })),
    okCase('GroupedQueryAttention MQA (one KV head)', () => tryLayer(gqa, { ...GQA_BASE, numKeyValueHeads: 1 })),
    okCase('GroupedQueryAttention dropout just below 1', () => tryLayer(gqa, { ...GQA_BASE, dropout: 0.999 })),
    errorCase(
      'GroupedHeadLatentAttention 2 query heads over 3 key heads',
      () => tryLayer(gta, { ...GTA_BASE, numKeyHeads: 3 }),
      /numQueryHeads \(2\) must be divisible by numKeyHeads \(3\)/,
    ),
    errorCase('GroupedHeadLatentAttention fractional expansion rate', () => tryLayer(gta, { ...GTA_BASE, numHeads: 3 }), /expansion rate/),
    errorCase('GroupedHeadLatentAttention expansion rate below 1', () => tryLayer(gta, { ...GTA_BASE, valueDim: 64 }), /expansion rate/),
    okCase('GroupedHeadLatentAttention one query group', () => tryLayer(gta, { ...GTA_BASE, numQueryHeads: 1 })),
    errorCase(
      'MultiHeadLatentAttention odd qkRopeHeadDim',
      () => tryLayer(mla, { ...MLA_BASE, qkRopeHeadDim: 3 }),
      /qkRopeHeadDim must be even/,
    ),
    okCase('MultiHeadLatentAttention with query compression', () => tryLayer(mla, { ...MLA_BASE, qLoraRank: 6 })),
    errorCase('RMSNormalization axis=0', () => tryLayer(rms, { axis: 0 }), /axis must be -1/),
    errorCase('RMSNormalization axis=1', () => tryLayer(rms, { axis: 1 }), /axis must be -1/),
    errorCase("RMSNormalization axis='-1'", () => tryLayer(rms, { axis: '-1' }), /axis must be -1/),
    errorCase('RMSNormalization axis=NaN', () => tryLayer(rms, { axis: NaN }), /axis must be -1/),
    okCase('RMSNormalization axis=null (default)', () => tryLayer(rms, { axis: null })),
    errorCase(
      'GroupedQueryAttention kernelInitializer="nonsense"',
      () => tryLayer(gqa, { ...GQA_BASE, kernelInitializer: 'nonsense' }),
      /kernelInitializer/,
    ),
    errorCase(
      'GroupedQueryAttention biasInitializer={className:"Nope"}',
      () => tryLayer(gqa, { ...GQA_BASE, biasInitializer: { className: 'Nope' } }),
      /biasInitializer/,
    ),
    errorCase(
      'GroupedQueryAttention kernelInitializer=42',
      () => tryLayer(gqa, { ...GQA_BASE, kernelInitializer: 42 }),
      /kernelInitializer/,
    ),
    errorCase(
      'GroupedQueryAttention kernelRegularizer="l3"',
      () => tryLayer(gqa, { ...GQA_BASE, kernelRegularizer: 'l3' }),
      /kernelRegularizer/,
    ),
    errorCase(
      'GroupedQueryAttention kernelConstraint="positive"',
      () => tryLayer(gqa, { ...GQA_BASE, kernelConstraint: 'positive' }),
      /kernelConstraint/,
    ),
    okCase('GroupedQueryAttention kernelInitializer="heNormal", kernelRegularizer="l2", kernelConstraint="nonNeg"', () =>
      tryLayer(gqa, { ...GQA_BASE, kernelInitializer: 'heNormal', kernelRegularizer: 'l2', kernelConstraint: 'nonNeg' }),
    ),
    errorCase(
      'GroupedQueryAttention kernelInitializer Constant NaN',
      () =>
        tryLayer(gqa, {
          ...GQA_BASE,
          kernelInitializer: { className: 'Constant', config: { value: NaN } },
        }),
      /kernelInitializer/,
    ),
    errorCase(
      'GroupedQueryAttention kernelInitializer RandomNormal stddev "x"',
      () =>
        tryLayer(gqa, {
          ...GQA_BASE,
          kernelInitializer: { className: 'RandomNormal', config: { stddev: 'x' } },
        }),
      /kernelInitializer/,
    ),
    errorCase('GroupedQueryAttention without arguments', () => tryLayer(gqa, undefined as unknown as Args), /GroupedQueryAttention/),
    errorCase('TransformerDecoderBlock attention=null', () => tryLayer(LAYERS[8], { intermediateDim: 8, attention: null }), /attention/),
    errorCase(
      'TransformerDecoderBlock attention kind "xyz"',
      () => tryLayer(LAYERS[8], { intermediateDim: 8, attention: { kind: 'xyz' } }),
      /attention kind/,
    ),
    errorCase(
      'TransformerDecoderBlock attention headDim=0',
      () =>
        tryLayer(LAYERS[8], {
          intermediateDim: 8,
          attention: { kind: 'gqa', headDim: 0, numQueryHeads: 2, numKeyValueHeads: 1 },
        }),
      /headDim/,
    ),
    errorCase('CausalLMConfig null', () => tryModel(null as unknown as Args), /config must be an object/),
    errorCase('CausalLMConfig attention missing', () => tryModel({ ...TINY_LM, attention: undefined }), /attention/),
    okCase('CausalLMConfig hiddenSize other than the attention width', () => tryModel({ ...TINY_LM, hiddenSize: 6 })),
  );
  return out;
}

/** Every layer-config case. */
export function layerCases(): Case[] {
  return [...sweeps(), ...structural()];
}
