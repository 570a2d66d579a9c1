/**
 * Server options for a @grpc/grpc-js service behind a balancer: connections age out so clients
 * re-resolve and spread onto new replicas, and dead clients are found by the server's own PINGs.
 * docs/kit-server.md explains each value and how it pairs with the client kit.
 */
import type * as grpc from '@grpc/grpc-js';

export interface ServerOptionsInput {
  /**
   * Close each connection (GOAWAY) after about this long, so clients reconnect and re-resolve.
   * grpc-js itself adds a random ±10% per connection, so connections opened together do not all
   * leave together. Default 5 minutes; 0 or Infinity turns it off.
   */
  readonly maxConnectionAgeMs?: number;
  /** After the age GOAWAY, RPCs still running get this long before the connection is closed hard. Default 30 s. */
  readonly maxConnectionAgeGraceMs?: number;
  /**
   * The server PINGs each connection this often, and closes one whose peer does not answer within
   * keepaliveTimeoutMs (a client that vanished without a FIN). Default 60 s; 0 turns it off.
   */
  readonly keepaliveTimeMs?: number;
  /** Default 20 s. */
  readonly keepaliveTimeoutMs?: number;
  /** Largest request message accepted, bytes. Default grpc-js's 4 MiB. */
  readonly maxReceiveMessageBytes?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. Default: unset (grpc-js: unlimited). */
  readonly maxConcurrentStreams?: number;
}

export const SERVER_DEFAULTS = {
  maxConnectionAgeMs: 300_000,
  maxConnectionAgeGraceMs: 30_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
} as const;

/**
 * The client kit's keepalive: it PINGs every 30 s (grpc.keepalive_time_ms: 30000). A server that
 * enforces a minimum ping interval (gRPC C-core's grpc.http2.min_ping_interval_without_data_ms,
 * Go's EnforcementPolicy.MinTime, both 5 minutes by default) must allow at least this often, or it
 * answers GOAWAY too_many_pings. grpc-js 1.14 servers enforce no minimum at all (they only answer
 * PINGs), so the pairing holds; a Go or C++ service behind the same client kit must set MinTime ≤ 20 s.
 */
export const CLIENT_KIT_KEEPALIVE_MS = 30_000;
export const MIN_PING_INTERVAL_TO_PERMIT_MS = 20_000;

/** grpc.ServerOptions for `new grpc.Server(serverOptions({...}))`. */
export function serverOptions(input: ServerOptionsInput = {}): grpc.ServerOptions {
  const age = input.maxConnectionAgeMs ?? SERVER_DEFAULTS.maxConnectionAgeMs;
  const grace = input.maxConnectionAgeGraceMs ?? SERVER_DEFAULTS.maxConnectionAgeGraceMs;
  const keepalive = input.keepaliveTimeMs ?? SERVER_DEFAULTS.keepaliveTimeMs;
  const keepaliveTimeout = input.keepaliveTimeoutMs ?? SERVER_DEFAULTS.keepaliveTimeoutMs;
  for (const [name, value] of Object.entries({ maxConnectionAgeMs: age, maxConnectionAgeGraceMs: grace, keepaliveTimeMs: keepalive, keepaliveTimeoutMs: keepaliveTimeout })) {
    if (!(value >= 0)) throw new RangeError(`${name} must be a number ≥ 0, got ${value}`);
  }
  const options: grpc.ServerOptions = {};
  if (age > 0 && Number.isFinite(age)) {
    options['grpc.max_connection_age_ms'] = age;
    options['grpc.max_connection_age_grace_ms'] = grace;
  }
  if (keepalive > 0 && Number.isFinite(keepalive)) {
    options['grpc.keepalive_time_ms'] = keepalive;
    options['grpc.keepalive_timeout_ms'] = keepaliveTimeout;
  }
  if (input.maxReceiveMessageBytes !== undefined) options['grpc.max_receive_message_length'] = input.maxReceiveMessageBytes;
  if (input.maxConcurrentStreams !== undefined) options['grpc.max_concurrent_streams'] = input.maxConcurrentStreams;
  return options;
}
