/**
 * An open-loop gRPC load generator (its own process, so that its CPU and
 * event loop are not the orchestrator's). Unary RPCs are sent on a fixed
 * schedule — the i-th at start + i/rate — over a few node:http2 connections,
 * whatever the target does, and each RPC's latency is measured from its
 * SCHEDULED send time, not from when it was actually sent: a stall in the
 * target (or in this process) shows up in the latency of every RPC that
 * should have been sent during it (no coordinated omission).
 *
 *   node bench/open-loop.ts --port P [--rate 2000] [--duration 5000] [--connections 4] [--samples FILE]
 *   node bench/open-loop.ts --port P --closed [--concurrency 32] [--duration 5000] [--connections 4]
 *
 * --closed is the closed-loop fallback for machines without h2load: each
 * connection keeps `concurrency` RPCs in flight for `duration` ms.
 *
 * stdout: {"event":"started","epochMs":…} when the schedule starts, then
 * {"event":"result",…} (counts, errors by kind, latency percentiles in ms).
 * --samples FILE gets every RPC as two float64s: scheduled offset from start
 * (ms) and latency (ms, -1 for an error), for time-windowed analysis.
 *
 * An RPC is an error if grpc-status (trailers, or headers of a trailers-only
 * answer) is missing or not 0, if the stream is reset, or if it is still
 * unanswered `drain-timeout` ms after the last send.
 */
import * as http2 from 'node:http2';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { percentiles } from './stats.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    rate: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '5000' },
    connections: { type: 'string', default: '4' },
    path: { type: 'string', default: '/switchyard.demo.v1.Echo/Unary' },
    samples: { type: 'string' },
    closed: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '32' },
    'drain-timeout': { type: 'string', default: '5000' },
  },
});
const port = Number(values.port);
const rate = Number(values.rate);
const durationMs = Number(values.duration);
const connectionCount = Number(values.connections);

// EchoRequest { message: "abc" }, length-prefixed: the same bytes h2load sends.
const REQUEST = Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x62, 0x63]);
const HEADERS = { ':method': 'POST', ':path': values.path!, 'content-type': 'application/grpc', te: 'trailers' };

const sessions: http2.ClientHttp2Session[] = [];
function connectOne(): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 << 20 } });
  session.on('error', () => {}); // counted per RPC through the streams' outcome
  return session;
}
/** A live session for the n-th RPC, replacing one that was closed (e.g. GOAWAY). */
function sessionFor(n: number): http2.ClientHttp2Session {
  const index = n % sessions.length;
  let session = sessions[index]!;
  if (session.closed || session.destroyed) sessions[index] = session = connectOne();
  return session;
}

const errorKinds = new Map<string, number>();
function countError(kind: string): void {
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
}

/** Sends one RPC; calls back once with the time it ended and its error kind, or undefined for OK. */
function rpc(n: number, done: (endedAt: number, error: string | undefined) => void): void {
  let status: string | undefined;
  let endedAt = 0;
  let stream: http2.ClientHttp2Stream;
  try {
    stream = sessionFor(n).request(HEADERS, { endStream: false });
  } catch (error) {
    return done(performance.now(), `request failed: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  stream.on('response', (headers) => {
    const value = headers['grpc-status'];
    if (value !== undefined) { status = String(value); endedAt = performance.now(); }
  });
  stream.on('trailers', (trailers) => { status = String(trailers['grpc-status']); endedAt = performance.now(); });
  stream.on('error', () => {});
  stream.resume();
  stream.on('close', () => {
    const now = performance.now();
    if (stream.rstCode !== undefined && stream.rstCode !== 0) done(now, `stream reset ${stream.rstCode}`);
    else if (status === undefined) done(now, 'no grpc-status');
    else if (status !== '0') done(endedAt, `grpc-status ${status}`);
    else done(endedAt, undefined);
  });
  stream.end(REQUEST);
}

function emit(event: object): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

async function warmUp(): Promise<void> {
  for (let i = 0; i < connectionCount; i++) sessions.push(connectOne());
  // A few RPCs per connection: connections are established and both sides' SETTINGS exchanged before timing starts.
  const rpcs = Promise.all(Array.from({ length: connectionCount * 4 }, (_, n) => new Promise<void>((resolve) => rpc(n, () => resolve()))));
  // A target that never answers must not hang the bench here: its RPCs will be counted as errors in the run itself.
  await Promise.race([rpcs, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
}

async function openLoop(): Promise<void> {
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const interval = 1000 / rate;
  const offsets = new Float64Array(total);
  const latencies = new Float64Array(total).fill(Number.NaN);
  let sent = 0;
  let finished = 0;
  let maxLagMs = 0;
  const start = performance.now();
  emit({ event: 'started', epochMs: performance.timeOrigin + start });
  let resolveAll!: () => void;
  const allDone = new Promise<void>((resolve) => { resolveAll = resolve; });
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + sent * interval <= now) {
      const n = sent++;
      const scheduled = start + n * interval;
      offsets[n] = scheduled - start;
      maxLagMs = Math.max(maxLagMs, now - scheduled);
      rpc(n, (endedAt, error) => {
        if (error) { latencies[n] = -1; countError(error); } else latencies[n] = endedAt - scheduled;
        if (++finished === total) resolveAll();
      });
    }
    // Timers have ~1 ms granularity: sleep until the next send is due; RPCs that fell due meanwhile go out together, timed from their schedule.
    if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
  };
  tick();
  const drain = setTimeout(resolveAll, durationMs + Number(values['drain-timeout']));
  await allDone;
  clearTimeout(drain);
  const unfinished = total - finished;
  if (unfinished > 0) errorKinds.set('unanswered at end', unfinished);
  const ok = Array.from(latencies).filter((l) => l >= 0);
  if (values.samples) {
    const pairs = new Float64Array(total * 2);
    for (let i = 0; i < total; i++) { pairs[2 * i] = offsets[i]!; pairs[2 * i + 1] = Number.isNaN(latencies[i]!) ? -1 : latencies[i]!; }
    writeFileSync(values.samples, Buffer.from(pairs.buffer));
  }
  emit({
    event: 'result', mode: 'open', rate, durationMs, sent: total, ok: ok.length, errors: total - ok.length,
    errorKinds: Object.fromEntries(errorKinds), latencyMs: percentiles(ok), maxSendLagMs: maxLagMs,
  });
}

async function closedLoop(): Promise<void> {
  const concurrency = Number(values.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + durationMs;
  emit({ event: 'started', epochMs: performance.timeOrigin + start });
  let n = 0;
  const worker = (connection: number) => new Promise<void>((resolve) => {
    const next = () => {
      if (performance.now() >= end) return resolve();
      const sentAt = performance.now();
      rpc(connection + connectionCount * n++, (endedAt, error) => {
        if (error) { errors++; countError(error); } else if (endedAt <= end) latencies.push(endedAt - sentAt);
        next();
      });
    };
    next();
  });
  await Promise.all(Array.from({ length: connectionCount * concurrency }, (_, i) => worker(i % connectionCount)));
  const seconds = (performance.now() - start) / 1000;
  emit({
    event: 'result', mode: 'closed', durationMs, ok: latencies.length, errors, errorKinds: Object.fromEntries(errorKinds),
    rps: latencies.length / seconds, latencyMs: percentiles(latencies),
  });
}

await warmUp();
errorKinds.clear();
await (values.closed ? closedLoop() : openLoop());
for (const session of sessions) session.destroy();
process.exit(0);
