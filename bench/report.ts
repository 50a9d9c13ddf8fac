/**
 * Assembles the workers' records into bench.json (with derived ratios, peer comparisons and the
 * performance targets) and renders summary.md.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo, Versions } from './machine.js';
import type { CellResult } from './worker.js';
import { oursForPeer, type PeerImpl } from './variants.js';
import { ratioInterval } from './stats.js';

export const SCHEMA = 'tfjs-gta-bench/1';

export interface BackendRecord {
  status: 'ok' | 'unavailable' | 'crashed';
  error?: string;
  flags?: Record<string, unknown>;
  wallSeconds?: number;
  cells: number;
  leakedTensors?: number;
  trims: string[];
}

export interface RatioRow {
  backend: string;
  group: string;
  /** e.g. "gta/gqa", "gta/mla-naive". */
  pair: string;
  measured: number;
  /** Analytic FLOP ratio (prefill/train) or byte ratio (decode). */
  analytic: number;
  basis: 'flops' | 'bytes';
  /** measured / analytic (1 = the saving on paper is fully realised). */
  realisation: number;
  cacheBytesMeasured?: number;
  cacheBytesFormula?: number;
}

export interface PeerRow {
  backend: string;
  group: string;
  peer: string;
  oursMs: number | null;
  peerMs: number | null;
  /** ours / peer (< 1: ours faster); null when either could not run. */
  ratio: number | null;
  /** 95% bootstrap interval of the ratio over the cells' runs (`ratioInterval`), when both have >= 3 runs. */
  interval?: [number, number];
  /**
   * `faster` / `slower` when the interval lies below / above 1, else `parity` (the difference is within
   * run-to-run noise); absent without an interval.
   */
  verdict?: 'faster' | 'parity' | 'slower';
  note?: string;
}

export interface TargetRow {
  id: string;
  description: string;
  value: number | null;
  threshold: number;
  comparison: '<=' | '>=';
  met: boolean | null;
  detail: string;
}

export interface BenchJson {
  schema: string;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  command: string;
  options: { quick: boolean; backends: string[]; out: string; filters: string[] };
  machine: MachineInfo & { loadAverageEnd: number[] };
  versions: Versions;
  methodology: string[];
  backends: Record<string, BackendRecord>;
  cells: Array<
    CellResult & {
      /** matMul references: FLOPs / p10 time. */
      gflopsAchievable?: number;
      /** Analytic GFLOP/s (median) over the matched and the best reference's achievable GFLOP/s. */
      matmulFraction?: { matched: number | null; best: number | null; matchedCell?: string };
    }
  >;
  matmulBest: Record<string, { gflops: number; cell: string }>;
  ratios: RatioRow[];
  peers: PeerRow[];
  targets: TargetRow[];
}

type Line = { type: 'backend' | 'cell' | 'done' | 'crash'; backend: string } & Record<string, unknown>;

export const METHODOLOGY = [
  'Each backend runs in its own process; each cell is built (weights, inputs, caches) untimed.',
  'Warm-up: one profiled unit (tf.profile: kernel count and peak tensor bytes) plus one more unit (decode: two steps; on webgl a whole run, so that per-shape shaders are compiled) are excluded from timing.',
  'Cells of a group (same level, phase, width, batch and length) are timed round-robin, at least 3 runs each and until the group has run ~2 s (at most 50 runs); a decode run longer than 3 s (naive MLA at long caches) is not repeated. Every unit ends with `await data()` on its result.',
  'Decode: a run is `steps` consecutive tokens starting from a cache of S random tokens of the exact cached shapes; every step (call, output read, disposal of the previous cache) is one sample; ms/token is the median step.',
  'Statistics: median and p10/p90 (linear interpolation) over all samples of a cell.',
  "Peers: ratio of medians (ours / peer) with a 95% bootstrap interval (2000 resamples, fixed seed) over the timed runs of both cells (decode: each run's median step); an interval entirely above 1 is reported as ours slower, one containing 1 as within noise.",
  'Analytic FLOPs follow src/analysis/costs.ts (full T x S score matrix, no causal halving; FLOPs = 2 MACs; training = 3x forward); decode bytes = weights + cache read once (PERF_ANCHORS).',
  'Peak memory: max of tf.memory().numBytes sampled after every kernel of the profiled unit (tf.profile peakBytes), absolute and minus the bytes before the unit.',
  'matMul rate ("achievable"): a reference\'s FLOPs over its p10 time; a layer\'s GFLOP/s uses its median, and its fraction is taken against the reference of the matched shape [B*T, D] x [D, D] and against the best reference.',
];

export function assemble(
  lines: Line[],
  meta: Omit<BenchJson, 'schema' | 'methodology' | 'backends' | 'cells' | 'matmulBest' | 'ratios' | 'peers' | 'targets'>,
): BenchJson {
  const backends: Record<string, BackendRecord> = {};
  const cells: BenchJson['cells'] = [];
  for (const l of lines) {
    const rec = (backends[l.backend] ??= { status: 'ok', cells: 0, trims: [] });
    if (l.type === 'backend') {
      rec.status = l.status as BackendRecord['status'];
      if (l.error) rec.error = String(l.error);
      if (l.flags) rec.flags = l.flags as Record<string, unknown>;
    } else if (l.type === 'cell') {
      const { type: _t, ...cell } = l;
      cells.push(cell as unknown as CellResult);
      rec.cells += 1;
    } else if (l.type === 'done') {
      rec.wallSeconds = Math.round(Number(l.wallSeconds) * 10) / 10;
      rec.leakedTensors = Number(l.leakedTensors);
      rec.trims = (l.grid as { trims?: string[] })?.trims ?? [];
    } else if (l.type === 'crash') {
      rec.status = 'crashed';
      rec.error = `exit ${String(l.code)}${l.signal ? ` (${String(l.signal)})` : ''}: ${String(l.stderr ?? '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ')}`;
    }
  }
  const json: BenchJson = {
    schema: SCHEMA,
    ...meta,
    methodology: METHODOLOGY,
    backends,
    cells,
    matmulBest: {},
    ratios: [],
    peers: [],
    targets: [],
  };
  derive(json);
  return json;
}

/** Recomputes the derived fields (fractions, ratios, peers, targets) of a bench.json from its cells. */
export function rerender(old: BenchJson): BenchJson {
  const json: BenchJson = { ...old, methodology: METHODOLOGY, matmulBest: {}, ratios: [], peers: [], targets: [] };
  json.cells = old.cells.map((c) => {
    const { matmulFraction: _f, gflopsAchievable: _g, ...raw } = c;
    return raw;
  });
  derive(json);
  return json;
}

const byName = (cells: BenchJson['cells']) => new Map(cells.map((c) => [`${c.backend}|${c.name}`, c]));

function derive(json: BenchJson): void {
  const cells = json.cells;
  const index = byName(cells);
  // matMul references: the achievable rate of a reference is its FLOPs over its p10 time (the shared
  // machine slows some runs down; the layer cells are still rated by their median, so fractions are
  // conservative). Best rate per backend, and the matched shape ([B*T, D] x [D, D]) per cell.
  const achievable = (r: (typeof cells)[number]) => r.analytic!.flops / (r.timeMs!.p10 * 1e6);
  for (const c of cells) {
    if (c.phase !== 'matmul' || c.status !== 'ok' || c.timeMs === undefined) continue;
    c.gflopsAchievable = achievable(c);
    const best = json.matmulBest[c.backend];
    if (best === undefined || c.gflopsAchievable > best.gflops) json.matmulBest[c.backend] = { gflops: c.gflopsAchievable, cell: c.name };
  }
  for (const c of cells) {
    if (c.status !== 'ok' || c.gflops === undefined || c.phase === 'matmul' || c.phase === 'read') continue;
    const rows = c.phase === 'decode' ? c.batch : c.batch * c.t;
    const refs = cells.filter((r) => r.backend === c.backend && r.phase === 'matmul' && r.d === c.d && r.status === 'ok');
    let matched: (typeof cells)[number] | undefined;
    for (const r of refs) if (matched === undefined || Math.abs(Math.log(r.m! / rows)) < Math.abs(Math.log(matched.m! / rows))) matched = r;
    const best = json.matmulBest[c.backend];
    c.matmulFraction = {
      matched: matched ? c.gflops / achievable(matched) : null,
      best: best ? c.gflops / best.gflops : null,
      ...(matched ? { matchedCell: matched.name } : {}),
    };
  }
  // GTA ratios against GQA and MLA (both decode paths), per group.
  for (const c of cells) {
    if (c.impl !== 'gta' || c.status !== 'ok') continue;
    const others = c.phase === 'decode' ? ['gqa', 'mla-naive', 'mla-abs'] : ['gqa', 'mla'];
    for (const o of others) {
      const other = index.get(`${c.backend}|${c.group}/${o}`);
      if (other === undefined || other.status !== 'ok') continue;
      const basis = c.phase === 'decode' ? 'bytes' : 'flops';
      const analytic = basis === 'bytes' ? c.analytic!.bytes! / other.analytic!.bytes! : c.analytic!.flops / other.analytic!.flops;
      const measured = c.timeMs!.median / other.timeMs!.median;
      json.ratios.push({
        backend: c.backend,
        group: c.group,
        pair: `gta/${o}`,
        measured,
        analytic,
        basis,
        realisation: measured / analytic,
        ...(c.cacheBytesMeasured !== undefined && other.cacheBytesMeasured !== undefined
          ? { cacheBytesMeasured: c.cacheBytesMeasured / other.cacheBytesMeasured }
          : {}),
        ...(c.analytic?.cacheBytes && other.analytic?.cacheBytes
          ? { cacheBytesFormula: c.analytic.cacheBytes / other.analytic.cacheBytes }
          : {}),
      });
    }
  }
  // Peers against our MHA setting doing the same work (with RoPE against plain+RoPE, without against the others).
  for (const c of cells) {
    if (!c.impl.startsWith('peer-')) continue;
    const ours = index.get(`${c.backend}|${c.group}/${oursForPeer(c.impl as PeerImpl)}`);
    const oursMs = ours?.status === 'ok' ? ours.timeMs!.median : null;
    const peerMs = c.status === 'ok' ? c.timeMs!.median : null;
    const interval = oursMs !== null && peerMs !== null && ours?.runMs && c.runMs ? ratioInterval(ours.runMs, c.runMs) : null;
    json.peers.push({
      backend: c.backend,
      group: c.group,
      peer: c.impl,
      oursMs,
      peerMs,
      ratio: oursMs !== null && peerMs !== null ? oursMs / peerMs : null,
      ...(interval !== null ? { interval, verdict: interval[1] < 1 ? 'faster' : interval[0] > 1 ? 'slower' : 'parity' } : {}),
      ...(c.status !== 'ok' ? { note: `${c.status}: ${c.reason}` } : {}),
    });
  }
  json.targets = targets(json);
}

function targets(json: BenchJson): TargetRow[] {
  const index = byName(json.cells);
  const ms = (name: string) => {
    const c = index.get(`tensorflow|${name}`);
    return c?.status === 'ok' ? c.timeMs!.median : null;
  };
  const ratio = (a: string, b: string) => {
    const x = ms(a);
    const y = ms(b);
    return x !== null && y !== null ? x / y : null;
  };
  const row = (
    id: string,
    description: string,
    value: number | null,
    threshold: number,
    comparison: '<=' | '>=',
    detail: string,
  ): TargetRow => ({
    id,
    description,
    value,
    threshold,
    comparison,
    detail,
    met: value === null ? null : comparison === '<=' ? value <= threshold : value >= threshold,
  });
  const dec = 'L1/decode/d1024/b8/s4096';
  const pre = 'L1/prefill/d1024/b1/t4096';
  const out: TargetRow[] = [
    row(
      'decode-gta-gqa',
      'Decode step, D=1024, B=8, S=4096: GTA time / GQA time',
      ratio(`${dec}/gta`, `${dec}/gqa`),
      0.6,
      '<=',
      `GTA ${fmtMs(ms(`${dec}/gta`))} ms, GQA ${fmtMs(ms(`${dec}/gqa`))} ms per token; analytic byte ratio ${analyticRatio(json, dec, 'gqa')}`,
    ),
    row(
      'decode-gta-mla-naive',
      'Decode step, D=1024, B=8, S=4096: GTA time / naive-decode MLA time',
      ratio(`${dec}/gta`, `${dec}/mla-naive`),
      0.5,
      '<=',
      `MLA naive ${fmtMs(ms(`${dec}/mla-naive`))} ms, absorbed ${fmtMs(ms(`${dec}/mla-abs`))} ms per token`,
    ),
    row(
      'prefill-gta-gqa',
      'Prefill, D=1024, B=1, T=4096: GTA time / GQA time',
      ratio(`${pre}/gta`, `${pre}/gqa`),
      0.75,
      '<=',
      `GTA ${fmtMs(ms(`${pre}/gta`))} ms, GQA ${fmtMs(ms(`${pre}/gqa`))} ms; analytic FLOP ratio ${analyticRatio(json, pre, 'gqa')}`,
    ),
  ];
  for (const impl of ['gqa', 'mha', 'gta', 'mla']) {
    const c = index.get(`tensorflow|L1/prefill/d1024/b1/t1024/${impl}`);
    const frac = c?.matmulFraction?.matched ?? null;
    const matched = json.cells.find((r) => r.backend === 'tensorflow' && r.name === 'ref/matmul/d1024/m1024/matmul');
    out.push(
      row(
        `prefill-matmul-fraction-${impl}`,
        `Prefill, D=1024, B=1, T=1024: ${impl} GFLOP/s / matMul GFLOP/s ([1024,1024]x[1024,1024])`,
        frac,
        0.5,
        '>=',
        c?.gflops !== undefined
          ? `${c.gflops.toFixed(1)} GFLOP/s (analytic FLOPs / median time); matMul ` +
              `${matched?.gflopsAchievable?.toFixed(1) ?? '-'} GFLOP/s at this shape, best ${json.matmulBest.tensorflow?.gflops.toFixed(1) ?? '-'} ` +
              `(fraction of best ${fmtR(c.matmulFraction?.best)})`
          : 'not measured',
      ),
    );
  }
  for (const impl of ['gqa', 'mha', 'gta', 'mla-naive', 'mla-abs']) {
    for (const b of [1, 8]) {
      const r = ratio(`L1/decode/d1024/b${b}/s4096/${impl}`, `L1/decode/d1024/b${b}/s1024/${impl}`);
      out.push(
        row(
          `decode-linear-${impl}-b${b}`,
          `Decode, D=1024, B=${b}, ${impl}: time at S=4096 / time at S=1024`,
          r,
          4.5,
          '<=',
          `${fmtMs(ms(`L1/decode/d1024/b${b}/s4096/${impl}`))} / ${fmtMs(ms(`L1/decode/d1024/b${b}/s1024/${impl}`))} ms`,
        ),
      );
    }
  }
  return out;
}

function analyticRatio(json: BenchJson, group: string, other: string): string {
  const r = json.ratios.find((x) => x.backend === 'tensorflow' && x.group === group && x.pair === `gta/${other}`);
  return r ? r.analytic.toFixed(3) : '-';
}

// ------------------------------------------------------------------ markdown

const fmtMs = (v: number | null | undefined) =>
  v === null || v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
const fmtR = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? '-' : v.toFixed(digits));
const mb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1));

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function renderMarkdown(json: BenchJson): string {
  const out: string[] = [];
  const m = json.machine;
  out.push('# tfjs-gta benchmark', '');
  out.push(
    `Command: \`${json.command}\` (${json.options.quick ? 'quick subset' : 'default matrix'}), ` +
      `started ${json.startedAt}, wall time ${(json.wallSeconds / 60).toFixed(1)} min.`,
    '',
  );
  out.push(
    `Machine: ${m.cpuModel}, ${m.logicalCores} logical cores, ${(m.ramBytes / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `${m.platform}/${m.arch} ${m.kernel}, flags ${m.cpuFlags.join(' ') || '-'}; load average at start ` +
      `${m.loadAverage.join(' / ')}, at end ${m.loadAverageEnd.join(' / ')} (1/5/15 min; other processes share the machine).`,
    '',
  );
  const p = json.versions.packages;
  out.push(
    `Node ${json.versions.node}; ${Object.entries(p)
      .filter(([, v]) => v)
      .map(([k, v]) => `${k.replace('@tensorflow/', '')} ${v}`)
      .join(', ')}.`,
    '',
  );
  out.push('## Backends', '');
  out.push(
    table(
      ['backend', 'status', 'cells', 'wall s', 'matMul best GFLOP/s', 'flags', 'matrix trims'],
      Object.entries(json.backends).map(([b, r]) => [
        b,
        r.status + (r.error ? ` (${r.error})` : ''),
        String(r.cells),
        fmtR(r.wallSeconds, 0),
        fmtR(json.matmulBest[b]?.gflops, 1),
        r.flags
          ? Object.entries(r.flags)
              .filter(([k]) => k !== 'backend')
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(', ')
          : '-',
        r.trims.join('; ') || '-',
      ]),
    ),
  );
  out.push('', 'How it was measured:', '', ...json.methodology.map((x) => `- ${x}`), '');

  if (json.targets.some((t) => t.value !== null)) {
    out.push('## Targets (tensorflow, D=1024)', '');
    out.push(
      table(
        ['target', 'value', 'threshold', 'met', 'detail'],
        json.targets.map((t) => [
          t.description,
          fmtR(t.value, 3),
          `${t.comparison} ${t.threshold}`,
          t.met === null ? 'not measured' : t.met ? 'yes' : '**no**',
          t.detail,
        ]),
      ),
    );
    out.push('');
  }

  if (json.peers.length > 0) {
    out.push('## Peers: our MHA setting against tfjs-layers MultiHeadAttention and a plain matMul attention', '');
    out.push(
      'Ratio = our time / peer time (< 1: ours is faster), at equal work. Our MHA is GQA with numKeyValueHeads = ' +
        'numQueryHeads; `plain` and tfjs-layers apply no RoPE and are compared with our MHA built with `useRope: false` ' +
        '(`mha-norope`); `plain+RoPE` rotates q and k like ours and is compared with `mha`. In brackets: the 95% bootstrap ' +
        'interval of the ratio over the timed runs; **slower** marks an interval entirely above 1, `=` one that contains 1 ' +
        '(a difference within run-to-run noise).',
      '',
    );
    const counts = new Map<string, Record<string, number>>();
    for (const r of json.peers) {
      if (r.verdict === undefined) continue;
      const key = `${r.backend}|${r.peer}`;
      const c = counts.get(key) ?? { faster: 0, parity: 0, slower: 0 };
      c[r.verdict] += 1;
      counts.set(key, c);
    }
    out.push(
      table(
        ['backend', 'peer', 'ours faster', 'within noise', 'ours slower'],
        [...counts].map(([key, c]) => [...key.split('|'), String(c.faster), String(c.parity), String(c.slower)]),
      ),
    );
    out.push('');
    const cellOf = (r: PeerRow | undefined) => {
      if (r === undefined) return '-';
      if (r.ratio === null) return r.note ?? '-';
      const mark = r.verdict === 'slower' ? ' **slower**' : r.verdict === 'parity' ? ' =' : '';
      return r.interval ? `${fmtR(r.ratio)} (${fmtR(r.interval[0])}-${fmtR(r.interval[1])})${mark}` : fmtR(r.ratio);
    };
    out.push(
      table(
        [
          'backend',
          'cell group',
          'ours (no RoPE) ms',
          'plain ms',
          'ours/plain',
          'tfjs-layers ms',
          'ours/tfjs-layers',
          'ours (RoPE) ms',
          'plain+RoPE ms',
          'ours/plain+RoPE',
        ],
        groupPeers(json.peers).map((g) => [
          g.backend,
          g.group,
          fmtMs(g.plain?.oursMs ?? g.tfjs?.oursMs),
          fmtMs(g.plain?.peerMs),
          cellOf(g.plain),
          fmtMs(g.tfjs?.peerMs),
          cellOf(g.tfjs),
          fmtMs(g.rope?.oursMs),
          fmtMs(g.rope?.peerMs),
          cellOf(g.rope),
        ]),
      ),
    );
    out.push('');
  }

  for (const backend of Object.keys(json.backends)) {
    const cells = json.cells.filter((c) => c.backend === backend);
    if (cells.length === 0) continue;
    out.push(`## ${backend}`, '');
    const refs = cells.filter((c) => c.level === 'ref');
    if (refs.length > 0) {
      out.push('Reference kernels:', '');
      out.push(
        table(
          ['cell', 'median ms (p10-p90)', 'GFLOP/s at median', 'GFLOP/s at p10 (achievable)', 'GB/s'],
          refs.map((c) => [
            c.name,
            timeCell(c),
            fmtR(c.gflops, 1),
            fmtR(c.gflopsAchievable, 1),
            c.phase === 'read' ? fmtR(c.gbps, 1) : '-',
          ]),
        ),
      );
      out.push('');
    }
    for (const level of ['L1', 'L2'] as const) {
      for (const phase of ['prefill', 'decode', 'train'] as const) {
        const sub = cells.filter((c) => c.level === level && c.phase === phase);
        if (sub.length === 0) continue;
        const unit = phase === 'decode' ? 'ms/token' : phase === 'train' ? 'ms/step' : 'ms';
        out.push(`### ${backend} ${level} ${phase} (${unit})`, '');
        const impls = [...new Set(sub.map((c) => c.impl))];
        const groups = [...new Set(sub.map((c) => c.group))];
        const index = new Map(sub.map((c) => [c.name, c]));
        const pairs = phase === 'decode' ? ['gqa', 'mla-naive', 'mla-abs'] : ['gqa', 'mla'];
        out.push(
          table(
            ['group', ...impls, ...pairs.map((x) => `GTA/${x.toUpperCase()} (analytic)`)],
            groups.map((g) => [
              g.split('/').slice(2).join('/'),
              ...impls.map((i) => {
                const c = index.get(`${g}/${i}`);
                return c === undefined ? '' : c.status === 'ok' ? fmtMs(c.timeMs!.median) : c.status === 'skipped' ? 'skip' : 'error';
              }),
              ...pairs.map((x) => {
                const r = json.ratios.find((q) => q.backend === backend && q.group === g && q.pair === `gta/${x}`);
                return r ? `${fmtR(r.measured)} (${fmtR(r.analytic)})` : '-';
              }),
            ]),
          ),
        );
        out.push('');
        out.push('<details><summary>per cell</summary>', '');
        out.push(
          table(
            [
              'cell',
              'median (p10-p90)',
              'GFLOP/s',
              'of matMul matched / best',
              phase === 'decode' ? 'GB/s' : '-',
              'cache MiB bytes() / formula',
              'peak MiB (transient)',
              'kernels',
              'note',
            ],
            sub.map((c) => [
              c.name.split('/').slice(2).join('/'),
              c.status === 'ok' ? timeCell(c) : c.status,
              fmtR(c.gflops, 1),
              c.matmulFraction ? `${pct(c.matmulFraction.matched)} / ${pct(c.matmulFraction.best)}` : '-',
              phase === 'decode' ? fmtR(c.gbps, 1) : '-',
              c.cacheBytesMeasured !== undefined || c.analytic?.cacheBytes !== undefined
                ? `${mb(c.cacheBytesMeasured)} / ${mb(c.analytic?.cacheBytes)}`
                : '-',
              c.profile ? `${mb(c.profile.peakBytes)} (${mb(c.profile.transientBytes)})` : '-',
              c.profile ? String(c.profile.kernels) : '-',
              c.status === 'ok' ? (c.notes ?? []).join('; ') : (c.reason ?? ''),
            ]),
          ),
        );
        out.push('', '</details>', '');
      }
    }
  }
  return `${out.join('\n')}\n`;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(100 * v).toFixed(0)}%`);
const timeCell = (c: CellResult) => (c.timeMs ? `${fmtMs(c.timeMs.median)} (${fmtMs(c.timeMs.p10)}-${fmtMs(c.timeMs.p90)})` : '-');

interface PeerGroup {
  backend: string;
  group: string;
  plain?: PeerRow;
  rope?: PeerRow;
  tfjs?: PeerRow;
}

function groupPeers(rows: PeerRow[]): PeerGroup[] {
  const map = new Map<string, PeerGroup>();
  for (const r of rows) {
    const key = `${r.backend}|${r.group}`;
    const g = map.get(key) ?? { backend: r.backend, group: r.group };
    if (r.peer === 'peer-plain') g.plain = r;
    else if (r.peer === 'peer-plain-rope') g.rope = r;
    else g.tfjs = r;
    map.set(key, g);
  }
  return [...map.values()];
}

export function writeOutputs(dir: string, json: BenchJson): void {
  writeFileSync(join(dir, 'bench.json'), `${JSON.stringify(json, null, 1)}\n`);
  writeFileSync(join(dir, 'summary.md'), renderMarkdown(json));
}
