/**
 * Switchyard's own readiness and liveness endpoint, for kubelet probes and
 * outer load balancers: HTTP/1.1 (what kubelet's httpGet probe speaks) on a
 * listener of its own, never on a serving port.
 *
 *   GET /ready  200 "ready" while serving; 503 "starting" before the first
 *               listener is up, 503 "draining" once a drain has begun
 *   GET /live   200 "live" while the event loop runs
 *   anything else 404
 *   grpc.health.v1.Health/Check over h2c on the same port (kubelet's grpc probe): SERVING or NOT_SERVING
 *
 * It is reachable by whoever can reach its port, so it says nothing but the
 * status word and holds almost nothing per request: small header limits,
 * short timeouts, no request bodies. It also holds few connections: at most
 * max_connections (more are closed as they arrive), none idle for longer than
 * idle_timeout, and none at all once the process comes within a reserve of its
 * open-file limit, so that a flood of connections here cannot take the
 * descriptors the serving listeners and upstream connections need.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { descriptorGate } from '../security/open-files.ts';
import { createGrpcHealthServer } from './grpc-health.ts';

/** The first bytes of every HTTP/2 connection with prior knowledge (RFC 9113 §3.4). */
const HTTP2_PREFACE_START = 'PRI ';

export type { Readiness } from './readiness.ts';
import type { Readiness } from './readiness.ts';
import { listen } from '../listener/listen.ts';

export interface HealthEndpointConfig {
  readonly address: string;
  readonly port: number;
  /** Connections open at once; more are closed at once. Default DEFAULT_MAX_CONNECTIONS. */
  readonly max_connections?: number;
  /** A connection that receives nothing this long is closed, ms. Default DEFAULT_IDLE_TIMEOUT_MS. */
  readonly idle_timeout?: number;
}

/** The config's defaults (src/admin/admin-schema.ts), for endpoints started from code. */
export const DEFAULT_MAX_CONNECTIONS = 100;
export const DEFAULT_IDLE_TIMEOUT_MS = 5_000;

export interface HealthEndpoint {
  /** The bound address; the real port when the config asked for port 0. */
  readonly address: AddressInfo;
  /** Stops listening and closes every connection at once; probes need no grace. */
  close(): Promise<void>;
}

/** Probes send a request line and a few headers; 4 KiB leaves room and bounds what a stranger can make us hold. */
const MAX_HEADER_BYTES = 4 * 1024;
const MAX_HEADERS = 32;
/** kubelet's default probe timeout is 1 s; a client slower than these is not a probe. */
const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** Probes reuse a connection for a while; after this many requests they open a fresh one. */
const MAX_REQUESTS_PER_SOCKET = 100;

/**
 * Binds the endpoint and resolves once it listens. `readiness` is asked on
 * every /ready request, so the answer changes the moment the proxy's state does.
 */
export async function startHealthEndpoint(config: HealthEndpointConfig, readiness: () => Readiness): Promise<HealthEndpoint> {
  const descriptors = descriptorGate();
  const maxConnections = config.max_connections ?? DEFAULT_MAX_CONNECTIONS;
  const idleMs = config.idle_timeout ?? DEFAULT_IDLE_TIMEOUT_MS;
  const server = http.createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, idleMs),
      requestTimeout: REQUEST_TIMEOUT_MS,
      // Between requests on a kept-alive HTTP/1.1 connection.
      keepAliveTimeout: idleMs,
      joinDuplicateHeaders: false,
    },
    (request, response) => {
      response.sendDate = false;
      const [status, word] = answer(request, readiness);
      const body = request.method === 'HEAD' ? undefined : word;
      response.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(word),
        'cache-control': 'no-store',
        // A request that came with a body is not read; the connection cannot be reused after it.
        ...(hasBody(request) && { connection: 'close' }),
      });
      response.end(body);
    },
  );
  server.maxHeadersCount = MAX_HEADERS;
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
  // Malformed or oversized requests: Node's default answer (400, 408 or 431, then close) is the right one.

  // One port, two protocols: the first bytes tell an HTTP/2 (gRPC) probe from an HTTP/1.1 one.
  const grpcHealth = createGrpcHealthServer(readiness, idleMs);
  const sockets = new Set<net.Socket>();
  const front = net.createServer((socket) => {
    // Its descriptor is already taken; closing it at once gives it back.
    if (sockets.size >= maxConnections || !descriptors.admit()) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setTimeout(Math.min(HEADERS_TIMEOUT_MS, idleMs), () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(first);
      if (first.subarray(0, HTTP2_PREFACE_START.length).toString('latin1') === HTTP2_PREFACE_START) {
        // node:http2 takes the socket over and reads what was unshifted itself; resuming here would steal bytes.
        grpcHealth.emit('connection', socket);
      } else {
        server.emit('connection', socket);
        socket.resume();
      }
    });
  });

  const address = await listen(front, { port: config.port, host: config.address });
  front.on('error', () => {});

  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        front.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function answer(request: http.IncomingMessage, readiness: () => Readiness): [number, string] {
  if (hasBody(request)) return [413, 'no body'];
  if (request.method !== 'GET' && request.method !== 'HEAD') return [404, 'not found'];
  switch (request.url) {
    case '/ready': {
      const state = readiness();
      return state === 'ready' ? [200, 'ready'] : [503, state];
    }
    case '/live':
      return [200, 'live'];
    default:
      return [404, 'not found'];
  }
}

function hasBody(request: http.IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
