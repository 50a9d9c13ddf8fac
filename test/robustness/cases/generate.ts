/**
 * `generate()` options and token ids: every numeric option swept over `SWEEP` (with the values each one
 * accepts), misspelt option names, options that are not an object, bad stop tokens and callbacks,
 * prompts that are empty, ragged or out of the vocabulary, and token ids for `logits`/`callWithCache`
 * that are out of range, fractional, negative, NaN, of the wrong dtype or rank.
 */
import * as tf from '@tensorflow/tfjs';
import type { Case } from '../classify.js';
import { SWEEP } from './common.js';
import { ValueError } from '../../../src/utils/errors.js';
import { CausalLM } from '../../../src/models/causal_lm.js';
import type { GenerateOptions, GenerateResult } from '../../../src/models/generate.js';

const GENERATE = 'generate options';
const IDS = 'token ids';
const VOCAB = 11;
const MAX_LEN = 12;

/** A tiny GQA model: vocabulary 11, at most 12 tokens. */
function tinyLM(): CausalLM {
  return CausalLM.create({
    vocabSize: VOCAB,
    hiddenSize: 8,
    numLayers: 1,
    intermediateSize: 16,
    maxSequenceLength: MAX_LEN,
    attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 },
    seed: 1,
  });
}

/** Generates with a fresh tiny model (disposed afterwards); returns the new tokens. */
async function gen(prompts: unknown, options: unknown): Promise<number[][]> {
  const lm = tinyLM();
  try {
    const r: GenerateResult = await lm.generate(prompts as number[][], options as GenerateOptions);
    return r.tokens;
  } finally {
    lm.dispose();
  }
}

/** Checks that every generated token is an id of the vocabulary. */
function inVocabulary(result: unknown): void {
  for (const row of result as number[][]) {
    for (const t of row) if (!Number.isInteger(t) || t < 0 || t >= VOCAB) throw new Error(`token ${t} is outside the vocabulary`);
  }
}

function genCase(name: string, prompts: unknown, options: unknown, mentions?: RegExp): Case {
  return mentions === undefined
    ? { category: GENERATE, name, run: () => gen(prompts, options), expect: 'ok', check: inVocabulary }
    : { category: GENERATE, name, run: () => gen(prompts, options), expect: 'error', mentions };
}

/** Which sweep labels each numeric option accepts. */
const OPTION_SWEEPS: Array<[keyof GenerateOptions, ReadonlySet<string>]> = [
  ['maxNewTokens', new Set()],
  ['temperature', new Set(['0', '1.5', 'huge (1e21)'])],
  ['topK', new Set()],
  ['topP', new Set()],
  ['seed', new Set(['0', '-1'])],
  ['padTokenId', new Set(['0'])],
];

function optionSweeps(): Case[] {
  const out: Case[] = [];
  for (const [option, valid] of OPTION_SWEEPS) {
    for (const [label, value] of SWEEP) {
      const options = { maxNewTokens: 2, [option]: value };
      out.push(genCase(`${option}=${label}`, [[1, 2], [3]], options, valid.has(label) ? undefined : new RegExp(option)));
    }
  }
  return out;
}

function optionCases(): Case[] {
  const base = { maxNewTokens: 2 };
  const misspelt = ['topp', 'top_k', 'max_new_tokens', 'maxTokens', 'Temperature', 'stop_tokens', 'pad_token_id', 'onTokens'];
  return [
    ...misspelt.map((key) => genCase(`misspelt option ${key}`, [1, 2], { ...base, [key]: 1 }, new RegExp(`unknown argument "${key}"`))),
    genCase('options null', [1, 2], null, /options must be an object/),
    genCase('options an array', [1, 2], [2], /options must be an object/),
    genCase('options a number', [1, 2], 2, /options must be an object/),
    genCase('options missing', [1, 2], undefined, /options must be an object/),
    genCase('stopTokens a number', [1, 2], { ...base, stopTokens: 3 }, /stopTokens/),
    genCase('stopTokens null', [1, 2], { ...base, stopTokens: null }, /stopTokens/),
    genCase('stopTokens [1.5]', [1, 2], { ...base, stopTokens: [1.5] }, /stop token/),
    genCase('stopTokens [-1]', [1, 2], { ...base, stopTokens: [-1] }, /stop token/),
    genCase('stopTokens [vocabSize]', [1, 2], { ...base, stopTokens: [VOCAB] }, /stop token/),
    genCase("stopTokens ['1']", [1, 2], { ...base, stopTokens: ['1'] }, /stop token/),
    genCase('onToken a string', [1, 2], { ...base, onToken: 'print' }, /onToken/),
    genCase('onToken null', [1, 2], { ...base, onToken: null }, /onToken/),
    genCase('padTokenId = vocabSize', [[1, 2], [3]], { ...base, padTokenId: VOCAB }, /padTokenId/),
    genCase('topK larger than the vocabulary', [1, 2], { ...base, topK: 100, temperature: 1 }),
    genCase('topP = 1', [1, 2], { ...base, topP: 1, temperature: 1 }),
    genCase('topP tiny', [1, 2], { ...base, topP: 1e-9, temperature: 1 }),
    genCase('topK with temperature 0', [1, 2], { ...base, topK: 3 }),
    genCase('empty stopTokens', [1, 2], { ...base, stopTokens: [] }),
    genCase('padTokenId = vocabSize - 1', [[1, 2], [3]], { ...base, padTokenId: VOCAB - 1 }),
    genCase('an async onToken', [1, 2], {
      ...base,
      onToken: async () => {
        await new Promise((r) => setTimeout(r, 1));
      },
    }),
    {
      category: GENERATE,
      name: 'onToken that throws (its error propagates, nothing leaks)',
      expect: 'error',
      mentions: /stop here/,
      run: () =>
        gen([1, 2], {
          maxNewTokens: 3,
          onToken: () => {
            throw new ValueError('stop here');
          },
        }),
    },
  ];
}

function promptCases(): Case[] {
  const base = { maxNewTokens: 2 };
  return [
    genCase('prompt []', [], base, /prompt/),
    genCase('prompt [[]]', [[]], base, /prompt/),
    genCase('prompt [[1], []]', [[1], []], base, /prompt/),
    genCase('prompt a string', 'hello', base, /prompt/),
    genCase('prompt [1.5]', [1.5], base, /1\.5/),
    genCase('prompt [-1]', [-1], base, /-1/),
    genCase('prompt [NaN]', [NaN], base, /NaN/),
    genCase('prompt [vocabSize]', [VOCAB], base, /\[0, 11\)/),
    genCase("prompt ['1']", ['1'], base, /ids|prompt/),
    genCase('prompt [[[1]]]', [[[1]]], base, /ids|prompt/),
    genCase('prompt plus maxNewTokens beyond maxSequenceLength', [1, 2, 3], { maxNewTokens: MAX_LEN - 2 }, /maxSequenceLength/),
    genCase('prompt plus maxNewTokens exactly maxSequenceLength', [1, 2, 3], { maxNewTokens: MAX_LEN - 3 }),
    genCase('ragged prompts (left-padded)', [[1, 2, 3], [4]], base),
    genCase('a prompt of one token', [5], base),
  ];
}

/** Runs `body` with a fresh tiny model (disposed afterwards) and returns the logits' values. */
function withModel(body: (lm: CausalLM) => tf.Tensor | { logits: tf.Tensor; cache: { dispose(): void } }): Float32Array {
  const lm = tinyLM();
  try {
    const r = body(lm);
    const logits = r instanceof tf.Tensor ? r : r.logits;
    const values = logits.dataSync().slice() as Float32Array;
    logits.dispose();
    if (!(r instanceof tf.Tensor)) r.cache.dispose();
    return values;
  } finally {
    lm.dispose();
  }
}

function idsCase(name: string, ids: () => unknown, expect: 'error' | 'ok', mentions?: RegExp, cached = false): Case {
  const run = () => {
    const t = ids();
    try {
      return withModel((lm) => (cached ? lm.callWithCache(t as number[][], null) : lm.logits(t as number[][])));
    } finally {
      if (t instanceof tf.Tensor) t.dispose();
    }
  };
  return { category: IDS, name, run, expect, ...(mentions ? { mentions } : {}) };
}

function idsCases(): Case[] {
  const out: Case[] = [];
  for (const cached of [false, true]) {
    const via = cached ? 'callWithCache' : 'logits';
    const err = (name: string, ids: () => unknown, mentions: RegExp) => out.push(idsCase(`${via} ${name}`, ids, 'error', mentions, cached));
    const ok = (name: string, ids: () => unknown) => out.push(idsCase(`${via} ${name}`, ids, 'ok', undefined, cached));
    err('id 1.5', () => [[1, 1.5]], /1\.5/);
    err('id -1', () => [[1, -1]], /-1/);
    err('id NaN', () => [[1, NaN]], /NaN/);
    err('id Infinity', () => [[1, Infinity]], /Infinity/);
    err('id = vocabSize', () => [[1, VOCAB]], /\[0, 11\)/);
    err('id 2^31', () => [[2 ** 31]], /\[0, 11\)/);
    err("id '1'", () => [['1']], /ids/);
    err('ids []', () => [], /ids/);
    ok('ids [[]] (no tokens: empty logits)', () => [[]]);
    err('ragged ids', () => [[1], [1, 2]], /ids/);
    err('flat ids [1, 2]', () => [1, 2], /ids/);
    err('ids null', () => null, /ids/);
    err('ids a string', () => 'abc', /ids/);
    err('float32 tensor', () => tf.tensor2d([[1, 2]]), /int32/);
    err('bool tensor', () => tf.tensor2d([[true, false]], [1, 2], 'bool'), /int32/);
    err('rank-1 int32 tensor', () => tf.tensor1d([1, 2], 'int32'), /\[batch, tokens\]/);
    err('rank-3 int32 tensor', () => tf.zeros([1, 2, 1], 'int32'), /\[batch, tokens\]/);
    err('int32 tensor holding vocabSize', () => tf.tensor2d([[1, VOCAB]], [1, 2], 'int32'), /\[0, 11\)/);
    err('int32 tensor holding -1', () => tf.tensor2d([[-1, 1]], [1, 2], 'int32'), /\[0, 11\)/);
    err('more tokens than maxSequenceLength', () => [Array.from({ length: MAX_LEN + 1 }, () => 1)], /maxSequenceLength/);
    ok('exactly maxSequenceLength tokens', () => [Array.from({ length: MAX_LEN }, () => 1)]);
    ok('a batch of three', () => [
      [0, 1],
      [2, 3],
      [9, 10],
    ]);
    ok('an int32 tensor', () => tf.tensor2d([[0, 10]], [1, 2], 'int32'));
  }
  return out;
}

/** Every generate-option and token-id case. */
export function generateCases(): Case[] {
  return [...optionSweeps(), ...optionCases(), ...promptCases(), ...idsCases()];
}
