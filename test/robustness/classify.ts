/**
 * The robustness suite's core, free of tfjs and mocha so that a child process can use it: a case is a
 * row `{category, name, run, expect}`, and `classify` runs one under a time limit and says what
 * happened:
 *
 * - `clear error`: a `ValueError` (src/utils/errors.ts; `MissingPackageError` is one too) whose message
 *   matches the case's `mentions` (the argument or file, and the rule);
 * - `vague error`: a `ValueError` whose message does not name what the case expects;
 * - `crash`: any other exception (TypeError, RangeError, tfjs's own errors, a child process that died, ...);
 * - `hang`: no answer within the time limit;
 * - `silent`: a normal return for an invalid input, or NaN / a wrong result for a valid one;
 * - `ok`: a valid input that gave a finite, checked result.
 *
 * An invalid input passes when it is a `clear error`, a boundary-valid one when it is `ok`.
 */
import { ValueError } from '../../src/utils/errors.js';

/** What a case expects: a clear error (invalid input) or a normal result (boundary-valid input). */
export type Expect = 'error' | 'ok';

/** What a case did. */
export type Outcome = 'clear error' | 'vague error' | 'crash' | 'hang' | 'silent' | 'ok';

/** Every outcome, in table order. */
export const OUTCOMES: readonly Outcome[] = ['clear error', 'ok', 'vague error', 'crash', 'hang', 'silent'];

/** Time limit of one case (ms). */
export const DEFAULT_LIMIT_MS = 10_000;

/** One row of the suite. */
export interface Case {
  category: string;
  name: string;
  /** Performs the input; its result (tensors included) is scanned for NaN and then disposed. */
  run: () => unknown;
  expect: Expect;
  /** For `expect: 'error'`: what the message must say (the argument or file, and the rule). */
  mentions?: RegExp;
  /** For `expect: 'ok'`: throws when the result is wrong (a wrong result counts as `silent`). */
  check?: (result: unknown) => unknown;
  /** Time limit in ms (default `DEFAULT_LIMIT_MS`). */
  limitMs?: number;
  /**
   * Run in a child process that is killed at the time limit (cases that might hang synchronously or
   * exhaust memory: huge sizes, hostile files).
   */
  isolate?: boolean;
}

/** The outcome of one case, with a one-line detail (the message, or what was returned). */
export interface Observation {
  outcome: Outcome;
  detail: string;
  ms: number;
}

/** Whether the outcome is what the case expects. */
export function passes(c: Pick<Case, 'expect'>, outcome: Outcome): boolean {
  return c.expect === 'error' ? outcome === 'clear error' : outcome === 'ok';
}

interface TensorLike {
  dataSync(): ArrayLike<number>;
  dispose(): void;
  isDisposed?: boolean;
  dtype?: string;
}

function isTensor(x: unknown): x is TensorLike {
  return (
    x !== null &&
    typeof x === 'object' &&
    typeof (x as TensorLike).dataSync === 'function' &&
    typeof (x as TensorLike).dispose === 'function'
  );
}

/** Calls `visit` on every number, typed array and tensor reachable from `value` (depth-limited). */
function walk(value: unknown, visit: (x: unknown) => void, depth = 0, seen = new Set<unknown>()): void {
  if (value === null || value === undefined || depth > 4 || seen.has(value)) return;
  if (typeof value === 'number' || ArrayBuffer.isView(value) || isTensor(value)) {
    visit(value);
    return;
  }
  if (typeof value !== 'object') return;
  seen.add(value);
  const items = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  for (const v of items.slice(0, 10_000)) walk(v, visit, depth + 1, seen);
}

/** The first non-finite number in `value` (tensors read through `dataSync`), or null. */
export function firstNonFinite(value: unknown): number | null {
  let found: number | null = null;
  walk(value, (x) => {
    if (found !== null) return;
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) found = x;
      return;
    }
    if (isTensor(x) && (x.isDisposed || x.dtype === 'string')) return;
    const data = (isTensor(x) ? x.dataSync() : x) as ArrayLike<number>;
    if (typeof (data as ArrayLike<unknown>)[0] === 'bigint') return;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        found = data[i];
        return;
      }
    }
  });
  return found;
}

/** Disposes every live tensor reachable from `value`, and objects with a `dispose()` (models, caches). */
export function disposeResult(value: unknown): void {
  if (value !== null && typeof value === 'object' && !isTensor(value) && typeof (value as { dispose?: unknown }).dispose === 'function') {
    (value as { dispose(): void }).dispose();
    return;
  }
  walk(value, (x) => {
    if (isTensor(x) && !x.isDisposed) x.dispose();
  });
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value as Record<string, unknown>)) {
      if (v !== null && typeof v === 'object' && !isTensor(v) && typeof (v as { dispose?: unknown }).dispose === 'function') {
        (v as { dispose(): void }).dispose();
      }
    }
  }
}

/** A one-line description of a returned value. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (isTensor(value)) return `a tensor of shape [${(value as unknown as { shape: number[] }).shape}]`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<number>).length})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object' && value !== null) return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return String(value).slice(0, 80);
}

const ROOT = new URL('../../', import.meta.url).pathname;

/** `path:line` of a stack frame, relative to the repository, or null. */
function frameLocation(frame: string): string | null {
  const m = /(?:\(|at )(?:file:\/\/)?([^()\s]+?):(\d+):\d+\)?\s*$/.exec(frame.trim());
  if (!m) return null;
  return `${m[1].startsWith(ROOT) ? m[1].slice(ROOT.length) : m[1]}:${m[2]}`;
}

/**
 * Where an exception was thrown: the first stack frame, and when that is not in this repository's
 * src/, the first frame that is (the library code that let it through).
 */
export function thrownAt(e: unknown): string {
  const frames = String((e as Error)?.stack ?? '')
    .split('\n')
    .filter((l) => /^\s+at /.test(l));
  const first = frames.map(frameLocation).find((l) => l !== null) ?? 'unknown location';
  const ours = frames.map(frameLocation).find((l) => l !== null && l.startsWith('src/'));
  return ours === undefined || ours === first ? first : `${first}, via ${ours}`;
}

function errorDetail(e: unknown): string {
  const err = e as Error;
  const name = err?.name ?? typeof e;
  const message = String(err?.message ?? e)
    .split('\n')[0]
    .slice(0, 240);
  return `${name}: ${message}`;
}

/** Thrown by a case that enforces its own time limit (a child process it had to kill): a `hang`. */
export class HangError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HangError';
  }
}

/** Classifies a thrown value for case `c`. */
export function classifyError(c: Case, e: unknown): { outcome: Outcome; detail: string } {
  if (e instanceof HangError) return { outcome: 'hang', detail: e.message };
  if (e instanceof ValueError) {
    const named = c.mentions === undefined || c.mentions.test(e.message);
    return { outcome: named ? 'clear error' : 'vague error', detail: errorDetail(e) + (named ? '' : ` (expected ${c.mentions})`) };
  }
  return { outcome: 'crash', detail: `${errorDetail(e)} (thrown at ${thrownAt(e)})` };
}

const TIMEOUT = Symbol('timeout');

/** Runs `c` once under its time limit and classifies what happened; never throws. */
export async function classify(c: Case): Promise<Observation> {
  const limit = c.limitMs ?? DEFAULT_LIMIT_MS;
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ms = () => Math.round(performance.now() - started);
  let result: unknown;
  try {
    const timeout = new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMEOUT), limit);
    });
    result = await Promise.race([Promise.resolve().then(() => c.run()), timeout]);
  } catch (e) {
    return { ...classifyError(c, e), ms: ms() };
  } finally {
    clearTimeout(timer);
  }
  if (result === TIMEOUT) return { outcome: 'hang', detail: `no answer within ${limit} ms`, ms: ms() };
  try {
    if (ms() > limit) return { outcome: 'hang', detail: `took ${ms()} ms (limit ${limit} ms)`, ms: ms() };
    const bad = firstNonFinite(result);
    if (c.expect === 'error') {
      return { outcome: 'silent', detail: `returned ${describeValue(result)}${bad === null ? '' : ` holding ${bad}`}`, ms: ms() };
    }
    if (bad !== null) return { outcome: 'silent', detail: `the result holds ${bad}`, ms: ms() };
    if (c.check) {
      try {
        await c.check(result);
      } catch (e) {
        return { outcome: 'silent', detail: `wrong result: ${errorDetail(e)}`, ms: ms() };
      }
    }
    return { outcome: 'ok', detail: `returned ${describeValue(result)}`, ms: ms() };
  } finally {
    disposeResult(result);
  }
}

/** Counts per category and outcome. */
export type Table = Record<string, Record<Outcome, number>>;

/** The table of `rows` (one per case run). */
export function tabulate(rows: Array<{ category: string; outcome: Outcome }>): Table {
  const table: Table = {};
  for (const r of rows) {
    table[r.category] ??= Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    table[r.category][r.outcome] += 1;
  }
  return table;
}

/** The table as markdown, with a total row. */
export function tableMarkdown(table: Table): string {
  const header = `| category | ${OUTCOMES.join(' | ')} | runs |`;
  const rule = `|---|${OUTCOMES.map(() => '---:').join('|')}|---:|`;
  const total = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const lines = Object.entries(table).map(([category, counts]) => {
    for (const o of OUTCOMES) total[o] += counts[o];
    const runs = OUTCOMES.reduce((s, o) => s + counts[o], 0);
    return `| ${category} | ${OUTCOMES.map((o) => counts[o]).join(' | ')} | ${runs} |`;
  });
  const runs = OUTCOMES.reduce((s, o) => s + total[o], 0);
  return [header, rule, ...lines, `| **total** | ${OUTCOMES.map((o) => total[o]).join(' | ')} | ${runs} |`].join('\n');
}
