/**
 * The main comparison: interleaved rounds (direct, switchyard, haproxy,
 * nginx, direct, …) so that slow drift of the machine (thermal, noisy
 * neighbours) spreads over every target instead of favouring whichever ran
 * first. Each target in each round gets a closed-loop run (throughput, CPU,
 * backend split) and then an open-loop run (latency at a fixed rate).
 */
import { rpcCounts, split } from './backends.ts';
import type { ClosedSample, Context, TargetResult } from './context.ts';
import { closedLoopNode, h2load, openLoop, type ClosedLoopResult } from './load.ts';
import { cpuSeconds, peakRssMiB } from './metrics.ts';
import { DISTURBED_CORES, foreignLoad } from './interference.ts';
import type { Target } from './targets.ts';
import { setTimeout as sleep } from 'node:timers/promises';

/** Closed loop with h2load (or the Node fallback), the target's CPU and the backends' counters read around it. */
export async function closedLoop(target: Target, ctx: Context): Promise<ClosedSample> {
  const { params, tools, backends } = ctx;
  const options = { connections: params.closedConnections, streams: params.closedStreams, durationMs: params.closedMs };
  const before = await rpcCounts(backends);
  const foreign = foreignLoad();
  const cpuBefore = cpuSeconds(target.pid);
  const result: ClosedLoopResult = tools.h2load
    ? await h2load(tools.h2load, target.port, { ...options, requestFile: ctx.requestFile, tls: target.tls === true })
    : await closedLoopNode(target.port, options);
  const cpu = cpuSeconds(target.pid) - cpuBefore;
  const foreignCores = foreign();
  const after = await rpcCounts(backends);
  const backendRpcs = after.reduce((sum, a, i) => sum + a - (before[i] ?? 0), 0);
  checkBackends(ctx);
  return { ...result, cpuSeconds: cpu, foreignCores, cpuPer100k: result.succeeded > 0 ? (cpu / result.succeeded) * 1e5 : Number.NaN, backendRpcs, split: split(before, after) };
}

/** A backend that died makes the figures meaningless: fail the measurement with its stderr (the run exits 1). */
export function checkBackends(ctx: Context): void {
  const dead = ctx.backends.filter((b) => b.child.hasExited());
  if (dead.length > 0) throw new Error(`backend ${dead.map((b) => b.name).join(', ')} exited: ${dead[0]!.child.stderrTail()}`);
}

/** A warning for the progress line when other processes used the CPU during a measurement. */
export const disturbed = (cores: number) => (cores >= DISTURBED_CORES ? ` [other processes used ${cores.toFixed(2)} cores meanwhile]` : '');

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * h2load counts HTTP/2 responses, not gRPC statuses: a proxy answering
 * UNAVAILABLE in a 200 would look fast. The backends' counters must agree,
 * give or take the RPCs in flight when h2load stopped.
 */
function crossCheck(target: Target, sample: ClosedSample, ctx: Context): void {
  if (target.name === 'direct') return;
  const slack = Math.max(ctx.params.closedConnections * ctx.params.closedStreams * 2, sample.succeeded * 0.01);
  if (Math.abs(sample.backendRpcs - sample.succeeded) > slack) {
    ctx.fail(`${target.name}: closed loop`, new Error(`the load generator counted ${sample.succeeded} successful RPCs but the backends saw ${sample.backendRpcs}`));
  }
}

export async function runRounds(targets: readonly Target[], ctx: Context): Promise<TargetResult[]> {
  const results = targets.map((t): TargetResult => ({ name: t.name, rounds: [] }));
  // One unmeasured closed loop each first, as the TLS and allocation rounds do: connections made, a JIT
  // runtime's hot code compiled (Switchyard's first seconds cost it about a fifth more CPU per RPC).
  for (const target of targets) {
    try {
      await closedLoop(target, ctx);
    } catch (error) {
      ctx.fail(`${target.name}: warm-up`, error);
    }
  }
  for (let round = 1; round <= ctx.params.rounds; round++) {
    for (const [i, target] of targets.entries()) {
      const sample: TargetResult['rounds'][number] = { round };
      results[i]!.rounds.push(sample);
      const label = `round ${round}/${ctx.params.rounds} ${target.name}`;
      try {
        await ctx.quiet();
        sample.closed = await closedLoop(target, ctx);
        crossCheck(target, sample.closed, ctx);
        const c = sample.closed;
        ctx.log(`${label}: closed loop ${fmt(c.rps)} RPC/s (${c.failed} failed, ${c.errored} errored), ${fmt(c.cpuPer100k, 2)} CPU s/100k, split ${c.split.map((s) => fmt(s)).join('/')}%${disturbed(c.foreignCores)}`);
      } catch (error) {
        ctx.fail(`${label}: closed loop`, error);
      }
      try {
        // Let the target finish with the closed loop's aftermath (connections closing, GC) first.
        await sleep(Math.min(500, ctx.params.settleMs));
        const foreign = foreignLoad();
        const open = { ...(await openLoop(target.port, { rate: ctx.params.rate, durationMs: ctx.params.openMs, connections: ctx.params.openConnections })), foreignCores: foreign() };
        sample.open = open;
        checkBackends(ctx);
        const l = open.latencyMs;
        ctx.log(`${label}: open loop ${fmt(ctx.params.rate)} RPC/s: p50 ${fmt(l.p50, 2)} p99 ${fmt(l.p99, 2)} p99.9 ${fmt(l.p999, 2)} ms, ${open.errors} errors${disturbed(open.foreignCores)}`);
        if (open.errors > 0) ctx.log(`  errors: ${JSON.stringify(open.errorKinds)}`);
      } catch (error) {
        ctx.fail(`${label}: open loop`, error);
      }
    }
  }
  for (const [i, target] of targets.entries()) results[i]!.peakRssMiB = peakRssMiB(target.pid);
  return results;
}
