/**
 * Per-connection abuse limits that Node's HTTP/2 options do not cover:
 *
 * - an idle timeout: a connection with no open stream for `idleTimeoutMs`
 *   is sent away (two-phase GOAWAY), so parked connections cannot pile up;
 * - a PING and SETTINGS flood limit: more control frames than a token bucket
 *   allows ends the connection with ENHANCE_YOUR_CALM;
 * - rapid reset: a stream reset before it was routed (HEADERS and RST_STREAM
 *   read in the same turn of the event loop) takes a token from a bucket with
 *   nghttp2's own limits (stream_reset_burst, stream_reset_rate). nghttp2
 *   counts every reset, so by the time this bucket is empty it has sent, or
 *   is about to send, its GOAWAY; the connection is then destroyed at once,
 *   rather than read and parsed for as long as the client keeps sending;
 * - protocol violations the RPC path finds (an oversized header list, a
 *   malformed `:path`): each is answered on its stream and takes a token from
 *   a bucket; past its burst the client is not confused but abusive, and the
 *   connection is closed (HAProxy's "glitch" counter);
 * - a per-connection RPC rate, read by the RPC handler;
 * - the message-size and stream-idle limits the RPC path applies, found by
 *   the RPC path on the session (guardOf) without a lookup.
 *
 * Everything is set up once per connection; the per-stream cost is a counter
 * and one shared close listener.
 */
import { constants, type Http2Session, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { TokenBucket } from './token-bucket.ts';

export interface ConnectionGuardConfig {
  readonly maxRequestMessageBytes: number;
  readonly maxResponseMessageBytes: number;
  /** Reset a stream with no frames for this long; undefined: never. */
  readonly streamIdleTimeoutMs: number | undefined;
  /** Reset a stream whose data could not move for this long; undefined: never. */
  readonly stalledStreamTimeoutMs: number | undefined;
  /** Send a connection with no open streams away after this long; undefined: never. */
  readonly idleTimeoutMs: number | undefined;
  /** RPCs per second per connection (burst: one second's worth); undefined: no limit. */
  readonly rpcsPerSecond: number | undefined;
  /** PING + SETTINGS frames from the client: sustained rate and burst. */
  readonly controlFramesPerSecond: number;
  readonly controlFrameBurst: number;
  /** Streams the client may reset before they are routed: at once, and per second after that. */
  readonly streamResetBurst: number;
  readonly streamResetRate: number;
  /** Name the serving endpoint in each response (`x-switchyard-upstream`); the listener's expose_upstream. */
  readonly exposeUpstream: boolean;
  /** Decoded request header list, octets (RFC 9113 §6.5.2), enforced whether or not SETTINGS were acknowledged. */
  readonly maxHeaderListSize: number;
}

/** Why a connection was closed as abusive: the limit it went past (a metric label and a log field). */
export type AbuseLimit = 'control_frame_flood' | 'stream_reset_flood' | 'protocol_violations';

/** Protocol violations a connection may commit at once, and per second after that, before it is closed. */
const PROTOCOL_VIOLATION_BURST = 100;
const PROTOCOL_VIOLATIONS_PER_SECOND = 10;

export interface GuardHooks {
  /** The idle timeout fired (once per idle period); the listener sends GOAWAY. */
  onIdle(): void;
  /** The guard is closing the connection for abuse: log it and count it. Called once per connection. */
  onAbusive(limit: AbuseLimit): void;
}

export interface ConnectionGuard {
  readonly config: ConnectionGuardConfig;
  readonly rpcs: TokenBucket | undefined;
  openStreams: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Streams reset before they were routed (see streamResetBeforeRouting). */
  readonly earlyResets: TokenBucket;
  readonly violations: TokenBucket;
  readonly hooks: GuardHooks;
  /** Set once the connection is being closed for abuse. */
  abusive: boolean;
  /** GOAWAY ENHANCE_YOUR_CALM, report, close. */
  closeAsAbusive(limit: AbuseLimit): void;
}

const GUARD = Symbol('switchyard.connectionGuard');
type Guarded = object & { [GUARD]?: ConnectionGuard };

/** The guard of a client connection (whatever HTTP/2 implementation made it), if it has one. */
export function guardOf(connection: object | undefined): ConnectionGuard | undefined {
  return (connection as Guarded | undefined)?.[GUARD];
}

/** Installs the guard on a new server session. */
export function guardConnection(session: ServerHttp2Session, config: ConnectionGuardConfig, hooks: GuardHooks): ConnectionGuard {
  const guard: ConnectionGuard = {
    config,
    rpcs: config.rpcsPerSecond === undefined ? undefined : new TokenBucket(config.rpcsPerSecond, Math.max(1, config.rpcsPerSecond)),
    openStreams: 0,
    idleTimer: undefined,
    earlyResets: new TokenBucket(config.streamResetRate, config.streamResetBurst),
    violations: new TokenBucket(PROTOCOL_VIOLATIONS_PER_SECOND, PROTOCOL_VIOLATION_BURST),
    hooks,
    abusive: false,
    closeAsAbusive: (limit) => closeAsAbusive(session, guard, limit),
  };
  const onIdle = () => hooks.onIdle();
  (session as Guarded)[GUARD] = guard;

  const idleMs = config.idleTimeoutMs;
  const armIdle = () => {
    if (idleMs === undefined) return;
    clearTimeout(guard.idleTimer);
    guard.idleTimer = setTimeout(onIdle, idleMs);
    guard.idleTimer.unref();
  };
  const onStreamClose = () => {
    if (--guard.openStreams === 0) armIdle();
  };
  session.on('stream', (stream: ServerHttp2Stream) => {
    if (guard.openStreams++ === 0) clearTimeout(guard.idleTimer);
    stream.once('close', onStreamClose);
    if (config.streamIdleTimeoutMs !== undefined) stream.setTimeout(config.streamIdleTimeoutMs, onStreamIdle);
  });
  armIdle();

  const control = new TokenBucket(config.controlFramesPerSecond, config.controlFrameBurst);
  const onControlFrame = () => {
    if (guard.abusive || control.tryTake() || session.destroyed) return;
    // The client sends control frames faster than any legitimate use needs: tell it why, then drop it.
    guard.closeAsAbusive('control_frame_flood');
  };
  session.on('ping', onControlFrame);
  session.on('remoteSettings', onControlFrame);
  session.once('close', () => clearTimeout(guard.idleTimer));
  return guard;
}

/**
 * Called (outside nghttp2's callbacks) for a stream the client reset before
 * the handler saw it. Past the burst the client is flooding resets: the
 * session is destroyed (a last GOAWAY ENHANCE_YOUR_CALM is attempted), so no
 * more of what it sent is read. Returns whether it was.
 */
export function streamResetBeforeRouting(session: Http2Session | undefined): boolean {
  const guard = guardOf(session);
  if (!session || !guard || session.destroyed || guard.earlyResets.tryTake()) return false;
  if (!guard.abusive) {
    guard.abusive = true;
    guard.hooks.onAbusive('stream_reset_flood');
  }
  session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  return true;
}

/**
 * Counts one protocol violation that the RPC path found and answered on its
 * stream. Past the burst the connection is sent away with ENHANCE_YOUR_CALM.
 */
export function protocolViolation(connection: object | undefined): void {
  const guard = guardOf(connection);
  if (!guard || guard.abusive || guard.violations.tryTake()) return;
  guard.closeAsAbusive('protocol_violations');
}

function closeAsAbusive(session: Http2Session, guard: ConnectionGuard, limit: AbuseLimit): void {
  if (guard.abusive || session.destroyed) return;
  guard.abusive = true;
  guard.hooks.onAbusive(limit);
  session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  // A moment for the GOAWAY to be written; destroy() at once would discard it.
  setTimeout(destroySession, GOAWAY_FLUSH_MS, session).unref();
}

/** Time given to a GOAWAY to reach the socket before the connection is destroyed. */
const GOAWAY_FLUSH_MS = 50;

function destroySession(session: Http2Session): void {
  session.destroy();
}

/** A stream that has seen no frame for the stream idle timeout. */
function onStreamIdle(this: ServerHttp2Stream): void {
  if (!this.closed) this.close(constants.NGHTTP2_CANCEL);
}
