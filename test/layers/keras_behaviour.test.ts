/**
 * Keras behaviour every attention layer must have, checked for GQA, GTA and MLA alike: weight
 * ownership and names, parameter counts, config round trips, functional models with fit/predict,
 * save/load, Keras masking, explicit attention masks, causality, attention scores, dropout, bad input
 * at call time and leaks.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { attentionParams, specOf } from '../../src/analysis/costs.js';
import { describeBackends, expectClose, expectNoLeakedTensors, expectShape, expectThrows, it, randomTensor } from '../kit/index.js';
import { LAYER_CASES, randomizeWeights } from '../kit/layers.js';

const B = 2;
const T = 5;

describeBackends('attention layers behave like Keras layers', ({ tol }) => {
  for (const lc of LAYER_CASES) {
    describe(lc.kind, () => {
      it('owns its weights under Keras-style names and counts them like the formula', () => {
        const layer = lc.make();
        tf.tidy(() => {
          layer.apply(tf.zeros([1, 2, lc.dim]));
        });
        const names = layer.weights.map((w) => w.name);
        expect(names.length).to.be.greaterThan(3);
        expect(names.every((n) => n.startsWith(`${layer.name}/`))).to.equal(true);
        expect(names.some((n) => n.endsWith('/query/kernel') || n.endsWith('/query_a/kernel'))).to.equal(true);
        expect(names.some((n) => n.endsWith('/attention_output/kernel'))).to.equal(true);
        expect(new Set(names).size).to.equal(names.length);
        expect(layer.trainableWeights.length).to.equal(layer.weights.length);
        expect(layer.countParams()).to.equal(attentionParams(specOf(layer), lc.dim));
        layer.dispose();
      });

      it('round-trips getConfig through fromConfig and JSON', () => {
        const layer = lc.make({ dropout: 0.25, useCausalMask: true, ropeMaxWavelength: 500, name: `cfg_${lc.kind}` });
        const config = JSON.parse(JSON.stringify(layer.getConfig()));
        const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()];
        expect(cls).to.equal(layer.constructor);
        const copy = fromConfig(cls, config) as tf.layers.Layer;
        expect(copy.getConfig()).to.deep.equal(layer.getConfig());
        expect(config.dropout).to.equal(0.25);
        expect(config.useCausalMask).to.equal(true);
        expect(config.ropeMaxWavelength).to.equal(500);
      });

      it('runs in a functional model: predict equals the eager call, summary lists it', () => {
        const layer = lc.make({ useCausalMask: true, name: 'attn' });
        const input = tf.input({ shape: [T, lc.dim] });
        const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
        tf.tidy(() => {
          const x = randomTensor([B, T, lc.dim], 11);
          const predicted = model.predict(x) as tf.Tensor;
          expectShape(predicted, [B, T, lc.dim]);
          expectClose(predicted, layer.apply(x) as tf.Tensor, tol.same, 'predict vs eager');
        });
        const lines: string[] = [];
        model.summary(undefined, undefined, (line) => lines.push(line));
        expect(lines.join('\n')).to.contain(`attn (${layer.getClassName().slice(0, 12)}`); // the column truncates long names
        expect(lines.join('\n')).to.contain(`Total params: ${layer.countParams()}`);
        model.dispose();
      });

      it('trains with fit(): the loss goes down', async () => {
        const layer = lc.make({ useCausalMask: true });
        const input = tf.input({ shape: [T, lc.dim] });
        const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
        const optimizer = tf.train.adam(0.01);
        model.compile({ optimizer, loss: 'meanSquaredError' });
        const x = randomTensor([8, T, lc.dim], 3);
        const y = tf.tidy(() => tf.mul(tf.cumsum(x, 1), 0.3)); // a causal target: running sums
        const history = await model.fit(x, y, { epochs: 25, batchSize: 8, verbose: 0, shuffle: false });
        const losses = history.history.loss as number[];
        expect(losses[losses.length - 1]).to.be.lessThan(0.7 * losses[0]);
        tf.dispose([x, y]);
        optimizer.dispose();
        model.dispose();
      });

      it('saves and loads through tf.io (memory handler) with identical outputs', async () => {
        const layer = lc.make({ useCausalMask: true });
        const input = tf.input({ shape: [T, lc.dim] });
        const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
        randomizeWeights(layer, 5);
        let artifacts: tf.io.ModelArtifacts | null = null;
        await model.save(
          tf.io.withSaveHandler(async (a) => {
            artifacts = a;
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
          }),
        );
        const topology = JSON.stringify(artifacts!.modelTopology);
        expect(topology).to.contain(layer.getClassName());
        expect(topology).to.contain('"use_causal_mask":true');
        const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
        const x = randomTensor([B, T, lc.dim], 7);
        const a = model.predict(x) as tf.Tensor;
        const b = loaded.predict(x) as tf.Tensor;
        expect(Array.from(b.dataSync())).to.deep.equal(Array.from(a.dataSync()));
        tf.dispose([x, a, b]);
        model.dispose();
        loaded.dispose();
      });

      it('takes padding masks from Keras masking (Embedding maskZero)', () => {
        const vocab = 11;
        const ids = tf.input({ shape: [T], dtype: 'int32' });
        const embedding = tf.layers.embedding({ inputDim: vocab, outputDim: lc.dim, maskZero: true });
        const layer = lc.make({ useCausalMask: false });
        const model = tf.model({ inputs: ids, outputs: layer.apply(embedding.apply(ids)) as tf.SymbolicTensor });
        tf.tidy(() => {
          // Rows differ only in padded (id 0) positions' neighbours: real tokens must not see padding.
          const a = tf.tensor2d([[3, 4, 5, 0, 0]], [1, T], 'int32');
          const withPadEmbeddingChanged = model.predict(a) as tf.Tensor;
          const w = embedding.getWeights()[0];
          embedding.setWeights([tf.concat([tf.fill([1, lc.dim], 5), w.slice([1, 0], [vocab - 1, lc.dim])])]);
          const after = model.predict(a) as tf.Tensor;
          expectClose(
            after.slice([0, 0, 0], [1, 3, lc.dim]),
            withPadEmbeddingChanged.slice([0, 0, 0], [1, 3, lc.dim]),
            tol.same,
            'real tokens ignore padded keys',
          );
        });
        model.dispose();
      });

      it('accepts an explicit attention mask as a second input in a functional model', () => {
        const x = tf.input({ shape: [T, lc.dim] });
        const m = tf.input({ shape: [T, T] });
        const layer = lc.make();
        const model = tf.model({ inputs: [x, m], outputs: layer.apply([x, m]) as tf.SymbolicTensor });
        tf.tidy(() => {
          const xv = randomTensor([B, T, lc.dim], 13);
          const causal = tf.tile(tf.expandDims(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 0), [B, 1, 1]);
          const viaMask = model.predict([xv, causal]) as tf.Tensor;
          const viaFlag = layer.call(xv, { useCausalMask: true }) as tf.Tensor;
          expectClose(viaMask, viaFlag, tol.same, 'attention mask vs useCausalMask');
        });
        model.dispose();
      });

      it('is causal: changing later tokens never changes earlier outputs', () => {
        const layer = lc.make({ useCausalMask: true });
        tf.tidy(() => {
          const x = randomTensor([B, T, lc.dim], 17);
          const changed = tf.concat([x.slice([0, 0, 0], [B, 3, lc.dim]), randomTensor([B, T - 3, lc.dim], 99)], 1);
          const a = layer.apply(x) as tf.Tensor;
          const b = layer.apply(changed) as tf.Tensor;
          expect(Array.from(b.slice([0, 0, 0], [B, 3, lc.dim]).dataSync())).to.deep.equal(
            Array.from(a.slice([0, 0, 0], [B, 3, lc.dim]).dataSync()),
          );
          const later = tf.sub(b.slice([0, 3, 0], [B, 2, lc.dim]), a.slice([0, 3, 0], [B, 2, lc.dim]));
          expect(tf.max(tf.abs(later)).dataSync()[0]).to.be.greaterThan(1e-4);
        });
        layer.dispose();
      });

      it('returns attention scores: one map per attention group, rows summing to 1, causal', () => {
        const layer = lc.make({ useCausalMask: true });
        tf.tidy(() => {
          const x = randomTensor([B, T, lc.dim], 19);
          const [out, scores] = layer.apply(x, { returnAttentionScores: true }) as tf.Tensor[];
          expectShape(out, [B, T, lc.dim]);
          expectShape(scores, [B, layer.numAttentionMaps(), T, T]);
          expectClose(tf.sum(scores, -1), tf.ones([B, layer.numAttentionMaps(), T]), 1e-5, 'row sums');
          const upper = tf.mul(scores, tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)));
          expect(tf.max(upper).dataSync()[0]).to.equal(0);
        });
        layer.dispose();
      });

      it('applies dropout only when training, reproducibly with a seed', () => {
        const layer = lc.make({ dropout: 0.5, seed: 123 });
        const twin = lc.make({ dropout: 0.5, seed: 123 });
        tf.tidy(() => {
          const x = randomTensor([B, T, lc.dim], 23);
          const inference = layer.apply(x) as tf.Tensor;
          const again = layer.apply(x, { training: false }) as tf.Tensor;
          expect(Array.from(again.dataSync())).to.deep.equal(Array.from(inference.dataSync()));
          const trained = layer.apply(x, { training: true }) as tf.Tensor;
          expect(tf.max(tf.abs(tf.sub(trained, inference))).dataSync()[0]).to.be.greaterThan(1e-3);
          twin.apply(x);
          twin.setWeights(layer.getWeights());
          const twinTrained = twin.apply(x, { training: true }) as tf.Tensor;
          expect(Array.from(twinTrained.dataSync())).to.deep.equal(Array.from(trained.dataSync()));
        });
        layer.dispose();
        twin.dispose();
      });

      it('rejects bad input at call time with a clear error', () => {
        const layer = lc.make();
        tf.tidy(() => {
          layer.apply(tf.zeros([1, 2, lc.dim]));
          const name = layer.getClassName();
          expectThrows(() => layer.apply(tf.zeros([2, lc.dim])), new RegExp(name), /rank 3/);
          expectThrows(() => layer.apply(tf.zeros([1, 2, lc.dim + 1])), /features/, new RegExp(`${lc.dim}`));
          expectThrows(() => layer.apply(tf.zeros([1, 2, lc.dim], 'int32')), /float32/, /int32/);
          expectThrows(() => layer.call(tf.zeros([1, 2, lc.dim]), { attentionMask: tf.ones([1, 3, 3]) }), /attentionMask/, /\[1,2,2\]/);
          expectThrows(() => layer.call(tf.zeros([1, 2, lc.dim]), { paddingMask: tf.ones([2, 2]) }), /paddingMask/);
        });
        layer.dispose();
      });

      it('does not leak tensors (apply, scores, training)', async () => {
        const layer = lc.make({ useCausalMask: true, dropout: 0.1 });
        const x = randomTensor([B, T, lc.dim], 29);
        await expectNoLeakedTensors(() => layer.apply(x), 'apply');
        await expectNoLeakedTensors(() => layer.apply(x, { returnAttentionScores: true }), 'apply with scores');
        await expectNoLeakedTensors(() => layer.apply(x, { training: true }), 'training apply');
        await expectNoLeakedTensors(() => tf.grad((v: tf.Tensor) => tf.sum(layer.apply(v) as tf.Tensor))(x), 'gradient');
        x.dispose();
        layer.dispose();
      });
    });
  }
});
