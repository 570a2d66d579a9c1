/**
 * Opens `count` idle HTTP/2 client connections to 127.0.0.1:port and holds
 * them until killed, for measuring what an idle connection costs the proxy.
 * A connection counts as open once the server's SETTINGS arrived (the
 * server has then set up its HTTP/2 session, not only accepted the socket).
 *
 *   node bench/idle-conns.ts --port P [--count 10000] [--parallel 200]
 *
 * stdout: {"event":"open","connections":N,"failed":F,"ms":T} once all
 * attempts finished, then {"event":"alive","connections":N} every second.
 * Needs `count` + a few file descriptors (ulimit -n).
 */
import * as http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string' }, count: { type: 'string', default: '10000' }, parallel: { type: 'string', default: '200' } },
});
const port = Number(values.port);
const count = Number(values.count);

const sessions: http2.ClientHttp2Session[] = [];
let failed = 0;
let firstError = '';

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => { failed++; firstError ||= 'no SETTINGS within 10 s'; session.destroy(); resolve(); }, 10_000);
    session.once('remoteSettings', () => { clearTimeout(timer); sessions.push(session); resolve(); });
    session.once('error', (error: NodeJS.ErrnoException) => { clearTimeout(timer); failed++; firstError ||= error.code ?? error.message; resolve(); });
  });
}

const started = performance.now();
let next = 0;
// A bounded number of handshakes in flight: 10,000 at once would overflow the listen backlog.
await Promise.all(Array.from({ length: Number(values.parallel) }, async () => {
  while (next < count) {
    next++;
    await openOne();
  }
}));
const alive = () => sessions.filter((s) => !s.closed && !s.destroyed).length;
process.stdout.write(`${JSON.stringify({ event: 'open', connections: alive(), failed, firstError, ms: Math.round(performance.now() - started) })}\n`);
setInterval(() => process.stdout.write(`${JSON.stringify({ event: 'alive', connections: alive() })}\n`), 1000);
process.on('SIGTERM', () => process.exit(0));
