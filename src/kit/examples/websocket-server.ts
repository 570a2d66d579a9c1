/**
 * A Node `ws` backend behind Switchyard, with the shutdown docs/kit-websocket.md describes: on
 * SIGTERM it reports NOT_SERVING on its health port (so no proxy sends it new sessions), waits the
 * drain delay, stops accepting, closes every open session with 1001 spread over a window (so the
 * clients' reconnects do not arrive at once), waits for them to close up to a deadline, and exits.
 *
 *   node src/kit/examples/websocket-server.ts --name a --port 8080 --health-port 8081 \
 *     --drain-delay-ms 5000 --close-window-ms 5000 --deadline-ms 20000
 *
 * Every option also reads an environment variable (NAME, HOST, PORT, HEALTH_PORT, DRAIN_DELAY_MS,
 * CLOSE_WINDOW_MS, SHUTDOWN_DEADLINE_MS). Port 0 lets the OS pick; the "listening" log line names
 * the ports bound. Messages are echoed back; the 101 names the backend (`x-backend`). Needs the
 * `ws` package (a dependency of your service, not of Switchyard).
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { startHealthServer } from '../server/index.ts';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: process.env.NAME ?? 'chat' },
    host: { type: 'string', default: process.env.HOST ?? '0.0.0.0' },
    port: { type: 'string', default: process.env.PORT ?? '8080' },
    'health-port': { type: 'string', default: process.env.HEALTH_PORT ?? '8081' },
    'drain-delay-ms': { type: 'string', default: process.env.DRAIN_DELAY_MS ?? '5000' },
    'close-window-ms': { type: 'string', default: process.env.CLOSE_WINDOW_MS ?? '5000' },
    'deadline-ms': { type: 'string', default: process.env.SHUTDOWN_DEADLINE_MS ?? '20000' },
  },
});

const number = (name: keyof typeof values): number => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: expected a number ≥ 0, got ${values[name]}`);
  return value;
};

const logger = pino({ base: { name: values.name, pid: process.pid } }, pino.destination({ dest: 1, sync: true }));
const wss = new WebSocketServer({ host: values.host!, port: number('port'), perMessageDeflate: false });
wss.on('headers', (headers) => headers.push(`x-backend: ${values.name}`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
const health = await startHealthServer({ address: values.host!, port: number('health-port') });

let stopping = false;
process.once('SIGTERM', () => void shutDown());
process.once('SIGINT', () => void shutDown());

async function shutDown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const deadline = setTimeout(() => {
    logger.warn({ open: wss.clients.size }, 'shutdown deadline: dropping the sessions left');
    for (const ws of wss.clients) ws.terminate();
    process.exit(0);
  }, number('deadline-ms'));
  deadline.unref();
  // 1. No new sessions: the proxies' health checks (and kubelet's readiness) see NOT_SERVING.
  health.setAllNotServing();
  logger.info({ open: wss.clients.size, drain_delay_ms: number('drain-delay-ms') }, 'shutdown: NOT_SERVING; open sessions carry on during the drain delay');
  await sleep(number('drain-delay-ms'));
  // 2. Stop accepting; open sessions stay.
  wss.close();
  // 3. Close each session with 1001, spread over the window: clients reconnect elsewhere, not all in the same instant.
  const sessions = [...wss.clients];
  const window = number('close-window-ms');
  logger.info({ open: sessions.length, close_window_ms: window }, 'shutdown: closing sessions with 1001');
  await Promise.all(sessions.map(async (ws: WebSocket, i) => {
    await sleep(sessions.length > 1 ? (window * i) / sessions.length : 0);
    ws.close(1001, 'server shutting down');
  }));
  // 4. Wait for the close handshakes, then leave.
  while (wss.clients.size > 0) await sleep(50);
  await health.close();
  logger.info('shutdown: every session closed');
  process.exit(0);
}

logger.info({ port: (wss.address() as { port: number }).port, health_port: health.port }, 'listening');
