// Type-checked under several TypeScript module settings (not run): the public types as apps see them.
import * as tf from '@tensorflow/tfjs';
import { CausalLM, GroupedHeadLatentAttention, smallPreset, type CausalLMConfig } from 'tfjs-gta';
import { loadCorpus, type CompareReport } from 'tfjs-gta/node';

const layer: tf.layers.Layer = new GroupedHeadLatentAttention({
  numHeads: 4,
  headDim: 8,
  numQueryHeads: 2,
  numKeyHeads: 1,
  numValueHeads: 1,
  valueDim: 8,
});
const config: CausalLMConfig = smallPreset('tiny', 'gta', 64);
export async function demo(): Promise<number> {
  const lm = CausalLM.create(config);
  const corpus = await loadCorpus({ text: 'hello' });
  const report: CompareReport | undefined = undefined;
  lm.dispose();
  return corpus.characters + layer.countParams() + (report === undefined ? 0 : 1);
}
