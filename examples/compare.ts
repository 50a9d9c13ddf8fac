// Run (from the repository root): npx tsx examples/compare.ts
// Trains GTA, GQA, MLA and MHA side by side with the quick preset (about a minute with tfjs-node)
// and prints the comparison table (parameters, KV bytes per token, validation loss, speed), then
// writes the full report to results/example/ (report.md, report.json, loss curves).
import { useBestBackend } from 'tfjs-gta';
import { compare, comparisonTable, writeReport } from 'tfjs-gta/node';

await useBestBackend();
const report = await compare({
  variants: ['gta', 'gqa', 'mla', 'mha'],
  preset: 'quick',
  onLog: (line) => console.log(line),
});
console.log(comparisonTable(report));
const files = await writeReport(report, 'results/example');
console.log(`report written to ${files[0]}`);
