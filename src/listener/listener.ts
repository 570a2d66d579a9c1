/**
 * A downstream listener: TLS 1.3 with ALPN h2, or cleartext h2c with prior
 * knowledge, each connection an HTTP/2 server connection of Switchyard's own
 * engine (src/http2/). It knows nothing of routing: every stream goes to the
 * handler it was given, once the read that opened it has been parsed (a
 * stream reset in that same read is never handed on). Admin and health traffic
 * get listeners of their own (see docs/architecture.md).
 *
 * Every way a connection ends on our initiative (draining, max connection age,
 * idleness, a reload that removes the listener) goes through the two-phase
 * GOAWAY of goaway.ts, so no RPC is lost to it; what is still running when a
 * connection must close anyway ends with UNAVAILABLE first.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { ServerConnection } from '../http2/server-connection.ts';
import type { ServerStream } from '../http2/server-stream.ts';
import { guardConnection, type AbuseLimit } from '../security/connection-guard.ts';
import { connectionGuardConfig, idleTimeouts, localSettings, serverLimits } from './listener-limits.ts';
import { goAwayGracefully, type ConnectionState } from './goaway.ts';
import { listen } from './listen.ts';

/** Takes every new stream; `headers` are the request's, decoded, and the handler's to change. */
export type StreamHandler = (stream: DownstreamStream, headers: HeaderMap, listener: string) => void;

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
  /** Open client connections. */
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
  readonly peer: string;
  ageTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  streamSweep: NodeJS.Timeout | undefined;
  readonly idle: ReturnType<typeof idleTimeouts>;
}

/** After the streams are told, the time they get to send their status before the connection is destroyed. */
const CUT_FLUSH_MS = 100;
const CUT_POLL_MS = 5;
/** Max connection age is spread ±10% so connections opened together do not all go away together. */
const AGE_JITTER = 0.1;

export async function startListener(config: ListenerConfig, material: ListenerTls | undefined, handler: StreamHandler, events: ListenerEvents = {}): Promise<Listener> {
  let current = config;
  let currentTls = material;
  let draining: Promise<void> | undefined;
  let accepted = 0;
  const connections = new Set<Tracked>();

  const onSocket = (socket: net.Socket) => {
    accepted++;
    socket.on('error', ignore);
    const settings = current;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let tracked: Tracked | undefined;
    const connection = new ServerConnection(socket, {
      local: localSettings(settings),
      limits: serverLimits(settings),
      onStream: (stream, headers) => handler(stream, headers, config.name),
      onAbusive: (kind) => events.onAbusiveConnection?.(config.name, peer, kind),
      onStreamCount: (open) => tracked && armIdle(tracked, open),
      onClosed: () => {
        if (!tracked) return;
        connections.delete(tracked);
        clearTimeout(tracked.ageTimer);
        clearTimeout(tracked.graceTimer);
        clearTimeout(tracked.idleTimer);
        clearInterval(tracked.streamSweep);
      },
    });
    if (connection.closed) return;
    const idle = idleTimeouts(settings);
    tracked = { connection, peer, goingAway: false, ageTimer: undefined, graceTimer: undefined, idleTimer: undefined, streamSweep: undefined, idle };
    connections.add(tracked);
    guardConnection(connection, connectionGuardConfig(settings));
    armIdle(tracked, 0);
    if (idle.streamMs !== undefined) tracked.streamSweep = sweepIdleStreams(connection, idle.streamMs);
    // A handshake that was under way when draining began still gets a connection, and is sent away at once.
    if (draining) return goAwayGracefully(connection, tracked);
    const maxAge = settings.max_connection_age;
    if (maxAge !== undefined) {
      const grace = settings.max_connection_age_grace;
      const it = tracked;
      it.ageTimer = setTimeout(() => {
        goAwayGracefully(connection, it);
        it.graceTimer = setTimeout(() => void cutConnection(it, 'max_connection_age_grace ended'), grace);
        it.graceTimer.unref();
      }, maxAge * (1 - AGE_JITTER + 2 * AGE_JITTER * Math.random()));
      it.ageTimer.unref();
    }
  };

  const server: net.Server = material
    ? tls.createServer({
        cert: material.cert,
        key: material.key,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        ...clientCertificateOptions(config, material),
      }, (socket) => {
        // A client that negotiated no h2, or sent a certificate that does not verify, is not served.
        if (socket.alpnProtocol !== 'h2' || presentedUnverified(socket)) return void socket.destroy();
        onSocket(socket);
      })
    : net.createServer(onSocket);
  // Beyond it, net.Server closes each new socket as soon as it is accepted.
  server.maxConnections = config.max_connections;
  // A failed or timed-out handshake is reported here and nowhere else; the socket is still open until closed.
  server.on('tlsClientError', (_error: Error, socket: tls.TLSSocket) => socket.destroy());
  const address = await listen(server, { port: config.port, host: config.address });
  server.on('error', ignore);

  const destroy = async () => {
    const open = [...connections];
    await Promise.all(open.map((tracked) => cutConnection(tracked, 'drain timeout')));
    return open.length;
  };

  const drain = () => {
    draining ??= new Promise<void>((resolve) => {
      let closed = false;
      let remaining = connections.size;
      const check = () => closed && connections.size === 0 && resolve();
      server.close(() => {
        closed = true;
        check();
      });
      for (const tracked of connections) {
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
      return connections.size;
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
  if (idleMs === undefined) return;
  clearTimeout(tracked.idleTimer);
  tracked.idleTimer = undefined;
  if (open > 0 || tracked.goingAway) return;
  tracked.idleTimer = setTimeout(() => goAwayGracefully(tracked.connection, tracked), idleMs);
  tracked.idleTimer.unref();
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
