/**
 * One attention map `[T, S]` (rows: queries, columns: keys) drawn as a heatmap on a <canvas>. The color is
 * sqrt(probability) on a viridis-like scale, so weak attention stays visible; masked (future) cells of a
 * causal map are light gray. Tokens label the axes.
 */
const STOPS: Array<[number, number, number]> = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** Color of a value in [0, 1]. */
export function colorOf(v: number): string {
  const t = Math.min(1, Math.max(0, v)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const c = STOPS[i].map((a, k) => Math.round(a + f * (STOPS[i + 1][k] - a)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export interface HeatmapOptions {
  /** Token strings of the keys (columns) and queries (rows). */
  labels: string[];
  /** Cell size in CSS pixels. */
  cell: number;
  /** Draw cells above the diagonal as masked. */
  causal: boolean;
}

/** Draws `map` (rows of probabilities) into `canvas`, sizing the canvas to fit. */
export function drawHeatmap(canvas: HTMLCanvasElement, map: number[][], o: HeatmapOptions): void {
  const dpr = window.devicePixelRatio || 1;
  const t = map.length;
  const s = map[0]?.length ?? 0;
  const margin = 12;
  const cssW = margin + s * o.cell + 2;
  const cssH = margin + t * o.cell + 2;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, cssW, cssH);
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < s; j++) {
      const masked = o.causal && j > i + (s - t);
      ctx.fillStyle = masked ? '#eeeeee' : colorOf(Math.sqrt(Math.max(0, map[i][j])));
      ctx.fillRect(margin + j * o.cell, margin + i * o.cell, o.cell, o.cell);
    }
  }
  if (o.cell >= 7) {
    ctx.fillStyle = '#444';
    ctx.font = `${Math.min(10, o.cell)}px ui-monospace, monospace`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    const shown = (x: string) => (x === ' ' ? '·' : x === '\n' ? '↵' : x);
    o.labels.slice(-s).forEach((label, j) => ctx.fillText(shown(label), margin + (j + 0.5) * o.cell, margin / 2));
    o.labels.slice(-t).forEach((label, i) => ctx.fillText(shown(label), margin / 2, margin + (i + 0.5) * o.cell));
  }
}
