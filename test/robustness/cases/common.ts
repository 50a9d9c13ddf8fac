/**
 * Shared pieces of the robustness cases: the systematic value sweep for numeric arguments, with the
 * expected class of each value by the kind of argument, and temporary folders removed after the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Case } from '../classify.js';
import type { CausalLM } from '../../../src/models/causal_lm.js';

/** The values every numeric argument is tried with. */
export const SWEEP: ReadonlyArray<readonly [label: string, value: unknown]> = [
  ['0', 0],
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ["'2'", '2'],
  ['null', null],
  ['huge (1e21)', 1e21],
];

/**
 * Kinds of numeric arguments and the sweep values each accepts:
 * - `int`: a required positive (safe) integer: every sweep value is an error;
 * - `optInt`: an optional positive integer: `null` means "none";
 * - `num`: an optional finite number > 0 with a default: `null` (default), 1.5 and 1e21 are valid;
 * - `rate`: an optional number in [0, 1): 0 and `null` are valid;
 * - `seed`: an optional integer: 0, -1, `null` and 1e21 are valid.
 */
export type ArgKind = 'int' | 'optInt' | 'num' | 'rate' | 'seed';

const VALID: Record<ArgKind, ReadonlySet<string>> = {
  int: new Set(),
  optInt: new Set(['null']),
  num: new Set(['null', '1.5', 'huge (1e21)']),
  rate: new Set(['0', 'null']),
  seed: new Set(['0', '-1', 'null', 'huge (1e21)']),
};

/** Options of `sweepCases`. */
export interface SweepOptions {
  /** What an error message must say (default: the argument's name as a word). */
  mentions?: RegExp;
  /** Run the huge value in a child process (default true: a huge size may allocate without bound or loop for ever). */
  isolateHuge?: boolean;
}

/**
 * One case per sweep value of argument `arg` of `owner`: `run(value)` tries it. `valid` is the argument's
 * kind (`ArgKind`) or the set of sweep labels it accepts; invalid values must give a clear error that
 * names `arg` (or `options.mentions`), valid ones a finite result.
 */
export function sweepCases(
  category: string,
  owner: string,
  arg: string,
  valid: ArgKind | ReadonlySet<string>,
  run: (value: unknown) => unknown,
  options: SweepOptions = {},
): Case[] {
  const accepted = typeof valid === 'string' ? VALID[valid] : valid;
  const mentions = options.mentions ?? new RegExp(`\\b${arg}\\b`);
  return SWEEP.map(([label, value]) => {
    const ok = accepted.has(label);
    return {
      category,
      name: `${owner} ${arg}=${label}`,
      run: () => run(value),
      expect: ok ? 'ok' : 'error',
      ...(ok ? {} : { mentions }),
      isolate: (options.isolateHuge ?? true) && label.startsWith('huge'),
    };
  });
}

/** A parsed JSON file that a case damages in place (any shape: the point is to break it). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a damaged file may have any shape
export type EditableJSON = Record<string, any>;

const dirs: string[] = [];

/**
 * A new temporary folder, removed by `removeTempDirs`; inside ROBUSTNESS_TMP when set (the folder a
 * child process of the suite works in, removed by the parent even when it kills the child).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(process.env.ROBUSTNESS_TMP ?? tmpdir(), `tfjs-gta-robust-${prefix}-`));
  dirs.push(dir);
  return dir;
}

/** Removes every folder made by `tempDir`. */
export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Memoizes an async fixture, so that cases share it and only the first one builds it. */
export function once<T>(make: () => Promise<T> | T): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => (value ??= Promise.resolve().then(make));
}

/** The logits of the 3-token prompt [1, 2, 3] under `lm`, read as values; `lm` is disposed. */
export function promptLogits(lm: CausalLM): Float32Array {
  try {
    const y = lm.logits([[1, 2, 3]]);
    const values = y.dataSync().slice() as Float32Array;
    y.dispose();
    return values;
  } finally {
    lm.dispose();
  }
}
