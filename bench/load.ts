/**
 * Load drivers, each running its generator as a separate process and
 * returning its parsed result: h2load (closed loop), bench/open-loop.ts
 * (fixed-rate latency, and a closed-loop fallback without h2load),
 * bench/stream-load.ts (server streams) and bench/idle-conns.ts. A
 * generator that overruns its time by 30 s is killed and the run fails.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { spawnChild, type Child } from './proc.ts';
import type { Percentiles } from './stats.ts';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export interface ClosedLoopResult {
  rps: number;
  succeeded: number;
  failed: number;
  errored: number;
  /** Which driver produced it: h2load, or the Node fallback (not comparable with h2load figures). */
  driver: 'h2load' | 'node';
}

/** Runs a child to its end (killing it after limitMs) and returns its stdout lines. */
export async function collect(child: Child, limitMs: number, onLine?: (line: string) => void): Promise<string[]> {
  const lines: string[] = [];
  child.onLine((line) => { lines.push(line); onLine?.(line); });
  const timer = setTimeout(() => void child.stop(500), limitMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  await new Promise((resolve) => setImmediate(resolve));
  if (code !== 0) throw new Error(`${child.name} failed (exit ${code ?? signal}): ${child.stderrTail().slice(-500) || lines.slice(-5).join('\n')}`);
  return lines;
}

function lastJson<T>(lines: readonly string[], event: string): T {
  for (const line of [...lines].reverse()) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line) as { event?: string };
    if (parsed.event === event) return parsed as T;
  }
  throw new Error(`no "${event}" line in the generator's output: ${lines.slice(-3).join(' | ')}`);
}

/** The gRPC request h2load sends (EchoRequest{message:"abc"}), written once per run dir. */
export function writeRequestFile(dir: string): string {
  const file = path.join(dir, 'req.bin');
  writeFileSync(file, Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x62, 0x63]));
  return file;
}

/**
 * h2load, many streams over few connections, for `durationMs`. Counts are
 * HTTP-level: h2load does not look at grpc-status, which is why the caller
 * cross-checks them against the backends' own counters.
 */
export async function h2load(binary: string, port: number, options: { connections: number; streams: number; durationMs: number; requestFile: string; tls?: boolean }): Promise<ClosedLoopResult> {
  const args = [
    '-c', String(options.connections), '-m', String(options.streams), '-D', `${options.durationMs}ms`,
    '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', options.requestFile,
    // Over TLS h2load negotiates h2 by ALPN (TLS 1.3 with OpenSSL 3) and does not check the certificate.
    `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/switchyard.demo.v1.Echo/Unary`,
  ];
  const output = (await collect(spawnChild('h2load', binary, args), options.durationMs + 30_000)).join('\n');
  const finished = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(output);
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(output);
  if (!finished || !requests) throw new Error(`cannot parse h2load output:\n${output.slice(-800)}`);
  return { rps: Number(finished[1]), succeeded: Number(requests[1]), failed: Number(requests[2]), errored: Number(requests[3]), driver: 'h2load' };
}

export interface OpenLoopResult {
  sent: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  latencyMs: Percentiles;
  maxSendLagMs: number;
}

/**
 * bench/open-loop.ts at a fixed rate. onStarted gets the epoch ms at which
 * the schedule started (for actions at a point of the run, such as slowing
 * a backend down); samplesFile, if given, receives every RPC's (offset, latency).
 */
export async function openLoop(
  port: number,
  options: { rate: number; durationMs: number; connections: number; samplesFile?: string },
  onStarted?: (epochMs: number) => void,
): Promise<OpenLoopResult> {
  const args = [here('./open-loop.ts'), '--port', String(port), '--rate', String(options.rate), '--duration', String(options.durationMs),
    '--connections', String(options.connections), ...(options.samplesFile ? ['--samples', options.samplesFile] : [])];
  const lines = await collect(spawnChild('open-loop', process.execPath, args), options.durationMs + 30_000, (line) => {
    if (onStarted && line.includes('"started"')) onStarted((JSON.parse(line) as { epochMs: number }).epochMs);
  });
  return lastJson<OpenLoopResult>(lines, 'result');
}

/** The closed-loop fallback when h2load is missing (smoke runs only): bench/open-loop.ts --closed. */
export async function closedLoopNode(port: number, options: { connections: number; streams: number; durationMs: number }): Promise<ClosedLoopResult> {
  const args = [here('./open-loop.ts'), '--port', String(port), '--closed', '--concurrency', String(options.streams),
    '--duration', String(options.durationMs), '--connections', String(options.connections)];
  const result = lastJson<{ rps: number; ok: number; errors: number }>(await collect(spawnChild('closed-loop', process.execPath, args), options.durationMs + 30_000), 'result');
  return { rps: result.rps, succeeded: result.ok, failed: result.errors, errored: 0, driver: 'node' };
}

export interface StreamResult {
  streams: number;
  connections: number;
  seconds: number;
  messagesPerSec: number;
  mbPerSec: number;
  activeStreams: number;
  streamErrors: number;
  errorKinds: Record<string, number>;
}

export async function streamLoad(port: number, options: { streams: number; connections: number; durationMs: number; warmupMs: number }): Promise<StreamResult> {
  const args = [here('./stream-load.ts'), '--port', String(port), '--streams', String(options.streams), '--connections', String(options.connections),
    '--duration', String(options.durationMs), '--warmup', String(options.warmupMs)];
  return lastJson<StreamResult>(await collect(spawnChild('stream-load', process.execPath, args), options.durationMs + options.warmupMs + 30_000), 'result');
}

export interface IdleConnections {
  readonly child: Child;
  /** Resolves once every connection attempt finished: how many are open, how many failed. */
  readonly opened: Promise<{ connections: number; failed: number; firstError: string; ms: number }>;
  /** Open connections as of the opener's last report (once a second). */
  alive(): number;
}

export function idleConnections(port: number, count: number): IdleConnections {
  const child = spawnChild('idle-conns', process.execPath, [here('./idle-conns.ts'), '--port', String(port), '--count', String(count)], { raiseNofile: true });
  let alive = 0;
  const opened = new Promise<{ connections: number; failed: number; firstError: string; ms: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('idle-conns: connections not open after 120 s')), 120_000);
    child.onLine((line) => {
      const event = JSON.parse(line) as { event: string; connections: number; failed: number; firstError: string; ms: number };
      alive = event.connections;
      if (event.event === 'open') { clearTimeout(timer); resolve(event); }
    });
    void child.exited.then(() => { clearTimeout(timer); reject(new Error(`idle-conns exited: ${child.stderrTail()}`)); });
  });
  return { child, opened, alive: () => alive };
}
