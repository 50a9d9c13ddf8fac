/**
 * The static import graph of src/: every `import ... from '...'` and `export ... from '...'` between
 * files of src/ (type-only ones included), read from the source text. Dynamic `import()` calls are left
 * out (they are how Node-only modules stay out of the browser bundle).
 */
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

/** One edge: `from` imports `to` (paths relative to src/, with `.ts`). */
export interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

// `import x from '...'`, `import type {...} from '...'`, `export {...} from '...'`, `import '...'` (multi-line too).
const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

/** The edges between src/ files (relative specifiers only; packages and `node:` modules are left out). */
export function importGraph(srcDir: string): { files: string[]; edges: ImportEdge[] } {
  const files = tsFiles(srcDir)
    .map((f) => path.relative(srcDir, f).split(path.sep).join('/'))
    .sort();
  const known = new Set(files);
  const edges: ImportEdge[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(srcDir, file), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[3];
      if (!spec.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      if (!known.has(target)) throw new Error(`${file} imports ${spec}, which is not a file of src/ (${target}).`);
      edges.push({ from: file, to: target, typeOnly: m[2] !== undefined });
    }
  }
  return { files, edges };
}

/** The cycles of a graph, one per strongly connected component of more than one file (or a self-import). */
export function cycles(files: string[], edges: ImportEdge[]): string[][] {
  const next = new Map(files.map((f) => [f, [] as string[]]));
  for (const e of edges) next.get(e.from)!.push(e.to);
  // Tarjan's strongly connected components, iteratively deep enough for a few hundred files.
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    order.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!order.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, order.get(w)!));
      }
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)!.includes(v)) out.push(component.sort());
    }
  };
  for (const f of files) if (!order.has(f)) visit(f);
  return out;
}
