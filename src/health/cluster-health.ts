/**
 * Everything that decides whether a cluster's endpoint may take traffic, and
 * with what weight: connect backoff (read from the pool), active health checks,
 * outlier ejection, slow start, and what to do when nothing is left
 * (`all_unhealthy`). The cluster hands it the endpoint set and each RPC's
 * outcome, and asks select() for the available set whenever onChange fires;
 * this object owns the timers (evaluation interval, ejection ends, slow-start
 * steps), all unref'd. It never calls the balancer.
 */
import type { ClusterConfig } from '../config/schema.ts';
import type { Outcome } from '../grpc/outcome.ts';
import type { UpstreamPool, UpstreamTls } from '../upstream/endpoint-pool.ts';
import { ActiveHealthChecker, type HealthCheckSnapshot, type HealthLogger, type HealthState } from './active-checker.ts';
import { OutlierDetector, type EjectionReason, type OutlierEndpointSnapshot } from './outlier-detector.ts';
import { SlowStart } from './slow-start.ts';

/** `unchecked`: the cluster has no active health check. */
export type EndpointHealth = 'unchecked' | HealthState;

/** Health changes worth showing an operator. */
export type EndpointHealthEventKind = 'healthy' | 'unhealthy' | 'ejected' | 'returned';

/** The endpoint fields this module reads and keeps current; the cluster's ClusterEndpoint has them. */
export interface TrackedEndpoint {
  readonly key: string;
  readonly address: { readonly host: string };
  readonly pool: UpstreamPool;
  /** The weight discovery gave. */
  readonly configuredWeight: number;
  /** The weight policies use: configuredWeight, reduced during slow start. Written by select(). */
  weight: number;
  /** Written by select(). */
  health: EndpointHealth;
  /** Written by select(). */
  ejected: boolean;
}

/** One endpoint's availability, for the admin API. */
export interface EndpointHealthView {
  readonly key: string;
  readonly available: boolean;
  readonly health: EndpointHealth;
  readonly ejected: boolean;
  readonly inConnectBackoff: boolean;
  readonly configuredWeight: number;
  readonly weight: number;
  readonly healthCheck: HealthCheckSnapshot | undefined;
  readonly outlier: OutlierEndpointSnapshot | undefined;
}

export interface ClusterHealthOptions {
  readonly cluster: string;
  readonly config: ClusterConfig;
  readonly tls?: UpstreamTls | undefined;
  readonly logger?: HealthLogger | undefined;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  readonly random: () => number;
  /** Availability or weights may have changed: the cluster should call select() again. */
  readonly onChange: () => void;
  /** An endpoint's health check state changed, or it was ejected or returned. */
  readonly onEvent?: ((endpoint: string, kind: EndpointHealthEventKind, detail?: string) => void) | undefined;
}

export class ClusterHealth {
  readonly #options: ClusterHealthOptions;
  readonly #config: ClusterConfig;
  readonly #checker: ActiveHealthChecker | undefined;
  readonly #detector: OutlierDetector;
  readonly #slowStart: SlowStart;
  #known = new Set<string>();
  /** Endpoints that joined a running cluster and ramp up once they first pass a health check. */
  readonly #awaitingFirstPass = new Set<string>();
  /** Set once a non-empty endpoint set was seen; endpoints joining after that slow-start. */
  #running = false;
  #evaluateTimer: NodeJS.Timeout | undefined;
  #unejectTimer: NodeJS.Timeout | undefined;
  #rampTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ClusterHealthOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#detector = new OutlierDetector(options.config.outlier_detection, options.now);
    this.#slowStart = new SlowStart(options.config.slow_start_window, options.now);
    const healthCheck = options.config.health_check;
    this.#checker = healthCheck && new ActiveHealthChecker({
      cluster: options.cluster,
      config: healthCheck,
      tls: options.tls,
      connectTimeoutMs: options.config.connect_timeout,
      logger: options.logger,
      random: options.random,
      onChange: (key, state, previous) => {
        if (state === 'healthy' && (previous === 'unhealthy' || this.#awaitingFirstPass.has(key))) this.#slowStart.begin(key);
        if (state === 'healthy') this.#awaitingFirstPass.delete(key);
        if (state === 'healthy' || state === 'unhealthy') options.onEvent?.(key, state, state === 'unhealthy' ? this.#checker?.snapshot(key)?.lastFailure : undefined);
        options.onChange();
      },
    });
  }

  /** The endpoint set changed (discovery). Call before select(). */
  setEndpoints(endpoints: readonly TrackedEndpoint[]): void {
    if (this.#closed) return;
    const keys = new Set(endpoints.map((endpoint) => endpoint.key));
    for (const key of keys) {
      if (this.#known.has(key) || !this.#running) continue;
      if (this.#checker) this.#awaitingFirstPass.add(key);
      else this.#slowStart.begin(key);
    }
    for (const key of this.#known) {
      if (keys.has(key)) continue;
      this.#slowStart.forget(key);
      this.#awaitingFirstPass.delete(key);
    }
    this.#known = keys;
    if (keys.size > 0) this.#running = true;
    this.#detector.setEndpoints(keys);
    this.#checker?.setEndpoints(endpoints);
    this.#scheduleUneject();
    if (!this.#evaluateTimer) {
      this.#evaluateTimer = setInterval(() => this.#evaluate(), this.#config.outlier_detection.interval);
      this.#evaluateTimer.unref();
    }
  }

  /** How an RPC attempt on `endpoint` ended. May eject it, and then calls onChange synchronously. */
  record(endpoint: TrackedEndpoint, outcome: Outcome): void {
    const reason = this.#detector.record(endpoint.key, outcome);
    if (!reason) return;
    this.#logEjection(endpoint.key, reason);
    this.#scheduleUneject();
    this.#options.onChange();
  }

  /**
   * The endpoints that may take traffic: connectable (not in connect backoff),
   * healthy (or not checked) and not ejected. When none is, `fail_open` gives
   * all of them and `fail_closed` none. Updates each endpoint's weight,
   * health and ejected fields on the way.
   */
  select<E extends TrackedEndpoint>(endpoints: readonly E[]): readonly E[] {
    const available: E[] = [];
    for (const endpoint of endpoints) {
      endpoint.health = this.#checker ? (this.#checker.state(endpoint.key) ?? 'unknown') : 'unchecked';
      endpoint.ejected = this.#detector.isEjected(endpoint.key);
      endpoint.weight = endpoint.configuredWeight * this.#slowStart.factor(endpoint.key);
      if (isAvailable(endpoint)) available.push(endpoint);
    }
    this.#updateRampTimer();
    if (available.length > 0 || this.#config.all_unhealthy === 'fail_closed') return available;
    return endpoints;
  }

  /** Why select() returned nothing for a non-empty set, e.g. "all 3 endpoints unhealthy (fail_closed)". */
  describeUnavailable(endpoints: readonly TrackedEndpoint[]): string {
    const counts = new Map<string, number>();
    for (const endpoint of endpoints) {
      const reason = unavailableReason(endpoint);
      counts.set(reason, (counts.get(reason) ?? 0) + 1);
    }
    const policy = this.#config.all_unhealthy;
    if (endpoints.length === 1) return `its only endpoint is ${[...counts.keys()][0]} (${policy})`;
    if (counts.size === 1) return `all ${endpoints.length} endpoints ${[...counts.keys()][0]} (${policy})`;
    const parts = [...counts].map(([reason, count]) => `${count} ${reason}`);
    return `all ${endpoints.length} endpoints unavailable: ${parts.join(', ')} (${policy})`;
  }

  view(endpoint: TrackedEndpoint, available: boolean): EndpointHealthView {
    return {
      key: endpoint.key,
      available,
      health: endpoint.health,
      ejected: endpoint.ejected,
      inConnectBackoff: endpoint.pool.inBackoff,
      configuredWeight: endpoint.configuredWeight,
      weight: endpoint.weight,
      healthCheck: this.#checker?.snapshot(endpoint.key),
      outlier: this.#detector.endpointSnapshot(endpoint.key),
    };
  }

  /** Stops the checks and every timer; nothing is reported afterwards. */
  close(): void {
    this.#closed = true;
    this.#checker?.close();
    clearInterval(this.#evaluateTimer);
    clearTimeout(this.#unejectTimer);
    clearInterval(this.#rampTimer);
    this.#rampTimer = undefined;
  }

  #evaluate(): void {
    const { ejected, returned } = this.#detector.evaluate();
    for (const key of ejected) this.#logEjection(key, 'success_rate');
    this.#logReturned(returned);
    if (ejected.length === 0 && returned.length === 0) return;
    this.#scheduleUneject();
    this.#options.onChange();
  }

  /** Arms one timer for the earliest end of an ejection. */
  #scheduleUneject(): void {
    clearTimeout(this.#unejectTimer);
    this.#unejectTimer = undefined;
    const next = this.#detector.nextChangeAt();
    if (next === undefined || this.#closed) return;
    this.#unejectTimer = setTimeout(() => {
      const returned = this.#detector.unejectExpired();
      this.#logReturned(returned);
      this.#scheduleUneject();
      if (returned.length > 0) this.#options.onChange();
    }, Math.max(1, Math.ceil(next - this.#options.now())));
    this.#unejectTimer.unref();
  }

  #updateRampTimer(): void {
    if (this.#slowStart.ramping && !this.#rampTimer && !this.#closed) {
      this.#rampTimer = setInterval(() => this.#options.onChange(), this.#slowStart.stepMs);
      this.#rampTimer.unref();
    } else if (!this.#slowStart.ramping && this.#rampTimer) {
      clearInterval(this.#rampTimer);
      this.#rampTimer = undefined;
    }
  }

  #logEjection(key: string, reason: EjectionReason): void {
    const until = this.#detector.endpointSnapshot(key)?.ejectedUntil;
    this.#options.logger?.warn({
      cluster: this.#options.cluster,
      endpoint: key,
      reason,
      ejection_ms: until === undefined ? undefined : Math.round(until - this.#options.now()),
    }, 'outlier detection: endpoint ejected');
    this.#options.onEvent?.(key, 'ejected', reason);
  }

  #logReturned(keys: readonly string[]): void {
    for (const key of keys) {
      this.#options.logger?.info({ cluster: this.#options.cluster, endpoint: key }, 'outlier detection: ejection ended');
      this.#options.onEvent?.(key, 'returned');
    }
  }
}

function isAvailable(endpoint: TrackedEndpoint): boolean {
  return !endpoint.pool.inBackoff && (endpoint.health === 'healthy' || endpoint.health === 'unchecked') && !endpoint.ejected;
}

function unavailableReason(endpoint: TrackedEndpoint): string {
  if (endpoint.health === 'unhealthy') return 'unhealthy';
  if (endpoint.health === 'unknown') return 'not yet health-checked';
  if (endpoint.ejected) return 'ejected';
  if (endpoint.pool.inBackoff) return 'failing to connect';
  return 'available';
}
