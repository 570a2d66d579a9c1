/**
 * What the RPC path keeps per client connection: the listener's limits that it
 * applies (message sizes, exposing the upstream, stalled streams, the decoded
 * header list), a per-connection RPC rate, and the connection's count of
 * protocol violations the RPC path finds (an oversized header list, a
 * malformed `:path`), which the HTTP/2 connection adds to its glitch budget.
 * The HTTP/2-level limits (control frames, resets, glitches, handshake) are
 * the connection's own (src/http2/server-connection.ts).
 *
 * The guard hangs on the connection object, so the RPC path finds it without a lookup.
 */
import { TokenBucket } from './token-bucket.ts';

export interface ConnectionGuardConfig {
  readonly maxRequestMessageBytes: number;
  readonly maxResponseMessageBytes: number;
  /** RPCs per second per connection (burst: one second's worth); undefined: no limit. */
  readonly rpcsPerSecond: number | undefined;
  /** Name the serving endpoint in each response (`x-switchyard-upstream`); the listener's expose_upstream. */
  readonly exposeUpstream: boolean;
  /** Decoded request header list, octets (RFC 9113 §6.5.2), enforced whether or not SETTINGS were acknowledged. */
  readonly maxHeaderListSize: number;
  /** Reset a stream whose data could not move for this long; undefined: never. */
  readonly stalledStreamTimeoutMs: number | undefined;
}

/** Why a connection was closed as abusive: the limit it went past (a metric label and a log field). */
export type AbuseLimit = 'control_frame_flood' | 'stream_reset_flood' | 'protocol_violations' | 'handshake_timeout';

/** What the guard needs of the connection it guards. */
export interface GuardedConnection {
  /** One protocol violation, counted against the connection's glitch budget. */
  protocolViolation(): void;
}

export interface ConnectionGuard {
  readonly config: ConnectionGuardConfig;
  readonly rpcs: TokenBucket | undefined;
  readonly connection: GuardedConnection;
}

const GUARD = Symbol('switchyard.connectionGuard');
type Guarded = object & { [GUARD]?: ConnectionGuard };

/** Installs the guard on a new client connection. */
export function guardConnection(connection: GuardedConnection, config: ConnectionGuardConfig): ConnectionGuard {
  const guard: ConnectionGuard = {
    config,
    rpcs: config.rpcsPerSecond === undefined ? undefined : new TokenBucket(config.rpcsPerSecond, Math.max(1, config.rpcsPerSecond)),
    connection,
  };
  (connection as Guarded)[GUARD] = guard;
  return guard;
}

/** The guard of a client connection, if it has one. */
export function guardOf(connection: object | undefined): ConnectionGuard | undefined {
  return (connection as Guarded | undefined)?.[GUARD];
}

/**
 * Counts one protocol violation that the RPC path found and answered on its
 * stream; past the connection's budget it is closed with ENHANCE_YOUR_CALM.
 */
export function protocolViolation(connection: object | undefined): void {
  guardOf(connection)?.connection.protocolViolation();
}
