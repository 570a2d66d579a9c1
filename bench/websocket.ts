/**
 * WebSocket through Switchyard against HAProxy (`mode http`, `timeout
 * tunnel`), in front of the same two `ws` echo backends:
 *
 * - idle sessions: RSS of each proxy before and with 10,000 open idle
 *   sessions (scaled down to what the open-file limit allows: a session
 *   holds two sockets in the proxy), and so its memory per session;
 * - echo: messages per second over 50 sessions, 8 messages in flight on
 *   each, through each proxy and to one backend directly, with each target's
 *   CPU while it ran.
 *
 * run.ts calls websocketScenario(); this file is also the script of its child
 * processes (the backends and the load), by its first argument:
 *
 *   node bench/websocket.ts backend                 a ws echo server; prints {"event":"listening","port":P}
 *   node bench/websocket.ts idle --url U --count N  opens N sessions and holds them
 *   node bench/websocket.ts echo --url U --sessions S --depth D --size B --warmup-ms W --ms M
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import type { Context, Params } from './context.ts';
import { num, ratio, table } from './markdown.ts';
import { cpuSeconds, nofileHardLimit, rssMiB } from './metrics.ts';
import { spawnChild, startWithRetry, type Child } from './proc.ts';

const HERE = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../dist/bin/switchyard.js', import.meta.url));

/** Per mode: sessions held idle, and the echo run. */
const SIZES: Record<Params['mode'], { sessions: number; echoSessions: number; depth: number; size: number; warmupMs: number; echoMs: number; settleMs: number }> = {
  full: { sessions: 10_000, echoSessions: 50, depth: 8, size: 128, warmupMs: 1000, echoMs: 5000, settleMs: 2000 },
  quick: { sessions: 10_000, echoSessions: 50, depth: 8, size: 128, warmupMs: 500, echoMs: 2000, settleMs: 1000 },
  smoke: { sessions: 200, echoSessions: 5, depth: 2, size: 128, warmupMs: 100, echoMs: 300, settleMs: 200 },
};

export interface WebSocketRow {
  target: string;
  idleRssMiB?: number;
  sessions?: number;
  requested?: number;
  failed?: number;
  rssWithSessionsMiB?: number;
  kibPerSession?: number;
  echoMessagesPerSec?: number;
  echoErrors?: number;
  /** The target's CPU during the echo run, percent of one core… */
  echoCpuPercent?: number;
  /** …and per message echoed (a message crosses the target twice: there and back). */
  echoCpuMicrosPerMessage?: number;
  note?: string;
}

export interface WebSocketResult {
  rows: WebSocketRow[];
  note: string;
}

interface WsTarget {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** The scenario: two ws backends, then Switchyard and HAProxy in turn (each alone on the machine), and the backend direct. */
export async function websocketScenario(ctx: Context): Promise<WebSocketResult> {
  const size = SIZES[ctx.params.mode];
  const dir = path.join(ctx.dir, 'websocket');
  mkdirSync(dir, { recursive: true });
  const backends = await Promise.all([0, 1].map((i) => startBackend(`ws-backend-${i}`)));
  const rows: WebSocketRow[] = [];
  // A session holds a socket to the client and one to the backend in the proxy: two descriptors.
  const limit = nofileHardLimit();
  const sessions = Math.min(size.sessions, Math.floor((limit - 200) / 2));
  const note = sessions < size.sessions ? `scaled down from ${num(size.sessions)} to ${num(sessions)} sessions: the open-file limit is ${num(limit)} and a session holds two sockets in a proxy` : `${num(sessions)} sessions`;
  try {
    const starts: [string, () => Promise<WsTarget>][] = [
      ['switchyard', () => startSwitchyardWs(backends, dir, sessions)],
      ...(ctx.tools.haproxy ? [['haproxy', () => startHaproxyWs(ctx.tools.haproxy!, backends, dir, sessions)] as [string, () => Promise<WsTarget>]] : []),
    ];
    for (const [name, start] of starts) {
      const row: WebSocketRow = { target: name };
      rows.push(row);
      let target: WsTarget | undefined;
      try {
        target = await start();
        await ctx.quiet();
        await idleSessions(target, sessions, size.settleMs, row, ctx);
        await echo(target, size, row, ctx);
      } catch (error) {
        ctx.fail(`websocket ${name}`, error);
      } finally {
        await target?.stop();
      }
    }
    const direct: WebSocketRow = { target: 'direct' };
    rows.push(direct);
    await echo({ name: 'direct', port: backends[0]!.port, pid: backends[0]!.child.pid, stop: async () => {} }, size, direct, ctx).catch((error: unknown) => ctx.fail('websocket direct', error));
  } finally {
    await Promise.all(backends.map((backend) => backend.child.stop()));
  }
  return { rows, note };
}

async function idleSessions(target: WsTarget, count: number, settleMs: number, row: WebSocketRow, ctx: Context): Promise<void> {
  await sleep(settleMs);
  row.idleRssMiB = rssMiB(target.pid);
  row.requested = count;
  const opener = spawnChild('ws-idle', process.execPath, [HERE, 'idle', '--url', `ws://127.0.0.1:${target.port}/idle`, '--count', String(count)], { raiseNofile: true });
  try {
    const opened = await event<{ sessions: number; failed: number; firstError: string; ms: number }>(opener, 'open', 180_000);
    await sleep(settleMs);
    row.sessions = opened.sessions;
    row.failed = opened.failed;
    row.rssWithSessionsMiB = rssMiB(target.pid);
    row.kibPerSession = ((row.rssWithSessionsMiB - row.idleRssMiB) * 1024) / Math.max(1, opened.sessions);
    if (opened.failed > 0) row.note = `${opened.failed} sessions failed to open (${opened.firstError})`;
    ctx.log(`websocket ${target.name}: ${num(row.idleRssMiB, 1)} MiB idle, ${num(row.rssWithSessionsMiB, 1)} MiB with ${num(opened.sessions)} idle sessions (${num(row.kibPerSession, 1)} KiB each, opened in ${opened.ms} ms)`);
  } finally {
    await opener.stop();
  }
  // The sessions close with the opener; let the proxy settle before the echo run.
  await sleep(settleMs);
}

async function echo(target: WsTarget, size: (typeof SIZES)[Params['mode']], row: WebSocketRow, ctx: Context): Promise<void> {
  await ctx.quiet();
  const driver = spawnChild('ws-echo', process.execPath, [HERE, 'echo', '--url', `ws://127.0.0.1:${target.port}/echo`, '--sessions', String(size.echoSessions), '--depth', String(size.depth), '--size', String(size.size), '--warmup-ms', String(size.warmupMs), '--ms', String(size.echoMs)]);
  try {
    await event(driver, 'measuring', 30_000);
    const cpuBefore = cpuSeconds(target.pid);
    const started = performance.now();
    const done = await event<{ messagesPerSec: number; errors: number }>(driver, 'done', size.echoMs + 30_000);
    const cpu = cpuSeconds(target.pid) - cpuBefore;
    row.echoCpuPercent = (cpu / ((performance.now() - started) / 1000)) * 100;
    row.echoCpuMicrosPerMessage = (cpu * 1e6) / (done.messagesPerSec * (size.echoMs / 1000));
    row.echoMessagesPerSec = done.messagesPerSec;
    row.echoErrors = done.errors;
    ctx.log(`websocket echo ${target.name}: ${num(done.messagesPerSec)} messages/s, ${done.errors} errors, target CPU ${num(row.echoCpuPercent)}%`);
  } finally {
    await driver.stop();
  }
}

/** The latest.md section. */
export function websocketMarkdown(result: WebSocketResult | undefined): string[] {
  if (!result) return ['## WebSocket', '', 'not run', ''];
  const haproxy = result.rows.find((row) => row.target === 'haproxy');
  const rows = result.rows.map((row) => [
    row.target,
    row.idleRssMiB === undefined ? '–' : `${num(row.idleRssMiB, 1)} MiB`,
    row.sessions === undefined ? '–' : `${num(row.sessions)} of ${num(row.requested)}`,
    row.rssWithSessionsMiB === undefined ? '–' : `${num(row.rssWithSessionsMiB, 1)} MiB`,
    num(row.kibPerSession, 1),
    haproxy && row !== haproxy && row.kibPerSession !== undefined ? ratio(row.kibPerSession / haproxy.kibPerSession!) : '–',
    num(row.echoMessagesPerSec),
    haproxy && row !== haproxy && row.echoMessagesPerSec !== undefined ? ratio(row.echoMessagesPerSec / haproxy.echoMessagesPerSec!) : '–',
    row.echoCpuPercent === undefined ? '–' : `${num(row.echoCpuPercent)}%`,
    num(row.echoCpuMicrosPerMessage, 1),
    haproxy && row !== haproxy && row.echoCpuMicrosPerMessage !== undefined && row.target !== 'direct' ? ratio(row.echoCpuMicrosPerMessage / haproxy.echoCpuMicrosPerMessage!) : '–',
    row.echoErrors === undefined ? '–' : String(row.echoErrors),
  ]);
  return [
    '## WebSocket', '',
    table(['target', 'RSS idle', 'idle sessions', 'RSS with them', 'KiB per session', 'vs HAProxy', 'echo messages/s', 'vs HAProxy', 'CPU (echo)', 'CPU µs per message', 'vs HAProxy', 'echo errors'], rows), '',
    `Two \`ws\` echo backends (one process each). Switchyard: a WebSocket route, \`least_connections\`. HAProxy: \`mode http\`, \`timeout tunnel 1h\`, \`balance leastconn\`, one thread. Idle: ${result.note}, opened by one process, RSS (VmRSS) read after they settled; per session = (with − idle) / sessions. Echo: 50 sessions, 8 binary messages of 128 bytes in flight on each, counted after a warm-up; "direct" is one backend without a proxy (the CPU there is the backend's own). One load process drives every target; with 400 messages in flight, messages/s follows each target's latency as much as its CPU, and moves with the machine's load: the CPU each target spent per message is the steadier figure. Rows' notes: ${result.rows.map((row) => row.note).filter(Boolean).join('; ') || 'none'}.`, '',
  ];
}

// --- Child processes ----------------------------------------------------------------------------

function startBackend(name: string): Promise<{ port: number; child: Child }> {
  const child = spawnChild(name, process.execPath, [HERE, 'backend'], { raiseNofile: true });
  return event<{ port: number }>(child, 'listening', 15_000).then(({ port }) => ({ port, child }));
}

function startSwitchyardWs(backends: readonly { port: number }[], dir: string, sessions: number): Promise<WsTarget> {
  return startWithRetry('switchyard-ws', async (port) => {
    const config = [
      `listeners: [{ name: ws, address: 127.0.0.1, port: ${port}, plaintext: true, max_connections: ${sessions * 2 + 1000} }]`,
      `clusters: [{ name: ws, lb_policy: least_connections, endpoints: [${backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ')}] }]`,
      'websocket: { routes: [{ match: { prefix: / }, cluster: ws }] }',
      'log_level: warn',
      'drain: { delay: 1ms, timeout: 1s }', '',
    ].join('\n');
    const file = path.join(dir, 'switchyard.yaml');
    writeFileSync(file, config);
    const child = spawnChild('switchyard-ws', process.execPath, [CLI, 'run', '--config', file], { raiseNofile: true });
    return { child, value: { name: 'switchyard', port, pid: child.pid, stop: () => child.stop() } };
  });
}

function startHaproxyWs(haproxy: string, backends: readonly { port: number }[], dir: string, sessions: number): Promise<WsTarget> {
  return startWithRetry('haproxy-ws', async (port) => {
    const config = [
      'global',
      '  nbthread 1',
      // It needs two descriptors per connection and refuses to start when the limit is short of that.
      `  maxconn ${sessions}`,
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      // What keeps an upgraded connection open: the tunnel timeout, not the client/server ones.
      '  timeout tunnel 1h',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend be',
      'backend be',
      '  balance leastconn',
      ...backends.map((b, i) => `  server s${i} 127.0.0.1:${b.port}`),
      '',
    ].join('\n');
    const file = path.join(dir, 'haproxy.cfg');
    writeFileSync(file, config);
    const child = spawnChild('haproxy-ws', haproxy, ['-db', '-f', file], { raiseNofile: true });
    return { child, value: { name: 'haproxy', port, pid: child.pid, stop: () => child.stop() } };
  });
}

/** The first stdout line of `child` that is a JSON object with this `event`. */
function event<T>(child: Child, name: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.name}: no "${name}" within ${timeoutMs} ms: ${child.stderrTail()}`)), timeoutMs);
    child.onLine((line) => {
      if (!line.startsWith('{')) return;
      const parsed = JSON.parse(line) as { event?: string };
      if (parsed.event !== name) return;
      clearTimeout(timer);
      resolve(parsed as T);
    });
    void child.exited.then(() => { clearTimeout(timer); reject(new Error(`${child.name} exited before "${name}": ${child.stderrTail()}`)); });
  });
}

const print = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function runBackend(): Promise<void> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, backlog: 4096 });
  server.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  print({ event: 'listening', port: (server.address() as { port: number }).port });
}

async function runIdle(url: string, count: number): Promise<void> {
  const open: WebSocket[] = [];
  let failed = 0;
  let firstError = '';
  let next = 0;
  const started = performance.now();
  const openOne = () => new Promise<void>((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => { open.push(ws); resolve(); });
    ws.once('error', (error) => { failed++; firstError ||= error.message; resolve(); });
  });
  // A bounded number of handshakes at once: 10,000 together would overflow the listen backlog.
  await Promise.all(Array.from({ length: 200 }, async () => {
    while (next < count) {
      next++;
      await openOne();
    }
  }));
  print({ event: 'open', sessions: open.filter((ws) => ws.readyState === WebSocket.OPEN).length, failed, firstError, ms: Math.round(performance.now() - started) });
  process.on('SIGTERM', () => process.exit(0));
  setInterval(() => {}, 60_000);
}

async function runEcho(url: string, sessions: number, depth: number, bytes: number, warmupMs: number, ms: number): Promise<void> {
  const payload = Buffer.alloc(bytes, 0x61);
  let counting = false;
  let stopped = false;
  let received = 0;
  let errors = 0;
  const clients = await Promise.all(Array.from({ length: sessions }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  })));
  for (const ws of clients) {
    ws.on('message', () => {
      if (counting) received++;
      if (!stopped) ws.send(payload, { binary: true });
    });
    ws.on('close', () => { if (!stopped) errors++; });
    for (let i = 0; i < depth; i++) ws.send(payload, { binary: true });
  }
  await sleep(warmupMs);
  print({ event: 'measuring' });
  counting = true;
  const started = performance.now();
  await sleep(ms);
  counting = false;
  const seconds = (performance.now() - started) / 1000;
  stopped = true;
  print({ event: 'done', messagesPerSec: received / seconds, errors });
  for (const ws of clients) ws.terminate();
  process.exit(0);
}

if (import.meta.main) {
  const role = process.argv[2];
  const { values } = parseArgs({
    args: process.argv.slice(3),
    options: {
      url: { type: 'string' }, count: { type: 'string' }, sessions: { type: 'string' }, depth: { type: 'string' }, size: { type: 'string' },
      'warmup-ms': { type: 'string' }, ms: { type: 'string' },
    },
  });
  if (role === 'backend') await runBackend();
  else if (role === 'idle') await runIdle(values.url!, Number(values.count));
  else if (role === 'echo') await runEcho(values.url!, Number(values.sessions), Number(values.depth), Number(values.size), Number(values['warmup-ms']), Number(values.ms));
  else {
    process.stderr.write('usage: node bench/websocket.ts backend | idle --url U --count N | echo --url U --sessions S --depth D --size B --warmup-ms W --ms M\n');
    process.exit(2);
  }
}

