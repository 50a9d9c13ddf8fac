// CommonJS app: `require` of the package (Node >= 20.19 loads its ES modules), saving through memory.
const tf = require('@tensorflow/tfjs');
const gta = require('tfjs-gta');
const pkg = require('tfjs-gta/package.json');

(async () => {
  const { roundTrip } = await import('./model.mjs');
  const result = await roundTrip(tf, gta, async (model) => {
    let artifacts;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    return tf.loadLayersModel(tf.io.fromMemory(artifacts));
  });
  console.log(JSON.stringify({ app: 'cjs', version: pkg.version, ...result }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
