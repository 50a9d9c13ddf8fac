// The model every fixture app builds with the app's own tf: our layers inside an ordinary tf.model,
// trained with fit, saved and reloaded with tf.loadLayersModel. Prints one JSON line of results.
export async function roundTrip(tf, gta, save) {
  await tf.setBackend('cpu');
  const input = tf.input({ shape: [8, 32] });
  const attended = new gta.GroupedHeadLatentAttention({
    numHeads: 4,
    headDim: 8,
    numQueryHeads: 2,
    numKeyHeads: 1,
    numValueHeads: 1,
    valueDim: 8,
    useCausalMask: true,
    seed: 7, // seeded weights and data: the loss curve is the same on every run (3 unseeded epochs could rise)
  }).apply(input);
  const normed = new gta.RMSNormalization().apply(attended);
  const dense = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) });
  const output = dense.apply(tf.layers.flatten().apply(normed));
  const model = tf.model({ inputs: input, outputs: output });
  model.compile({ optimizer: tf.train.adam(5e-3), loss: 'meanSquaredError' });
  const x = tf.randomNormal([16, 8, 32], 0, 1, 'float32', 1);
  const y = tf.randomNormal([16, 3], 0, 1, 'float32', 2);
  const history = await model.fit(x, y, { epochs: 5, batchSize: 8, verbose: 0, shuffle: false });
  const loaded = await save(model);
  const a = model.predict(x).dataSync();
  const b = loaded.predict(x).dataSync();
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
  return {
    losses: history.history.loss.map(Number),
    maxDiff,
    layerClasses: loaded.layers.map((l) => l.getClassName()),
    tfVersion: tf.version.tfjs ?? tf.version['tfjs-core'],
  };
}
