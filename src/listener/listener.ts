/**
 * A downstream HTTP/2 listener: TLS 1.3 with ALPN h2, or cleartext h2c with
 * prior knowledge for local use. It knows nothing of routing: every stream
 * goes to the handler it was given. Admin and health traffic get listeners of
 * their own (see docs/architecture.md); the serving listener never answers them.
 *
 * Every way a connection ends on our initiative (draining, max connection
 * age, a reload that removes the listener) goes through the two-phase GOAWAY
 * of goaway.ts, so no RPC is lost to it.
 */
import * as http2 from 'node:http2';
import { Server as NetServer, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../config/schema.ts';
import { goAwayGracefully, type ConnectionState } from './goaway.ts';
import { listen } from './listen.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { NodeDownstream } from './node-downstream.ts';
import { guardConnection, streamResetBeforeRouting, type AbuseLimit } from '../security/connection-guard.ts';
import { connectionGuardConfig, serverAbuseOptions } from '../security/listener-limits.ts';

/** Takes every new stream; `headers` are the request's, decoded, and the handler's to change. */
export type StreamHandler = (stream: DownstreamStream, headers: HeaderMap, listener: string) => void;

export interface ListenerEvents {
  /** A client connection is being closed for abuse (src/security/connection-guard.ts). */
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
   * Applies `config` without closing the socket when it can: same address,
   * port and kind (TLS or h2c). New TLS material is used for new handshakes;
   * HTTP/2 settings are sent to open connections too; max connection age
   * applies to new connections. Returns false, changing nothing, when the
   * listener would have to be bound again.
   */
  update(config: ListenerConfig, tls: ListenerTls | undefined): boolean;
  /**
   * Stops accepting connections and sends the two-phase GOAWAY to every open
   * one (and to any that completes its handshake later). Never cuts a stream.
   * Resolves when every connection has closed. Idempotent.
   */
  drain(): Promise<void>;
  /**
   * Closes every connection still open: each of its streams is first ended with UNAVAILABLE (see
   * cutStreams), then the connection is destroyed. Resolves with how many connections there were.
   */
  destroy(): Promise<number>;
  /** drain(), then destroy() what is left after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** Per-connection state, kept on the session object so the stream path needs no lookup. */
interface Connection extends ConnectionState {
  ageTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  /** Streams handed to the handler and not yet closed. */
  readonly streams: Set<NodeDownstream>;
}

/** After the streams are told, the time they get to send their status before the connection is destroyed. */
const CUT_FLUSH_MS = 100;
const CUT_POLL_MS = 5;

const CONNECTION = Symbol('switchyard.connection');
type TrackedSession = http2.ServerHttp2Session & { [CONNECTION]?: Connection };

/** Max connection age is spread ±10% so connections opened together do not all go away together. */
const AGE_JITTER = 0.1;

export async function startListener(config: ListenerConfig, tls: ListenerTls | undefined, handler: StreamHandler, events: ListenerEvents = {}): Promise<Listener> {
  const options = { settings: http2Settings(config), ...serverAbuseOptions(config) };
  const server: http2.Http2Server | http2.Http2SecureServer = tls
    ? http2.createSecureServer({
        ...options,
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        allowHTTP1: false,
        ...clientCertificateOptions(config, tls),
      })
    : http2.createServer(options);
  // Beyond it, net.Server closes each new socket as soon as it is accepted.
  server.maxConnections = config.max_connections;

  let current = config;
  let currentTls = tls;
  let draining: Promise<void> | undefined;
  let accepted = 0;
  const sessions = new Set<TrackedSession>();

  server.on('session', (session: TrackedSession) => {
    accepted++;
    const connection: Connection = { lastStreamId: 0, goingAway: false, ageTimer: undefined, graceTimer: undefined, streams: new Set() };
    session[CONNECTION] = connection;
    sessions.add(session);
    session.once('close', () => {
      sessions.delete(session);
      clearTimeout(connection.ageTimer);
      clearTimeout(connection.graceTimer);
    });
    session.setLocalWindowSize(current.http2.connection_window);
    // A misbehaving client is an ordinary event, never a crash.
    session.on('error', () => {});
    guardConnection(session, connectionGuardConfig(current), {
      onIdle: () => goAwayGracefully(session, connection),
      onAbusive: (limit) => events.onAbusiveConnection?.(config.name, peerOf(session), limit),
    });
    // A handshake that was under way when draining began still gets a connection, and is sent away at once.
    if (draining) return goAwayGracefully(session, connection);
    const maxAge = current.max_connection_age;
    if (maxAge !== undefined) {
      const grace = current.max_connection_age_grace;
      connection.ageTimer = setTimeout(() => {
        goAwayGracefully(session, connection);
        connection.graceTimer = setTimeout(() => void cutConnection(session, connection, 'max_connection_age_grace ended'), grace);
        connection.graceTimer.unref();
      }, maxAge * (1 - AGE_JITTER + 2 * AGE_JITTER * Math.random()));
      connection.ageTimer.unref();
    }
  });
  /**
   * Rapid reset (CVE-2023-44487): an attacker writes HEADERS and RST_STREAM
   * back to back, so each stream's reset comes in the same read as its HEADERS.
   * Node emits 'stream' while nghttp2 is still parsing that read, before the
   * reset, and runs queued ticks after every callback; a handler run then
   * would route and forward every such stream (a backend stream opened and
   * cancelled, ~0.2 ms each) in one task that holds the event loop from every
   * other connection. So new streams are handed to the handler in the check
   * phase, after all the bytes read in this turn of the event loop are parsed,
   * and a stream already reset by then is dropped at the cost of its Node
   * object: it never reaches the router, a backend or the logs. Past
   * stream_reset_burst of those the connection is destroyed, not read further
   * (src/security/connection-guard.ts).
   */
  let arrived: [http2.ServerHttp2Stream, http2.IncomingHttpHeaders][] = [];
  const dispatchArrived = () => {
    const streams = arrived;
    arrived = [];
    for (const [stream, headers] of streams) {
      if (stream.closed || stream.destroyed) {
        streamResetBeforeRouting(stream.session);
        continue;
      }
      const downstream = new NodeDownstream(stream);
      const tracked = (stream.session as TrackedSession | undefined)?.[CONNECTION]?.streams;
      if (tracked) {
        tracked.add(downstream);
        stream.once('close', () => tracked.delete(downstream));
      }
      handler(downstream, headers as HeaderMap, config.name);
    }
  };
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const connection = (stream.session as TrackedSession | undefined)?.[CONNECTION];
    const id = stream.id ?? 0;
    if (connection && id > connection.lastStreamId) connection.lastStreamId = id;
    // A stream reset with an error code before the handler sees it emits 'error': never a crash.
    stream.on('error', ignoreError);
    if (arrived.push([stream, headers]) === 1) setImmediate(dispatchArrived);
  });
  if (tls) refuseUnverifiedClientCertificates(server as http2.Http2SecureServer);
  server.on('sessionError', () => {});
  server.on('tlsClientError', () => {});

  const address = await listen(server, { port: config.port, host: config.address });
  server.on('error', () => {});

  const destroy = async () => {
    const open = [...sessions];
    await Promise.all(open.map((session) => cutConnection(session, session[CONNECTION]!, 'drain timeout')));
    return open.length;
  };

  const drain = () => {
    draining ??= new Promise<void>((resolve) => {
      // net.Server's close, not Http2Server's: that one also close()s every session at once, a one-phase GOAWAY.
      NetServer.prototype.close.call(server, () => resolve());
      for (const session of sessions) goAwayGracefully(session, session[CONNECTION]!);
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
      return sessions.size;
    },
    get connectionsAccepted() {
      return accepted;
    },
    update(next, nextTls) {
      if (next.address !== current.address || next.port !== current.port || (nextTls === undefined) !== (currentTls === undefined)) return false;
      if (nextTls && currentTls && !(nextTls.cert.equals(currentTls.cert) && nextTls.key.equals(currentTls.key) && sameCa(nextTls.clientCa, currentTls.clientCa))) {
        (server as http2.Http2SecureServer).setSecureContext({ cert: nextTls.cert, key: nextTls.key, minVersion: 'TLSv1.3', ...(nextTls.clientCa && { ca: nextTls.clientCa }) });
      }
      if (JSON.stringify(next.http2) !== JSON.stringify(current.http2)) {
        const settings = http2Settings(next);
        server.updateSettings(settings);
        for (const session of sessions) {
          if (session.closed || session.destroyed) continue;
          try {
            session.settings(settings);
            session.setLocalWindowSize(next.http2.connection_window);
          } catch {
            // Too many unacknowledged SETTINGS: this connection keeps the old ones.
          }
        }
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

function ignoreError(): void {}

/**
 * Ends every stream of the connection with UNAVAILABLE, waits (briefly) for them to close, then destroys
 * the connection. Resolves when it is destroyed.
 */
async function cutConnection(session: TrackedSession, connection: Connection, reason: string): Promise<void> {
  if (session.destroyed) return;
  const open = [...connection.streams];
  // Each stream ends with UNAVAILABLE, which clients retry. A bare reset would reach gRPC clients as
  // INTERNAL ("RST_STREAM with code 0"), which they do not.
  for (const stream of open) stream.cut(reason);
  const deadline = performance.now() + CUT_FLUSH_MS;
  while (connection.streams.size > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, CUT_POLL_MS));
  session.destroy();
}

function peerOf(session: http2.ServerHttp2Session): string {
  const socket = session.socket;
  return socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown';
}

function http2Settings(config: ListenerConfig): http2.Settings {
  return {
    maxConcurrentStreams: config.http2.max_concurrent_streams,
    initialWindowSize: config.http2.initial_stream_window,
    maxHeaderListSize: config.http2.max_header_list_size,
    enablePush: false,
  };
}

/** Whether the handshake asks for a client certificate, and whether it fails without a valid one. */
function clientCertificateOptions(config: ListenerConfig, tls: ListenerTls) {
  const mode = config.tls?.client_certificates ?? 'none';
  return {
    handshakeTimeout: config.tls?.handshake_timeout ?? 10_000,
    ...(mode !== 'none' && tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: mode === 'required' }),
  };
}

/**
 * With `client_certificates: optional` the handshake succeeds without a
 * certificate; one that is sent but does not verify still closes the connection,
 * so a caller is either verified or anonymous, never unverified.
 */
function refuseUnverifiedClientCertificates(server: http2.Http2SecureServer): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.authorized) return;
    const presented = socket.getPeerCertificate();
    if (presented && Object.keys(presented).length > 0) socket.destroy();
  });
}

function sameCa(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
