/**
 * grpc.health.v1.Health/Check on Switchyard's own health port, for kubelet's
 * gRPC probes. It answers SERVING while the proxy is ready and NOT_SERVING
 * otherwise, whatever service name is asked about: per-service answers would
 * tell a stranger which services sit behind the proxy. Watch is not offered.
 */
import * as http2 from 'node:http2';
import { HEALTH_CHECK_PATH, ServingStatus } from '../health/grpc-health-probe.ts';
import { Status } from '../grpc/status.ts';
import { respondWithStatus } from '../grpc/respond.ts';
import type { Readiness } from './readiness.ts';

/** A HealthCheckRequest is a service name; anything near this size is not a probe. */
const MAX_REQUEST_BYTES = 1024;

/**
 * An HTTP/2 server, never bound itself: the health endpoint hands it the
 * connections that speak HTTP/2. A session that receives nothing for `idleMs`
 * (a preface and then silence, or a probe's connection left open) is closed.
 */
export function createGrpcHealthServer(readiness: () => Readiness, idleMs: number): http2.Http2Server {
  const server = http2.createServer({
    settings: { maxConcurrentStreams: 10, maxHeaderListSize: 4096, enablePush: false, initialWindowSize: 65_535 },
    // Tiny limits: a probe needs one small stream at a time.
    maxSessionMemory: 1,
    maxHeaderListPairs: 32,
  });
  server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] !== HEALTH_CHECK_PATH) {
      stream.resume();
      return respondWithStatus(stream, Status.UNIMPLEMENTED, '');
    }
    let received = 0;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_REQUEST_BYTES) respondWithStatus(stream, Status.RESOURCE_EXHAUSTED, '');
    });
    stream.once('end', () => {
      if (stream.headersSent || stream.destroyed) return;
      const status = readiness() === 'ready' ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // HealthCheckResponse { status = field 1, varint }, in one gRPC frame.
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, status]));
    });
  });
  server.on('sessionError', () => {});
  server.on('session', (session) => {
    session.on('error', () => {});
    session.setTimeout(idleMs, () => session.destroy());
  });
  return server;
}
