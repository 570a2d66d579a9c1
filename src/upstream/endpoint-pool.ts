/**
 * HTTP/2 connections to one backend endpoint, shared by every RPC sent to it.
 *
 * A stream goes on a connection whose peer SETTINGS have arrived and that is
 * below the peer's SETTINGS_MAX_CONCURRENT_STREAMS. Until a new connection's
 * SETTINGS arrive (one round trip) its limit is unknown, and a burst sent
 * blind would be refused by the peer (REFUSED_STREAM), so RPCs wait for it.
 * When every ready connection is full, one more is opened. Failed connects put
 * the endpoint in a jittered exponential backoff, which the cluster reads to
 * stop picking it.
 */
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import type { OutgoingHttpHeaders } from 'node:http2';
import { UPSTREAM_MAX_HEADER_LIST_SIZE, UPSTREAM_RESET_BURST, UPSTREAM_RESETS_PER_SECOND, UPSTREAM_SESSION_LIMITS } from '../security/upstream-limits.ts';
import { TokenBucket } from '../security/token-bucket.ts';
import type { UpstreamStream } from '../grpc/streams.ts';
import { NodeUpstream, type CancelCounter } from './node-upstream.ts';
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
  open(headers: OutgoingHttpHeaders, receiver: StreamReceiver): void;
  /** Stops new streams; open streams finish, then the connections close. */
  close(): void;
}

/** HTTP/2's own default: fills a LAN path, and bounds what a stalled stream holds (docs/security.md). */
const DEFAULT_STREAM_WINDOW = 64 << 10;
const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const UPSTREAM_CONNECTION_WINDOW = 16 << 20;

interface PooledSession extends CancelCounter {
  readonly session: http2.ClientHttp2Session;
  /** Lets waiting RPCs have the slot a closed stream freed. */
  readonly onSlotFreed: () => void;
  active: number;
  /** The peer's SETTINGS have arrived, so its stream limit is known. */
  ready: boolean;
  usable: boolean;
  /** Streams this connection may still cancel before it is retired (see UPSTREAM_RESET_BURST). */
  readonly resets: TokenBucket;
}

interface WaitingRequest {
  readonly headers: OutgoingHttpHeaders;
  readonly receiver: StreamReceiver;
}

export class EndpointPool implements UpstreamPool {
  readonly #options: EndpointPoolOptions;
  readonly #authority: string;
  readonly #sessions: PooledSession[] = [];
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
    this.#authority = `${options.tls ? 'https' : 'http'}://${host}:${options.port}`;
    this.#now = options.now ?? Date.now;
  }

  /** True while recent connects failed and the backoff has not yet elapsed. */
  get inBackoff(): boolean {
    return this.#backoffUntil > this.#now();
  }

  get connectionCount(): number {
    return this.#sessions.length;
  }

  /**
   * Opens a stream to the endpoint and hands it to `callback`: at once when a
   * connection has room, else once one has. Fails (through the callback) when
   * the pool is closed, the connect fails or times out, or Node refuses the headers.
   */
  open(headers: OutgoingHttpHeaders, receiver: StreamReceiver): void {
    if (this.#closed) return receiver.onStream(new Error(`connection pool for ${this.#authority} is closed`), undefined);
    const pooled = this.#sessionWithRoom();
    if (pooled) return this.#start(pooled, headers, receiver);
    const overflow = this.#options.limits?.startPending();
    if (overflow) return receiver.onStream(overflow, undefined);
    this.#waiting.push({ headers, receiver });
    if (!this.#sessions.some((s) => s.usable && !s.ready)) this.#connect();
  }

  /**
   * One more stream cancelled on this connection. One that has cancelled too many gets no new streams
   * and closes when its last one ends (UPSTREAM_RESET_BURST).
   */
  #cancelled(pooled: PooledSession): void {
    if (!pooled.usable || pooled.resets.tryTake()) return;
    this.#retire(pooled);
    pooled.session.close();
    this.#dispatch();
  }

  /** Stops new streams; open streams finish, then the connections close. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#backoffTimer);
    this.#failWaiting(new Error(`connection pool for ${this.#authority} is closed`));
    for (const pooled of this.#sessions.splice(0)) {
      pooled.usable = false;
      pooled.session.close();
    }
  }

  #start(pooled: PooledSession, headers: OutgoingHttpHeaders, receiver: StreamReceiver): void {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = pooled.session.request(headers, REQUEST_OPTIONS);
    } catch (error) {
      return receiver.onStream(error as Error, undefined);
    }
    pooled.active++;
    (stream as PooledStream)[POOLED] = pooled;
    stream.on('close', onPooledStreamClose);
    receiver.onStream(undefined, new NodeUpstream(stream, pooled));
  }

  #sessionWithRoom(): PooledSession | undefined {
    for (const pooled of this.#sessions) {
      if (pooled.usable && pooled.ready && pooled.active < pooled.session.remoteSettings.maxConcurrentStreams!) return pooled;
    }
    return undefined;
  }

  /** Hands waiting RPCs to connections with room; opens one more if some are left waiting. */
  #dispatch(): void {
    while (this.#waiting.length > 0) {
      const pooled = this.#sessionWithRoom();
      if (!pooled) break;
      const { headers, receiver } = this.#waiting.shift()!;
      this.#options.limits?.endPending();
      this.#start(pooled, headers, receiver);
    }
    if (this.#waiting.length > 0 && !this.#closed && !this.#sessions.some((s) => s.usable && !s.ready)) this.#connect();
  }

  #failWaiting(error: Error): void {
    for (const { receiver } of this.#waiting.splice(0)) {
      this.#options.limits?.endPending();
      receiver.onStream(error, undefined);
    }
  }

  #connect(): void {
    const overflow = this.#options.limits?.startConnection();
    if (overflow) {
      // Without a connection of its own this endpoint cannot serve the waiting RPCs.
      if (!this.#sessions.some((s) => s.usable)) this.#failWaiting(overflow);
      return;
    }
    const upstreamTls = this.#options.tls;
    const session = http2.connect(this.#authority, {
      ...UPSTREAM_SESSION_LIMITS,
      settings: { enablePush: false, initialWindowSize: this.#options.streamWindow ?? DEFAULT_STREAM_WINDOW, maxHeaderListSize: UPSTREAM_MAX_HEADER_LIST_SIZE },
      ...(upstreamTls && {
        ca: upstreamTls.ca,
        cert: upstreamTls.cert,
        key: upstreamTls.key,
        servername: upstreamTls.serverName ?? (isIp(this.#options.host) ? undefined : this.#options.host),
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.2',
        ...(upstreamTls.serverName !== undefined && { checkServerIdentity: serverIdentityChecker(upstreamTls.serverName) }),
        ...(upstreamTls.verifySubjectAltNames !== undefined && { checkServerIdentity: subjectAltNameChecker(upstreamTls.verifySubjectAltNames) }),
      }),
    });
    const pooled: PooledSession = {
      session,
      onSlotFreed: () => this.#waiting.length > 0 && this.#dispatch(),
      active: 0,
      ready: false,
      usable: true,
      resets: new TokenBucket(UPSTREAM_RESETS_PER_SECOND, UPSTREAM_RESET_BURST),
      cancelled: () => this.#cancelled(pooled),
    };
    this.#sessions.push(pooled);

    const connectTimer = setTimeout(() => {
      session.destroy(new Error(`connect to ${this.#authority} timed out after ${this.#options.connectTimeoutMs} ms`));
    }, this.#options.connectTimeoutMs);

    session.once('connect', () => {
      session.setLocalWindowSize(UPSTREAM_CONNECTION_WINDOW);
    });
    session.once('remoteSettings', () => {
      clearTimeout(connectTimer);
      pooled.ready = true;
      this.#startKeepalive(session);
      if (this.#consecutiveFailures > 0) {
        this.#consecutiveFailures = 0;
        this.#backoffUntil = 0;
        this.#options.onStateChange?.();
      }
      this.#dispatch();
    });
    session.on('error', (error: Error) => {
      if (!pooled.ready) this.#recordConnectFailure(error);
    });
    session.once('goaway', () => {
      this.#retire(pooled);
      this.#dispatch();
    });
    session.once('close', () => {
      clearTimeout(connectTimer);
      this.#options.limits?.endConnection();
      const failedBeforeReady = !pooled.ready;
      this.#retire(pooled);
      if (failedBeforeReady && !this.#sessions.some((s) => s.usable)) {
        this.#failWaiting(new Error(`cannot connect to ${this.#authority}: ${this.#lastConnectError?.message ?? 'connection closed before SETTINGS'}`));
      } else {
        this.#dispatch();
      }
    });
    // An idle pooled connection must not keep the process alive on shutdown.
    session.unref();
  }

  /**
   * A connection whose peer vanished without a FIN or RST (a blackhole, a dead node) would hold
   * its streams until their deadlines; an unanswered PING closes it, and its streams fail as resets.
   */
  #startKeepalive(session: http2.ClientHttp2Session): void {
    const keepalive = this.#options.keepalive;
    if (!keepalive) return;
    const timer = setInterval(() => {
      if (session.destroyed) return clearInterval(timer);
      const deadline = setTimeout(() => {
        session.destroy(new Error(`no PING ack from ${this.#authority} within ${keepalive.timeoutMs} ms`));
      }, keepalive.timeoutMs);
      deadline.unref();
      const sent = session.ping((error) => {
        clearTimeout(deadline);
        if (error && !session.destroyed) session.destroy(error);
      });
      if (!sent) clearTimeout(deadline);
    }, keepalive.intervalMs);
    timer.unref();
    session.once('close', () => clearInterval(timer));
  }

  #retire(pooled: PooledSession): void {
    pooled.usable = false;
    const index = this.#sessions.indexOf(pooled);
    if (index >= 0) this.#sessions.splice(index, 1);
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

const REQUEST_OPTIONS: http2.ClientSessionRequestOptions = { endStream: false };
const POOLED = Symbol('switchyard.pooledSession');
type PooledStream = http2.ClientHttp2Stream & { [POOLED]: PooledSession };

/** Shared by every stream, so no closure is made per RPC. */
function onPooledStreamClose(this: http2.ClientHttp2Stream): void {
  const pooled = (this as PooledStream)[POOLED];
  pooled.active--;
  pooled.onSlotFreed();
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Checks the certificate against the configured name rather than the address dialled. */
function serverIdentityChecker(serverName: string) {
  return (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(serverName, cert);
}
