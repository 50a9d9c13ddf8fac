/**
 * `npm run bench`: the performance benchmark of tfjs-gta (see docs/PERFORMANCE.md).
 *
 * Runs each backend in its own child process (this script with `--worker`), collects every cell into
 * `<out>/bench.json` and writes `<out>/summary.md`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, appendFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';

const HERE = fileURLToPath(import.meta.url);
const ROOT = join(dirname(HERE), '..');

const HELP = `Usage: npm run bench -- [options]

Benchmarks GTA, GQA/MHA and MLA (one layer, L1; a 4-layer causal LM, L2) in prefill, decode and
training, against a plain matMul reference and two peer MHA implementations, on each backend.

Options:
  --quick               the smoke subset (80 s for all four backends on 2 cores)
  --backends <list>     comma-separated: tensorflow, wasm, cpu, webgl, webgpu, webgpu-browser
                        (default: tensorflow,wasm,cpu,webgl; webgl and webgpu-browser run in headless
                        Chromium, webgpu in Node through Dawn (the optional webgpu package) where it finds
                        a GPU adapter; backends that cannot start are reported and skipped)
  --out <dir>           output folder (default: bench-results); writes bench.json and summary.md
  --filter <pattern>    run only cells whose name contains the pattern, or matches /regex/;
                        repeat or comma-separate for several (cell names look like
                        L1/decode/d1024/b8/s4096/gta, L2/prefill/d512/b1/t128/mla, ref/matmul/d1024/m1024/matmul)
  --list                print the cells that would run (with skip reasons) and exit
  --render <bench.json> re-derive ratios/targets from an existing bench.json and rewrite it and
                        summary.md into --out (no measurements)
  --help                this text

Examples:
  npm run bench
  npm run bench -- --quick --backends wasm
  npm run bench -- --backends tensorflow --filter L1/decode/d1024/b8 --out /tmp/b
  npm run bench -- --quick --backends webgl,webgpu-browser

Every cell records its time and, from one profiled unit (tf.profile), the kernels it dispatched.
`;

interface Cli {
  quick: boolean;
  backends: string[];
  out: string;
  filters: string[];
  list: boolean;
  render?: string;
  worker?: string;
  resultFile?: string;
}

function parseCli(argv: string[]): Cli | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      backends: { type: 'string', default: 'tensorflow,wasm,cpu,webgl' },
      out: { type: 'string', default: 'bench-results' },
      filter: { type: 'string', multiple: true, default: [] },
      list: { type: 'boolean', default: false },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      worker: { type: 'string' },
      'result-file': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return null;
  const split = (s: string) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  return {
    quick: values.quick!,
    backends: split(values.backends!),
    out: values.out!,
    filters: (values.filter as string[]).flatMap(split),
    list: values.list!,
    render: values.render,
    worker: values.worker,
    resultFile: values['result-file'],
  };
}

// ------------------------------------------------------------------ worker mode (one backend)

async function workerMain(cli: Cli): Promise<void> {
  const backend = cli.worker!;
  const file = cli.resultFile!;
  const emit = (obj: unknown) => appendFileSync(file, `${JSON.stringify(obj)}\n`);
  const { setBackendStrict } = await import('../src/backend.js');
  const started = performance.now();
  try {
    await setBackendStrict(backend);
  } catch (e) {
    emit({ type: 'backend', backend, status: 'unavailable', error: (e as Error).message });
    return;
  }
  const { backendFlags } = await import('../bench/flags.js');
  const { runCells } = await import('../bench/worker.js');
  emit({ type: 'backend', backend, status: 'ok', flags: await backendFlags(backend) });
  const info = await runCells(backend, {
    quick: cli.quick,
    filters: cli.filters,
    onResult: (r) => emit({ type: 'cell', ...r }),
    onProgress: (line) => console.log(line),
  });
  emit({ type: 'done', ...info, wallSeconds: (performance.now() - started) / 1000 });
}

function runWorker(backend: string, cli: Cli, resultFile: string): Promise<number | null> {
  const args = [
    HERE,
    '--worker',
    backend,
    '--result-file',
    resultFile,
    ...(cli.quick ? ['--quick'] : []),
    ...cli.filters.flatMap((f) => ['--filter', f]),
  ];
  // Reuse this process's loader flags (tsx) so the child can run TypeScript too.
  const execArgv = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : ['--import', 'tsx'];
  return new Promise((done) => {
    const child = spawn(process.execPath, [...execArgv, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stderr += text;
      // tfjs prints a banner recommending tfjs-node on cpu/wasm; keep real errors visible.
      for (const line of text.split('\n')) {
        if (line.trim() && !/Hi, looks like|====|tfjs-node for more|To speed things up/.test(line)) process.stderr.write(`${line}\n`);
      }
    });
    child.on('exit', (code, signal) => {
      if (code !== 0)
        appendFileSync(resultFile, `${JSON.stringify({ type: 'crash', backend, code, signal, stderr: stderr.slice(-2000) })}\n`);
      done(code);
    });
  });
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  let cli: Cli | null;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (cli === null) {
    console.log(HELP);
    return;
  }
  if (cli.worker !== undefined) {
    await workerMain(cli);
    return;
  }
  const { BENCH_BACKENDS, buildMatrix, matchesFilter, runsInBrowser } = await import('../bench/matrix.js');
  const unknown = cli.backends.filter((b) => !(BENCH_BACKENDS as readonly string[]).includes(b));
  if (unknown.length > 0) {
    console.error(
      `unknown backend ${unknown.map((b) => JSON.stringify(b)).join(', ')}; choose from ${BENCH_BACKENDS.join(', ')}\n\n${HELP}`,
    );
    process.exit(2);
  }
  if (cli.list) {
    for (const backend of cli.backends) {
      const { cells, grid } = buildMatrix(backend, cli.quick);
      console.log(`# ${backend}: ${grid.trims.join('; ')}`);
      for (const c of cells.filter((x) => matchesFilter(x.name, cli!.filters))) {
        console.log(`${backend}  ${c.name}${c.skip ? `  (skipped: ${c.skip})` : ''}`);
      }
    }
    return;
  }
  const { machineInfo, versions } = await import('../bench/machine.js');
  const { assemble, rerender, writeOutputs } = await import('../bench/report.js');
  const out = resolve(ROOT, cli.out);
  mkdirSync(out, { recursive: true });
  if (cli.render !== undefined) {
    const json = rerender(JSON.parse(readFileSync(resolve(process.cwd(), cli.render), 'utf8')));
    writeOutputs(out, json);
    console.log(`re-rendered ${json.cells.length} cells into ${join(out, 'bench.json')} and ${join(out, 'summary.md')}`);
    return;
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = machineInfo();
  console.log(
    `tfjs-gta bench: ${cli.quick ? 'quick' : 'default'} matrix on ${cli.backends.join(', ')}; ` +
      `${machine.cpuModel}, ${machine.logicalCores} cores, load ${machine.loadAverage.join(' ')}`,
  );
  const lines: unknown[] = [];
  for (const backend of cli.backends) {
    const file = join(out, `.${backend}.jsonl`);
    rmSync(file, { force: true });
    const b0 = performance.now();
    if (runsInBrowser(backend)) {
      const { runBrowserBackend } = await import('../bench/browser.js');
      await runBrowserBackend(backend, { quick: cli.quick, filters: cli.filters, resultFile: file });
    } else {
      await runWorker(backend, cli, file);
    }
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      rmSync(file, { force: true });
    }
    console.log(`[${backend}] finished in ${((performance.now() - b0) / 1000).toFixed(0)} s`);
  }
  const json = assemble(lines as never[], {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallSeconds: (performance.now() - t0) / 1000,
    command: `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    options: { quick: cli.quick, backends: cli.backends, out: cli.out, filters: cli.filters },
    machine: { ...machine, loadAverageEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    versions: versions(),
  });
  writeOutputs(out, json);
  console.log(
    `wrote ${join(out, 'bench.json')} and ${join(out, 'summary.md')} (${json.cells.length} cells, ` + `${json.wallSeconds.toFixed(0)} s)`,
  );
}

await main();
