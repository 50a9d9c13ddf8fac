/**
 * Whole-model reference cases (`gta-refmodel-1`, see `../shared/reference/models/README.md`): a tiny
 * checkpoint per mechanism with the reference logits and greedy continuation. Each case is imported
 * from its safetensors file, its logits compared, and its greedy continuation regenerated with the
 * cached decode path.
 */
import { ValueError } from '../utils/errors.js';
import { causalLMFromHF } from '../io/hf_checkpoint.js';
import { NamedTensor } from '../io/safetensors.js';
import { normRelativeError, RefTensor } from './reference_vectors.js';

export interface ReferenceModelCase {
  name: string;
  mechanism: string;
  config: Record<string, unknown>;
  weights_file: string;
  input_ids: number[][];
  logits: RefTensor;
  greedy: { prompt_ids: number[][]; new_tokens: number; continuation: number[][] };
}

export interface ReferenceModelFile {
  format: string;
  cases: ReferenceModelCase[];
}

export interface ModelCaseResult {
  name: string;
  mechanism: string;
  logitsError: number;
  greedyMatches: boolean;
  continuation: number[][];
  expected: number[][];
}

export function parseReferenceModelFile(text: string, source = 'models file'): ReferenceModelFile {
  let parsed: ReferenceModelFile;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValueError(`${source} is not valid JSON: ${(e as Error).message}`);
  }
  if (!parsed || parsed.format !== 'gta-refmodel-1' || !Array.isArray(parsed.cases)) {
    throw new ValueError(`${source} is not in the gta-refmodel-1 format.`);
  }
  for (const c of parsed.cases) {
    for (const key of ['name', 'config', 'weights_file', 'input_ids', 'logits', 'greedy']) {
      if (!(key in c)) throw new ValueError(`${source}: case ${c.name ?? '?'} has no "${key}".`);
    }
  }
  return parsed;
}

/** Runs one case given its tensors (already read from `weights_file`). */
export async function runReferenceModelCase(c: ReferenceModelCase, tensors: Record<string, NamedTensor>): Promise<ModelCaseResult> {
  const lm = causalLMFromHF(c.config, tensors);
  try {
    const logits = lm.logits(c.input_ids);
    let logitsError: number;
    try {
      logitsError = normRelativeError(await logits.data(), c.logits.data);
    } finally {
      logits.dispose();
    }
    const g = await lm.generate(c.greedy.prompt_ids, { maxNewTokens: c.greedy.new_tokens });
    const matches = JSON.stringify(g.tokens) === JSON.stringify(c.greedy.continuation);
    return {
      name: c.name,
      mechanism: c.mechanism,
      logitsError,
      greedyMatches: matches,
      continuation: g.tokens,
      expected: c.greedy.continuation,
    };
  } finally {
    lm.dispose();
  }
}
