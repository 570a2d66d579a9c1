/**
 * The scenarios after the main rounds: streaming throughput, a backend that
 * turns slow mid-run, identical backends under sequential RPCs, Switchyard on
 * two workers, and idle memory.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { rpcCounts, setSlow, split } from './backends.ts';
import type { Context, IdenticalResult, IdleMemoryResult, MultiCoreResult, SlowResult, StreamRow, WindowStats } from './context.ts';
import { closedLoopNode, idleConnections, openLoop, streamLoad } from './load.ts';
import { cpuSeconds, nofileHardLimit, nofileLimit, rssMiB, treePids } from './metrics.ts';
import { checkBackends, closedLoop, disturbed } from './rounds.ts';
import { foreignLoad } from './interference.ts';
import { percentiles, median } from './stats.ts';
import { startSwitchyard, switchyardHasWorkers, type Target } from './targets.ts';
import { spawnChild } from './proc.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** `streams` server streams over `streamConnections` connections through each target; the target's CPU is read around it. */
export async function streaming(targets: readonly Target[], ctx: Context): Promise<StreamRow[]> {
  const rows: StreamRow[] = [];
  const { params } = ctx;
  for (const target of targets) {
    const row: StreamRow = { target: target.name };
    rows.push(row);
    try {
      await ctx.quiet();
      const foreign = foreignLoad();
      const cpuBefore = cpuSeconds(target.pid);
      const started = performance.now();
      row.result = await streamLoad(target.port, { streams: params.streams, connections: params.streamConnections, durationMs: params.streamMs, warmupMs: params.streamWarmupMs });
      row.cpuPercent = ((cpuSeconds(target.pid) - cpuBefore) / ((performance.now() - started) / 1000)) * 100;
      row.foreignCores = foreign();
      const r = row.result;
      ctx.log(`streaming ${target.name}: ${fmt(r.messagesPerSec)} msg/s, ${fmt(r.mbPerSec)} MB/s, ${r.activeStreams}/${r.streams} streams answered, ${r.streamErrors} stream errors${disturbed(row.foreignCores)}`);
      // Cancelled streams must be gone from the backends before the next target is measured.
      await sleep(Math.min(500, ctx.params.streamWarmupMs));
      checkBackends(ctx);
    } catch (error) {
      ctx.fail(`streaming ${target.name}`, error);
    }
  }
  return rows;
}

function windowStats(samples: Float64Array, from: number, to: number): WindowStats {
  const latencies: number[] = [];
  let errors = 0;
  for (let i = 0; i < samples.length; i += 2) {
    const offset = samples[i]!;
    if (offset < from || offset >= to) continue;
    const latency = samples[i + 1]!;
    if (latency < 0) errors++;
    else latencies.push(latency);
  }
  return { count: latencies.length + errors, errors, latencyMs: percentiles(latencies) };
}

/**
 * One open-loop run at the fixed rate; at half time the last backend gets
 * `slowDelayMs` added to every answer. Windows by scheduled send time:
 * before = [0, switch), adapt = [switch, switch + adaptMs), after = the rest.
 */
async function slowRun(target: Target, policy: string, ctx: Context): Promise<SlowResult> {
  const { params, backends } = ctx;
  const slow = backends[backends.length - 1]!;
  const result: SlowResult = { target: target.name, policy };
  await ctx.quiet();
  // Warm the target (JIT, connections, latency estimates) so that "before" is not its cold start.
  if (params.slowWarmupMs > 0) await openLoop(target.port, { rate: params.rate, durationMs: params.slowWarmupMs, connections: params.openConnections });
  const foreign = foreignLoad();
  const samplesFile = path.join(ctx.dir, `slow-${target.name.replace(/\W/g, '_')}.bin`);
  let startedEpoch = 0;
  let switchEpoch = 0;
  // The backends' counters once adaptation is over, for the slow one's share of what came after.
  let adapted: Promise<number[]> = Promise.resolve([]);
  try {
    await openLoop(target.port, { rate: params.rate, durationMs: params.slowMs, connections: params.openConnections, samplesFile }, (epochMs) => {
      startedEpoch = epochMs;
      const wait = params.slowMs / 2 - (performance.timeOrigin + performance.now() - epochMs);
      adapted = sleep(Math.max(0, wait)).then(async () => {
        switchEpoch = performance.timeOrigin + performance.now();
        await setSlow(slow, params.slowDelayMs);
        await sleep(params.adaptMs);
        return rpcCounts(backends);
      });
    });
    const afterAdapt = await adapted;
    const atEnd = await rpcCounts(backends);
    result.slowShareAfter = split(afterAdapt, atEnd).at(-1);
  } finally {
    await setSlow(slow, 0);
  }
  result.foreignCores = foreign();
  const buffer = readFileSync(samplesFile);
  const samples = new Float64Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 8);
  const at = switchEpoch - startedEpoch;
  result.switchAtMs = at;
  result.before = windowStats(samples, 0, at);
  result.adapt = windowStats(samples, at, at + params.adaptMs);
  result.after = windowStats(samples, at + params.adaptMs, Infinity);
  result.ratio = result.after.latencyMs.p99 / result.before.latencyMs.p99;
  return result;
}

/** The slow-backend run through haproxy and nginx (as they are) and a fresh Switchyard per policy. */
export async function slowBackend(proxies: readonly Target[], ctx: Context): Promise<SlowResult[]> {
  const results: SlowResult[] = [];
  const runs: { policy: string; target: () => Promise<Target>; own: boolean }[] = [
    ...(ctx.params.slowProxies ? proxies : []).map((p) => ({ policy: p.name === 'haproxy' ? 'balance roundrobin' : 'round robin (default)', target: async () => p, own: false })),
    ...ctx.params.slowPolicies.map((policy) => ({ policy, target: () => startSwitchyard(ctx.backends, ctx.dir, { name: `switchyard/${policy}`, policy }), own: true })),
  ];
  for (const run of runs) {
    let target: Target | undefined;
    try {
      target = await run.target();
      const result = await slowRun(target, run.policy, ctx);
      results.push(result);
      ctx.log(`slow backend ${target.name} (${run.policy}): p99 before ${fmt(result.before?.latencyMs.p99, 2)} ms, first ${adaptLabel(ctx)} after ${fmt(result.adapt?.latencyMs.p99, 2)} ms, then ${fmt(result.after?.latencyMs.p99, 2)} ms (${fmt(result.ratio, 2)}x), slow backend's share after ${fmt(result.slowShareAfter, 1)}%${disturbed(result.foreignCores ?? 0)}`);
      checkBackends(ctx);
    } catch (error) {
      ctx.fail(`slow backend ${run.policy}`, error);
    } finally {
      if (run.own) await target?.stop();
    }
  }
  if (!ctx.params.slowProxies) results.push({ target: 'haproxy, nginx', policy: '–', note: `${ctx.params.mode} run: not run` });
  results.push({ target: 'switchyard/ring_hash', policy: 'ring_hash', note: 'skipped: with one fixed hash header value every RPC maps to the same backend, so the run says nothing about avoiding a slow one' });
  return results;
}

const adaptLabel = (ctx: Context) => `${ctx.params.adaptMs / 1000} s`;

/**
 * The slow-backend run's counterpart: nothing is slow, and one RPC at a time
 * goes over one connection through a fresh peak_ewma Switchyard, as a client
 * calling in a loop does. A latency-aware policy must not read noise as
 * slowness: the backends' own counters give max/min (goal: at most 1.2).
 */
export async function identicalSequential(ctx: Context): Promise<IdenticalResult> {
  const policy = 'peak_ewma';
  const result: IdenticalResult = { policy };
  const target = await startSwitchyard(ctx.backends, ctx.dir, { name: `switchyard/${policy}-sequential`, policy });
  const sequential = { connections: 1, streams: 1, durationMs: ctx.params.sequentialMs };
  try {
    await ctx.quiet();
    // Connections up and code compiled first: the window measures balancing, not a cold start.
    await closedLoopNode(target.port, sequential);
    const before = await rpcCounts(ctx.backends);
    const foreign = foreignLoad();
    const run = await closedLoopNode(target.port, sequential);
    result.foreignCores = foreign();
    const after = await rpcCounts(ctx.backends);
    result.perBackend = after.map((count, i) => count - (before[i] ?? 0));
    result.maxOverMin = Math.max(...result.perBackend) / Math.min(...result.perBackend);
    result.errors = run.failed;
    ctx.log(`identical backends, sequential (${policy}): ${result.perBackend.map((n) => fmt(n)).join(' / ')} RPCs, max/min ${fmt(result.maxOverMin, 2)}${disturbed(result.foreignCores)}`);
    checkBackends(ctx);
  } finally {
    await target.stop();
  }
  return result;
}

/** Waits until the tree under pid has at least `count` processes (a primary and its workers). */
async function waitForProcesses(pid: number, count: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (treePids(pid).length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} processes under ${pid}, found ${treePids(pid).length}`);
    await sleep(100);
  }
  await sleep(500); // the last worker forked; give it time to load and listen
}

/** Closed-loop RPC/s of Switchyard with --workers 2 against one worker, interleaved over the rounds. */
export async function multiCore(single: Target, ctx: Context): Promise<MultiCoreResult> {
  const result: MultiCoreResult = { available: false, note: '', oneWorker: [], twoWorkers: [], foreignCores: [] };
  if (!(await switchyardHasWorkers())) {
    result.note = 'not available: `switchyard run --help` does not mention --workers';
    return result;
  }
  let two: Target;
  try {
    two = await startSwitchyard(ctx.backends, ctx.dir, { name: 'switchyard-2w', workers: 2 });
    await waitForProcesses(two.pid, 3);
  } catch (error) {
    result.note = `not available: switchyard --workers 2 did not start (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`;
    return result;
  }
  result.available = true;
  try {
    // The single worker has been through the whole run; warm the new processes up (JIT, connections) before comparing.
    await closedLoop(two, ctx);
    for (let round = 1; round <= ctx.params.rounds; round++) {
      await ctx.quiet();
      const one = await closedLoop(single, ctx);
      const both = await closedLoop(two, ctx);
      result.oneWorker.push(one.rps);
      result.twoWorkers.push(both.rps);
      result.foreignCores.push(Math.max(one.foreignCores, both.foreignCores));
      ctx.log(`multi-core round ${round}: 1 worker ${fmt(one.rps)} RPC/s, 2 workers ${fmt(both.rps)} RPC/s${disturbed(result.foreignCores.at(-1)!)}`);
    }
    result.factor = median(result.twoWorkers) / median(result.oneWorker);
    result.note = `${ctx.params.closedConnections} client connections, spread over the workers by the primary; 2 cores shared with h2load and the 3 backends`;
  } catch (error) {
    ctx.fail('multi-core', error);
  } finally {
    await two.stop();
  }
  return result;
}

/** What Node itself costs, for scale: RSS of a process that only runs a timer. */
async function bareNodeRss(ctx: Context, extension: 'js' | 'ts'): Promise<number> {
  const file = path.join(ctx.dir, `bare.${extension === 'js' ? 'mjs' : 'mts'}`);
  writeFileSync(file, 'setInterval(() => {}, 1000);\n');
  const child = spawnChild(`bare node (.${extension})`, process.execPath, [file]);
  try {
    await sleep(ctx.params.settleMs);
    return rssMiB(child.pid);
  } finally {
    await child.stop();
  }
}

/**
 * RSS of a fresh Switchyard with 3 clusters: idle after start, then with
 * `idleConnections` idle HTTP/2 client connections (scaled down if the
 * open-file limit of the proxy or the opener would not allow that many).
 */
export async function idleMemory(ctx: Context, cli?: string): Promise<IdleMemoryResult> {
  const result: IdleMemoryResult = { note: '', nodeBaselineMiB: { js: await bareNodeRss(ctx, 'js'), ts: await bareNodeRss(ctx, 'ts') } };
  const target = await startSwitchyard(ctx.backends, ctx.dir, { name: cli === undefined ? 'switchyard-idle' : 'switchyard-baseline-idle', clusters: 3, ...(cli !== undefined && { cli }) });
  try {
    await sleep(ctx.params.settleMs); // let start-up garbage be collected and the heap settle
    result.idleRssMiB = rssMiB(target.pid);
    // The opener runs with the hard limit (see proc.ts), the proxy with what it got.
    const limit = Math.min(nofileLimit(target.pid) ?? 1024, nofileHardLimit());
    const count = Math.min(ctx.params.idleConnections, limit - 200);
    result.requested = count;
    result.note = count < ctx.params.idleConnections
      ? `scaled down from ${ctx.params.idleConnections} to ${count}: open-file limit ${limit}`
      : `open-file limit of the proxy: ${nofileLimit(target.pid)} (could not be raised further without CAP_SYS_RESOURCE)`;
    const idle = idleConnections(target.port, count);
    try {
      const opened = await idle.opened;
      await sleep(ctx.params.settleMs);
      result.connections = idle.alive();
      result.failed = opened.failed;
      result.rssWithConnectionsMiB = rssMiB(target.pid);
      result.kibPerConnection = ((result.rssWithConnectionsMiB - result.idleRssMiB) * 1024) / Math.max(1, result.connections);
      if (opened.failed > 0) result.note += `; ${opened.failed} connections failed (${opened.firstError})`;
      ctx.log(`idle memory: ${fmt(result.idleRssMiB, 1)} MiB idle, ${fmt(result.rssWithConnectionsMiB, 1)} MiB with ${fmt(result.connections)} idle connections (${opened.ms} ms to open)`);
    } finally {
      await idle.child.stop();
    }
  } finally {
    await target.stop();
  }
  return result;
}
