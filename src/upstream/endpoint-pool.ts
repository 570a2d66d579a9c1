/**
 * HTTP/2 connections to one backend endpoint, shared by every RPC sent to it;
 * each a client connection of Switchyard's own engine (src/http2/).
 *
 * A stream goes on a connection whose peer SETTINGS have arrived and that is
 * below the peer's SETTINGS_MAX_CONCURRENT_STREAMS. Until a new connection's
 * SETTINGS arrive (one round trip) its limit is unknown, and a burst sent
 * blind would be refused by the peer (REFUSED_STREAM), so RPCs wait for it.
 * When every ready connection is full, one more is opened. Failed connects put
 * the endpoint in a jittered exponential backoff, which the cluster reads to
 * stop picking it.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { tlsModule } from '../builtins.ts';
import { ClientConnection } from '../http2/client-connection.ts';
import type { LocalSettings } from '../http2/connection.ts';
import { UPSTREAM_MAX_HEADER_FIELDS, UPSTREAM_MAX_HEADER_LIST_SIZE, UPSTREAM_RESET_BURST, UPSTREAM_RESETS_PER_SECOND } from '../security/upstream-limits.ts';
import { TokenBucket } from '../security/token-bucket.ts';
import type { HeaderMap, UpstreamStream } from '../grpc/streams.ts';
import { subjectAltNameChecker } from '../security/san.ts';

export interface UpstreamTls {
  readonly ca: Buffer;
  /** Name the backend certificate must carry, also sent as SNI. */
  readonly serverName?: string | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  /** The backend certificate must carry one of these SANs; when set, replaces the hostname check. */
  readonly verifySubjectAltNames?: readonly string[] | undefined;
}

export interface EndpointPoolOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: UpstreamTls | undefined;
  readonly connectTimeoutMs: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE toward the backend: what it may send on a stream before the proxy passes it on. Default 64 KiB. */
  readonly streamWindow?: number | undefined;
  /** Streams to open on one connection at most, below the backend's own limit. Default: the backend's limit. */
  readonly maxStreamsPerConnection?: number | undefined;
  /** PING interval and ack timeout that detect a connection gone silent (a blackholed backend); undefined: no pings. */
  readonly keepalive?: { readonly intervalMs: number; readonly timeoutMs: number } | undefined;
  /** Called when the endpoint enters or leaves connect backoff. */
  readonly onStateChange?: () => void;
  /** Called after a connection attempt fails (e.g. to ask discovery for a refresh). */
  readonly onConnectFailure?: (error: Error) => void;
  /** The cluster's circuit breakers for waiting RPCs and connections. */
  readonly limits?: PoolLimits | undefined;
  readonly now?: () => number;
}

/** Shared by every pool of a cluster; each start* returns the error to fail with when its limit is reached. */
export interface PoolLimits {
  startPending(): Error | undefined;
  endPending(): void;
  startConnection(): Error | undefined;
  endConnection(): void;
}

/** Receives the opened stream, or the reason none could be opened. Called once, possibly synchronously. */
export interface StreamReceiver {
  onStream(error: Error | undefined, stream: UpstreamStream | undefined): void;
}

/** What the RPC path needs of an endpoint's connections (test/helpers/fake-streams.ts has a fake). */
export interface UpstreamPool {
  /** True while recent connects failed and the backoff has not yet elapsed. */
  readonly inBackoff: boolean;
  readonly connectionCount: number;
  /** Opens a stream with these request headers and hands it to `receiver` (see EndpointPool.open). */
  open(headers: HeaderMap, receiver: StreamReceiver): void;
  /** Stops new streams; open streams finish, then the connections close. */
  close(): void;
}

/** HTTP/2's own default: fills a LAN path, and bounds what a stalled stream holds (docs/security.md). */
const DEFAULT_STREAM_WINDOW = 64 << 10;
const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const UPSTREAM_CONNECTION_WINDOW = 16 << 20;

interface Pooled {
  /** Undefined while the socket is connecting. */
  connection: ClientConnection | undefined;
  /** The peer's SETTINGS have arrived, so its stream limit is known. */
  ready: boolean;
  usable: boolean;
  /** Streams this connection may still cancel before it is retired (see UPSTREAM_RESET_BURST). */
  readonly resets: TokenBucket;
}

interface WaitingRequest {
  readonly headers: HeaderMap;
  readonly receiver: StreamReceiver;
}

export class EndpointPool implements UpstreamPool {
  readonly #options: EndpointPoolOptions;
  /** What the backend is called in messages, and the default :authority. */
  readonly #authority: string;
  readonly #scheme: 'http' | 'https';
  readonly #local: LocalSettings;
  readonly #connections: Pooled[] = [];
  readonly #waiting: WaitingRequest[] = [];
  readonly #now: () => number;
  #consecutiveFailures = 0;
  #backoffUntil = 0;
  #backoffTimer: NodeJS.Timeout | undefined;
  #lastConnectError: Error | undefined;
  #closed = false;

  constructor(options: EndpointPoolOptions) {
    this.#options = options;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.#authority = `${host}:${options.port}`;
    this.#scheme = options.tls ? 'https' : 'http';
    this.#now = options.now ?? Date.now;
    this.#local = {
      // The backend opens no streams toward us.
      maxConcurrentStreams: 0,
      streamWindow: options.streamWindow ?? DEFAULT_STREAM_WINDOW,
      connectionWindow: UPSTREAM_CONNECTION_WINDOW,
      maxHeaderListSize: UPSTREAM_MAX_HEADER_LIST_SIZE,
      maxHeaderFields: UPSTREAM_MAX_HEADER_FIELDS,
    };
  }

  /** True while recent connects failed and the backoff has not yet elapsed. */
  get inBackoff(): boolean {
    return this.#backoffUntil > this.#now();
  }

  get connectionCount(): number {
    return this.#connections.length;
  }

  /**
   * Opens a stream to the endpoint and hands it to `receiver`: at once when a connection has room,
   * else once one has. Fails (through the receiver) when the pool is closed or the connect fails or
   * times out; an error with `refused: true` means the stream was never sent (safe to send elsewhere).
   */
  open(headers: HeaderMap, receiver: StreamReceiver): void {
    if (this.#closed) return receiver.onStream(new Error(`connection pool for ${this.#authority} is closed`), undefined);
    const connection = this.#connectionWithRoom();
    if (connection) return this.#start(connection, headers, receiver);
    const overflow = this.#options.limits?.startPending();
    if (overflow) return receiver.onStream(overflow, undefined);
    this.#waiting.push({ headers, receiver });
    if (!this.#connections.some((c) => c.usable && !c.ready)) this.#connect();
  }

  /** Stops new streams; open streams finish, then the connections close. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#backoffTimer);
    this.#failWaiting(new Error(`connection pool for ${this.#authority} is closed`));
    for (const pooled of this.#connections.splice(0)) {
      pooled.usable = false;
      pooled.connection?.shutdown();
    }
  }

  #start(connection: ClientConnection, headers: HeaderMap, receiver: StreamReceiver): void {
    headers[':scheme'] = this.#scheme;
    headers[':authority'] ??= this.#authority;
    let stream: UpstreamStream;
    try {
      stream = connection.request(headers);
    } catch (error) {
      return receiver.onStream(error as Error, undefined);
    }
    receiver.onStream(undefined, stream);
  }

  #connectionWithRoom(): ClientConnection | undefined {
    const cap = this.#options.maxStreamsPerConnection ?? Number.POSITIVE_INFINITY;
    for (const { usable, ready, connection } of this.#connections) {
      if (usable && ready && connection!.activeStreams < Math.min(cap, connection!.peerMaxConcurrentStreams)) return connection;
    }
    return undefined;
  }

  /** Hands waiting RPCs to connections with room; opens one more if some are left waiting. */
  #dispatch(): void {
    while (this.#waiting.length > 0) {
      const connection = this.#connectionWithRoom();
      if (!connection) break;
      const { headers, receiver } = this.#waiting.shift()!;
      this.#options.limits?.endPending();
      this.#start(connection, headers, receiver);
    }
    if (this.#waiting.length > 0 && !this.#closed && !this.#connections.some((c) => c.usable && !c.ready)) this.#connect();
  }

  #failWaiting(error: Error): void {
    for (const { receiver } of this.#waiting.splice(0)) {
      this.#options.limits?.endPending();
      receiver.onStream(error, undefined);
    }
  }

  /**
   * One more stream cancelled on this connection. One that has cancelled too many gets no new streams
   * and closes when its last one ends (UPSTREAM_RESET_BURST).
   */
  #cancelled(pooled: Pooled): void {
    if (!pooled.usable || pooled.resets.tryTake()) return;
    this.#retire(pooled);
    pooled.connection?.shutdown();
    this.#dispatch();
  }

  #connect(): void {
    const overflow = this.#options.limits?.startConnection();
    if (overflow) {
      // Without a connection of its own this endpoint cannot serve the waiting RPCs.
      if (!this.#connections.some((c) => c.usable)) this.#failWaiting(overflow);
      return;
    }
    const socket = this.#dial();
    // Holds its place from the start, so no second connect begins while this one is under way.
    const pooled: Pooled = { connection: undefined, ready: false, usable: true, resets: new TokenBucket(UPSTREAM_RESETS_PER_SECOND, UPSTREAM_RESET_BURST) };
    this.#connections.push(pooled);
    let failure: Error | undefined;
    const connectTimer = setTimeout(() => {
      socket.destroy(new Error(`connect to ${this.#authority} timed out after ${this.#options.connectTimeoutMs} ms`));
    }, this.#options.connectTimeoutMs);
    // A pending connect must not keep the process alive on shutdown, nor an idle pooled connection.
    connectTimer.unref();
    socket.unref();
    socket.on('error', (error: Error) => {
      failure ??= error;
    });
    socket.once(this.#options.tls ? 'secureConnect' : 'connect', () => {
      const alpn = (socket as tls.TLSSocket).alpnProtocol;
      if (this.#options.tls && alpn !== 'h2') return socket.destroy(new Error(`${this.#authority} did not negotiate HTTP/2 (ALPN ${alpn || 'none'})`));
      const connection = new ClientConnection(socket, {
        local: this.#local,
        onReady: () => {
          clearTimeout(connectTimer);
          if (pooled.ready) return;
          pooled.ready = true;
          this.#startKeepalive(connection);
          if (this.#consecutiveFailures > 0) {
            this.#consecutiveFailures = 0;
            this.#backoffUntil = 0;
            this.#options.onStateChange?.();
          }
          this.#dispatch();
        },
        onGoAway: () => {
          this.#retire(pooled);
          this.#dispatch();
        },
        onStreamClosed: () => this.#waiting.length > 0 && this.#dispatch(),
        onCancel: () => this.#cancelled(pooled),
        onClosed: (error) => {
          if (error && !pooled.ready) failure ??= error;
        },
      });
      pooled.connection = connection;
      // Retired (the pool closed) while connecting: nothing will be sent here.
      if (!pooled.usable) connection.shutdown();
    });
    socket.once('close', () => {
      clearTimeout(connectTimer);
      this.#options.limits?.endConnection();
      const failedBeforeReady = !pooled.ready;
      if (failedBeforeReady) this.#recordConnectFailure(failure ?? new Error('connection closed before SETTINGS'));
      this.#retire(pooled);
      if (failedBeforeReady && !this.#connections.some((c) => c.usable)) {
        this.#failWaiting(new Error(`cannot connect to ${this.#authority}: ${this.#lastConnectError?.message ?? 'connection closed before SETTINGS'}`));
      } else {
        this.#dispatch();
      }
    });
  }

  /** A TCP or TLS socket to the endpoint. */
  #dial(): net.Socket {
    const { host, port } = this.#options;
    const upstreamTls = this.#options.tls;
    if (!upstreamTls) return net.connect({ host, port });
    return tlsModule().connect({
      host,
      port,
      ca: upstreamTls.ca,
      cert: upstreamTls.cert,
      key: upstreamTls.key,
      servername: upstreamTls.serverName ?? (isIp(host) ? undefined : host),
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.2',
      ...(upstreamTls.serverName !== undefined && { checkServerIdentity: serverIdentityChecker(upstreamTls.serverName) }),
      ...(upstreamTls.verifySubjectAltNames !== undefined && { checkServerIdentity: subjectAltNameChecker(upstreamTls.verifySubjectAltNames) }),
    });
  }

  /**
   * A connection whose peer vanished without a FIN or RST (a blackhole, a dead node) would hold
   * its streams until their deadlines; an unanswered PING closes it, and its streams fail as resets.
   */
  #startKeepalive(connection: ClientConnection): void {
    const keepalive = this.#options.keepalive;
    if (!keepalive) return;
    const timer = setInterval(() => {
      if (connection.closed) return clearInterval(timer);
      const deadline = setTimeout(() => {
        connection.destroy(new Error(`no PING ack from ${this.#authority} within ${keepalive.timeoutMs} ms`));
      }, keepalive.timeoutMs);
      deadline.unref();
      const sent = connection.ping((error) => {
        clearTimeout(deadline);
        if (error && !connection.closed) connection.destroy(error);
      });
      if (!sent) clearTimeout(deadline);
    }, keepalive.intervalMs);
    timer.unref();
    connection.socket.once('close', () => clearInterval(timer));
  }

  #retire(pooled: Pooled): void {
    pooled.usable = false;
    const index = this.#connections.indexOf(pooled);
    if (index >= 0) this.#connections.splice(index, 1);
  }

  #recordConnectFailure(error: Error): void {
    this.#lastConnectError = error;
    this.#consecutiveFailures++;
    const exponential = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (this.#consecutiveFailures - 1));
    // Jitter spreads reconnects of many proxies so they don't arrive together.
    const delay = exponential * (0.8 + Math.random() * 0.4);
    this.#backoffUntil = this.#now() + delay;
    clearTimeout(this.#backoffTimer);
    // The endpoint becomes eligible again when the backoff ends; the next RPC tries a fresh connect.
    this.#backoffTimer = setTimeout(() => {
      // Said outright rather than re-read from the clock: timers and Date.now() can disagree by a millisecond.
      this.#backoffUntil = 0;
      this.#options.onStateChange?.();
    }, delay).unref();
    this.#options.onConnectFailure?.(error);
    this.#options.onStateChange?.();
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Checks the certificate against the configured name rather than the address dialled. */
function serverIdentityChecker(serverName: string) {
  return (_host: string, cert: tls.PeerCertificate) => tlsModule().checkServerIdentity(serverName, cert);
}
