/**
 * Circuit breakers and the retry budget of one cluster: counters of what is in
 * flight, checked before anything new starts, so overload fails fast with a
 * named limit instead of queueing without bound.
 */
import type { ClusterConfig } from '../config/schema.ts';

export type LimitName = 'max_connections' | 'max_pending_requests' | 'max_requests' | 'max_retries' | 'retry_budget';

export class LimitExceededError extends Error {
  readonly code = 'SWITCHYARD_CIRCUIT_OPEN';
  readonly limit: LimitName;
  constructor(cluster: string, limit: LimitName, value: number) {
    super(limit === 'retry_budget'
      ? `cluster "${cluster}": retry budget exhausted (${value} retries in flight)`
      : `cluster "${cluster}": circuit breaker ${limit} (${value}) reached`);
    this.limit = limit;
  }
}

export class ClusterLimits {
  readonly cluster: string;
  readonly #breakers: ClusterConfig['circuit_breakers'];
  readonly #budget: ClusterConfig['retry_budget'];
  /** RPCs routed to the cluster and not yet finished (retries of one RPC count once). */
  activeRequests = 0;
  activeRetries = 0;
  pendingRequests = 0;
  connections = 0;
  /** Times each limit turned something away, for metrics. */
  readonly overflows: Record<LimitName, number> = { max_connections: 0, max_pending_requests: 0, max_requests: 0, max_retries: 0, retry_budget: 0 };
  retries = 0;
  /** Resolvers waiting for activeRequests to reach zero (whenIdle). */
  #idleWaiters: (() => void)[] = [];

  constructor(config: Pick<ClusterConfig, 'name' | 'circuit_breakers' | 'retry_budget'>) {
    this.cluster = config.name;
    this.#breakers = config.circuit_breakers;
    this.#budget = config.retry_budget;
  }

  /** Admits one RPC, or says which limit refused it. Pair every admission with endRequest(). */
  startRequest(): LimitExceededError | undefined {
    if (this.activeRequests >= this.#breakers.max_requests) return this.#overflow('max_requests', this.#breakers.max_requests);
    this.activeRequests++;
    return undefined;
  }

  endRequest(): void {
    this.activeRequests--;
    if (this.activeRequests === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no RPC is using the cluster (at once if none is): when a cluster a reload replaced may close. */
  whenIdle(): Promise<void> {
    if (this.activeRequests === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Admits one retry: within max_retries and the budget. Pair with endRetry(). */
  startRetry(): LimitExceededError | undefined {
    if (this.activeRetries >= this.#breakers.max_retries) return this.#overflow('max_retries', this.#breakers.max_retries);
    const allowed = Math.max(this.#budget.min_retry_concurrency, (this.#budget.budget_percent / 100) * this.activeRequests);
    if (this.activeRetries >= allowed) return this.#overflow('retry_budget', this.activeRetries);
    this.activeRetries++;
    this.retries++;
    return undefined;
  }

  endRetry(): void {
    this.activeRetries--;
  }

  /** May one more RPC wait for a connection or stream slot? */
  startPending(): LimitExceededError | undefined {
    if (this.pendingRequests >= this.#breakers.max_pending_requests) return this.#overflow('max_pending_requests', this.#breakers.max_pending_requests);
    this.pendingRequests++;
    return undefined;
  }

  endPending(): void {
    this.pendingRequests--;
  }

  /** May one more upstream connection be opened? */
  startConnection(): LimitExceededError | undefined {
    if (this.connections >= this.#breakers.max_connections) return this.#overflow('max_connections', this.#breakers.max_connections);
    this.connections++;
    return undefined;
  }

  endConnection(): void {
    this.connections--;
  }

  #overflow(limit: LimitName, value: number): LimitExceededError {
    this.overflows[limit]++;
    return new LimitExceededError(this.cluster, limit, value);
  }
}
