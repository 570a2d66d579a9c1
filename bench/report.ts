/**
 * Turns Results into the summary (medians over rounds, ratios against
 * HAProxy and direct) and writes latest.md (markdown.ts), latest.json and
 * latency.svg (svg.ts) to the output directory, replacing the previous
 * ones (no timestamped copies: the repository keeps only the latest run).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Params, Results, TargetResult } from './context.ts';
import { median } from './stats.ts';
import { markdown, num, ratio, table } from './markdown.ts';
import { latencySvg } from './svg.ts';

export interface Summary {
  rps: number;
  failed: number;
  errored: number;
  driver: string;
  latencyMs: { p50: number; p90: number; p99: number; p999: number };
  openLoopErrors: number;
  cpuPer100k: number;
  peakRssMiB: number | undefined;
  /** Median share per backend, percent. */
  split: number[];
  vsHaproxy?: { rps: number; cpu: number };
  vsDirect?: { rps: number; addedP99Ms: number };
}

function summarize(target: TargetResult): Summary {
  const closed = target.rounds.flatMap((r) => (r.closed ? [r.closed] : []));
  const open = target.rounds.flatMap((r) => (r.open ? [r.open] : []));
  const backends = closed[0]?.split.length ?? 0;
  return {
    rps: median(closed.map((c) => c.rps)),
    failed: closed.reduce((s, c) => s + c.failed, 0),
    errored: closed.reduce((s, c) => s + c.errored, 0),
    driver: closed[0]?.driver ?? '–',
    latencyMs: {
      p50: median(open.map((o) => o.latencyMs.p50)),
      p90: median(open.map((o) => o.latencyMs.p90)),
      p99: median(open.map((o) => o.latencyMs.p99)),
      p999: median(open.map((o) => o.latencyMs.p999)),
    },
    openLoopErrors: open.reduce((s, o) => s + o.errors, 0),
    cpuPer100k: median(closed.map((c) => c.cpuPer100k)),
    peakRssMiB: target.peakRssMiB,
    split: Array.from({ length: backends }, (_, i) => median(closed.map((c) => c.split[i] ?? 0))),
  };
}

export function summaries(results: Results): Record<string, Summary> {
  const out: Record<string, Summary> = {};
  for (const target of results.targets) out[target.name] = summarize(target);
  const haproxy = out.haproxy;
  const direct = out.direct;
  for (const [name, s] of Object.entries(out)) {
    // For direct, "CPU" is the backend's own: no proxy CPU to compare.
    if (haproxy && name !== 'haproxy') s.vsHaproxy = { rps: s.rps / haproxy.rps, cpu: name === 'direct' ? Number.NaN : s.cpuPer100k / haproxy.cpuPer100k };
    if (direct && name !== 'direct') s.vsDirect = { rps: s.rps / direct.rps, addedP99Ms: s.latencyMs.p99 - direct.latencyMs.p99 };
  }
  return out;
}

/** The one table printed at the end of a run (also the top of latest.md). */
export function summaryTable(results: Results): string {
  const s = summaries(results);
  return table(
    ['target', 'RPC/s', 'vs HAProxy', 'vs direct', 'failed/errored', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'p99 added vs direct', 'CPU s/100k RPC', 'CPU vs HAProxy', 'peak RSS MiB', 'backend split %'],
    Object.entries(s).map(([name, t]) => [
      name, num(t.rps), ratio(t.vsHaproxy?.rps), ratio(t.vsDirect?.rps), `${t.failed}/${t.errored}`,
      num(t.latencyMs.p50, 2), num(t.latencyMs.p90, 2), num(t.latencyMs.p99, 2), num(t.latencyMs.p999, 2),
      t.vsDirect ? `${num(t.vsDirect.addedP99Ms, 2)} ms` : '–', num(t.cpuPer100k, 2), ratio(t.vsHaproxy?.cpu), num(t.peakRssMiB, 1),
      t.split.map((p) => num(p)).join('/'),
    ]),
  );
}

/** JSON has no NaN/Infinity (→ null), and 6 significant digits are plenty for measurements. */
function jsonNumbers(_key: string, value: unknown): unknown {
  if (typeof value !== 'number') return value;
  if (!Number.isFinite(value)) return null;
  return Number.isInteger(value) ? value : Number(value.toPrecision(6));
}

/** Writes latest.md, latest.json and latency.svg into params.out; returns their paths. */
export function writeReports(results: Results, params: Params): string[] {
  mkdirSync(params.out, { recursive: true });
  const { meta, ...rest } = results;
  const files = {
    'latest.md': markdown(results, params, summaryTable(results)),
    'latest.json': `${JSON.stringify({ meta, params, summary: summaries(results), ...rest }, jsonNumbers, 2)}\n`,
    'latency.svg': latencySvg(summaries(results), `Open-loop latency at ${params.rate.toLocaleString('en-US')} RPC/s (median of ${params.rounds} round(s))`),
  };
  return Object.entries(files).map(([name, content]) => {
    const file = path.join(params.out, name);
    writeFileSync(file, content);
    return file;
  });
}
