/**
 * rollout: steady unary RPCs at a fixed rate for a window while the user runs
 * a rollout (kubectl rollout restart, a deploy), each counted by its status.
 * A rollout done right (readiness, NOT_SERVING before shutdown, drain, GOAWAY)
 * loses none, so any failure fails the check, reported by status code with
 * its first message and when it happened.
 */
import type { Progress } from './progress.ts';
import { formatCounts, type CheckResult } from './report.ts';
import { callUnary, statusName, targetClient, type RpcSpec, type TargetOptions } from './target.ts';

export interface RolloutOptions {
  readonly target: TargetOptions;
  readonly rpc: RpcSpec;
  readonly windowMs: number;
  /** RPCs started per second, whether or not earlier ones have finished. */
  readonly rate: number;
}

interface ErrorsOfCode {
  count: number;
  readonly firstMessage: string;
  readonly firstAtMs: number;
  lastAtMs: number;
}

export async function runRollout(options: RolloutOptions, progress: Progress): Promise<CheckResult> {
  const started = performance.now();
  const windowText = formatSeconds(options.windowMs);
  progress.start('rollout', `${options.rate} RPC/s to ${options.rpc.method} for ${windowText}: run the rollout now`);
  const client = await targetClient(options.target);
  const errors = new Map<string, ErrorsOfCode>();
  const backends = new Set<string>();
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let maxLatencyMs = 0;
  const inFlight = new Set<Promise<void>>();
  const report = () => {
    const elapsed = Math.min(options.windowMs, performance.now() - started);
    progress.update(`${formatSeconds(elapsed)}/${windowText}  ${ok} ok  ${failed} failed${failed ? ` (${formatCounts(countsOf(errors))})` : ''}  ${inFlight.size} in flight`);
  };
  const one = async () => {
    const at = performance.now() - started;
    const result = await callUnary(client, options.rpc);
    maxLatencyMs = Math.max(maxLatencyMs, result.latencyMs);
    if (result.upstream !== undefined) backends.add(result.upstream);
    if (result.code === 0) {
      ok++;
    } else {
      failed++;
      const name = statusName(result.code);
      const entry = errors.get(name);
      if (entry) {
        entry.count++;
        entry.lastAtMs = at;
      } else {
        errors.set(name, { count: 1, firstMessage: result.details, firstAtMs: at, lastAtMs: at });
      }
    }
    report();
  };
  try {
    const intervalMs = 1000 / options.rate;
    while (true) {
      // Scheduled against the start, so a slow event loop does not lower the rate.
      const due = started + sent * intervalMs;
      if (due - started >= options.windowMs) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sent++;
      const call = one();
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
      report();
    }
    progress.update(`window over: waiting for ${inFlight.size} RPC(s) in flight`);
    await Promise.all(inFlight);
  } finally {
    client.close();
  }
  progress.end();

  const details = [...errors].sort((a, b) => b[1].count - a[1].count)
    .map(([name, entry]) => `${name} ×${entry.count}, ${formatSeconds(entry.firstAtMs)}–${formatSeconds(entry.lastAtMs)} into the window; first: ${entry.firstMessage || '(no message)'}`);
  details.push(`${sent} RPCs sent, ${ok} ok, ${failed} failed; slowest ${Math.round(maxLatencyMs)} ms${backends.size > 0 ? `; ${backends.size} backend(s) answered` : ''}`);
  const data = {
    window_ms: options.windowMs,
    rate: options.rate,
    sent,
    ok,
    failed,
    errors: Object.fromEntries([...errors].map(([name, entry]) => [name, { count: entry.count, first_message: entry.firstMessage, first_at_ms: Math.round(entry.firstAtMs), last_at_ms: Math.round(entry.lastAtMs) }])),
    backends: [...backends].sort(),
  };
  const durationMs = performance.now() - started;
  if (failed > 0) {
    return { check: 'rollout', passed: false, reason: `${failed} of ${sent} RPCs failed during the ${windowText} window: ${formatCounts(countsOf(errors))}`, details, data, durationMs };
  }
  return { check: 'rollout', passed: true, reason: `all ${sent} RPCs over ${windowText} succeeded`, details, data, durationMs };
}

function countsOf(errors: ReadonlyMap<string, ErrorsOfCode>): Map<string, number> {
  return new Map([...errors].map(([name, entry]) => [name, entry.count]));
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
}
