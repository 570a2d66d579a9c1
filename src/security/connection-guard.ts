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
}

export interface ConnectionGuard {
  readonly config: ConnectionGuardConfig;
  readonly rpcs: TokenBucket | undefined;
  openStreams: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Streams reset before they were routed (see streamResetBeforeRouting). */
  readonly earlyResets: TokenBucket;
}

const GUARD = Symbol('switchyard.connectionGuard');
type GuardedSession = Http2Session & { [GUARD]?: ConnectionGuard };

export function guardOf(session: Http2Session | undefined): ConnectionGuard | undefined {
  return (session as GuardedSession | undefined)?.[GUARD];
}

/**
 * Installs the guard on a new server session. `onIdle` is called (once per
 * idle period) when the idle timeout fires; the listener sends GOAWAY.
 */
export function guardConnection(session: ServerHttp2Session, config: ConnectionGuardConfig, onIdle: () => void): ConnectionGuard {
  const guard: ConnectionGuard = {
    config,
    rpcs: config.rpcsPerSecond === undefined ? undefined : new TokenBucket(config.rpcsPerSecond, Math.max(1, config.rpcsPerSecond)),
    openStreams: 0,
    idleTimer: undefined,
    earlyResets: new TokenBucket(config.streamResetRate, config.streamResetBurst),
  };
  (session as GuardedSession)[GUARD] = guard;

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
  let flooding = false;
  const onControlFrame = () => {
    if (flooding || control.tryTake() || session.destroyed) return;
    // The client sends control frames faster than any legitimate use needs: tell it why, then drop it.
    flooding = true;
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // A moment for the GOAWAY to be written; destroy() at once would discard it.
    setTimeout(destroySession, GOAWAY_FLUSH_MS, session).unref();
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
  session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  return true;
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
