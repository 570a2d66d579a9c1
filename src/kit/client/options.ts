/**
 * What the client kit accepts, its defaults, and the checks that turn a bad option into an error
 * at construction time instead of a channel that silently ignores it. docs/kit-client.md.
 */
import type * as grpc from '@grpc/grpc-js';

/** Certificate files, re-read every refreshIntervalMs, so a rotated certificate is used by new connections. */
export interface ClientTlsOptions {
  /** PEM bundle of the CAs that sign the servers' certificates. Required: the kit never falls back to the system roots. */
  readonly caFile: string;
  /** The client's certificate (PEM, leaf first). With keyFile: mTLS. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /**
   * The identity the server's certificate must carry: a DNS name (checked like a hostname, wildcards
   * included) or a `spiffe://…` URI SAN. Default: the host name of the target (`echo.shop.svc.cluster.local`
   * for `dns:///echo.shop.svc.cluster.local:50051`), which grpc-js checks by itself. Either way an
   * address now held by another service, with a valid certificate from the same CA, is refused.
   */
  readonly serverName?: string;
  /** How often the files are re-read. Default 10 s; rotations are picked up within this interval. */
  readonly refreshIntervalMs?: number;
}

/** A gRPC retry policy (gRFC A6), in milliseconds rather than duration strings. */
export interface RetryOptions {
  /** Total attempts including the first, 2–5 (grpc-js caps it at 5). Default 3. */
  readonly maxAttempts?: number;
  /** Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 1 s. */
  readonly maxBackoffMs?: number;
  /** Default 2. */
  readonly backoffMultiplier?: number;
  /** Codes (numbers or names such as 'UNAVAILABLE') that are retried. Default ['UNAVAILABLE']. */
  readonly retryableStatusCodes?: readonly (grpc.status | string)[];
}

/** Settings for one service (`pkg.Service`) or one method (`pkg.Service/Method`), overriding the channel-wide ones. */
export interface MethodOptions {
  readonly name: string;
  /** null: no timeout for this method even if the channel has one. */
  readonly timeoutMs?: number | null;
  /** false: never retry this method (non-idempotent writes). */
  readonly retry?: RetryOptions | false;
  readonly waitForReady?: boolean;
}

export interface ClientKitOptions {
  /**
   * `dns:///name:port` (a headless Service: every pod address, balanced per RPC), optionally with a DNS
   * server as authority (`dns://10.0.0.10:53/name:port`, which needs GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true),
   * or `xds:///name` (balancing, retries and timeouts from the xDS control plane).
   */
  readonly target: string;
  /** Absent: plaintext. */
  readonly tls?: ClientTlsOptions;
  /** Channel-wide retry policy. Default: UNAVAILABLE retried up to 3 attempts; false: off. */
  readonly retry?: RetryOptions | false;
  /** Channel-wide deadline for every call that sets none. Default: none (a default timeout would cut long streams). */
  readonly timeoutMs?: number;
  readonly methods?: readonly MethodOptions[];
  /** HTTP/2 PING interval on connections with calls in flight. Default 30 s, which the server kit permits. */
  readonly keepaliveMs?: number;
  /** Minimum time between two DNS resolutions of the target. Default 5 s (grpc-js's own default is 30 s). */
  readonly dnsMinResolutionIntervalMs?: number;
  /** Extra channel options, applied last (they override the kit's). */
  readonly channelOptions?: grpc.ChannelOptions;
}

export const CLIENT_DEFAULTS = {
  keepaliveMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  dnsMinResolutionIntervalMs: 5_000,
  tlsRefreshIntervalMs: 10_000,
  retry: {
    maxAttempts: 3,
    initialBackoffMs: 100,
    maxBackoffMs: 1_000,
    backoffMultiplier: 2,
    retryableStatusCodes: ['UNAVAILABLE'],
  },
} as const;

/** Throws a RangeError naming the option unless `value` is a finite number ≥ `min`. */
export function requireNumber(name: string, value: number, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RangeError(`client kit: ${name} must be a finite number ≥ ${min}, got ${String(value)}`);
  }
  return value;
}
