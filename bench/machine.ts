/** Machine and version records for bench.json (Node only; backend flags are in flags.ts). */
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, platform, arch, release } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface MachineInfo {
  cpuModel: string;
  logicalCores: number;
  ramBytes: number;
  platform: string;
  arch: string;
  kernel: string;
  /** CPU flags relevant to the kernels (from /proc/cpuinfo when readable). */
  cpuFlags: string[];
  /** 1/5/15-minute load averages when the run started (other processes share the machine). */
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  let flags: string[];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => l.startsWith('flags')) ?? '';
    const all = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    flags = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni'].filter((f) => all.has(f));
  } catch {
    flags = [];
  }
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    logicalCores: list.length,
    ramBytes: totalmem(),
    platform: platform(),
    arch: arch(),
    kernel: release(),
    cpuFlags: flags,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function packageVersion(name: string): string | null {
  try {
    const require = createRequire(join(ROOT, 'package.json'));
    const pkg = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return null;
  }
}

export interface Versions {
  node: string;
  v8: string;
  packages: Record<string, string | null>;
}

export function versions(): Versions {
  const names = [
    '@tensorflow/tfjs',
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-layers',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-backend-webgl',
    '@tensorflow/tfjs-backend-webgpu',
    'webgpu',
    '@tensorflow/tfjs-node',
  ];
  return {
    node: process.versions.node,
    v8: process.versions.v8,
    packages: Object.fromEntries(names.map((n) => [n, packageVersion(n)])),
  };
}
