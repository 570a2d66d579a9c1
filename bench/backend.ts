/**
 * A fast gRPC backend for benchmarks, on node:http2 without grpc-js, so that
 * backends are not what limits a proxy's measured throughput. It answers
 * every unary call with a fixed small message, streams on ServerStream, and
 * has two control paths (GET, not gRPC): `/_stats` (RPC count as JSON) and
 * `/_slow?ms=N` (add N ms to every answer from now on).
 *
 *   node bench/backend.ts --port 0 --name b0     prints {"name":"b0","port":1234} once listening
 */
import * as http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, name: { type: 'string', default: 'backend' }, host: { type: 'string', default: '127.0.0.1' } } });

/** A gRPC length-prefixed message: flag 0, 4-byte length, then the bytes. */
function frame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

// EchoResponse { backend = 2: name } encoded by hand: tag 0x12, length, bytes.
const nameBytes = Buffer.from(values.name!);
const UNARY_RESPONSE = frame(Buffer.concat([Buffer.from([0x12, nameBytes.length]), nameBytes]));
const STREAM_MESSAGE = frame(Buffer.concat([Buffer.from([0x0a, 0x80, 0x08]), Buffer.alloc(1024, 0x61)])); // payload: 1 KiB
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };

let rpcs = 0;
let delayMs = 0;

const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000, initialWindowSize: 1 << 20 } });
server.on('session', (session) => session.setLocalWindowSize(16 << 20));
server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
  stream.on('error', () => {});
  const path = headers[':path'] ?? '';
  if (headers[':method'] === 'GET') return control(stream, path);
  rpcs++;
  if (path.endsWith('/ServerStream')) return serverStream(stream, Number(headers['x-stream-messages'] ?? 1000));
  stream.on('data', () => {});
  stream.once('end', () => {
    if (delayMs > 0) setTimeout(() => answer(stream), delayMs);
    else answer(stream);
  });
});

function answer(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed) return;
  stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  stream.end(UNARY_RESPONSE);
}

function serverStream(stream: http2.ServerHttp2Stream, messages: number): void {
  stream.on('data', () => {});
  stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  let sent = 0;
  // Stop as soon as the stream is closed (e.g. reset by the peer), not only once destroyed.
  const gone = () => stream.closed || stream.destroyed;
  const pump = () => {
    while (sent < messages && !gone()) {
      sent++;
      // Resume from the event loop, not from inside 'drain': with ~1000 streams
      // (nginx: one upstream connection each) drain -> write -> drain chains kept
      // the backend busy without reading its sockets, so it never saw the peer
      // close and pumped ~70% CPU into dead connections long after the test ended.
      if (!stream.write(STREAM_MESSAGE)) return void stream.once('drain', () => setImmediate(pump));
    }
    if (!gone()) stream.end();
  };
  pump();
}

function control(stream: http2.ServerHttp2Stream, path: string): void {
  const url = new URL(path, 'http://backend');
  if (url.pathname === '/_slow') delayMs = Number(url.searchParams.get('ms') ?? 0);
  stream.respond({ ':status': 200, 'content-type': 'application/json' });
  stream.end(JSON.stringify({ name: values.name, rpcs, delayMs }));
}

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ name: values.name, port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
