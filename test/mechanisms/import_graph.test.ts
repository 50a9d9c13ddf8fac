import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { ImportEdge, cycles, importGraph } from './import_graph.js';
import { it } from '../kit/index.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

/** Every file reachable from `start` through `edges` (start excluded unless on a cycle). */
function reachable(start: string[], edges: ImportEdge[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...start];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const e of edges) if (e.from === f) todo.push(e.to);
  }
  return seen;
}

describe('import graph of src/', () => {
  const { files, edges } = importGraph(SRC);

  it('is read completely (multi-line and type-only imports, re-exports)', () => {
    expect(files.length, 'files').to.be.above(50);
    const has = (from: string, to: string, typeOnly: boolean) =>
      edges.some((e) => e.from === from && e.to === to && e.typeOnly === typeOnly);
    expect(has('mechanisms/registry.ts', 'mechanisms/gta.ts', false), 'plain import').to.equal(true);
    expect(has('mechanisms/mechanism.ts', 'layers/attention_base.ts', true), 'import type').to.equal(true);
    expect(has('io/weight_layout.ts', 'models/weight_layout.ts', false), 'export ... from').to.equal(true);
    expect(has('index.ts', 'io/torch_layout.ts', true), 'export type ... from').to.equal(true);
  });

  it('no file under src/layers or src/models imports anything under src/io', () => {
    const up = edges.filter((e) => /^(layers|models)\//.test(e.from) && e.to.startsWith('io/'));
    expect(up.map((e) => `${e.from} -> ${e.to}`)).to.deep.equal([]);
  });

  it('nothing that src/io imports (outside io, transitively) imports a file of src/io back', () => {
    const outside = edges.filter((e) => e.from.startsWith('io/') && !e.to.startsWith('io/')).map((e) => e.to);
    const below = reachable(
      outside,
      edges.filter((e) => !e.from.startsWith('io/')),
    );
    const back = edges.filter((e) => below.has(e.from) && e.to.startsWith('io/'));
    expect(back.map((e) => `${e.from} -> ${e.to}`)).to.deep.equal([]);
  });

  it('has no import cycle, type-only imports included', () => {
    expect(cycles(files, edges)).to.deep.equal([]);
  });

  it('the cycle finder finds a planted cycle (so the check above can fail)', () => {
    const planted: ImportEdge = { from: 'layers/attention_base.ts', to: 'mechanisms/registry.ts', typeOnly: true };
    const found = cycles(files, [...edges, planted]);
    expect(found.length).to.equal(1);
    expect(found[0]).to.include.members(['layers/attention_base.ts', 'mechanisms/registry.ts']);
  });
});
