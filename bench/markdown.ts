/**
 * latest.md: the summary table first, then one section per scenario, each
 * saying what was measured and how, so the file stands on its own.
 */
import type { Params, Results } from './context.ts';
import { DISTURBED_CORES } from './interference.ts';
import { median } from './stats.ts';
import { grpcWebSection } from './grpc-web.ts';
import { websocketMarkdown } from './websocket.ts';

export const num = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const ratio = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(2)}x`);
const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
export const table = (head: readonly string[], rows: readonly (readonly string[])[]) => [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
const errorsCell = (count: number, kinds: Record<string, number>) => `${count}${count > 0 ? ` ${JSON.stringify(kinds)}` : ''}`;
const other = (cores: number | undefined) => (cores === undefined ? '–' : cores >= DISTURBED_CORES ? `**${cores.toFixed(2)}**` : cores.toFixed(2));

function header(results: Results, params: Params): string[] {
  const m = results.meta;
  return [
    `# Switchyard benchmark: ${params.mode} run`, '',
    `${m.date} · ${m.cpu} (${m.cores} cores) · Linux ${m.kernel} · Node ${m.node} · ${m.haproxy ?? 'haproxy: not run'} · ${m.nginx ?? 'nginx: not run'} · ${m.h2load ?? 'h2load: not run'} · wall time ${m.wallSeconds} s`, '',
  ];
}

/** Every "other load" figure of the run, to warn once at the top when the machine was not quiet. */
function foreignFigures(results: Results): number[] {
  return [
    ...results.targets.flatMap((t) => t.rounds.flatMap((r) => [r.closed?.foreignCores, r.open?.foreignCores])),
    ...results.streaming.map((s) => s.foreignCores),
    ...results.slow.map((s) => s.foreignCores),
    results.identical?.foreignCores,
    ...(results.multiCore?.foreignCores ?? []),
    ...(results.grpcWeb?.rows.flatMap((row) => row.foreignCores) ?? []),
  ].filter((n): n is number => n !== undefined);
}

function disturbance(results: Results): string[] {
  const worst = Math.max(0, ...foreignFigures(results));
  if (worst < DISTURBED_CORES) return [];
  return [`> **The machine was not quiet**: processes outside the bench used up to ${worst.toFixed(2)} cores during some measurements (bold in the "other load" columns). Those figures are disturbed; rerun on an idle machine to compare.`, ''];
}

function summarySection(results: Results, params: Params, summary: string): string[] {
  const driver = results.targets[0]?.rounds[0]?.closed?.driver === 'node' ? 'the Node fallback driver (h2load missing; not comparable)' : 'h2load';
  return [
    `## Summary: medians over ${params.rounds} interleaved round(s)`, '', summary, '',
    `- **RPC/s**: closed loop, ${driver} -c ${params.closedConnections} -m ${params.closedStreams} for ${params.closedMs / 1000} s, unary Echo, after one unmeasured run of each target as a warm-up. **failed/errored**: h2load's counts summed over rounds (HTTP level; the backends' counters are checked against them).`,
    `- **Latency**: open loop at ${num(params.rate)} RPC/s for ${params.openMs / 1000} s over ${params.openConnections} connections (bench/open-loop.ts), measured from each RPC's scheduled send time. **p99 added**: target p99 minus direct p99.`,
    '- **CPU s/100k RPC**: utime+stime of the target\'s process tree (/proc) during the closed-loop run, per 100,000 RPCs. For direct it is the backend\'s own CPU.',
    '- **Peak RSS**: VmHWM summed over the process tree (nginx: master + worker) after the rounds. **Backend split**: share of the backends\' RPCs (direct = one backend).',
    `- Load generators, the 3 backends and the proxy share the machine's ${results.meta.cores} cores, so absolute figures are lower than on dedicated hardware; the ratios are the point.`,
    '',
  ];
}

function roundsSection(results: Results): string[] {
  const rows = results.targets.flatMap((t) => t.rounds.map((r) => [
    t.name, String(r.round), num(r.closed?.rps), r.closed ? `${r.closed.failed}/${r.closed.errored}` : '–', num(r.closed?.backendRpcs),
    num(r.closed?.cpuSeconds, 2), other(r.closed?.foreignCores), num(r.open?.latencyMs.p50, 2), num(r.open?.latencyMs.p99, 2), num(r.open?.latencyMs.p999, 2),
    r.open ? errorsCell(r.open.errors, r.open.errorKinds) : '–', other(r.open?.foreignCores),
  ]));
  return ['### Per round', '', 'Other load = cores used by processes outside the bench during that measurement (bench/interference.ts; approximate).', '',
    table(['target', 'round', 'RPC/s', 'failed/errored', 'backend RPCs', 'CPU s', 'other load (closed)', 'p50 ms', 'p99 ms', 'p99.9 ms', 'open-loop errors', 'other load (open)'], rows), ''];
}

function slowSection(results: Results, params: Params): string[] {
  const met = (policy: string, r: number | undefined) => (['peak_ewma', 'least_request'].includes(policy) && r !== undefined ? (r <= 1.5 ? 'yes' : 'NO') : '–');
  const rows = results.slow.map((r) => [
    r.target, r.policy, num(r.before?.latencyMs.p99, 2), num(r.adapt?.latencyMs.p99, 2), num(r.after?.latencyMs.p99, 2), num(r.after?.latencyMs.p50, 2),
    r.note ?? ratio(r.ratio), met(r.policy, r.ratio), r.slowShareAfter === undefined ? '–' : `${num(r.slowShareAfter, 1)}%`, r.before ? String(r.before.errors + (r.adapt?.errors ?? 0) + (r.after?.errors ?? 0)) : '–', other(r.foreignCores),
  ]);
  return [
    '## Slow backend', '',
    `Open loop at ${num(params.rate)} RPC/s for ${params.slowMs / 1000} s, after ${params.slowWarmupMs / 1000} s of warm-up load; at half time one of the 3 backends starts adding ${params.slowDelayMs} ms to every answer. Windows by scheduled send time: **before** = the first half; **first ${params.adaptMs} ms** = right after the switch, while a policy adapts, reported on its own and left out of "after"; **after** = from ${params.adaptMs} ms after the switch to the end. Goal: with peak_ewma or least_request, p99 after ≤ 1.5x p99 before. **Slow backend's share after** = percent of the RPCs after the adaptation window that the slow backend served (its own counter, so not disturbed by CPU noise): p99 after stays low only if it is under 1%. HAProxy and nginx run with their round-robin configs.`, '',
    table(['target', 'policy', 'p99 before ms', `p99 first ${params.adaptMs} ms`, 'p99 after ms', 'p50 after ms', 'after/before', 'goal met', 'slow backend\'s share after', 'errors', 'other load'], rows), '',
    ...identicalSection(results, params),
  ];
}

/** The slow-backend run's counterpart, next to it: identical backends must share evenly. */
function identicalSection(results: Results, params: Params): string[] {
  const r = results.identical;
  if (!r) return [];
  const row = [r.policy, r.perBackend?.map((n) => num(n)).join(' / ') ?? '–', ratio(r.maxOverMin), r.maxOverMin === undefined ? '–' : r.maxOverMin <= 1.2 ? 'yes' : 'NO', String(r.errors ?? '–'), other(r.foreignCores)];
  return [
    '### Identical backends, sequential', '',
    `The same 3 backends, none slow; a fresh Switchyard; one RPC at a time over one connection (bench/open-loop.ts --closed) for ${params.sequentialMs / 1000} s, after as long a warm-up. A latency-aware policy reads noise (a GC pause, the CPU taken away) as slowness if it is not careful, and at one RPC in flight nothing else evens it out. Goal: max/min of the backends' own counts at most 1.2.`, '',
    table(['policy', 'RPCs per backend', 'max/min', 'goal met', 'errors', 'other load'], [row]), '',
  ];
}

function streamingSection(results: Results, params: Params): string[] {
  const rows = results.streaming.map((r) => [
    r.target, num(r.result?.messagesPerSec), num(r.result?.mbPerSec), r.result ? `${r.result.activeStreams}/${r.result.streams}` : '–', num(r.cpuPercent),
    r.result ? errorsCell(r.result.streamErrors, r.result.errorKinds) : '–', other(r.foreignCores),
  ]);
  return [
    '## Streaming', '',
    `${params.streams} concurrent server streams over ${params.streamConnections} connections, each asking for 1,000,000 messages of ~1 KiB, counted for ${params.streamMs / 1000} s after ${params.streamWarmupMs / 1000} s of warm-up (bench/stream-load.ts). MB = 10^6 bytes of gRPC message data. Per-connection stream limits raised so that 100+ streams per connection are allowed: haproxy \`tune.h2.max-concurrent-streams 1000\`, nginx \`http2_max_concurrent_streams 1000\` (Switchyard's default is 1000). "Streams answered" = streams with response headers when the window closed.`, '',
    table(['target', 'messages/s', 'MB/s', 'streams answered', 'target CPU %', 'stream errors', 'other load'], rows), '',
  ];
}

function multiCoreSection(results: Results): string[] {
  const mc = results.multiCore;
  if (!mc?.available) return ['## Multi-core', '', `Switchyard --workers 2: ${mc?.note ?? 'not run'}.`, ''];
  return [
    '## Multi-core', '',
    table(['1 worker RPC/s (median)', '2 workers RPC/s (median)', 'scaling'], [[num(median(mc.oneWorker)), num(median(mc.twoWorkers)), ratio(mc.factor)]]), '',
    `Closed loop as above, alternating. Per round: 1 worker ${mc.oneWorker.map((n) => num(n)).join(', ')}; 2 workers ${mc.twoWorkers.map((n) => num(n)).join(', ')}; other load ${mc.foreignCores.map(other).join(', ')} cores. ${mc.note}: with h2load and the backends needing CPU too, a factor near 2 is impossible on this machine.`, '',
  ];
}

function engineSection(results: Results, params: Params): string[] {
  const out: string[] = [];
  const tls = results.tls;
  if (tls && tls.length > 0) {
    const haproxy = tls.find((r) => r.target.startsWith('haproxy'));
    const rows = tls.map((r) => [
      r.target, num(median(r.rps)), haproxy && r !== haproxy ? ratio(median(r.rps) / median(haproxy.rps)) : '–',
      num(median(r.cpuPer100k), 2), haproxy && r !== haproxy ? ratio(median(r.cpuPer100k) / median(haproxy.cpuPer100k)) : '–', r.foreignCores.map(other).join(', '),
    ]);
    out.push('## TLS', '', `The closed loop above over TLS 1.3 (h2load negotiates h2 by ALPN), Switchyard and HAProxy with the same self-signed P-256 certificate, medians of ${params.rounds} round(s) after a warm-up run each.`, '',
      table(['target', 'RPC/s', 'vs HAProxy', 'CPU s/100k RPC', 'CPU vs HAProxy', 'other load'], rows), '');
  }
  const alloc = results.allocation;
  if (alloc?.medianBytesPerRpc !== undefined) {
    out.push('## Allocation and GC', '', 'A fresh Switchyard with its admin interface (and so its metrics) on; the closed loop above; its own /metrics read before and after: bytes its JavaScript heap allocated (`switchyard_heap_allocated_bytes_total`, V8\'s count) and time in GC (`nodejs_gc_duration_seconds_sum`, every kind), per RPC.', '',
      table(['bytes allocated per RPC', 'GC ms per 100k RPCs', 'per round'], [[num(alloc.medianBytesPerRpc), num(alloc.medianGcMsPer100k, 1), alloc.bytesPerRpc.map((b, i) => `${num(b)} B, ${num(alloc.gcMsPer100k[i], 1)} ms`).join('; ')]]), '');
  }
  return out;
}

function idleSection(results: Results, params: Params): string[] {
  const idle = results.idle;
  if (!idle) return ['## Idle memory', '', 'not run', ''];
  const baseline = results.idleBaseline;
  const baselineLine = baseline
    ? [`The --baseline-cli build, the same way: ${num(baseline.idleRssMiB, 1)} MiB idle, ${num(baseline.rssWithConnectionsMiB, 1)} MiB with ${num(baseline.connections)} idle connections (${num(baseline.kibPerConnection, 1)} KiB each).`, '']
    : [];
  const goal = (value: number | undefined, limit: number) => (value === undefined ? '–' : value <= limit ? 'yes' : 'NO');
  const bare = idle.nodeBaselineMiB
    ? ` For scale, a bare Node process running a one-line timer: ${num(idle.nodeBaselineMiB.js, 1)} MiB from a .js file, ${num(idle.nodeBaselineMiB.ts, 1)} MiB from a .ts file (type stripping); Switchyard runs the bundled dist/bin/switchyard.js, as the switchyard command does.`
    : '';
  return [
    '## Idle memory', '',
    table(['Switchyard RSS idle (3 clusters)', 'idle connections', 'RSS with them', 'KiB per connection', 'idle ≤ 60 MiB', `with connections ≤ 150 MiB`],
      [[`${num(idle.idleRssMiB, 1)} MiB`, `${num(idle.connections)} of ${num(idle.requested)}`, `${num(idle.rssWithConnectionsMiB, 1)} MiB`, num(idle.kibPerConnection, 1),
        goal(idle.idleRssMiB, 60), idle.requested === 10_000 ? goal(idle.rssWithConnectionsMiB, 150) : '– (not 10,000)']]), '',
    `RSS = VmRSS of the process, read ${params.settleMs / 1000} s after start and ${params.settleMs / 1000} s after the connections opened (HTTP/2 SETTINGS exchanged, no RPCs); ${idle.note}.${bare}`, '',
    ...baselineLine,
  ];
}

export function markdown(results: Results, params: Params, summary: string): string {
  const out = [
    ...header(results, params), ...disturbance(results), ...summarySection(results, params, summary), ...roundsSection(results),
    ...slowSection(results, params), ...streamingSection(results, params), ...multiCoreSection(results), ...engineSection(results, params), ...idleSection(results, params),
    ...grpcWebSection(results.grpcWeb, params),
    ...websocketMarkdown(results.websocket),
  ];
  const check = results.backendCheck;
  if (check) out.push('## Backend capacity', '', `One backend alone, before any proxy started: ${num(check.rps)} RPC/s closed loop (${check.failed} failed, ${check.errored} errored), so three of them do not limit a proxy.`, '');
  if (results.notes.length > 0) out.push('## Notes', '', ...results.notes.map((n) => `- ${n}`), '');
  if (results.errors.length > 0) out.push('## Errors', '', ...results.errors.map((e) => `- ${e}`), '');
  return out.join('\n');
}
