import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import {
  CausalLM,
  ModelCache,
  PAPER_PRESETS,
  causalLMCacheElementsPerToken,
  causalLMParams,
  smallPreset,
  sparseCrossEntropyFromLogits,
  IS_NODE,
} from '../../src/index.js';
import { describeBackends, expectClose, expectThrows, it, stepsOn } from '../kit/index.js';

const KINDS = ['gta', 'gqa', 'mla', 'mha'] as const;
const V = 37;

function tinyModel(kind: (typeof KINDS)[number], extra: Record<string, unknown> = {}): CausalLM {
  return CausalLM.create({ ...smallPreset('tiny', kind, V), seed: 11, ...extra });
}

function randomIds(b: number, t: number, seed: number): number[][] {
  let s = seed;
  return Array.from({ length: b }, () =>
    Array.from({ length: t }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % V;
    }),
  );
}

function lastRow(logits: tf.Tensor, row: number, t: number): Float32Array {
  const v = logits.shape[2] as number;
  return logits.slice([row, t, 0], [1, 1, v]).dataSync() as Float32Array;
}

describe('paper presets', () => {
  it('reproduce Table 5 parameter counts (units of 2^20, to 0.01) for all twelve models', () => {
    expect(Object.keys(PAPER_PRESETS)).to.have.length(12);
    for (const [name, p] of Object.entries(PAPER_PRESETS)) {
      const millions = causalLMParams(p.config) / 2 ** 20;
      expect(Math.round(millions * 100) / 100, name).to.equal(p.table5);
    }
  });

  it('give the per-layer cache sizes of the paper (GTA-1B 192 vs GQA-1B 640 per layer)', () => {
    expect(causalLMCacheElementsPerToken(PAPER_PRESETS['GTA-1B'].config) / 54).to.equal(192);
    expect(causalLMCacheElementsPerToken(PAPER_PRESETS['GQA-1B'].config) / 54).to.equal(640);
    expect(causalLMCacheElementsPerToken(PAPER_PRESETS['500M-MLA'].config) / 24).to.equal(352);
  });
});

describeBackends('CausalLM', ({ tol, backend }) => {
  // Fewer steps on webgl and webgpu, which run on SwiftShader in the browser suite (kit: stepsOn).
  const decoded = stepsOn(backend, 64, 16); // one-token steps after an 8-token prefill
  const generated = stepsOn(backend, 10, 5); // new tokens per prompt in the batched generate spec
  const memorySteps = stepsOn(backend, 200, 50); // a per-step leak shows after a few steps already
  for (const kind of KINDS) {
    describe(kind, () => {
      it('counts its parameters like the analytic formula and names every weight uniquely', () => {
        const lm = tinyModel(kind);
        expect(lm.countParams()).to.equal(causalLMParams(lm.config));
        const names = lm.model.weights.map((w) => w.name);
        expect(new Set(names).size).to.equal(names.length);
        expect(names.some((n) => n.startsWith('block_1/attention/'))).to.equal(true);
        expect(names.some((n) => n.startsWith('block_0/mlp/'))).to.equal(true);
        expect(lm.model.trainableWeights.length).to.equal(names.length);
        lm.dispose();
      });

      for (const tieWordEmbeddings of [true, false]) {
        it(`dispose() frees every tensor it made (tieWordEmbeddings ${tieWordEmbeddings})`, () => {
          const before = tf.memory().numTensors;
          const lm = tinyModel(kind, { tieWordEmbeddings });
          tf.dispose(lm.logits(randomIds(2, 5, 3)));
          const r = lm.callWithCache(randomIds(2, 4, 4), null);
          const step = lm.callWithCache([[1], [2]], r.cache);
          tf.dispose([r.logits, step.logits]);
          r.cache.dispose();
          step.cache.dispose();
          lm.dispose();
          expect(tf.memory().numTensors - before).to.equal(0);
        });
      }

      it(`decodes ${decoded} tokens with the cache, each step equal to the full forward pass`, () => {
        const lm = tinyModel(kind);
        const ids = randomIds(2, 8 + decoded, 5);
        const full = lm.logits(ids);
        let r = lm.callWithCache(
          ids.map((row) => row.slice(0, 8)),
          null,
        );
        tf.tidy(() => {
          expectClose(r.logits, full.slice([0, 0, 0], [2, 8, V]), tol.same, 'prefill');
        });
        r.logits.dispose();
        const steps: tf.Tensor[] = []; // each step's logits [2, 1, V], compared after the loop in one read
        for (let t = 8; t < 8 + decoded; t++) {
          const next = lm.callWithCache(
            ids.map((row) => [row[t]]),
            r.cache,
          );
          r.cache.dispose();
          r = next;
          steps.push(r.logits);
        }
        // Norm-relative error of each step against the full pass: ||a_t - e_t|| / ||e_t|| over batch and vocabulary.
        const errors = tf.tidy(() => {
          const actual = tf.concat(steps, 1); // [2, decoded, V]
          const expected = full.slice([0, 8, 0], [2, decoded, V]); // [2, decoded, V]
          const norm = (x: tf.Tensor) => tf.sqrt(tf.sum(tf.square(x), [0, 2])); // [decoded]
          return tf.div(norm(tf.sub(actual, expected)), norm(expected));
        });
        const worst = Math.max(...errors.dataSync());
        tf.dispose([errors, ...steps]);
        expect(worst).to.be.at.most(tol.same);
        expect(r.cache.length).to.equal(8 + decoded);
        expect(r.cache.bytesPerToken()).to.equal(4 * causalLMCacheElementsPerToken(lm.config));
        r.cache.dispose();
        full.dispose();
        lm.dispose();
      });

      it('decodes a batch of prompts of different lengths like each prompt alone', async () => {
        const lm = tinyModel(kind);
        const prompts = [randomIds(1, 5, 1)[0], randomIds(1, 9, 2)[0], randomIds(1, 3, 3)[0]];
        const result = await lm.generate(prompts, { maxNewTokens: generated });
        for (let r = 0; r < 3; r++) {
          const alone = await lm.generate(prompts[r], { maxNewTokens: generated });
          expect(result.tokens[r], `row ${r}`).to.deep.equal(alone.tokens[0]);
        }
        // And the logits: the padded batch's last-step logits equal each row's own full forward.
        const longest = 9;
        const ids = prompts.map((p) => [...new Array(longest - p.length).fill(0), ...p]);
        const mask = prompts.map((p) => [...new Array(longest - p.length).fill(0), ...new Array(p.length).fill(1)]);
        const { logits, cache } = lm.callWithCache(ids, null, { paddingMask: mask });
        for (let r = 0; r < 3; r++) {
          tf.tidy(() => {
            const own = lm.logits([prompts[r]]);
            expectClose(lastRow(logits, r, longest - 1), lastRow(own, 0, prompts[r].length - 1), tol.same, `row ${r}`);
          });
        }
        logits.dispose();
        cache.dispose();
        lm.dispose();
      });

      it('generates greedily the argmax of full forward passes and reports its speed', async () => {
        const lm = tinyModel(kind);
        const prompt = randomIds(1, 6, 9)[0];
        const g = await lm.generate(prompt, { maxNewTokens: 8 });
        const seq = [...prompt];
        for (let i = 0; i < 8; i++) {
          const next = tf.tidy(() => tf.argMax(lm.logits([seq]).slice([0, seq.length - 1, 0], [1, 1, V]), -1).dataSync()[0]);
          seq.push(next);
        }
        expect(g.sequences[0]).to.deep.equal(seq);
        expect(g.prefillMs).to.be.greaterThan(0);
        expect(g.decodeTokensPerSecond).to.be.greaterThan(0);
        lm.dispose();
      });

      it('saves and loads (memory and file://) with identical logits', async () => {
        const lm = tinyModel(kind);
        const ids = randomIds(2, 7, 4);
        const before = lm.logits(ids);
        let artifacts: tf.io.ModelArtifacts | null = null;
        await lm.save(
          tf.io.withSaveHandler(async (a) => {
            artifacts = a;
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
          }),
        );
        const fromMemory = await CausalLM.load(tf.io.fromMemory(artifacts!));
        // A model saved with the older 3-D attention kernels (same values, rank-3/2 shapes) still loads.
        const saved = artifacts! as tf.io.ModelArtifacts;
        let changed = 0;
        const legacySpecs = saved.weightSpecs!.map((spec) => {
          const [a, b] = spec.shape;
          if (/\/(query|key|value|query_b|key_value_b)\/kernel$/.test(spec.name)) return (changed++, { ...spec, shape: [a, b / 2, 2] });
          if (/\/attention_output\/kernel$/.test(spec.name)) return (changed++, { ...spec, shape: [2, a / 2, b] });
          if (/\/(query|key|value)\/bias$/.test(spec.name)) return (changed++, { ...spec, shape: [a / 2, 2] });
          return spec;
        });
        expect(changed).to.be.greaterThan(2);
        const legacy = { ...saved, weightSpecs: legacySpecs };
        let plainError = '';
        // tfjs's own failed load leaves its decoded weights behind; the scope reclaims them (nothing else runs meanwhile).
        tf.engine().startScope();
        await tf.loadLayersModel(tf.io.fromMemory(legacy)).catch((e: Error) => {
          plainError = e.message;
        });
        tf.engine().endScope();
        expect(plainError, 'tfjs alone rejects the legacy shapes').to.match(/shape/i);
        const fromLegacy = await CausalLM.load(tf.io.fromMemory(legacy));
        const logitsOf = (m: CausalLM) => tf.tidy(() => Array.from(m.logits(ids).dataSync()));
        const expected = Array.from(before.dataSync());
        expect(logitsOf(fromMemory)).to.deep.equal(expected);
        expect(logitsOf(fromLegacy)).to.deep.equal(expected);
        fromLegacy.dispose();
        if (!IS_NODE) {
          before.dispose();
          fromMemory.dispose();
          lm.dispose();
          return; // file:// is Node-only; the browser suite covers the memory handler above
        }
        // The Node entry registers the file:// handler. A variable specifier keeps the browser bundle from
        // including it (its static node: imports would be hoisted into the bundle).
        const nodeEntry = '../../src/node.js';
        await import(/* @vite-ignore */ nodeEntry);
        const { mkdtempSync, rmSync } = await import('node:fs');
        const { tmpdir } = await import('node:os');
        const { join } = await import('node:path');
        const dir = mkdtempSync(join(tmpdir(), 'tfjs-gta-lm-'));
        try {
          await lm.save(`file://${dir}`);
          const fromFile = await CausalLM.load(`file://${dir}`);
          expect(fromFile.config).to.deep.equal(lm.config);
          expect(logitsOf(fromFile)).to.deep.equal(expected);
          const plain = await tf.loadLayersModel(`file://${dir}/model.json`);
          const p = tf.tidy(() => Array.from((plain.predict(tf.tensor2d(ids, [2, 7], 'int32')) as tf.Tensor).dataSync()));
          expect(p).to.deep.equal(expected);
          fromFile.dispose();
          plain.dispose();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        before.dispose();
        fromMemory.dispose();
        lm.dispose();
      });
    });
  }

  it('trains with fit() and a logits cross-entropy: the loss goes down', async () => {
    const lm = tinyModel('gta');
    lm.model.compile({ optimizer: tf.train.adam(0.01), loss: sparseCrossEntropyFromLogits });
    const ids = randomIds(8, 17, 3);
    const x = tf.tensor2d(
      ids.map((r) => r.slice(0, 16)),
      [8, 16],
      'int32',
    );
    const y = tf.tidy(() =>
      tf.oneHot(
        tf.tensor2d(
          ids.map((r) => r.slice(1)),
          [8, 16],
          'int32',
        ),
        V,
      ),
    ); // fit() checks targets against [B, T, V]
    const h = await lm.model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]).to.be.lessThan(0.8 * loss[0]);
    tf.dispose([x, y]);
    lm.dispose();
  });

  it('samples reproducibly with a seed, honours top-k, stop tokens and the streaming callback', async () => {
    const lm = tinyModel('gqa');
    const prompt = randomIds(1, 4, 8)[0];
    const a = await lm.generate(prompt, { maxNewTokens: 12, temperature: 1.2, topP: 0.9, seed: 5 });
    const b = await lm.generate(prompt, { maxNewTokens: 12, temperature: 1.2, topP: 0.9, seed: 5 });
    expect(a.tokens).to.deep.equal(b.tokens);
    const greedy = await lm.generate(prompt, { maxNewTokens: 12 });
    const top1 = await lm.generate(prompt, { maxNewTokens: 12, temperature: 2, topK: 1, seed: 9 });
    expect(top1.tokens).to.deep.equal(greedy.tokens);
    const stopAt = greedy.tokens[0][3];
    const seen: number[] = [];
    const stopped = await lm.generate(prompt, {
      maxNewTokens: 12,
      stopTokens: [stopAt],
      onToken: (e) => {
        seen.push(e.tokens[0]);
      },
    });
    const firstStop = greedy.tokens[0].indexOf(stopAt);
    expect(stopped.tokens[0]).to.deep.equal(greedy.tokens[0].slice(0, firstStop + 1));
    expect(stopped.finishReasons).to.deep.equal(['stop']);
    expect(seen).to.deep.equal(stopped.tokens[0]);
    lm.dispose();
  });

  it('rejects bad input with clear errors and leaves the cache usable', async () => {
    const lm = tinyModel('mla');
    const other = tinyModel('mla');
    const { cache, logits } = lm.callWithCache([[1, 2, 3]], null);
    logits.dispose();
    const foreign = other.callWithCache([[1]], null);
    expectThrows(() => lm.callWithCache([[1]], foreign.cache), /belongs to another model/);
    foreign.cache.dispose();
    foreign.logits.dispose();
    expectThrows(() => lm.callWithCache([[1], [2]], cache), /batch size 1 but the ids have batch size 2/);
    expectThrows(() => lm.callWithCache([[V]], cache), new RegExp(`in \\[0, ${V}\\)`));
    expectThrows(() => lm.callWithCache([[1.5]], cache), /integers/);
    tf.tidy(() => {
      expectThrows(() => lm.callWithCache(tf.tensor2d([[1]], [1, 1], 'float32'), cache), /int32/);
    });
    expectThrows(() => lm.logits([new Array(300).fill(1)]), /exceed maxSequenceLength 256/);
    let error: Error | null = null;
    await lm.generate(new Array(250).fill(1), { maxNewTokens: 10 }).catch((e: Error) => {
      error = e;
    });
    expect(String(error)).to.match(/plus maxNewTokens \(10\) exceeds maxSequenceLength 256/);
    const ok = lm.callWithCache([[4]], cache);
    expect(ok.cache.length).to.equal(4);
    ok.logits.dispose();
    for (const c of [cache, ok.cache]) c.dispose();
    expect(cache).to.be.instanceOf(ModelCache);
    lm.dispose();
    other.dispose();
  });

  it(`holds no extra tensors after ${memorySteps} decode steps beyond the cache`, () => {
    const lm = tinyModel('gta');
    let r = lm.callWithCache([[1, 2]], null);
    const step = () => {
      const next = lm.callWithCache([[3]], r.cache);
      r.cache.dispose();
      r.logits.dispose();
      r = next;
    };
    step();
    const afterOne = tf.memory().numTensors;
    for (let i = 1; i < memorySteps; i++) step();
    expect(tf.memory().numTensors).to.equal(afterOne);
    expect(r.cache.length).to.equal(2 + memorySteps);
    r.cache.dispose();
    r.logits.dispose();
    lm.dispose();
  });
});

describe('seeding', () => {
  it('makes seed 0 reproducible (tfjs itself treats 0 as "no seed")', () => {
    const a = CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 0 });
    const b = CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 0 });
    const c = CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 1 });
    const wa = a.model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(b.model.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(wa);
    expect(c.model.getWeights().map((w) => Array.from(w.dataSync()))).to.not.deep.equal(wa);
    for (const lm of [a, b, c]) lm.dispose();
  });
});
