// browser-tests: node-only: runs the benchmark CLI (scripts/bench.ts) as a child process
/**
 * Smoke test of `npm run bench`: runs the quick subset on one backend (BENCH_TEST_BACKEND, default
 * wasm, which every install has) as a child process and checks the structure and internal consistency
 * of bench.json and summary.md. No timing assertions: timings depend on the machine and its load.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchJson } from '../../bench/report.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BACKEND = process.env.BENCH_TEST_BACKEND ?? 'wasm';

function bench(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/bench.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
    maxBuffer: 64 * 2 ** 20,
  });
}

const close = (a: number, b: number, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

describe('npm run bench (quick smoke test)', function () {
  this.timeout(300_000);
  let out: string;
  let json: BenchJson;
  let summary: string;
  let planned: string[];

  before(() => {
    out = mkdtempSync(join(tmpdir(), 'tfjs-gta-bench-'));
    const list = bench(['--list', '--quick', '--backends', BACKEND]);
    expect(list.status, list.stderr).to.equal(0);
    planned = list.stdout
      .split('\n')
      .filter((l) => l.startsWith(`${BACKEND}  `))
      .map((l) => l.split(/\s+/)[1]);
    const run = bench(['--quick', '--backends', BACKEND, '--out', out]);
    expect(run.status, `${run.stdout}\n${run.stderr}`).to.equal(0);
    json = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchJson;
    summary = readFileSync(join(out, 'summary.md'), 'utf8');
  });

  after(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('prints usage with --help and rejects unknown flags', () => {
    const help = bench(['--help']);
    expect(help.status).to.equal(0);
    for (const flag of ['--quick', '--backends', '--out', '--filter', '--help']) expect(help.stdout).to.include(flag);
    expect(bench(['--no-such-flag']).status).to.not.equal(0);
  });

  it('selects cells by --filter', () => {
    const list = bench(['--list', '--quick', '--backends', BACKEND, '--filter', 'L1/decode', '--filter', '/matmul/']);
    const names = list.stdout
      .split('\n')
      .filter((l) => l.startsWith(`${BACKEND}  `))
      .map((l) => l.split(/\s+/)[1]);
    expect(names.length).to.be.greaterThan(0);
    expect(names.every((n) => n.startsWith('L1/decode/') || n.includes('/matmul/'))).to.equal(true);
    expect(names.length).to.be.lessThan(planned.length);
  });

  it('records the machine, versions and the backend with its flags', () => {
    expect(json.schema).to.equal('tfjs-gta-bench/1');
    expect(json.machine.cpuModel).to.be.a('string');
    expect(json.machine.logicalCores).to.be.greaterThan(0);
    expect(json.machine.ramBytes).to.be.greaterThan(0);
    expect(json.machine.loadAverage).to.have.length(3);
    expect(json.versions.node).to.equal(process.versions.node);
    expect(json.versions.packages['@tensorflow/tfjs']).to.equal('4.22.0');
    expect(json.options.quick).to.equal(true);
    expect(json.wallSeconds).to.be.greaterThan(0);
    const rec = json.backends[BACKEND];
    expect(rec.status).to.equal('ok');
    expect(rec.flags?.backend).to.equal(BACKEND);
    expect(rec.trims.length).to.be.greaterThan(0);
    expect(rec.leakedTensors).to.equal(0);
  });

  it('reports every planned cell once, each with a status and a reason unless ok', () => {
    const names = json.cells.map((c) => c.name);
    expect(names).to.have.members(planned);
    for (const c of json.cells) {
      expect(['ok', 'skipped', 'error']).to.include(c.status);
      if (c.status !== 'ok') expect(c.reason, c.name).to.be.a('string').and.not.equal('');
    }
    expect(json.cells.some((c) => c.status === 'skipped')).to.equal(true); // e.g. tfjs-layers MHA has no decode
  });

  it('has consistent statistics, rates and profiles in every ok cell', () => {
    const ok = json.cells.filter((c) => c.status === 'ok');
    expect(ok.length).to.be.greaterThan(20);
    for (const c of ok) {
      const s = c.timeMs!;
      expect(s.n, c.name).to.be.greaterThan(0);
      expect(s.min <= s.p10 && s.p10 <= s.median && s.median <= s.p90 && s.p90 <= s.max, c.name).to.equal(true);
      if (c.phase === 'decode') expect(s.n, c.name).to.equal(c.runs! * c.steps!);
      if (c.analytic!.flops > 0) expect(close(c.gflops!, c.analytic!.flops / (s.median * 1e6)), c.name).to.equal(true);
      if (c.phase === 'decode' || c.phase === 'read') expect(close(c.gbps!, c.analytic!.bytes! / (s.median * 1e6)), c.name).to.equal(true);
      expect(c.profile!.kernels, c.name).to.be.greaterThan(0);
      expect(c.profile!.peakBytes).to.be.at.least(c.profile!.transientBytes);
      if (c.level !== 'ref' && c.phase !== 'train') expect(c.matmulFraction, c.name).to.be.an('object');
    }
  });

  it('measures cache bytes (cache.bytes()) equal to the analytic formula', () => {
    const withCache = json.cells.filter(
      (c) => c.status === 'ok' && (c.phase === 'prefill' || c.phase === 'decode') && !c.impl.startsWith('peer-'),
    );
    expect(withCache.length).to.be.greaterThan(8);
    for (const c of withCache) expect(c.cacheBytesMeasured, c.name).to.equal(c.analytic!.cacheBytes);
  });

  it('derives GTA ratios and peer ratios from the cell medians', () => {
    const median = (backend: string, name: string) => json.cells.find((c) => c.backend === backend && c.name === name)!.timeMs!.median;
    expect(json.ratios.length).to.be.greaterThan(0);
    for (const r of json.ratios) {
      const other = r.pair.split('/')[1];
      expect(close(r.measured, median(r.backend, `${r.group}/gta`) / median(r.backend, `${r.group}/${other}`)), r.group).to.equal(true);
      expect(close(r.realisation, r.measured / r.analytic)).to.equal(true);
      if (r.cacheBytesMeasured !== undefined) expect(close(r.cacheBytesMeasured, r.cacheBytesFormula!)).to.equal(true);
    }
    expect(json.peers.length).to.be.greaterThan(0);
    for (const p of json.peers) {
      // Equal work: plain+RoPE against our MHA, the RoPE-free peers against our MHA with useRope: false.
      const ours = p.peer === 'peer-plain-rope' ? 'mha' : 'mha-norope';
      if (p.oursMs !== null) expect(p.oursMs, p.group).to.equal(median(p.backend, `${p.group}/${ours}`));
      if (p.ratio !== null) expect(close(p.ratio, p.oursMs! / p.peerMs!)).to.equal(true);
      else expect(p.note ?? (p.oursMs === null ? 'ours missing' : ''), p.group).to.not.equal('');
    }
    expect(json.matmulBest[BACKEND].gflops).to.be.greaterThan(0);
  });

  it('writes a markdown summary with every group and the methodology', () => {
    expect(summary).to.match(/^# tfjs-gta benchmark/);
    expect(summary).to.include('How it was measured');
    expect(summary).to.include(json.machine.cpuModel);
    for (const group of new Set(json.cells.filter((c) => c.level !== 'ref').map((c) => c.group))) {
      expect(summary, group).to.include(group.split('/').slice(2).join('/'));
    }
  });
});
