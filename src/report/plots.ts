/**
 * Loss-curve plots rendered with Vega (SVG, no browser needed) and converted to PNG with resvg. Both are
 * optional packages, imported on first use (`npm install vega @resvg/resvg-js`); a missing one is a
 * `MissingPackageError` naming it.
 */
import { importOptional } from '../utils/optional.js';

export interface Series {
  name: string;
  points: Array<{ x: number; y: number }>;
}

/** Exponential moving average, to show the trend of noisy per-step losses. */
export function smooth(points: Array<{ x: number; y: number }>, alpha = 0.1): Array<{ x: number; y: number }> {
  let avg = points[0]?.y ?? 0;
  return points.map((p, i) => {
    avg = i === 0 ? p.y : alpha * p.y + (1 - alpha) * avg;
    return { x: p.x, y: avg };
  });
}

/**
 * A line chart of several series as an SVG string, e.g. loss curves to show in a notebook cell:
 * `lineChartSVG([{name: 'gta', points: [{x: 1, y: 4.2}, ...]}], {title, xTitle, yTitle})`.
 */
export async function lineChartSVG(
  series: Series[],
  opts: { title: string; xTitle: string; yTitle: string; points?: boolean; rule?: { y: number; label: string } },
): Promise<string> {
  const vega = await importOptional<typeof import('vega')>('vega', 'lineChartSVG');
  const values = series.flatMap((s) => s.points.map((p) => ({ ...p, series: s.name })));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 640,
    height: 360,
    padding: 8,
    background: 'white',
    title: { text: opts.title, fontSize: 14 },
    data: [
      { name: 'table', values },
      { name: 'rule', values: opts.rule ? [opts.rule] : [] },
    ],
    scales: [
      { name: 'x', type: 'linear', domain: { data: 'table', field: 'x' }, range: 'width', zero: false, nice: true },
      {
        name: 'y',
        type: 'linear',
        domain: {
          fields: [
            { data: 'table', field: 'y' },
            { data: 'rule', field: 'y' },
          ],
        },
        range: 'height',
        zero: false,
        nice: true,
      },
      { name: 'color', type: 'ordinal', domain: { data: 'table', field: 'series' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: opts.xTitle, grid: true },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true },
    ],
    legends: [{ stroke: 'color', fill: 'color', title: 'variant', orient: 'right' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series_data', data: 'table', groupby: 'series' } },
        marks: [
          {
            type: 'line',
            from: { data: 'series_data' },
            encode: {
              enter: {
                x: { scale: 'x', field: 'x' },
                y: { scale: 'y', field: 'y' },
                stroke: { scale: 'color', field: 'series' },
                strokeWidth: { value: 2 },
              },
            },
          },
          ...(opts.points
            ? [
                {
                  type: 'symbol',
                  from: { data: 'series_data' },
                  encode: {
                    enter: {
                      x: { scale: 'x', field: 'x' },
                      y: { scale: 'y', field: 'y' },
                      fill: { scale: 'color', field: 'series' },
                      size: { value: 30 },
                    },
                  },
                },
              ]
            : []),
        ],
      },
      {
        type: 'rule',
        from: { data: 'rule' },
        encode: {
          enter: {
            x: { value: 0 },
            x2: { signal: 'width' },
            y: { scale: 'y', field: 'y' },
            stroke: { value: '#888' },
            strokeDash: { value: [4, 4] },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'rule' },
        encode: {
          enter: {
            x: { value: 4 },
            y: { scale: 'y', field: 'y', offset: -4 },
            text: { field: 'label' },
            fill: { value: '#666' },
            fontSize: { value: 11 },
          },
        },
      },
    ],
  };
  const view = new vega.View(vega.parse(spec as never), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Renders an SVG string to PNG bytes. */
export async function svgToPNG(svg: string, width = 1280): Promise<Uint8Array> {
  const { Resvg } = await importOptional<typeof import('@resvg/resvg-js')>('@resvg/resvg-js', 'svgToPNG');
  return new Resvg(svg, { fitTo: { mode: 'width', value: width }, font: { loadSystemFonts: true } }).render().asPng();
}
