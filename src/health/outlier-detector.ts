/**
 * Passive health: ejects endpoints whose RPCs fail, Envoy-style. A pure
 * object: the cluster feeds it every attempt's outcome through record(), calls
 * evaluate() every `interval` and unejectExpired() when nextChangeAt() comes,
 * and reads isEjected() when it recomputes the available set. No timers, no
 * sockets; the clock is injected.
 *
 * What counts as what (a gRPC reading of Envoy's 5xx / gateway-failure split):
 * - gateway error: status UNAVAILABLE (14), wherever it arrived (a backend that
 *   answers HTTP 200 and puts grpc-status 14 in its trailers is failing too),
 *   a connect failure, or a stream reset before any status;
 * - error: a gateway error, or a status listed in `error_codes`;
 * - success: any other status, OK included (NOT_FOUND from the application
 *   says nothing bad about the endpoint unless error_codes says so);
 * - an attempt the proxy or the client ended (deadline, cancellation), or that
 *   the backend refused unprocessed, is ignored (src/grpc/outcome.ts, isNeutral).
 *
 * Each success resets both consecutive counters. A gateway error counts
 * towards consecutive_errors only if its status is listed in error_codes; an
 * error that is not a gateway error resets the gateway counter, as Envoy's 500
 * resets its consecutive-gateway-failure count: the path to the backend works.
 *
 * max_ejection_percent: an ejection happens only if afterwards at most that
 * share of the known endpoints is ejected, (ejected + 1) / known ≤ percent.
 * This is Envoy's rule without its `always_eject_one_host` opt-in, so with
 * the default 50%, a one-endpoint cluster never ejects its endpoint, a
 * two-endpoint cluster ejects one, and three endpoints allow one ejection
 * (2/3 would exceed 50%). grpc-js instead lets the share be exceeded by one
 * ejection; the strict rule is used here so that the configured share is a
 * real ceiling.
 */
import type { ClusterConfig } from '../config/schema.ts';
import { isGatewayError, isNeutral, type Outcome } from '../grpc/outcome.ts';
import { Status } from '../grpc/status.ts';

export type OutlierDetectionConfig = ClusterConfig['outlier_detection'];


export type EjectionReason = 'consecutive_gateway_errors' | 'consecutive_errors' | 'success_rate';

/** Per endpoint, for the admin API. */
export interface OutlierEndpointSnapshot {
  readonly key: string;
  readonly ejected: boolean;
  /** Monotonic time the current ejection ends, when ejected. */
  readonly ejectedUntil: number | undefined;
  readonly lastEjectionReason: EjectionReason | undefined;
  /** The ejection-time multiplier: +1 per ejection, −1 per interval spent un-ejected. */
  readonly ejectionCount: number;
  /** Ejections since the endpoint joined. */
  readonly totalEjections: number;
  readonly consecutiveGatewayErrors: number;
  readonly consecutiveErrors: number;
  /** Success percentage (0-100) over the last complete interval; undefined when it saw no RPC. */
  readonly successRate: number | undefined;
  /** RPCs recorded so far in the current interval. */
  readonly intervalRequests: number;
}

export interface OutlierEvaluation {
  /** Endpoints ejected by the success-rate comparison. */
  readonly ejected: readonly string[];
  /** Endpoints whose ejection ended. */
  readonly returned: readonly string[];
}

interface EndpointStats {
  consecutiveGateway: number;
  consecutiveErrors: number;
  requests: number;
  successes: number;
  lastSuccessRate: number | undefined;
  ejectedUntil: number | undefined;
  lastReason: EjectionReason | undefined;
  unejectedAt: number | undefined;
  ejectionCount: number;
  totalEjections: number;
}

export class OutlierDetector {
  readonly #config: OutlierDetectionConfig;
  readonly #now: () => number;
  readonly #errorCodes: ReadonlySet<number>;
  readonly #endpoints = new Map<string, EndpointStats>();
  #ejectedCount = 0;

  constructor(config: OutlierDetectionConfig, now: () => number) {
    this.#config = config;
    this.#now = now;
    this.#errorCodes = new Set(config.error_codes);
  }

  /** Endpoints currently ejected. */
  get ejectedCount(): number {
    return this.#ejectedCount;
  }

  /** Replaces the set of known endpoints: new ones start clean, removed ones are forgotten (with their ejection). */
  setEndpoints(keys: Iterable<string>): void {
    const seen = new Set<string>();
    for (const key of keys) {
      seen.add(key);
      if (!this.#endpoints.has(key)) this.#endpoints.set(key, newStats());
    }
    for (const [key, stats] of this.#endpoints) {
      if (seen.has(key)) continue;
      if (stats.ejectedUntil !== undefined) this.#ejectedCount--;
      this.#endpoints.delete(key);
    }
  }

  /**
   * Records how one attempt on `key` ended. Returns the reason when this
   * outcome ejected the endpoint, else undefined. Unknown keys (an endpoint
   * removed while an RPC was in flight) are ignored.
   */
  record(key: string, outcome: Outcome): EjectionReason | undefined {
    if (isNeutral(outcome)) return undefined;
    const stats = this.#endpoints.get(key);
    if (!stats) return undefined;
    const gateway = isGatewayError(outcome);
    const listed = outcome.failure === undefined && outcome.status !== Status.OK && this.#errorCodes.has(outcome.status);
    stats.requests++;
    if (!gateway && !listed) {
      stats.successes++;
      stats.consecutiveGateway = 0;
      stats.consecutiveErrors = 0;
      return undefined;
    }
    if (gateway) stats.consecutiveGateway++;
    else stats.consecutiveGateway = 0;
    if (listed) stats.consecutiveErrors++;
    if (stats.ejectedUntil !== undefined) return undefined;

    const gatewayLimit = this.#config.consecutive_gateway_errors;
    const errorLimit = this.#config.consecutive_errors;
    let reason: EjectionReason | undefined;
    if (gatewayLimit > 0 && stats.consecutiveGateway >= gatewayLimit) reason = 'consecutive_gateway_errors';
    else if (errorLimit > 0 && stats.consecutiveErrors >= errorLimit) reason = 'consecutive_errors';
    if (!reason) return undefined;
    // Reset whether or not the ejection is allowed, as Envoy does: another full run is needed to try again.
    if (reason === 'consecutive_gateway_errors') stats.consecutiveGateway = 0;
    else stats.consecutiveErrors = 0;
    return this.#eject(stats, reason) ? reason : undefined;
  }

  /**
   * The periodic sweep, every `interval`: ends expired ejections, ejects
   * success-rate outliers (when configured) from the interval's counts, starts
   * a new interval, and lets the ejection multiplier of endpoints that stayed
   * in decay by one.
   */
  evaluate(): OutlierEvaluation {
    const now = this.#now();
    const returned = this.unejectExpired();
    const ejected: string[] = [];
    const successRate = this.#config.success_rate;
    const rated: [string, EndpointStats, number][] = [];
    for (const [key, stats] of this.#endpoints) {
      const rate = stats.requests > 0 ? (100 * stats.successes) / stats.requests : undefined;
      stats.lastSuccessRate = rate;
      if (successRate && rate !== undefined && stats.ejectedUntil === undefined && stats.requests >= successRate.request_volume) {
        rated.push([key, stats, rate]);
      }
      stats.requests = 0;
      stats.successes = 0;
    }
    if (successRate && rated.length > 0 && rated.length >= successRate.minimum_hosts) {
      const mean = rated.reduce((sum, [, , rate]) => sum + rate, 0) / rated.length;
      const variance = rated.reduce((sum, [, , rate]) => sum + (rate - mean) ** 2, 0) / rated.length;
      const threshold = mean - successRate.stdev_factor * Math.sqrt(variance);
      // Worst first, so that when max_ejection_percent caps ejections the worst ones go.
      rated.sort((a, b) => a[2] - b[2]);
      for (const [key, stats, rate] of rated) {
        if (rate < threshold && this.#eject(stats, 'success_rate')) ejected.push(key);
      }
    }
    for (const stats of this.#endpoints.values()) {
      if (stats.ejectedUntil === undefined && stats.unejectedAt !== undefined && stats.ejectionCount > 0 && now - stats.unejectedAt >= this.#config.interval) {
        stats.ejectionCount--;
      }
    }
    return { ejected, returned };
  }

  /** Ends the ejections whose time has passed; returns their keys. Cheap: call it whenever nextChangeAt() is reached. */
  unejectExpired(): string[] {
    if (this.#ejectedCount === 0) return [];
    const now = this.#now();
    const returned: string[] = [];
    for (const [key, stats] of this.#endpoints) {
      if (stats.ejectedUntil === undefined || stats.ejectedUntil > now) continue;
      stats.ejectedUntil = undefined;
      stats.unejectedAt = now;
      // A fresh start: a counter left near its limit must not re-eject on the first error.
      stats.consecutiveGateway = 0;
      stats.consecutiveErrors = 0;
      this.#ejectedCount--;
      returned.push(key);
    }
    return returned;
  }

  isEjected(key: string): boolean {
    return this.#endpoints.get(key)?.ejectedUntil !== undefined;
  }

  /** The earliest time an ejection ends (the clock's units), or undefined when none is ejected. */
  nextChangeAt(): number | undefined {
    let next: number | undefined;
    for (const stats of this.#endpoints.values()) {
      if (stats.ejectedUntil !== undefined && (next === undefined || stats.ejectedUntil < next)) next = stats.ejectedUntil;
    }
    return next;
  }

  /** One endpoint's state, or undefined for an unknown key. */
  endpointSnapshot(key: string): OutlierEndpointSnapshot | undefined {
    const stats = this.#endpoints.get(key);
    if (!stats) return undefined;
    return {
      key,
      ejected: stats.ejectedUntil !== undefined,
      ejectedUntil: stats.ejectedUntil,
      lastEjectionReason: stats.lastReason,
      ejectionCount: stats.ejectionCount,
      totalEjections: stats.totalEjections,
      consecutiveGatewayErrors: stats.consecutiveGateway,
      consecutiveErrors: stats.consecutiveErrors,
      successRate: stats.lastSuccessRate,
      intervalRequests: stats.requests,
    };
  }

  /** Every known endpoint's state. */
  snapshot(): OutlierEndpointSnapshot[] {
    return [...this.#endpoints.keys()].map((key) => this.endpointSnapshot(key)!);
  }

  #eject(stats: EndpointStats, reason: EjectionReason): boolean {
    const known = this.#endpoints.size;
    if (known === 0 || (100 * (this.#ejectedCount + 1)) / known > this.#config.max_ejection_percent) return false;
    const { base_ejection_time: base, max_ejection_time: max } = this.#config;
    // Envoy's bound: the multiplier stops growing once base × count reaches max, so it decays back from there.
    if (stats.ejectionCount * base < max + base) stats.ejectionCount++;
    const now = this.#now();
    stats.ejectedUntil = now + Math.min(base * stats.ejectionCount, Math.max(max, base));
    stats.lastReason = reason;
    stats.totalEjections++;
    this.#ejectedCount++;
    return true;
  }
}

function newStats(): EndpointStats {
  return {
    consecutiveGateway: 0,
    consecutiveErrors: 0,
    requests: 0,
    successes: 0,
    lastSuccessRate: undefined,
    ejectedUntil: undefined,
    lastReason: undefined,
    unejectedAt: undefined,
    ejectionCount: 0,
    totalEjections: 0,
  };
}
