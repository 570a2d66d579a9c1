/**
 * bench/results/xds.json keeps one run per label ("before", "after", or any
 * other given with --label); bench/results/xds.md is written from all of
 * them, side by side, with the targets of issue 18.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { percentile, round } from './xds-harness.ts';
import type { FleetResult, RestartResult } from './xds-scenarios.ts';

export interface XdsRun {
  readonly date: string;
  readonly commit: string;
  readonly loadAverage: readonly number[];
  readonly endpoints: number;
  readonly clusters: number;
  readonly workers: number;
  readonly streamsPerConnection: number;
  readonly fleet: readonly FleetResult[];
  readonly restart: RestartResult | undefined;
}

export interface XdsResults {
  readonly runs: Record<string, XdsRun>;
}

export const TARGETS = { streams: 10_000, pushMedianMs: 1_000, pushP99Ms: 2_000, rssMiB: 1_024, allBackSeconds: 10 };

export async function saveRun(resultsDir: string, file: string, label: string, run: XdsRun): Promise<XdsResults> {
  await mkdir(resultsDir, { recursive: true });
  const json = path.join(resultsDir, `${file}.json`);
  let results: XdsResults = { runs: {} };
  try {
    const existing = JSON.parse(await readFile(json, 'utf8')) as Partial<XdsResults>;
    if (existing.runs) results = { runs: existing.runs };
  } catch {
    // No earlier run (or the old single-run format): start afresh.
  }
  // A run of one scenario keeps what the label recorded of the other (--no-fleet, --no-restart).
  const earlier = results.runs[label];
  const merged: XdsRun = earlier ? { ...run, fleet: run.fleet.length > 0 ? run.fleet : earlier.fleet, restart: run.restart ?? earlier.restart } : run;
  results = { runs: { ...results.runs, [label]: merged } };
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(resultsDir, `${file}.md`), markdown(results));
  return results;
}

const median = (values: readonly number[]) => percentile([...values].sort((a, b) => a - b), 50);
const fmtMs = (ms: number) => (Number.isFinite(ms) ? (ms >= 1000 ? `${round(ms / 1000, 2)} s` : `${round(ms)} ms`) : '—');

export function markdown(results: XdsResults): string {
  const labels = Object.keys(results.runs);
  const lines = [
    '# xDS control plane at fleet scale (`npm run bench:xds`)',
    '',
    'State-of-the-world ADS streams over mTLS from separate load processes (bench/xds-lean-client.ts: raw HTTP/2,',
    'no grpc-js), each watching every cluster\'s ClusterLoadAssignment and ACKing every response. A push is one',
    'EndpointSlice change at the fake Kubernetes API (one endpoint of a 1,000-endpoint cluster moves), timed until',
    'each stream has received it. CPU and RSS are the control plane process\'s own (/proc).',
    '',
  ];
  for (const label of labels) {
    const run = results.runs[label]!;
    lines.push(`## ${label} (${run.date}, ${run.commit})`, '',
      `${run.clusters} clusters, ${run.endpoints} endpoints; ${run.workers} load processes, ${run.streamsPerConnection} streams per connection; load average at start ${run.loadAverage.join(' / ')}.`, '',
      '| streams | first answer to all | CPU for it | RSS after | push to all: median (worst) | per stream: median / p99 | CPU per push | RSS after pushes (peak) |',
      '|---|---|---|---|---|---|---|---|');
    for (const fleet of run.fleet) {
      lines.push(`| ${fleet.streams.toLocaleString('en')} | ${fleet.syncSeconds} s | ${fleet.syncCpuSeconds} s | ${fleet.rssAfterSyncMiB} MiB | ${fmtMs(median(fleet.pushToAllMs))} (${fmtMs(Math.max(...fleet.pushToAllMs))}) | ${fmtMs(fleet.perStreamMs.p50)} / ${fmtMs(fleet.perStreamMs.p99)} | ${fleet.cpuSecondsPerPush} s | ${fleet.rssAfterPushesMiB} MiB (${fleet.peakRssMiB} MiB) |`);
    }
    lines.push('');
    const restart = run.restart;
    if (restart) {
      lines.push(`Replica restart: ${restart.streams.toLocaleString('en')} streams over ${restart.replicas} replicas (${JSON.stringify(restart.before)}); A stopped with SIGTERM and started again. `
        + `Every stream back with its config after **${restart.allBackSeconds} s**; the most each replica held meanwhile: ${JSON.stringify(restart.peak)}; at the end ${JSON.stringify(restart.after)}; `
        + `${restart.refusedForLoad} streams refused for load (and sent elsewhere).`, '');
    }
    const big = run.fleet.find((f) => f.streams === TARGETS.streams);
    if (big) {
      const checks = [
        [`push to all ${TARGETS.streams.toLocaleString('en')} streams, median ≤ ${fmtMs(TARGETS.pushMedianMs)}`, median(big.pushToAllMs) <= TARGETS.pushMedianMs, fmtMs(median(big.pushToAllMs))],
        [`per-stream push latency p99 ≤ ${fmtMs(TARGETS.pushP99Ms)}`, big.perStreamMs.p99 <= TARGETS.pushP99Ms, fmtMs(big.perStreamMs.p99)],
        [`control plane RSS ≤ ${TARGETS.rssMiB} MiB (peak)`, big.peakRssMiB <= TARGETS.rssMiB, `${big.peakRssMiB} MiB`],
        ...(restart ? [[`replica restart: all back ≤ ${TARGETS.allBackSeconds} s`, restart.allBackSeconds <= TARGETS.allBackSeconds, `${restart.allBackSeconds} s`]] : []),
      ] as const;
      lines.push('| target | measured | met |', '|---|---|---|', ...checks.map(([what, met, value]) => `| ${what} | ${value} | ${met ? 'yes' : '**no**'} |`), '');
      lines.push(`Per-stream cost at ${big.streams.toLocaleString('en')} streams: ${round(((big.rssAfterSyncMiB - (run.fleet[0]?.rssAfterSyncMiB ?? 0)) * 1024) / Math.max(1, big.streams - (run.fleet[0]?.streams ?? 0)))} KiB of RSS per stream (between the smallest and largest run).`, '');
    }
  }
  return lines.join('\n');
}
