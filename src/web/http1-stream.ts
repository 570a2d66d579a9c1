/**
 * An HTTP/1.1 request and its response (Node's IncomingMessage and
 * ServerResponse, from the listener's HTTP/1.1 side) as a DownstreamStream,
 * so a browser protocol spoken over HTTP/1.1 reaches the RPC path as one over
 * HTTP/2 does. HTTP/1.1 has no trailers a browser can read and no stream
 * reset: end() ends the body (the translating stream has put the status in
 * it), and reset() closes the connection.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../config/schema.ts';
import type { DownstreamConnection, DownstreamEvents, DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { connectionGuardConfig } from '../listener/listener-limits.ts';
import { guardConnection } from '../security/connection-guard.ts';

/** The client connection of HTTP/1.1 requests, one per socket: the key of the security layer's per-connection state. */
interface Http1Connection extends DownstreamConnection {
  readonly socket: Socket;
}

const CONNECTIONS = new WeakMap<Socket, Http1Connection>();

/** The connection object of `socket`, with the listener's connection guard (message sizes, RPC rate) on its first request. */
export function http1Connection(socket: Socket, listener: ListenerConfig): DownstreamConnection {
  let connection = CONNECTIONS.get(socket);
  if (!connection) {
    connection = { socket };
    // A violation the RPC path finds needs no budget here: one request at a time, and llhttp closes on what it cannot parse.
    guardConnection(Object.assign(connection, { protocolViolation() {} }), connectionGuardConfig(listener));
    CONNECTIONS.set(socket, connection);
  }
  return connection;
}

/** An HTTP/1.1 request's headers as the RPC path reads them: pseudo-headers first, `host` as `:authority`. */
export function http1Headers(request: IncomingMessage): HeaderMap {
  const headers: HeaderMap = {
    ':method': request.method,
    ':path': request.url,
    ':scheme': (request.socket as TLSSocket).encrypted ? 'https' : 'http',
    ':authority': request.headers.host,
  };
  for (const [name, value] of Object.entries(request.headers)) if (name !== 'host') headers[name] = value;
  return headers;
}

const NO_TRAILERS = {};

function uncork(response: ServerResponse): void {
  response.uncork();
}

export class Http1Stream implements DownstreamStream {
  readonly connection: DownstreamConnection;
  headersSent = false;
  readonly #request: IncomingMessage;
  readonly #response: ServerResponse;
  #events: DownstreamEvents | undefined;
  #paused = false;
  #closed = false;
  /** The response was ended by us (so its close is not the client going away). */
  #ended = false;

  constructor(request: IncomingMessage, response: ServerResponse, connection: DownstreamConnection) {
    this.#request = request;
    this.#response = response;
    this.connection = connection;
    // Nothing is read until the RPC subscribes.
    request.pause();
    response.on('close', () => {
      this.#closed = true;
      this.#events?.onDownstreamClose();
    });
    response.on('drain', () => this.#events?.onResponseDrain());
  }

  get closed(): boolean {
    return this.#closed || this.#ended;
  }

  attach(events: DownstreamEvents): void {
    this.#events = events;
    const request = this.#request;
    request.on('data', (chunk: Buffer) => events.onRequestData(chunk));
    request.on('end', () => events.onRequestEnd());
    // A request that closed before it had a subscriber is reported now, as the contract asks.
    if (this.#closed) process.nextTick(() => events.onDownstreamClose());
    else if (!this.#paused) request.resume();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    const response = this.#response;
    const raw: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || name.charCodeAt(0) === 0x3a /* : */) continue;
      if (Array.isArray(value)) for (const item of value) raw.push(name, item);
      else raw.push(name, String(value));
    }
    response.writeHead(Number(headers[':status'] ?? 200), raw);
    if (endStream) return this.#end();
    // What this turn of the event loop writes (the headers, a unary answer's message and trailer frame) leaves in one
    // write; the headers leave now even when no message follows soon (a quiet server stream).
    response.cork();
    process.nextTick(uncork, response);
    response.flushHeaders();
  }

  write(chunk: Buffer): boolean {
    if (this.closed) return true;
    return this.#response.write(chunk);
  }

  /** HTTP/1.1 responses carry no trailers here: the translating stream has put the status in the body. */
  end(_trailers: HeaderMap = NO_TRAILERS): void {
    if (this.closed) return;
    this.#end();
  }

  answerHttp(status: number, body: string): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.#response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    this.#end(body);
  }

  /** HTTP/1.1 cannot reset one request: the connection goes. */
  reset(): void {
    this.#response.destroy();
  }

  pause(): void {
    this.#paused = true;
    if (this.#events) this.#request.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#events) this.#request.resume();
  }

  #end(body?: string): void {
    this.#ended = true;
    this.#response.end(body);
  }
}
