/**
 * Translates a listener's abuse limits into Node's HTTP/2 server options and
 * the per-connection guard's settings. Called by the listener; the values and
 * their reasons are in docs/security.md.
 */
import type { ServerOptions } from 'node:http2';
import type { ListenerConfig } from '../config/schema.ts';
import type { ConnectionGuardConfig } from './connection-guard.ts';

/** Header fields per request: gRPC metadata beyond a few dozen entries is abuse, not use (Node's default, said out loud). */
const MAX_HEADER_LIST_PAIRS = 128;
/** Entries in one SETTINGS frame: there are 7 defined settings (Node's default). */
const MAX_SETTINGS = 32;
/** Protocol-violating frames tolerated per connection before it is closed (Node allows 1000). */
const MAX_INVALID_FRAMES = 100;
/** Streams refused (over max_concurrent_streams) per connection before it is closed. */
const MAX_REJECTED_STREAMS = 100;
/** A TLS connection that negotiates no ALPN h2 is closed after this long. */
const UNKNOWN_PROTOCOL_TIMEOUT_MS = 10_000;

/** Options for http2.createServer / createSecureServer, beyond settings and TLS. */
export function serverAbuseOptions(config: ListenerConfig): ServerOptions {
  const limits = config.http2;
  return {
    maxSessionMemory: limits.max_session_memory_mb,
    maxHeaderListPairs: MAX_HEADER_LIST_PAIRS,
    maxSettings: MAX_SETTINGS,
    maxSessionInvalidFrames: MAX_INVALID_FRAMES,
    maxSessionRejectedStreams: MAX_REJECTED_STREAMS,
    unknownProtocolTimeout: UNKNOWN_PROTOCOL_TIMEOUT_MS,
    streamResetBurst: limits.stream_reset_burst,
    streamResetRate: limits.stream_reset_rate,
  };
}

export function connectionGuardConfig(config: ListenerConfig): ConnectionGuardConfig {
  const limits = config.http2;
  return {
    maxRequestMessageBytes: limits.max_request_message_bytes,
    maxResponseMessageBytes: limits.max_response_message_bytes,
    streamIdleTimeoutMs: limits.stream_idle_timeout === 'off' ? undefined : limits.stream_idle_timeout,
    stalledStreamTimeoutMs: limits.stalled_stream_timeout === 'off' ? undefined : limits.stalled_stream_timeout,
    idleTimeoutMs: limits.idle_timeout === 'off' ? undefined : limits.idle_timeout,
    rpcsPerSecond: limits.max_rpcs_per_second_per_connection,
    controlFramesPerSecond: limits.control_frames_per_second,
    controlFrameBurst: limits.control_frame_burst,
    streamResetBurst: limits.stream_reset_burst,
    streamResetRate: limits.stream_reset_rate,
    exposeUpstream: config.expose_upstream,
    maxHeaderListSize: config.http2.max_header_list_size,
  };
}

/** Whether two listener configs give the same server options (which a running server cannot change). */
export function sameServerAbuseOptions(a: ListenerConfig, b: ListenerConfig): boolean {
  return JSON.stringify(serverAbuseOptions(a)) === JSON.stringify(serverAbuseOptions(b));
}
