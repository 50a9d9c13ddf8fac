/**
 * Backend decisions live in one place: src/ops/capabilities.ts (named capabilities) and src/backend.ts
 * (loading and choosing backends). Kernels under src/kernels/<backend>/ register for their own backend.
 * Everywhere else, code asks a capability instead of comparing backend names.
 */
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(fileURLToPath(new URL('../../src', import.meta.url)));
const ALLOWED = new Set(['backend.ts', 'ops/capabilities.ts']);
const NAMES = '(?:cpu|wasm|webgl|webgpu|tensorflow)';
/** A comparison with a backend name literal, either way round. */
const COMPARISON = new RegExp(`(?:[!=]==?\\s*['"\`]${NAMES}['"\`])|(?:['"\`]${NAMES}['"\`]\\s*[!=]==?)`);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** `file:line: text` for each line of code (comments dropped) in `text` that compares a backend name. */
export function backendComparisons(file: string, text: string): string[] {
  return text.split('\n').flatMap((line, i) => {
    const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
    return COMPARISON.test(code) ? [`${file}:${i + 1}: ${line.trim()}`] : [];
  });
}

describe('backend decisions in one module', () => {
  it('finds a planted comparison (the scan can fail)', () => {
    expect(backendComparisons('x.ts', "if (tf.getBackend() === 'webgl') run();\n// === 'cpu' in a comment")).to.deep.equal([
      "x.ts:1: if (tf.getBackend() === 'webgl') run();",
    ]);
    expect(backendComparisons('y.ts', "const slow = 'cpu' !== backend;")).to.have.length(1);
  });

  it('no file outside src/backend.ts, src/ops/capabilities.ts and src/kernels/ compares backend names', () => {
    const found = sourceFiles(SRC)
      .map((path) => relative(SRC, path).split('\\').join('/'))
      .filter((file) => !ALLOWED.has(file) && !file.startsWith('kernels/'))
      .flatMap((file) => backendComparisons(file, readFileSync(join(SRC, file), 'utf8')));
    expect(found, found.join('\n')).to.deep.equal([]);
  });
});
