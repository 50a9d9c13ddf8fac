// Run (from the repository root): npx tsx examples/layers.ts
// Prints each layer's output shape, parameter count and KV-cache values per token, e.g.
//   GTA  [2,16,256] params 213,504 cache/token 128 maps [2,2,16,16]
import * as tf from '@tensorflow/tfjs';
import {
  GroupedHeadLatentAttention,
  GroupedQueryAttention,
  MultiHeadLatentAttention,
  RMSNormalization,
  RotaryEmbedding,
  multiHeadAttention,
  useBestBackend,
} from 'tfjs-gta';

await useBestBackend();
const x = tf.randomNormal([2, 16, 256]);
const layers = {
  GTA: new GroupedHeadLatentAttention({
    numHeads: 4,
    headDim: 64,
    numQueryHeads: 2,
    numKeyHeads: 1,
    numValueHeads: 1,
    valueDim: 64,
    useCausalMask: true,
  }),
  GQA: new GroupedQueryAttention({ headDim: 64, numQueryHeads: 4, numKeyValueHeads: 2, useCausalMask: true }),
  MHA: multiHeadAttention({ numHeads: 4, headDim: 64, useCausalMask: true }),
  MLA: new MultiHeadLatentAttention({
    numHeads: 4,
    kvLoraRank: 128,
    qkNopeHeadDim: 64,
    qkRopeHeadDim: 32,
    vHeadDim: 64,
    useCausalMask: true,
  }),
};
for (const [name, layer] of Object.entries(layers)) {
  const [y, maps] = layer.apply(x, { returnAttentionScores: true }) as tf.Tensor[];
  console.log(
    `${name.padEnd(4)} [${y.shape}] params ${layer.countParams().toLocaleString('en-US')} ` +
      `cache/token ${layer.kvCacheElementsPerToken()} maps [${maps.shape}]`,
  );
}
const rope = new RotaryEmbedding();
const norm = new RMSNormalization();
console.log('RoPE', (rope.apply(tf.randomNormal([2, 16, 4, 64])) as tf.Tensor).shape, 'RMSNorm', (norm.apply(x) as tf.Tensor).shape);
