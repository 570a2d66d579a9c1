/**
 * The smallest node:http2 gRPC forwarder: no routing, no limits, no retries,
 * round robin over fixed backends. It is the floor for any proxy built on
 * node:http2, and docs/performance.md compares Switchyard's CPU per RPC with it.
 *
 *   node bench/minimal-forwarder.ts PORT BACKEND_PORT...
 */
import * as http2 from 'node:http2';

const [listenPort, ...backendPorts] = process.argv.slice(2).map(Number);
const sessions = backendPorts.map((port) => http2.connect(`http://127.0.0.1:${port}`));
let next = 0;

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (downstream: http2.ServerHttp2Stream, headers) => {
  const upstream = sessions[next++ % sessions.length]!.request(headers);
  let trailers: http2.IncomingHttpHeaders = {};
  downstream.on('data', (chunk) => upstream.write(chunk));
  downstream.on('end', () => upstream.end());
  upstream.on('response', (response) => downstream.respond(response, { waitForTrailers: true }));
  upstream.on('data', (chunk) => downstream.write(chunk));
  upstream.on('trailers', (received) => { trailers = received; });
  upstream.on('end', () => downstream.end());
  downstream.on('wantTrailers', () => downstream.sendTrailers(trailers));
  upstream.on('error', () => {});
  downstream.on('error', () => {});
});
server.listen(listenPort ?? 0, '127.0.0.1');
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
