/**
 * Timing statistics and the interleaved timing loop of the benchmark.
 *
 * Every timed sample ends with a data read (`await tensor.data()`), so asynchronous backends (webgl)
 * and lazily executing ones are measured to completion. Warm-up runs are excluded. Variants of one
 * group (same shape, different mechanisms) are timed round-robin, so that background load on a shared
 * machine hits all of them alike and their ratios stay meaningful.
 */

export interface Stats {
  /** Median of the samples (ms). */
  median: number;
  /** 10th and 90th percentiles (ms, linear interpolation). */
  p10: number;
  p90: number;
  mean: number;
  min: number;
  max: number;
  /** Number of samples. */
  n: number;
}

/** Percentile `q` in [0, 1] of sorted values, linear interpolation between order statistics. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return {
    median: percentile(s, 0.5),
    p10: percentile(s, 0.1),
    p90: percentile(s, 0.9),
    mean,
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    n: s.length,
  };
}

/** One timed run of a variant: returns the sample(s) in ms (decode runs return one sample per step). */
export type RunFn = () => Promise<number[]>;

export interface TimingPolicy {
  /** Untimed runs before timing (per variant). */
  warmupRuns: number;
  /** At least this many timed runs per variant. */
  minRuns: number;
  /** At most this many timed runs per variant. */
  maxRuns: number;
  /** Keep adding rounds while the group's timed rounds have taken less than this (ms). */
  targetMs: number;
  /** A variant whose run takes longer than this (ms) stops after one run (e.g. naive MLA decoding). */
  slowRunMs?: number;
}

export interface VariantTiming {
  samples: number[];
  runs: number;
  error?: string;
}

/**
 * Times the variants of a group round-robin (rotating the order each round). A variant that throws is
 * dropped from the group with its error; the others continue.
 */
export async function timeInterleaved(
  variants: Record<string, RunFn>,
  policy: TimingPolicy,
  onWarm?: (name: string) => void,
): Promise<Record<string, VariantTiming>> {
  const out: Record<string, VariantTiming> = {};
  const live: string[] = [];
  for (const [name, run] of Object.entries(variants)) {
    out[name] = { samples: [], runs: 0 };
    try {
      for (let i = 0; i < policy.warmupRuns; i++) await run();
      live.push(name);
      onWarm?.(name);
    } catch (e) {
      out[name].error = errorText(e);
    }
  }
  const started = performance.now();
  const slow = new Set<string>();
  let round = 0;
  while (live.length > 0) {
    const order = live.map((_, i) => live[(i + round) % live.length]);
    for (const name of order) {
      try {
        const t0 = performance.now();
        out[name].samples.push(...(await variants[name]()));
        out[name].runs += 1;
        if (policy.slowRunMs !== undefined && performance.now() - t0 > policy.slowRunMs) slow.add(name);
      } catch (e) {
        out[name].error = errorText(e);
      }
    }
    round += 1;
    const elapsed = performance.now() - started;
    for (let i = live.length - 1; i >= 0; i--) {
      const v = out[live[i]];
      const done =
        v.error !== undefined || slow.has(live[i]) || v.runs >= policy.maxRuns || (v.runs >= policy.minRuns && elapsed >= policy.targetMs);
      if (done) live.splice(i, 1);
    }
  }
  return out;
}

/** Median of unsorted values. */
function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * 95% bootstrap interval of `median(a) / median(b)`, resampling each side's runs (the independent units of
 * the round-robin timing) with replacement; deterministic (seeded). Returns null with fewer than 3 runs
 * on either side.
 */
export function ratioInterval(a: number[], b: number[], resamples = 2000, seed = 12345): [number, number] | null {
  if (a.length < 3 || b.length < 3) return null;
  let state = seed >>> 0;
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const resample = (v: number[]) => median(v.map(() => v[Math.floor(random() * v.length)]));
  const ratios: number[] = [];
  for (let i = 0; i < resamples; i++) ratios.push(resample(a) / resample(b));
  ratios.sort((x, y) => x - y);
  return [percentile(ratios, 0.025), percentile(ratios, 0.975)];
}

/** Per-run values of a cell: the samples, or for runs of `perRun` samples (decode steps) each run's median. */
export function runValues(samples: number[], runs: number): number[] {
  if (runs <= 0 || samples.length === runs) return samples.slice();
  const perRun = samples.length / runs;
  if (!Number.isInteger(perRun)) return samples.slice();
  return Array.from({ length: runs }, (_, i) => median(samples.slice(i * perRun, (i + 1) * perRun)));
}

/** First line of an error's message (stack traces stay out of the report). */
export function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].slice(0, 300);
}
