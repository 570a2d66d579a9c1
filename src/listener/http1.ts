/**
 * The HTTP/1.1 side of a listener. A TLS client that negotiates ALPN
 * `http/1.1`, or a cleartext client whose first bytes are not the HTTP/2
 * preface, is handed to Node's HTTP/1.1 server (llhttp parses it; nothing of
 * the HTTP/2 engine is involved). What it serves is the composition's
 * business: WebSocket upgrades and browser protocols register handlers here;
 * without one, a request gets a plain answer saying what the listener does
 * speak, never a hang.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { httpModule } from '../builtins.ts';

export interface Http1Handlers {
  /** A request that is not an upgrade. Answer it (or leave it to the default by returning false). */
  request?(request: http.IncomingMessage, response: http.ServerResponse, listener: string): boolean;
  /** A request with `Upgrade` (WebSocket): the socket is the handler's from here. False: the default answer. */
  upgrade?(request: http.IncomingMessage, socket: Duplex, head: Buffer, listener: string): boolean;
}

/** What the listener keeps of its HTTP/1.1 connections. */
export interface Http1Side {
  /** Takes a client connection that speaks HTTP/1.1; `head` is what was read while telling the protocols apart. */
  accept(socket: Socket, head: Buffer | undefined): void;
  /** Open HTTP/1.1 connections (upgraded ones included until their handler closes them). */
  readonly connectionCount: number;
  /** No new requests on kept-alive connections: idle ones close now, busy ones after their response. */
  goAway(): void;
  /** Closes every connection now. Resolves with how many there were. */
  destroy(): number;
  /** Resolves when every HTTP/1.1 connection has closed. */
  closed(): Promise<void>;
}

/** How long an HTTP/1.1 client may take to send a request's headers (slowloris). */
const HEADERS_TIMEOUT_MS = 10_000;
/** A kept-alive connection with no request for this long is closed. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Request header block bound, bytes: as for HTTP/2 (max_header_list_size), a small multiple of real use. */
const MAX_HEADER_BYTES = 16 << 10;

export function http1Side(listener: string, tls: boolean, handlers: Http1Handlers): Http1Side {
  const sockets = new Set<Socket>();
  let waiters: (() => void)[] = [];
  let goingAway = false;
  // Node's HTTP/1.1 server (and node:http with it) is made at the first HTTP/1.1 client: most listeners never see one.
  let server: http.Server | undefined;
  const serverForConnections = (): http.Server => (server ??= http1Server(listener, tls, handlers, () => goingAway));

  const settle = () => {
    if (sockets.size > 0) return;
    const done = waiters;
    waiters = [];
    for (const resolve of done) resolve();
  };

  return {
    accept(socket, head) {
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        settle();
      });
      if (head !== undefined && head.length > 0) socket.unshift(head);
      // As on HTTP/2 connections: a response's headers and a streamed message are not held back by Nagle.
      socket.setNoDelay(true);
      const http1 = serverForConnections();
      http1.emit('connection', socket);
      socket.resume();
      if (goingAway) http1.closeIdleConnections();
    },
    get connectionCount() {
      return sockets.size;
    },
    goAway() {
      goingAway = true;
      server?.closeIdleConnections();
    },
    destroy() {
      const count = sockets.size;
      for (const socket of sockets) socket.destroy();
      return count;
    },
    closed() {
      return sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

function http1Server(listener: string, tls: boolean, handlers: Http1Handlers, goingAway: () => boolean): http.Server {
  const server = httpModule().createServer({
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: 0,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    maxHeaderSize: MAX_HEADER_BYTES,
  });
  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (goingAway()) response.shouldKeepAlive = false;
    if (handlers.request?.(request, response, listener)) return;
    answerNotServed(response, tls);
  });
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (handlers.upgrade?.(request, socket, head, listener)) return;
    const body = 'No route here takes an upgrade.\n';
    socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  });
  // A malformed request gets 400 and the connection closes (Node's default), without an error event on the process.
  server.on('clientError', (_error: Error, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

/** The answer to an HTTP/1.1 request no handler took: what this listener speaks instead. */
function answerNotServed(response: http.ServerResponse, tls: boolean): void {
  const body = `This listener serves gRPC over HTTP/2; use HTTP/2 (${tls ? 'ALPN h2' : 'h2c with prior knowledge'}).\n`;
  // 426 names what to speak instead (RFC 9110 §15.5.22): h2 over TLS, h2c in the clear.
  response.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: tls ? 'h2' : 'h2c', connection: 'close', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}
