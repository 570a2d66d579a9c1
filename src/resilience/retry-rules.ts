/**
 * When an attempt of an RPC may be retried, and after how long. Pure: the
 * forwarder asks, these functions answer; nothing here touches a socket.
 */
import { Status } from '../grpc/status.ts';
import { FAILURES } from '../grpc/failures.ts';
import type { Outcome } from '../grpc/outcome.ts';
import type { RouteConfig } from '../config/schema.ts';

export interface RetryRules {
  readonly codes: ReadonlySet<number>;
  readonly onConnectFailure: boolean;
  readonly onReset: boolean;
  readonly onRefusedStream: boolean;
  /** Retries allowed by the route's policy (transparent retries come on top). */
  readonly numRetries: number;
  readonly perTryTimeoutMs: number | undefined;
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
  /** Request bytes kept for replay; a larger request is not retried. */
  readonly maxBufferedBytes: number;
}

/**
 * A stream the backend never saw (refused, or never connected) is always safe
 * to send again; every route gets this many such retries, policy or not.
 */
export const TRANSPARENT_RETRIES = 1;

/** A route without retry_policy: only transparent retries, with a small replay buffer. */
export const TRANSPARENT_ONLY: RetryRules = {
  codes: new Set(),
  onConnectFailure: false,
  onReset: false,
  onRefusedStream: false,
  numRetries: 0,
  perTryTimeoutMs: undefined,
  baseIntervalMs: 0,
  maxIntervalMs: 0,
  maxBufferedBytes: 64 << 10,
};

const CODE_BY_CONDITION: Record<string, number> = {
  cancelled: Status.CANCELLED,
  deadline_exceeded: Status.DEADLINE_EXCEEDED,
  internal: Status.INTERNAL,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  unavailable: Status.UNAVAILABLE,
};

export function compileRetryRules(policy: RouteConfig['retry_policy']): RetryRules {
  if (!policy) return TRANSPARENT_ONLY;
  const on = new Set<string>(policy.retry_on);
  return {
    codes: new Set(policy.retry_on.flatMap((condition) => (CODE_BY_CONDITION[condition] === undefined ? [] : [CODE_BY_CONDITION[condition]!]))),
    onConnectFailure: on.has('connect_failure'),
    onReset: on.has('reset'),
    onRefusedStream: on.has('refused_stream'),
    numRetries: policy.num_retries,
    perTryTimeoutMs: policy.per_try_timeout,
    baseIntervalMs: policy.base_interval,
    maxIntervalMs: policy.max_interval,
    maxBufferedBytes: policy.max_buffered_bytes,
  };
}

/** True when the backend cannot have processed the attempt (src/grpc/failures.ts: `transparent`). */
export function isTransparent(outcome: Outcome): boolean {
  return outcome.failure !== undefined && FAILURES[outcome.failure].retry === 'transparent';
}

/**
 * Does the route's policy retry this outcome? A backend's status by `retry_on`'s codes, the proxy's
 * failures by their conditions. (Budget, attempts and deadline are checked by the caller.)
 */
export function policyRetries(rules: RetryRules, outcome: Outcome): boolean {
  switch (outcome.failure) {
    case undefined: return rules.codes.has(outcome.status);
    case 'upstream_connect_failure': return rules.onConnectFailure;
    case 'upstream_refused': return rules.onRefusedStream;
    case 'upstream_reset': return rules.onReset;
    // A non-gRPC answer (HTTP 503) or a stream that ended without a status: retried as a reset, or by its mapped status.
    case 'upstream_protocol_error': return rules.onReset || rules.codes.has(outcome.status);
    case 'per_try_timeout': return rules.numRetries > 0;
    default: return false;
  }
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base × 2^retry)). */
export function backoffMs(rules: RetryRules, retryIndex: number, random: () => number): number {
  const ceiling = Math.min(rules.maxIntervalMs, rules.baseIntervalMs * 2 ** retryIndex);
  return Math.floor(random() * ceiling);
}

/**
 * `grpc-retry-pushback-ms` from a backend's trailers (gRPC A6): a
 * non-negative integer is the delay to use; anything else means do not retry.
 * Undefined when the header is absent.
 */
export function pushback(value: string | string[] | undefined): number | 'stop' | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : 'stop';
}
