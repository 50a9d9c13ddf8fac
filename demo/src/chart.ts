/**
 * A small hand-written line chart on a <canvas> (no charting library): one line per series, the raw
 * points faint and an exponential moving average on top, axes with "nice" ticks and a legend.
 */
export interface Series {
  name: string;
  color: string;
  /** [x, y] points in x order. */
  points: Array<[number, number]>;
}

export interface ChartOptions {
  xMax: number;
  xLabel: string;
  yLabel: string;
  /** Weight of the newest point in the moving average (0 = no smoothing line). */
  smoothing?: number;
  /** Text drawn when there is nothing to plot yet. */
  emptyText?: string;
}

/** Tick values 1, 2 or 5 times a power of ten covering [lo, hi] with about `count` ticks. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function movingAverage(points: Array<[number, number]>, alpha: number): Array<[number, number]> {
  let avg = 0;
  return points.map(([x, y], i) => {
    avg = i === 0 ? y : alpha * y + (1 - alpha) * avg;
    return [x, avg];
  });
}

/** Draws the chart at the canvas's CSS size, sharp on high-DPI screens. */
export function drawLineChart(canvas: HTMLCanvasElement, series: Series[], o: ChartOptions): void {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 640;
  const cssH = canvas.clientHeight || 280;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, cssW, cssH);
  const m = { left: 52, right: 14, top: 14, bottom: 38 };
  const w = cssW - m.left - m.right;
  const h = cssH - m.top - m.bottom;
  const all = series.flatMap((s) => s.points);
  ctx.font = '12px system-ui, sans-serif';
  if (all.length === 0) {
    ctx.fillStyle = '#888';
    ctx.textAlign = 'center';
    ctx.fillText(o.emptyText ?? 'no data yet', m.left + w / 2, m.top + h / 2);
    return;
  }
  let yLo = Math.min(...all.map((p) => p[1]));
  let yHi = Math.max(...all.map((p) => p[1]));
  if (yHi - yLo < 1e-6) {
    yLo -= 0.5;
    yHi += 0.5;
  }
  const pad = 0.05 * (yHi - yLo);
  yLo -= pad;
  yHi += pad;
  const xMax = Math.max(1, o.xMax);
  const X = (x: number) => m.left + (x / xMax) * w;
  const Y = (y: number) => m.top + (1 - (y - yLo) / (yHi - yLo)) * h;

  // Grid, ticks and axis titles.
  ctx.strokeStyle = '#e6e6e6';
  ctx.fillStyle = '#555';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of niceTicks(yLo, yHi, 5)) {
    ctx.beginPath();
    ctx.moveTo(m.left, Y(t));
    ctx.lineTo(m.left + w, Y(t));
    ctx.stroke();
    ctx.fillText(String(t), m.left - 6, Y(t));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of niceTicks(0, xMax, 6)) {
    ctx.beginPath();
    ctx.moveTo(X(t), m.top);
    ctx.lineTo(X(t), m.top + h);
    ctx.stroke();
    ctx.fillText(String(t), X(t), m.top + h + 5);
  }
  ctx.strokeStyle = '#999';
  ctx.strokeRect(m.left, m.top, w, h);
  ctx.fillText(o.xLabel, m.left + w / 2, m.top + h + 21);
  ctx.save();
  ctx.translate(13, m.top + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText(o.yLabel, 0, 0);
  ctx.restore();

  // Lines: raw points faint, the moving average solid.
  ctx.save();
  ctx.beginPath();
  ctx.rect(m.left, m.top, w, h);
  ctx.clip();
  const line = (points: Array<[number, number]>, color: string, width: number, alpha: number) => {
    if (points.length === 0) return;
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(X(x), Y(y)) : ctx.lineTo(X(x), Y(y))));
    if (points.length === 1) ctx.arc(X(points[0][0]), Y(points[0][1]), 2, 0, 2 * Math.PI);
    ctx.stroke();
  };
  for (const s of series) {
    if (o.smoothing) {
      line(s.points, s.color, 1, 0.35);
      line(movingAverage(s.points, o.smoothing), s.color, 2.5, 1);
    } else {
      line(s.points, s.color, 2, 1);
    }
  }
  ctx.restore();
  ctx.globalAlpha = 1;

  // Legend (top right, inside the plot).
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const rowH = 17;
  const boxW = 12 + 22 + Math.max(...series.map((s) => ctx.measureText(s.name).width)) + 8;
  const bx = m.left + w - boxW - 6;
  const by = m.top + 6;
  ctx.fillStyle = 'rgba(255,255,255,0.85)';
  ctx.fillRect(bx, by, boxW, rowH * series.length + 6);
  series.forEach((s, i) => {
    const y = by + 3 + rowH * i + rowH / 2;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(bx + 6, y);
    ctx.lineTo(bx + 26, y);
    ctx.stroke();
    ctx.fillStyle = '#222';
    ctx.fillText(s.name, bx + 32, y);
  });
}
