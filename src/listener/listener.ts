/**
 * A downstream listener: TLS 1.3 with ALPN h2, or cleartext h2c with prior
 * knowledge, each connection an HTTP/2 server connection of Switchyard's own
 * engine (src/http2/). It knows nothing of routing: every stream goes to the
 * handler it was given, once the read that opened it has been parsed (a
 * stream reset in that same read is never handed on). Clients that speak
 * HTTP/1.1 instead (ALPN http/1.1, or cleartext without the HTTP/2 preface)
 * go to the HTTP/1.1 side (http1.ts). Admin and health traffic get listeners
 * of their own (see docs/architecture.md).
 *
 * Every way a connection ends on our initiative (draining, max connection age,
 * idleness, a reload that removes the listener) goes through the two-phase
 * GOAWAY of goaway.ts, so no RPC is lost to it; what is still running when a
 * connection must close anyway ends with UNAVAILABLE first.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tlsModule } from '../builtins.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { ServerConnection, type ServerConnectionOptions } from '../http2/server-connection.ts';
import type { ServerStream } from '../http2/server-stream.ts';
import { guardConnection, type AbuseLimit, type ConnectionGuardConfig } from '../security/connection-guard.ts';
import { connectionGuardConfig, idleTimeouts, localSettings, serverLimits } from './listener-limits.ts';
import { goAwayGracefully, type ConnectionState } from './goaway.ts';
import { http1Side, type Http1Handlers } from './http1.ts';
import { listen } from './listen.ts';

/** Takes every new stream; `headers` are the request's, decoded, and the handler's to change. */
export type StreamHandler = (stream: DownstreamStream, headers: HeaderMap, listener: string) => void;

/** What a listener hands its traffic to: HTTP/2 streams, and HTTP/1.1 requests and upgrades. */
export interface ListenerHandlers {
  readonly stream: StreamHandler;
  readonly http1?: Http1Handlers;
}

export interface ListenerEvents {
  /** A client connection is being closed for abuse. */
  onAbusiveConnection?(listener: string, peer: string, limit: AbuseLimit): void;
}

export interface ListenerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA bundle for client certificates (`tls.client_ca_file`). */
  readonly clientCa?: Buffer | undefined;
}

export interface Listener {
  readonly name: string;
  /** The config in force: the one it started with, or the last one update() applied. */
  readonly config: ListenerConfig;
  /** The bound address; the port is the real one when the config asked for port 0. */
  readonly address: AddressInfo;
  /** Open client connections, HTTP/2 and HTTP/1.1. */
  readonly connectionCount: number;
  /** Client connections accepted since the listener started. */
  readonly connectionsAccepted: number;
  /**
   * Applies `config` without closing the socket when it can: same address, port and kind (TLS or
   * h2c). New TLS material is used for new handshakes; HTTP/2 settings and limits apply to new
   * connections. Returns false, changing nothing, when the listener would have to be bound again.
   */
  update(config: ListenerConfig, tls: ListenerTls | undefined): boolean;
  /**
   * Stops accepting connections and sends the two-phase GOAWAY to every open one (and to any that
   * completes its handshake later). Never cuts a stream. Resolves when every connection has closed.
   */
  drain(): Promise<void>;
  /**
   * Closes every connection still open: each of its streams is first ended with UNAVAILABLE, then the
   * connection is destroyed. Resolves with how many connections there were.
   */
  destroy(): Promise<number>;
  /** drain(), then destroy() what is left after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** What the listener keeps per connection. */
interface Tracked extends ConnectionState {
  readonly connection: ServerConnection;
  ageTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  streamSweep: NodeJS.Timeout | undefined;
  readonly idle: ReturnType<typeof idleTimeouts>;
}

/** What every connection made under one config shares. */
interface ConnectionOptions extends ServerConnectionOptions {
  readonly guard: ConnectionGuardConfig;
  readonly idle: ReturnType<typeof idleTimeouts>;
}

function peerOf(socket: net.Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}

/** After the streams are told, the time they get to send their status before the connection is destroyed. */
const CUT_FLUSH_MS = 100;
const CUT_POLL_MS = 5;
/** Max connection age is spread ±10% so connections opened together do not all go away together. */
const AGE_JITTER = 0.1;

export async function startListener(config: ListenerConfig, material: ListenerTls | undefined, handlers: ListenerHandlers, events: ListenerEvents = {}): Promise<Listener> {
  let current = config;
  let currentTls = material;
  let draining: Promise<void> | undefined;
  let accepted = 0;
  const connections = new Map<ServerConnection, Tracked>();
  const handler = handlers.stream;
  const http1 = http1Side(config.name, material !== undefined, handlers.http1 ?? {});

  /** A cleartext client: the HTTP/2 preface, or HTTP/1.1. */
  const onPlainSocket = (socket: net.Socket) => {
    accepted++;
    socket.on('error', ignore);
    sniffProtocol(socket, current.http2.handshake_timeout, (isHttp2, head) => (isHttp2 ? onHttp2Socket(socket, head) : http1.accept(socket, head)));
  };

  /** Per config, what every connection shares: its settings, limits and the callbacks (told which connection). */
  const connectionOptions = (settings: ListenerConfig): ConnectionOptions => ({
    local: localSettings(settings),
    limits: serverLimits(settings),
    guard: connectionGuardConfig(settings),
    idle: idleTimeouts(settings),
    onStream: (stream, headers) => handler(stream, headers, config.name),
    onAbusive: (kind, connection) => events.onAbusiveConnection?.(config.name, peerOf(connection.socket), kind),
    onStreamCount: (open, connection) => {
      const tracked = connections.get(connection);
      if (tracked) armIdle(tracked, open);
    },
    onClosed: (_error, connection) => {
      const tracked = connections.get(connection);
      if (!tracked) return;
      connections.delete(connection);
      clearTimeout(tracked.ageTimer);
      clearTimeout(tracked.graceTimer);
      clearTimeout(tracked.idleTimer);
      clearInterval(tracked.streamSweep);
    },
  });
  let options = connectionOptions(config);

  const onHttp2Socket = (socket: net.Socket, head: Buffer | undefined) => {
    const settings = current;
    const shared = options;
    if (head !== undefined) socket.unshift(head);
    const connection = new ServerConnection(socket, shared);
    socket.resume();
    if (connection.closed) return;
    const tracked: Tracked = { connection, goingAway: false, ageTimer: undefined, graceTimer: undefined, idleTimer: undefined, streamSweep: undefined, idle: shared.idle };
    connections.set(connection, tracked);
    guardConnection(connection, shared.guard);
    armIdle(tracked, 0);
    if (shared.idle.streamMs !== undefined) tracked.streamSweep = sweepIdleStreams(connection, shared.idle.streamMs);
    // A handshake that was under way when draining began still gets a connection, and is sent away at once.
    if (draining) return goAwayGracefully(connection, tracked);
    const maxAge = settings.max_connection_age;
    if (maxAge !== undefined) {
      const grace = settings.max_connection_age_grace;
      tracked.ageTimer = setTimeout(() => {
        goAwayGracefully(connection, tracked);
        tracked.graceTimer = setTimeout(() => void cutConnection(tracked, 'max_connection_age_grace ended'), grace);
        tracked.graceTimer.unref();
      }, maxAge * (1 - AGE_JITTER + 2 * AGE_JITTER * Math.random()));
      tracked.ageTimer.unref();
    }
  };

  const server: net.Server = material
    ? tlsModule().createServer({
        cert: material.cert,
        key: material.key,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2', 'http/1.1'],
        ...clientCertificateOptions(config, material),
      }, (socket) => {
        accepted++;
        socket.on('error', ignore);
        // A client that sent a certificate that does not verify is not served, whatever it speaks.
        if (presentedUnverified(socket)) return void socket.destroy();
        // Without ALPN a TLS client is taken to speak HTTP/1.1, as browsers and curl would without it.
        if (socket.alpnProtocol === 'h2') onHttp2Socket(socket, undefined);
        else http1.accept(socket, undefined);
      })
    : net.createServer(onPlainSocket);
  // Beyond it, net.Server closes each new socket as soon as it is accepted.
  server.maxConnections = config.max_connections;
  // A failed or timed-out handshake is reported here and nowhere else; the socket is still open until closed.
  server.on('tlsClientError', (_error: Error, socket: tls.TLSSocket) => socket.destroy());
  const address = await listen(server, { port: config.port, host: config.address });
  server.on('error', ignore);

  const destroy = async () => {
    const open = [...connections.values()];
    const http1Count = http1.destroy();
    await Promise.all(open.map((tracked) => cutConnection(tracked, 'drain timeout')));
    return open.length + http1Count;
  };

  const drain = () => {
    draining ??= new Promise<void>((resolve) => {
      let closed = false;
      let remaining = connections.size;
      let http1Closed = false;
      const check = () => closed && http1Closed && connections.size === 0 && resolve();
      server.close(() => {
        closed = true;
        check();
      });
      http1.goAway();
      void http1.closed().then(() => {
        http1Closed = true;
        check();
      });
      for (const tracked of connections.values()) {
        goAwayGracefully(tracked.connection, tracked);
        tracked.connection.socket.once('close', () => {
          remaining--;
          if (remaining <= 0) setImmediate(check);
        });
      }
    });
    return draining;
  };

  return {
    name: config.name,
    get config() {
      return current;
    },
    address,
    get connectionCount() {
      return connections.size + http1.connectionCount;
    },
    get connectionsAccepted() {
      return accepted;
    },
    update(next, nextTls) {
      if (next.address !== current.address || next.port !== current.port || (nextTls === undefined) !== (currentTls === undefined)) return false;
      if (nextTls && currentTls && !(nextTls.cert.equals(currentTls.cert) && nextTls.key.equals(currentTls.key) && sameCa(nextTls.clientCa, currentTls.clientCa))) {
        (server as tls.Server).setSecureContext({ cert: nextTls.cert, key: nextTls.key, minVersion: 'TLSv1.3', ...(nextTls.clientCa && { ca: nextTls.clientCa }) });
      }
      server.maxConnections = next.max_connections;
      current = next;
      options = connectionOptions(next);
      currentTls = nextTls;
      return true;
    },
    drain,
    destroy,
    close: async (graceMs = 5_000) => {
      const forceTimer = setTimeout(() => void destroy(), graceMs);
      forceTimer.unref();
      await drain();
      clearTimeout(forceTimer);
    },
  };
}

/** Idle timeout: a connection with no open stream for idle_timeout is sent away. */
function armIdle(tracked: Tracked, open: number): void {
  const idleMs = tracked.idle.connectionMs;
  if (idleMs === undefined || open > 0 || tracked.goingAway) return;
  // One timer per connection, restarted each time its last stream closes (no new timer per RPC); if it
  // fires while streams are open, it does nothing, and the next close restarts it.
  if (tracked.idleTimer) {
    tracked.idleTimer.refresh();
    return;
  }
  tracked.idleTimer = setTimeout(goAwayIfIdle, idleMs, tracked);
  tracked.idleTimer.unref();
}

function goAwayIfIdle(tracked: Tracked): void {
  if (tracked.connection.openStreams === 0) goAwayGracefully(tracked.connection, tracked);
}

/** Sweeps a connection's streams this many times per stream_idle_timeout: a stream is reset 1 to 1¼ timeouts after its last frame. */
const SWEEPS_PER_TIMEOUT = 4;

/**
 * Stream idle timeout: a stream with no frame either way for stream_idle_timeout is reset (CANCEL).
 * A sweep, not a timer per stream: the data path only zeroes a counter.
 */
function sweepIdleStreams(connection: ServerConnection, timeoutMs: number): NodeJS.Timeout {
  const sweep = setInterval(() => {
    for (const stream of connection.openStreamList()) {
      if (++stream.quietSweeps > SWEEPS_PER_TIMEOUT) stream.reset();
    }
  }, timeoutMs / SWEEPS_PER_TIMEOUT);
  sweep.unref();
  return sweep;
}

/**
 * Ends every stream of the connection with UNAVAILABLE (which clients retry; a bare reset would reach
 * gRPC clients as INTERNAL), waits briefly for them to close, then destroys the connection.
 */
async function cutConnection(tracked: Tracked, reason: string): Promise<void> {
  const connection = tracked.connection;
  if (connection.closed) return;
  for (const stream of connection.openStreamList()) (stream as ServerStream).cut(reason);
  const deadline = performance.now() + CUT_FLUSH_MS;
  while (connection.openStreams > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, CUT_POLL_MS));
  connection.destroy();
}

function ignore(): void {}

const PREFACE_START = Buffer.from('PRI * HTTP/2.0\r\n');

/**
 * Tells a cleartext client's protocol from its first bytes: the HTTP/2 preface, or anything else
 * (HTTP/1.1). Calls `decided` once, with what was read meanwhile (to be put back), the socket paused.
 * A client that sends nothing within `timeoutMs` (the listener's http2.handshake_timeout) is closed.
 */
function sniffProtocol(socket: net.Socket, timeoutMs: number, decided: (isHttp2: boolean, head: Buffer) => void): void {
  let head: Buffer | undefined;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  timer.unref();
  const onData = (chunk: Buffer) => {
    head = head === undefined ? chunk : Buffer.concat([head, chunk]);
    const compared = Math.min(head.length, PREFACE_START.length);
    const matches = head.subarray(0, compared).equals(PREFACE_START.subarray(0, compared));
    // A prefix of the preface could still be either: wait for more.
    if (matches && head.length < PREFACE_START.length) return;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.pause();
    decided(matches, head);
  };
  socket.on('data', onData);
}

/** Whether the handshake asks for a client certificate, and whether it fails without a valid one. */
function clientCertificateOptions(config: ListenerConfig, material: ListenerTls) {
  const mode = config.tls?.client_certificates ?? 'none';
  return {
    handshakeTimeout: config.tls?.handshake_timeout ?? 10_000,
    ...(mode !== 'none' && material.clientCa && { ca: material.clientCa, requestCert: true, rejectUnauthorized: mode === 'required' }),
  };
}

/**
 * With `client_certificates: optional` the handshake succeeds without a certificate; one that is sent
 * but does not verify still closes the connection, so a caller is either verified or anonymous.
 */
function presentedUnverified(socket: tls.TLSSocket): boolean {
  if (socket.authorized) return false;
  const presented = socket.getPeerCertificate();
  return presented !== null && Object.keys(presented).length > 0;
}

function sameCa(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
