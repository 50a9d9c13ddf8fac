// ESM app: `import` of the main entry and of tfjs-gta/node (file:// save and load without tfjs-node).
import * as tf from '@tensorflow/tfjs';
import * as gta from 'tfjs-gta';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roundTrip } from './model.mjs';

await import('tfjs-gta/node'); // registers the file:// handler with the app's tfjs
const dir = mkdtempSync(join(tmpdir(), 'consumer-esm-'));
const result = await roundTrip(tf, gta, async (model) => {
  await model.save(`file://${dir}`);
  return tf.loadLayersModel(`file://${join(dir, 'model.json')}`);
});
console.log(JSON.stringify({ app: 'esm', ...result }));
