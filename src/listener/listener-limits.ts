/**
 * Translates a listener's config into what each client connection runs with:
 * the settings it announces and enforces, its HTTP/2 abuse budgets, and the
 * per-connection guard the RPC path reads. The values and their reasons are in
 * docs/security.md.
 */
import type { ListenerConfig } from '../config/schema.ts';
import type { LocalSettings } from '../http2/connection.ts';
import type { ServerLimits } from '../http2/server-connection.ts';
import type { ConnectionGuardConfig } from '../security/connection-guard.ts';

/** Header fields per request: gRPC metadata beyond a few dozen entries is abuse, not use. */
const MAX_HEADER_FIELDS = 128;

export function localSettings(config: ListenerConfig): LocalSettings {
  const limits = config.http2;
  return {
    maxConcurrentStreams: limits.max_concurrent_streams,
    streamWindow: limits.initial_stream_window,
    connectionWindow: limits.connection_window,
    maxHeaderListSize: limits.max_header_list_size,
    maxHeaderFields: MAX_HEADER_FIELDS,
    // RFC 8441: WebSocket over HTTP/2 as extended CONNECT streams, which the composition hands to src/websocket/.
    enableConnectProtocol: config.websocket.over_http2,
  };
}

export function serverLimits(config: ListenerConfig): ServerLimits {
  const limits = config.http2;
  return {
    controlFrameBurst: limits.control_frame_burst,
    controlFramesPerSecond: limits.control_frames_per_second,
    streamResetBurst: limits.stream_reset_burst,
    streamResetRate: limits.stream_reset_rate,
    handshakeTimeoutMs: limits.handshake_timeout,
    maxBufferedBytes: limits.max_session_memory_mb * (1 << 20),
  };
}

export function connectionGuardConfig(config: ListenerConfig): ConnectionGuardConfig {
  const limits = config.http2;
  return {
    maxRequestMessageBytes: limits.max_request_message_bytes,
    maxResponseMessageBytes: limits.max_response_message_bytes,
    rpcsPerSecond: limits.max_rpcs_per_second_per_connection,
    exposeUpstream: config.expose_upstream,
    maxHeaderListSize: limits.max_header_list_size,
    stalledStreamTimeoutMs: limits.stalled_stream_timeout === 'off' ? undefined : limits.stalled_stream_timeout,
  };
}

/** Connection and stream idle timeouts, ms; undefined: off. */
export function idleTimeouts(config: ListenerConfig): { connectionMs: number | undefined; streamMs: number | undefined } {
  const limits = config.http2;
  return {
    connectionMs: limits.idle_timeout === 'off' ? undefined : limits.idle_timeout,
    streamMs: limits.stream_idle_timeout === 'off' ? undefined : limits.stream_idle_timeout,
  };
}
