import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { describeBackends } from '../kit/index.js';

/** The artifacts `save()` hands to a handler. */
async function savedArtifacts(lm: CausalLM): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await lm.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return artifacts!;
}

type LayerJSON = { class_name: string; config: Record<string, unknown> };

/** A copy of the artifacts whose layer named `name` gets `config` merged into its config. */
function withLayerConfig(a: tf.io.ModelArtifacts, name: string, config: Record<string, unknown>): tf.io.ModelArtifacts {
  const topology = structuredClone(a.modelTopology) as { config: { layers: LayerJSON[] } };
  const layer = topology.config.layers.find((l) => l.config.name === name);
  if (!layer) throw new Error(`no layer ${name}`);
  layer.config = { ...layer.config, ...config };
  return { ...a, modelTopology: topology };
}

/** Awaits a load that must fail; returns its message. */
async function failedLoad(artifacts: tf.io.ModelArtifacts): Promise<string> {
  try {
    (await CausalLM.load(tf.io.fromMemory(artifacts))).dispose();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('the load succeeded');
}

describeBackends('CausalLM.load failures', () => {
  // mocha's own `it`: the kit's leak check disposes the variables a test creates, which would hide the
  // leak measured here (the variables of a half-built model).
  globalThis.it('dispose what they built: tf.memory().numTensors is unchanged after 20 failed loads of each kind', async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gta', 29), seed: 4 });
    const good = await savedArtifacts(lm);
    lm.dispose();
    const specs = good.weightSpecs!;
    const lastBytes = 4 * specs[specs.length - 1].shape.reduce((p, d) => p * d, 1);
    const data = tf.io.CompositeArrayBuffer.join(good.weightData!);
    const failures: Array<[string, tf.io.ModelArtifacts, RegExp]> = [
      // the model is built, then a weight is missing (strict loading)
      ['missing weight', { ...good, weightSpecs: specs.slice(0, -1), weightData: data.slice(0, data.byteLength - lastBytes) }, /weight/i],
      // the model is built, then a weight has the wrong shape
      ['wrong shape', { ...good, weightSpecs: specs.map((s, i) => (i === 0 ? { ...s, shape: [s.shape[1], s.shape[0]] } : s)) }, /shape/i],
      // the model and its weights load, but it carries no tfjs-gta metadata
      ['no metadata', { ...good, userDefinedMetadata: {} }, /no tfjs-gta metadata/],
      // deserialization fails part way: block_0 is built before block_1's config is rejected
      ['bad block_1', withLayerConfig(good, 'block_1', { intermediateDim: -3 }), /intermediateDim/],
      // the weight data is shorter than the specs
      ['short data', { ...good, weightData: data.slice(0, 64) }, /./],
    ];
    const warm = await CausalLM.load(tf.io.fromMemory(good)); // first use creates tfjs's lasting helpers
    warm.dispose();
    for (const [what, artifacts, pattern] of failures) {
      const before = tf.memory().numTensors;
      for (let i = 0; i < 20; i++) expect(await failedLoad(artifacts), what).to.match(pattern);
      expect(tf.memory().numTensors - before, `${what}: tensors left by 20 failed loads`).to.equal(0);
    }
    const before = tf.memory().numTensors;
    const ok = await CausalLM.load(tf.io.fromMemory(good));
    expect(tf.memory().numTensors).to.be.greaterThan(before);
    ok.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });
});
