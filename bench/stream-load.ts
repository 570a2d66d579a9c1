/**
 * A server-streaming load generator (its own process): keeps `streams`
 * concurrent ServerStream RPCs open over `connections` node:http2
 * connections, each asking for `messages` messages (header
 * x-stream-messages; the bench backend sends ~1 KiB each), reads everything
 * as fast as it arrives, and replaces a stream that ends. After `warmup` ms
 * it counts gRPC messages (by parsing the 5-byte length prefixes) and bytes
 * for `duration` ms.
 *
 *   node bench/stream-load.ts --port P [--streams 1000] [--connections 10] [--duration 5000] [--warmup 1000] [--messages 1000000]
 *
 * stdout: one JSON line {"event":"result", messagesPerSec, mbPerSec (10^6 bytes
 * of gRPC message data, prefixes included), activeStreams (answered streams
 * open when the window closed), streamErrors, errorKinds, …}.
 */
import * as http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    streams: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '10' },
    duration: { type: 'string', default: '5000' },
    warmup: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '1000000' },
    path: { type: 'string', default: '/switchyard.demo.v1.Echo/ServerStream' },
  },
});
const port = Number(values.port);
const streamCount = Number(values.streams);
const connectionCount = Number(values.connections);

const REQUEST = Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x62, 0x63]);
const HEADERS = {
  ':method': 'POST', ':path': values.path!, 'content-type': 'application/grpc', te: 'trailers', 'x-stream-messages': values.messages!,
};

let messages = 0;
let bytes = 0;
let active = 0;
let opened = 0;
let streamErrors = 0;
let stopping = false;
const errorKinds = new Map<string, number>();

const sessions = Array.from({ length: connectionCount }, () => {
  // 1 MiB per stream and 16 MiB per connection, as Switchyard's listener defaults: the
  // HTTP/2 default of 64 KiB would make this client, not the proxy, the limit.
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 << 20 } });
  session.on('connect', () => session.setLocalWindowSize(16 << 20));
  session.on('error', () => {});
  return session;
});

function countError(kind: string): void {
  streamErrors++;
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
}

/** Opens one stream on connection `index`, and another in its place when it ends (until stopping). */
function open(index: number): void {
  if (stopping) return;
  const session = sessions[index]!;
  if (session.closed || session.destroyed) return countError('connection closed');
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session.request(HEADERS, { endStream: false });
  } catch (error) {
    return countError(`request failed: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  opened++;
  let answered = false;
  let status: string | undefined;
  // Parser state for the gRPC framing: header bytes seen so far, then body bytes left.
  const header = Buffer.alloc(5);
  let headerHave = 0;
  let bodyLeft = 0;
  stream.on('response', (headers) => {
    answered = true;
    active++;
    if (headers['grpc-status'] !== undefined) status = String(headers['grpc-status']);
  });
  stream.on('trailers', (trailers) => { status = String(trailers['grpc-status']); });
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (bodyLeft > 0) {
        const take = Math.min(bodyLeft, chunk.length - i);
        bodyLeft -= take;
        i += take;
        if (bodyLeft === 0) messages++;
        continue;
      }
      const take = Math.min(5 - headerHave, chunk.length - i);
      chunk.copy(header, headerHave, i, i + take);
      headerHave += take;
      i += take;
      if (headerHave === 5) {
        headerHave = 0;
        bodyLeft = header.readUInt32BE(1);
        if (bodyLeft === 0) messages++;
      }
    }
  });
  stream.on('error', () => {});
  stream.on('close', () => {
    if (answered) active--;
    if (stopping) return;
    if (stream.rstCode !== undefined && stream.rstCode !== 0) countError(`stream reset ${stream.rstCode}`);
    else if (status !== '0') countError(`grpc-status ${status ?? 'missing'}`);
    open(index);
  });
  stream.end(REQUEST);
}

for (let i = 0; i < streamCount; i++) open(i % connectionCount);
await sleep(Number(values.warmup));
const startMessages = messages;
const startBytes = bytes;
const start = performance.now();
await sleep(Number(values.duration));
const seconds = (performance.now() - start) / 1000;
const windowMessages = messages - startMessages;
const windowBytes = bytes - startBytes;
const activeStreams = active;
stopping = true;
for (const session of sessions) session.destroy();
process.stdout.write(`${JSON.stringify({
  event: 'result', streams: streamCount, connections: connectionCount, seconds, messages: windowMessages, bytes: windowBytes,
  messagesPerSec: windowMessages / seconds, mbPerSec: windowBytes / 1e6 / seconds,
  activeStreams, streamsOpened: opened, streamErrors, errorKinds: Object.fromEntries(errorKinds),
})}\n`);
process.exit(0);
