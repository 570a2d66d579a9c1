/**
 * Config fields of the HTTP/2 and gRPC abuse limits and rate limits. Kept
 * beside the code that enforces them; src/config/schema.ts composes them.
 * Why each default: docs/security.md.
 */
import { z } from 'zod';
import { duration } from './schema-primitives.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../grpc/frame-meter.ts';

const positiveInt = (max: number) => z.number().int().min(1).max(max);
/** A duration, or `off` for none. */
const durationOrOff = z.union([z.literal('off'), duration]);

/** Fields of a listener's `http2` block beyond the SETTINGS it advertises. */
export const http2AbuseFields = {
  /** Largest gRPC message a client may send, from its 5-byte length prefix. */
  max_request_message_bytes: positiveInt(2 ** 32 - 1).default(DEFAULT_MAX_MESSAGE_BYTES),
  /** Largest gRPC message a backend may send back to the client. */
  max_response_message_bytes: positiveInt(2 ** 32 - 1).default(DEFAULT_MAX_MESSAGE_BYTES),
  /** A connection with no open stream for this long gets GOAWAY. */
  idle_timeout: durationOrOff.default(300_000),
  /**
   * A client must send the HTTP/2 connection preface and its first SETTINGS within this (after TLS, when
   * there is TLS; in the clear, its first bytes within this too), or the connection is closed.
   */
  handshake_timeout: duration.default(10_000),
  /** A stream with no frame either way for this long is reset. Off by default: long-lived streams are often quiet. */
  stream_idle_timeout: durationOrOff.default('off'),
  /**
   * A stream whose data cannot move for this long, because its reader (the client, or the backend for a
   * request) grants no flow-control window, is reset: it would otherwise hold a window of buffered data
   * for ever. Not an idle timeout: a quiet stream with nothing to send never stalls.
   */
  stalled_stream_timeout: durationOrOff.default(30_000),
  /**
   * Rapid reset (CVE-2023-44487) and MadeYouReset (CVE-2025-8671): a client may have this many streams
   * reset, by itself or by the proxy for what it sent, at once… past it the connection gets GOAWAY
   * ENHANCE_YOUR_CALM and is closed. A stream reset in the read that opened it is never routed
   * (src/http2/server-connection.ts), so the burst costs map entries, not 200 forwarded RPCs.
   * 200: twice the default max_concurrent_streams.
   */
  stream_reset_burst: positiveInt(1_000_000).default(200),
  /** …and this many per second after that (a busy client's deadline cancellations fit); beyond, the connection is closed. */
  stream_reset_rate: positiveInt(1_000_000).default(100),
  /** Data one connection's streams may hold buffered (both ways), MiB; past it new streams are refused. */
  max_session_memory_mb: positiveInt(1024).default(64),
  /** PING and SETTINGS frames a client may send at once… */
  control_frame_burst: positiveInt(1_000_000).default(1000),
  /** …and per second after that; beyond, the connection is closed with ENHANCE_YOUR_CALM. */
  control_frames_per_second: positiveInt(1_000_000).default(100),
  /** RPCs a client may start per second on one connection (burst: one second's worth). Unset: no limit. */
  max_rpcs_per_second_per_connection: positiveInt(10_000_000).optional(),
};

/** Listener fields beside `http2`. */
export const listenerAbuseFields = {
  /** Open client connections beyond this are closed as soon as they are accepted. */
  max_connections: positiveInt(10_000_000).default(10_000),
};

/** `routes[].rate_limit`: a token bucket for the route, and optionally one per caller identity. */
export const routeRateLimit = z.strictObject({
  requests_per_second: z.number().positive().max(10_000_000),
  burst: positiveInt(10_000_000),
  per_identity: z
    .strictObject({
      requests_per_second: z.number().positive().max(10_000_000),
      burst: positiveInt(10_000_000),
      /** Buckets kept; past it the least recently seen identity is forgotten. */
      max_identities: positiveInt(1_000_000).default(10_000),
    })
    .optional(),
});
