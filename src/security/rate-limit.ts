/**
 * The rate limits an RPC passes before any backend is contacted: its
 * downstream connection's (listener `http2.max_rpcs_per_second_per_connection`),
 * its route's, and its route's per caller identity. Each is a token bucket;
 * an RPC over any of them is answered RESOURCE_EXHAUSTED with a message that
 * names the limit.
 *
 * Identity: the caller's label (src/security/identity.ts: its SPIFFE ID,
 * DNS name or CN, cached per connection), or `anonymous` for callers without
 * a verified certificate, who therefore share one bucket per route.
 */
import { guardOf } from './connection-guard.ts';
import { KeyedBuckets } from './keyed-buckets.ts';
import { TokenBucket } from './token-bucket.ts';

/** `routes[].rate_limit` as parsed. */
export interface RouteRateLimitConfig {
  readonly requests_per_second: number;
  readonly burst: number;
  readonly per_identity?: { readonly requests_per_second: number; readonly burst: number; readonly max_identities: number } | undefined;
}

/** One route's buckets; made when the route table is built, so a reload starts them full. */
export class RouteRateLimiter {
  readonly #route: string;
  readonly #bucket: TokenBucket;
  readonly #perIdentity: KeyedBuckets | undefined;
  readonly #config: RouteRateLimitConfig;

  constructor(route: string, config: RouteRateLimitConfig, now?: () => number) {
    this.#route = route;
    this.#config = config;
    this.#bucket = new TokenBucket(config.requests_per_second, config.burst, now);
    const perIdentity = config.per_identity;
    this.#perIdentity = perIdentity && new KeyedBuckets(perIdentity.requests_per_second, perIdentity.burst, perIdentity.max_identities, now);
  }

  /** Undefined when the RPC may go on; else why not. Takes a token from each bucket it passes. */
  admit(identity: string): string | undefined {
    // Per identity first: one noisy caller must not drain the route's shared bucket for everyone.
    if (this.#perIdentity && !this.#perIdentity.tryTake(identity)) {
      const limit = this.#config.per_identity!;
      return `rate limit of route ${this.#route} for caller ${identity} exceeded (${limit.requests_per_second}/s, burst ${limit.burst})`;
    }
    if (!this.#bucket.tryTake()) {
      return `rate limit of route ${this.#route} exceeded (${this.#config.requests_per_second}/s, burst ${this.#config.burst})`;
    }
    return undefined;
  }
}

/** Undefined when the connection's RPC rate allows one more RPC; else why not. */
export function connectionRateLimited(connection: object | undefined): string | undefined {
  const guard = guardOf(connection);
  if (!guard?.rpcs || guard.rpcs.tryTake()) return undefined;
  return `rate limit of this connection exceeded (max_rpcs_per_second_per_connection ${guard.rpcs.ratePerSecond})`;
}
