// Run (from the repository root): npx tsx examples/generate.ts
// Builds a tiny model of each attention kind and streams 20 greedy tokens from one prompt with the
// KV cache, printing the tokens, the cache size per token and the decode speed, e.g.
//   gta: 12 34 ... | cache 512 B/token | prefill 3.1 ms | 412 tokens/s
import { CausalLM, smallPreset, useBestBackend } from 'tfjs-gta';

await useBestBackend();
for (const kind of ['gta', 'gqa', 'mla', 'mha'] as const) {
  const lm = CausalLM.create({ ...smallPreset('tiny', kind, 100), seed: 1 });
  const streamed: number[] = [];
  const result = await lm.generate([1, 2, 3, 4], {
    maxNewTokens: 20,
    temperature: 0.8,
    topK: 20,
    seed: 7,
    stopTokens: [0],
    onToken: ({ tokens }) => {
      streamed.push(tokens[0]);
    },
  });
  const { cache, logits } = lm.callWithCache([[1, 2, 3, 4]], null);
  console.log(
    `${kind}: ${streamed.join(' ')} | cache ${cache.bytesPerToken()} B/token | prefill ${result.prefillMs.toFixed(1)} ms | ` +
      `${result.decodeTokensPerSecond.toFixed(0)} tokens/s`,
  );
  cache.dispose();
  logits.dispose();
  lm.dispose();
}
