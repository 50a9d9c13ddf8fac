/**
 * Child process of the robustness suite (suite.ts `runIsolated`): builds the cases of the module named
 * by ISOLATE_MODULE / ISOLATE_EXPORT, says it is ready, then classifies each case the parent names
 * and sends back the observation. The parent kills it when a case overruns its time limit.
 */
import { Case, classify } from './classify.js';

const source = (await import(process.env.ISOLATE_MODULE!)) as Record<string, () => Case[]>;
const cases = new Map(source[process.env.ISOLATE_EXPORT!]().map((c) => [c.name, c]));

process.on('message', (m: { name: string }) => {
  const c = cases.get(m.name);
  const pending =
    c === undefined ? Promise.resolve({ outcome: 'crash', detail: `no case named ${m.name} in the child process`, ms: 0 }) : classify(c);
  void pending.then((obs) => process.send!({ type: 'done', name: m.name, obs }));
});
process.send!({ type: 'ready' });
