/**
 * Mocha side of the robustness suite: one leak-checked test per case asserting its expected class
 * (`classify.ts`), cases run in-process under a time limit or, when risky (`isolate`), in a child
 * process that is killed when a case overruns, and a summary table of every outcome written at the
 * end to the path in `ROBUSTNESS_TABLE` (markdown, or JSON when the path ends in `.json`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fork } from 'node:child_process';
import { expect } from 'chai';
import { it } from '../kit/index.js';
import { Case, DEFAULT_LIMIT_MS, Observation, Outcome, classify, passes, tabulate, tableMarkdown } from './classify.js';
import { NOT_YET_CLEAR } from './not_yet_clear.js';

/** With ROBUSTNESS_ALL=1 the cases listed in NOT_YET_CLEAR run too (to see which of them a fix made pass). */
const RUN_ALL = process.env.ROBUSTNESS_ALL === '1';

/** One case run, for the summary. */
interface Recorded {
  category: string;
  name: string;
  backend: string;
  expect: Case['expect'];
  outcome: Outcome;
  detail: string;
  ms: number;
}

const recorded: Recorded[] = [];

/** The runs recorded so far (for the summary). */
export function recordedRuns(): readonly Recorded[] {
  return recorded;
}

function record(c: Case, backend: string, obs: Observation): void {
  recorded.push({ category: c.category, name: c.name, backend, expect: c.expect, ...obs });
}

/** Asserts that the observation is the expected class, naming the case and what happened. */
function assertExpected(c: Case, obs: Observation): void {
  const want = c.expect === 'error' ? 'clear error' : 'ok';
  expect(passes(c, obs.outcome), `${c.category} / ${c.name}: expected ${want}, got ${obs.outcome}: ${obs.detail}`).to.equal(true);
}

/** Throws when two cases share a name (each test name must say which input it tried). */
function checkUniqueNames(cases: Case[]): void {
  const seen = new Set<string>();
  for (const c of cases) {
    const key = `${c.category}/${c.name}`;
    if (seen.has(key)) throw new Error(`robustness: duplicate case ${key}`);
    seen.add(key);
  }
}

/** A module the child process imports, and the name of its export that returns the cases. */
export interface CaseSource {
  module: URL;
  exportName: string;
}

/**
 * Runs the named cases of `source` in child processes (`isolate.ts`), in order, and resolves with one
 * observation per case. A case that overruns its time limit (plus a grace second) is a `hang`: the child
 * is killed and a new one continues with the next case; a child that dies (out of memory, a fatal V8
 * error, a native crash) makes its current case a `crash`. A child process, not a worker thread,
 * because a fatal V8 error (an array grown past its limit) aborts the whole process.
 */
export async function runIsolated(source: CaseSource, cases: Case[]): Promise<Map<string, Observation>> {
  const results = new Map<string, Observation>();
  let next = 0;
  while (next < cases.length) {
    next = await runChild(source, cases, next, results);
  }
  return results;
}

/** Runs `cases[from..]` in one child until they are done or one fails it; resolves with the next index to run. */
function runChild(source: CaseSource, cases: Case[], from: number, results: Map<string, Observation>): Promise<number> {
  return new Promise((resolve) => {
    // The child's temporary folders go here, removed once it exits (it may be killed mid-case).
    const work = mkdtempSync(join(tmpdir(), 'tfjs-gta-robust-child-'));
    const child = fork(new URL('./isolate.ts', import.meta.url), [], {
      execArgv: ['--import', import.meta.resolve('tsx/esm'), '--max-old-space-size=768'],
      env: { ...process.env, ISOLATE_MODULE: source.module.href, ISOLATE_EXPORT: source.exportName, ROBUSTNESS_TMP: work },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    let at = from;
    let started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let settled = false;
    let next = from;
    // Resolves once the child has exited and its folder is removed.
    const finish = (nextIndex: number) => {
      if (settled) return;
      settled = true;
      next = nextIndex;
      clearTimeout(timer);
      child.kill('SIGKILL');
    };
    const fail = (outcome: Outcome, detail: string) => {
      if (at < cases.length) results.set(cases[at].name, { outcome, detail, ms: Math.round(performance.now() - started) });
      finish(at + 1);
    };
    const startCase = (index: number) => {
      at = index;
      started = performance.now();
      const limit = (cases[at].limitMs ?? DEFAULT_LIMIT_MS) + 1000;
      clearTimeout(timer);
      timer = setTimeout(() => fail('hang', `no answer within ${limit} ms (process killed)`), limit);
      child.send({ name: cases[at].name });
    };
    child.on('message', (m: { type: string; name?: string; obs?: Observation }) => {
      if (m.type === 'ready') {
        startCase(from);
      } else if (m.type === 'done') {
        clearTimeout(timer);
        results.set(m.name!, m.obs!);
        if (at + 1 < cases.length) startCase(at + 1);
        else finish(cases.length);
      }
    });
    // Loading the module has its own budget (tfjs and the backend start there).
    timer = setTimeout(() => fail('crash', 'the child process did not start within 60 s'), 60_000);
    child.on('exit', (code, signal) => {
      const why = stderr
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .slice(-3)
        .join(' | ')
        .slice(0, 300);
      if (!settled) fail('crash', `the process died (${signal ?? `exit ${code}`}) during the case: ${why}`);
      rmSync(work, { recursive: true, force: true });
      resolve(next);
    });
  });
}

/** The cases that run: all of them with ROBUSTNESS_ALL=1, else those not listed in NOT_YET_CLEAR. */
export function included(cases: Case[]): Case[] {
  return RUN_ALL ? cases : cases.filter((c) => !NOT_YET_CLEAR.has(`${c.category} / ${c.name}`));
}

/** The title of a case's test. */
function title(c: Case): string {
  return `${c.category}: ${c.name} -> ${c.expect === 'error' ? 'clear error' : 'ok'}${c.isolate ? ' (child process)' : ''}`;
}

/**
 * Registers one leak-checked test per case asserting its expected class, leaving out the cases listed
 * in NOT_YET_CLEAR (unless ROBUSTNESS_ALL=1). Cases run in this process
 * under their time limit, except `isolate`d ones, which `runIsolated` runs in child processes (all of them
 * in one `before` hook; the child builds the cases again from `source`). `backend` labels the runs in
 * the summary.
 */
export function caseTests(all: Case[], source: CaseSource, backend = 'any'): void {
  checkUniqueNames(all);
  const cases = included(all);
  const isolated = cases.filter((c) => c.isolate);
  let results = new Map<string, Observation>();
  if (isolated.length > 0) {
    before(async function () {
      this.timeout(isolated.reduce((s, c) => s + (c.limitMs ?? DEFAULT_LIMIT_MS) + 5000, 60_000));
      results = await runIsolated(source, isolated);
    });
  }
  for (const c of cases) {
    it(title(c), async () => {
      const obs = c.isolate
        ? (results.get(c.name) ?? { outcome: 'crash' as Outcome, detail: 'the child process never ran the case', ms: 0 })
        : await classify(c);
      record(c, c.isolate ? `${backend}, child process` : backend, obs);
      assertExpected(c, obs);
    });
  }
}

/** Writes the summary to `ROBUSTNESS_TABLE` (if set) once the whole run is over. */
function writeSummary(): void {
  const target = process.env.ROBUSTNESS_TABLE;
  if (!target || recorded.length === 0) return;
  const table = tabulate(recorded);
  if (target.endsWith('.json')) {
    writeFileSync(target, `${JSON.stringify({ table, runs: recorded }, null, 1)}\n`);
    return;
  }
  const failing = recorded.filter((r) => !passes(r, r.outcome));
  const lines = [
    `# Robustness suite: ${recorded.length} runs of ${new Set(recorded.map((r) => `${r.category}/${r.name}`)).size} cases`,
    '',
    tableMarkdown(table),
    '',
    ...(failing.length === 0
      ? ['Every case had its expected class.']
      : [
          `## ${failing.length} runs without their expected class`,
          '',
          ...failing.map((r) => `- ${r.category} / ${r.name} [${r.backend}]: ${r.outcome}: ${r.detail}`),
        ]),
    '',
  ];
  writeFileSync(target, lines.join('\n'));
}

// A root-level hook: runs once after every spec file of the run.
after(writeSummary);
