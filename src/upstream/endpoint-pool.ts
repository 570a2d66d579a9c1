/**
 * HTTP/2 connections to one backend endpoint, shared by every RPC sent to it.
 * A new connection is opened only when every open one is at the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS. Failed connects put the endpoint in an
 * exponential backoff, which the cluster reads to stop picking it.
 */
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import type { OutgoingHttpHeaders } from 'node:http2';

export interface UpstreamTls {
  readonly ca: Buffer;
  /** Name the backend certificate must carry, also sent as SNI. */
  readonly serverName?: string | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export interface EndpointPoolOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: UpstreamTls | undefined;
  readonly connectTimeoutMs: number;
  /** Called when the endpoint enters or leaves connect backoff. */
  readonly onStateChange?: () => void;
  /** Called after a connection attempt fails (e.g. to ask discovery for a refresh). */
  readonly onConnectFailure?: (error: Error) => void;
  readonly now?: () => number;
}

/** Streams assumed allowed before the peer's SETTINGS arrive (RFC 9113 recommends at least 100). */
const DEFAULT_PEER_MAX_STREAMS = 100;
const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const UPSTREAM_STREAM_WINDOW = 1 << 20;
const UPSTREAM_CONNECTION_WINDOW = 16 << 20;

interface PooledSession {
  readonly session: http2.ClientHttp2Session;
  active: number;
  usable: boolean;
}

export class EndpointPool {
  readonly #options: EndpointPoolOptions;
  readonly #authority: string;
  readonly #sessions: PooledSession[] = [];
  readonly #now: () => number;
  #consecutiveFailures = 0;
  #backoffUntil = 0;
  #closed = false;
  #backoffTimer: NodeJS.Timeout | undefined;

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
   * Opens a stream to the endpoint. Synchronous: on a connection still being
   * established the request is queued by Node and fails with a stream error if
   * the connect fails. Throws only if the pool is closed or Node refuses the headers.
   */
  request(headers: OutgoingHttpHeaders): http2.ClientHttp2Stream {
    if (this.#closed) throw new Error(`connection pool for ${this.#authority} is closed`);
    const pooled = this.#sessionWithCapacity() ?? this.#connect();
    const stream = pooled.session.request(headers, { endStream: false });
    pooled.active++;
    stream.once('close', () => {
      pooled.active--;
    });
    return stream;
  }

  /** Stops new streams; open streams finish, then the connections close. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#backoffTimer);
    for (const pooled of this.#sessions.splice(0)) {
      pooled.usable = false;
      pooled.session.close();
    }
  }

  /** Closes every connection at once, resetting open streams. */
  destroy(): void {
    this.#closed = true;
    clearTimeout(this.#backoffTimer);
    for (const pooled of this.#sessions.splice(0)) pooled.session.destroy();
  }

  #sessionWithCapacity(): PooledSession | undefined {
    for (const pooled of this.#sessions) {
      if (!pooled.usable) continue;
      const limit = pooled.session.remoteSettings?.maxConcurrentStreams ?? DEFAULT_PEER_MAX_STREAMS;
      if (pooled.active < limit) return pooled;
    }
    return undefined;
  }

  #connect(): PooledSession {
    const upstreamTls = this.#options.tls;
    const session = http2.connect(this.#authority, {
      settings: { enablePush: false, initialWindowSize: UPSTREAM_STREAM_WINDOW },
      ...(upstreamTls && {
        ca: upstreamTls.ca,
        cert: upstreamTls.cert,
        key: upstreamTls.key,
        servername: upstreamTls.serverName ?? (isIp(this.#options.host) ? undefined : this.#options.host),
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.2',
        ...(upstreamTls.serverName !== undefined && { checkServerIdentity: serverIdentityChecker(upstreamTls.serverName) }),
      }),
    });
    const pooled: PooledSession = { session, active: 0, usable: true };
    this.#sessions.push(pooled);

    const connectTimer = setTimeout(() => {
      session.destroy(new Error(`connect to ${this.#authority} timed out after ${this.#options.connectTimeoutMs} ms`));
    }, this.#options.connectTimeoutMs);
    let connected = false;

    session.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      session.setLocalWindowSize(UPSTREAM_CONNECTION_WINDOW);
      if (this.#consecutiveFailures > 0) {
        this.#consecutiveFailures = 0;
        this.#backoffUntil = 0;
        this.#options.onStateChange?.();
      }
    });
    session.on('error', (error: Error) => {
      if (!connected) this.#recordConnectFailure(error);
    });
    session.once('goaway', () => this.#retire(pooled));
    session.once('close', () => {
      clearTimeout(connectTimer);
      this.#retire(pooled);
    });
    // An idle pooled connection must not keep the process alive on shutdown.
    session.unref();
    return pooled;
  }

  #retire(pooled: PooledSession): void {
    pooled.usable = false;
    const index = this.#sessions.indexOf(pooled);
    if (index >= 0) this.#sessions.splice(index, 1);
  }

  #recordConnectFailure(error: Error): void {
    this.#consecutiveFailures++;
    const exponential = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (this.#consecutiveFailures - 1));
    // Jitter spreads reconnects of many proxies so they don't arrive together.
    const delay = exponential * (0.8 + Math.random() * 0.4);
    this.#backoffUntil = this.#now() + delay;
    clearTimeout(this.#backoffTimer);
    // The endpoint becomes eligible again when the backoff ends; the next RPC tries a fresh connect.
    this.#backoffTimer = setTimeout(() => this.#options.onStateChange?.(), delay + 1).unref();
    this.#options.onConnectFailure?.(error);
    this.#options.onStateChange?.();
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Checks the certificate against the configured name rather than the address dialled. */
function serverIdentityChecker(serverName: string) {
  return (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(serverName, cert);
}
