/**
 * A hand-written SVG line chart (no dependency): latency percentiles
 * (p50, p90, p99, p99.9) on the x axis, milliseconds on a log-scale y axis,
 * one line per target. Points whose value is missing are left out.
 */
import type { Summary } from './report.ts';

const COLORS = ['#6b7280', '#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c'];
const KEYS = [['p50', 'p50'], ['p90', 'p90'], ['p99', 'p99'], ['p999', 'p99.9']] as const;

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function label(ms: number): string {
  return ms >= 1 ? `${Number(ms.toPrecision(3))} ms` : `${Number((ms * 1000).toPrecision(3))} µs`;
}

export function latencySvg(summaries: Record<string, Summary>, title: string): string {
  const width = 820;
  const height = 440;
  const plot = { left: 70, right: 590, top: 50, bottom: 380 };
  const series = Object.entries(summaries).map(([name, s]) => ({ name, values: KEYS.map(([key]) => s.latencyMs[key]) }));
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  // Whole decades around the data, so gridlines land on 1, 10, 100 ms.
  const lo = all.length > 0 ? Math.floor(Math.log10(Math.min(...all))) : -1;
  const hi = all.length > 0 ? Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...all)))) : 2;
  const x = (i: number) => plot.left + ((i + 0.5) * (plot.right - plot.left)) / KEYS.length;
  const y = (ms: number) => plot.bottom - ((Math.log10(ms) - lo) / (hi - lo)) * (plot.bottom - plot.top);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${escape(title)}</text>`,
  ];
  for (let decade = lo; decade <= hi; decade++) {
    for (const step of [1, 2, 5]) {
      const ms = step * 10 ** decade;
      if (Math.log10(ms) > hi + 1e-9) continue;
      const gy = y(ms).toFixed(1);
      out.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${gy}" y2="${gy}" stroke="${step === 1 ? '#d1d5db' : '#f3f4f6'}"/>`);
      if (step === 1 || hi - lo <= 2) out.push(`<text x="${plot.left - 8}" y="${gy}" text-anchor="end" dominant-baseline="middle" fill="#374151">${label(ms)}</text>`);
    }
  }
  out.push(`<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" stroke="#9ca3af"/>`);
  out.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" stroke="#9ca3af"/>`);
  KEYS.forEach(([, name], i) => out.push(`<text x="${x(i).toFixed(1)}" y="${plot.bottom + 20}" text-anchor="middle" fill="#374151">${name}</text>`));
  out.push(`<text transform="translate(18 ${(plot.top + plot.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#374151">latency (log scale)</text>`);
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length]!;
    const points = s.values.map((v, i) => (Number.isFinite(v) && v > 0 ? [x(i), y(v), v] as const : undefined)).filter((p) => p !== undefined);
    if (points.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>`);
    for (const [px, py, v] of points) out.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="4" fill="${color}"><title>${escape(s.name)}: ${label(v)}</title></circle>`);
    const ly = plot.top + 10 + index * 22;
    out.push(`<line x1="${plot.right + 25}" x2="${plot.right + 45}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    const p99 = s.values[2];
    out.push(`<text x="${plot.right + 52}" y="${ly}" dominant-baseline="middle">${escape(s.name)}${p99 !== undefined && Number.isFinite(p99) ? ` (p99 ${label(p99)})` : ''}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
