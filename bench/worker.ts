/**
 * Runs the cells of one backend in this process (one process per backend) and reports each cell's
 * result through a callback, so that a crash keeps what was measured before it.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionSpec } from '../src/index.js';
import { Case, ProfileInfo, makeCase } from './cases.js';
import { CellSpec, Grid, buildMatrix, matchesFilter, tfjsBackendOf } from './matrix.js';
import { Stats, TimingPolicy, errorText, runValues, summarize, timeInterleaved } from './stats.js';
import { Analytic, OurImpl, PEER_IMPLS, l1Analytic, l2Analytic, oursForPeer, peerSpec, specFor } from './variants.js';

export interface CellResult extends CellSpec {
  backend: string;
  status: 'ok' | 'skipped' | 'error';
  reason?: string;
  /** ms per unit (decode: per token, one sample per step). */
  timeMs?: Stats;
  /** Timed runs (decode: of `steps` tokens each). */
  runs?: number;
  /**
   * Per-run times (ms; decode: the median step of each run), kept for the cells compared with peers (our
   * MHA settings and the peers): the peer ratios' bootstrap intervals resample them.
   */
  runMs?: number[];
  analytic?: Analytic;
  /** Analytic FLOPs / median time. */
  gflops?: number;
  /** Decode: analytic bytes (weights + cache) / median time. */
  gbps?: number;
  /** Cache bytes from the cache object's bytes(). */
  cacheBytesMeasured?: number;
  profile?: ProfileInfo;
  notes?: string[];
  /** Wall time spent on the cell's group (s). */
  groupSeconds?: number;
}

export interface BackendRunInfo {
  backend: string;
  grid: Grid;
  cellsPlanned: number;
  /** Tensors alive after all groups minus before (0 = no leak). */
  leakedTensors: number;
}

export interface RunOptions {
  quick: boolean;
  filters: string[];
  policy?: Partial<TimingPolicy>;
  onResult: (r: CellResult) => void;
  onProgress?: (line: string) => void;
}

// Up to 50 rounds: a group of 3 ms cells then gets ~50 samples each (its peer ratios vary by a few percent
// between runs with 10), while groups of slow cells still stop at the 2 s target.
const DEFAULT_POLICY: TimingPolicy = { warmupRuns: 0, minRuns: 3, maxRuns: 50, targetMs: 2000 };
const QUICK_POLICY: TimingPolicy = { warmupRuns: 0, minRuns: 2, maxRuns: 3, targetMs: 150 };
/** Implementations whose per-run times are kept (`runMs`) for the peer comparisons. */
const PEER_COMPARED = new Set<string>([...PEER_IMPLS, ...PEER_IMPLS.map(oursForPeer)]);
/** Decode runs hold `steps` samples each: a run longer than this (naive MLA at long caches) is not repeated. */
const DECODE_SLOW_RUN_MS = 3000;

function specOfCell(cell: CellSpec): AttentionSpec {
  return cell.impl.startsWith('peer-') ? peerSpec(cell.d) : specFor(cell.impl as OurImpl, cell.d);
}

export function analyticFor(cell: CellSpec): Analytic {
  if (cell.phase === 'matmul') return { flops: 2 * cell.m! * cell.d * cell.d };
  if (cell.phase === 'read') return { flops: 0, bytes: cell.m! * 2 ** 20 };
  const spec = specOfCell(cell);
  const absorbed = cell.impl === 'mla-abs';
  const f = cell.level === 'L1' ? l1Analytic : l2Analytic;
  return f(spec, cell.d, cell.phase, cell.batch, cell.t, cell.s, absorbed);
}

function groupCells(cells: CellSpec[]): CellSpec[][] {
  const groups = new Map<string, CellSpec[]>();
  for (const c of cells) {
    if (!groups.has(c.group)) groups.set(c.group, []);
    groups.get(c.group)!.push(c);
  }
  return [...groups.values()];
}

/**
 * Why the einsum-based tfjs-layers MultiHeadAttention cannot run a phase on this backend, from tfjs's
 * kernel and gradient registries (running it anyway throws, and a failed gradient leaks the tensors
 * saved for backprop).
 */
function einsumLimit(backend: string, phase: string): string | undefined {
  if (tf.getKernel('Einsum', backend) === undefined) {
    return `no Einsum kernel is registered for the ${backend} backend (running it throws "Kernel 'Einsum' not registered")`;
  }
  if (phase === 'train' && tf.getGradient('Einsum') === undefined) {
    return 'tfjs registers no gradient for Einsum (training throws "gradient function not found for Einsum")';
  }
  return undefined;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** Runs the backend's matrix (after `--filter`) on the already active backend. */
export async function runCells(backend: string, options: RunOptions): Promise<BackendRunInfo> {
  const { cells: all, grid } = buildMatrix(backend, options.quick);
  const cells = all.filter((c) => matchesFilter(c.name, options.filters));
  const base = options.quick ? QUICK_POLICY : DEFAULT_POLICY;
  const tensorsBefore = tf.memory().numTensors;
  /** Errors that will repeat for every cell of an implementation and phase (e.g. no Einsum gradient). */
  const sticky = new Map<string, string>();
  for (const group of groupCells(cells)) {
    const started = performance.now();
    const results = new Map<string, CellResult>();
    const cases = new Map<string, Case>();
    for (const cell of group) {
      const key = `${cell.impl}/${cell.phase}`;
      const missing = cell.impl === 'peer-tfjs-mha' ? einsumLimit(tfjsBackendOf(backend), cell.phase) : undefined;
      if (missing !== undefined && cell.skip === undefined) {
        results.set(cell.name, { ...cell, backend, status: 'skipped', reason: missing });
      } else if (cell.skip !== undefined) {
        results.set(cell.name, { ...cell, backend, status: 'skipped', reason: cell.skip });
      } else if (sticky.has(key)) {
        results.set(cell.name, { ...cell, backend, status: 'skipped', reason: sticky.get(key) });
      }
    }
    for (const cell of group) {
      if (results.has(cell.name)) continue;
      const r: CellResult = { ...cell, backend, status: 'ok', analytic: analyticFor(cell) };
      results.set(cell.name, r);
      try {
        const c = await makeCase(cell);
        cases.set(cell.name, c);
        r.profile = await c.profile();
        if (c.warmup) await c.warmup();
        else await c.run();
        if (c.cacheBytes !== undefined) r.cacheBytesMeasured = c.cacheBytes;
        if (c.notes.length > 0) r.notes = [...c.notes];
      } catch (e) {
        r.status = 'error';
        r.reason = errorText(e);
        cases.get(cell.name)?.dispose();
        cases.delete(cell.name);
        if (/gradient function not found|not registered for backend/.test(r.reason)) {
          sticky.set(`${cell.impl}/${cell.phase}`, `cannot run (as ${cell.name}): ${r.reason}`);
        }
      }
    }
    const policy: TimingPolicy = { ...base, ...(group[0].phase === 'decode' ? { slowRunMs: DECODE_SLOW_RUN_MS } : {}), ...options.policy };
    const timings = await timeInterleaved(Object.fromEntries([...cases].map(([name, c]) => [name, () => c.run()])), policy);
    for (const [name, c] of cases) {
      const r = results.get(name)!;
      const t = timings[name];
      if (t.error !== undefined) {
        r.status = 'error';
        r.reason = t.error;
      } else {
        r.timeMs = summarize(t.samples);
        r.runs = t.runs;
        if (PEER_COMPARED.has(r.impl)) r.runMs = runValues(t.samples, t.runs).map((v) => Math.round(v * 1e4) / 1e4);
        const a = r.analytic!;
        if (a.flops > 0) r.gflops = a.flops / (r.timeMs.median * 1e6);
        if (a.bytes !== undefined) r.gbps = a.bytes / (r.timeMs.median * 1e6);
        if (c.cacheBytes !== undefined) r.cacheBytesMeasured = c.cacheBytes;
      }
      c.dispose();
    }
    const seconds = (performance.now() - started) / 1000;
    for (const cell of group) {
      const r = results.get(cell.name)!;
      r.groupSeconds = Math.round(seconds * 100) / 100;
      options.onResult(r);
      const what =
        r.status === 'ok'
          ? `${fmt(r.timeMs!.median)} ms (p10 ${fmt(r.timeMs!.p10)}, p90 ${fmt(r.timeMs!.p90)}, n=${r.timeMs!.n})`
          : `${r.status}: ${r.reason}`;
      options.onProgress?.(`[${backend}] ${cell.name}  ${what}`);
    }
  }
  return { backend, grid, cellsPlanned: cells.length, leakedTensors: tf.memory().numTensors - tensorsBefore };
}
