// Browser app bundled with default esbuild and vite settings: the main entry only, on webgl.
import * as tf from '@tensorflow/tfjs';
import { CausalLM, smallPreset } from 'tfjs-gta';

async function run() {
  await tf.setBackend('webgl');
  await tf.ready();
  const lm = CausalLM.create({ ...smallPreset('tiny', 'gta', 50), seed: 3 });
  const out = await lm.generate([1, 2, 3], { maxNewTokens: 5 });
  const logits = lm.logits([[1, 2, 3]]);
  const finite = Array.from(await logits.data()).every(Number.isFinite);
  logits.dispose();
  lm.dispose();
  return { backend: tf.getBackend(), tokens: out.sequences[0].length, finite };
}
run().then(
  (r) => {
    window.__result = r;
  },
  (e) => {
    window.__result = { error: String((e && e.stack) || e) };
  },
);
