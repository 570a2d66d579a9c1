/**
 * Active health checks for one cluster: every endpoint is sent the standard
 * grpc.health.v1.Health/Check every `interval` (+ up to `interval_jitter`), and
 * its state follows the results with hysteresis:
 *
 *   unknown ──pass──▶ healthy ──unhealthy_threshold failures in a row──▶ unhealthy
 *      └──fail──▶ unhealthy ──healthy_threshold passes in a row──▶ healthy
 *
 * A new endpoint is `unknown`, checked at once, and takes no traffic until a
 * check passes (one pass is enough for a new endpoint, as in Envoy, so a
 * fresh pod is ready within a round trip). Checks go over the endpoint's own
 * pool, the connections RPCs use, so a pass proves the path RPCs take; with
 * `port` set they go to that port on the endpoint's host over a pool of
 * their own. The next check is scheduled when one ends, so a slow endpoint
 * never has two checks in flight. The checker never calls the balancer: it
 * reports transitions through `onChange` and the cluster recomputes.
 */
import type { ClusterConfig } from '../config/schema.ts';
import { EndpointPool, type UpstreamPool, type UpstreamTls } from '../upstream/endpoint-pool.ts';
import { probeHealth, type ProbeResult } from './grpc-health-probe.ts';

export type HealthCheckConfig = NonNullable<ClusterConfig['health_check']>;

export type HealthState = 'unknown' | 'healthy' | 'unhealthy';

export interface HealthLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** An endpoint as the checker needs it. */
export interface HealthCheckTarget {
  readonly key: string;
  readonly address: { readonly host: string };
  /** The endpoint's serving pool, used unless the config names a separate health port. */
  readonly pool: UpstreamPool;
}

export interface ActiveCheckerOptions {
  readonly cluster: string;
  readonly config: HealthCheckConfig;
  /** The cluster's upstream TLS, for a separate health port. */
  readonly tls?: UpstreamTls | undefined;
  readonly connectTimeoutMs: number;
  readonly logger?: HealthLogger | undefined;
  /** Called after an endpoint's state changed (not for each check). */
  readonly onChange: (key: string, state: HealthState, previous: HealthState) => void;
  /** Uniform in [0, 1), for the jitter. */
  readonly random?: () => number;
}

/** Per endpoint, for the admin API. */
export interface HealthCheckSnapshot {
  readonly key: string;
  readonly state: HealthState;
  readonly consecutivePasses: number;
  readonly consecutiveFailures: number;
  /** Why the last check failed, while the last check is a failure. */
  readonly lastFailure: string | undefined;
  readonly checks: number;
}

interface Checked {
  readonly key: string;
  readonly pool: UpstreamPool;
  /** A pool for the health port, owned by the checker. */
  readonly ownPool: UpstreamPool | undefined;
  state: HealthState;
  passes: number;
  failures: number;
  lastFailure: string | undefined;
  checks: number;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;
  removed: boolean;
}

export class ActiveHealthChecker {
  readonly #options: ActiveCheckerOptions;
  readonly #config: HealthCheckConfig;
  readonly #random: () => number;
  readonly #targets = new Map<string, Checked>();
  #closed = false;

  constructor(options: ActiveCheckerOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#random = options.random ?? Math.random;
  }

  /** Replaces the checked set: new endpoints are checked at once, removed ones stop (in-flight checks cancelled). */
  setEndpoints(endpoints: Iterable<HealthCheckTarget>): void {
    if (this.#closed) return;
    const seen = new Set<string>();
    for (const endpoint of endpoints) {
      seen.add(endpoint.key);
      if (this.#targets.has(endpoint.key)) continue;
      const ownPool = this.#config.port === undefined ? undefined : new EndpointPool({
        host: endpoint.address.host,
        port: this.#config.port,
        tls: this.#options.tls,
        connectTimeoutMs: this.#options.connectTimeoutMs,
      });
      const target: Checked = {
        key: endpoint.key, pool: ownPool ?? endpoint.pool, ownPool,
        state: 'unknown', passes: 0, failures: 0, lastFailure: undefined, checks: 0,
        timer: undefined, abort: undefined, removed: false,
      };
      this.#targets.set(endpoint.key, target);
      this.#check(target);
    }
    for (const [key, target] of this.#targets) {
      if (!seen.has(key)) this.#stop(target);
    }
  }

  /** The endpoint's state; undefined for an endpoint the checker does not know. */
  state(key: string): HealthState | undefined {
    return this.#targets.get(key)?.state;
  }

  snapshot(key: string): HealthCheckSnapshot | undefined {
    const target = this.#targets.get(key);
    if (!target) return undefined;
    return {
      key,
      state: target.state,
      consecutivePasses: target.passes,
      consecutiveFailures: target.failures,
      lastFailure: target.lastFailure,
      checks: target.checks,
    };
  }

  /** Stops every check and closes the health-port pools. Nothing is reported afterwards. */
  close(): void {
    this.#closed = true;
    for (const target of this.#targets.values()) this.#stop(target);
  }

  #stop(target: Checked): void {
    target.removed = true;
    clearTimeout(target.timer);
    target.abort?.abort();
    target.ownPool?.close();
    this.#targets.delete(target.key);
  }

  #check(target: Checked): void {
    target.timer = undefined;
    const abort = new AbortController();
    target.abort = abort;
    void probeHealth(target.pool, { service: this.#config.service, timeoutMs: this.#config.timeout, signal: abort.signal }).then((result) => {
      if (target.removed) return;
      target.abort = undefined;
      target.checks++;
      this.#apply(target, result);
      const delay = this.#config.interval + this.#random() * this.#config.interval_jitter;
      target.timer = setTimeout(() => this.#check(target), delay);
      target.timer.unref();
    });
  }

  #apply(target: Checked, result: ProbeResult): void {
    const previous = target.state;
    if (result.passed) {
      target.passes++;
      target.failures = 0;
      target.lastFailure = undefined;
      if (previous === 'unknown' || (previous === 'unhealthy' && target.passes >= this.#config.healthy_threshold)) target.state = 'healthy';
    } else {
      target.failures++;
      target.passes = 0;
      target.lastFailure = result.reason;
      if (previous === 'unknown' || (previous === 'healthy' && target.failures >= this.#config.unhealthy_threshold)) target.state = 'unhealthy';
    }
    if (target.state === previous) return;
    const fields = { cluster: this.#options.cluster, endpoint: target.key, was: previous };
    if (target.state === 'healthy') this.#options.logger?.info(fields, 'health check: endpoint healthy');
    else this.#options.logger?.warn({ ...fields, reason: target.lastFailure, failures: target.failures }, 'health check: endpoint unhealthy');
    this.#options.onChange(target.key, target.state, previous);
  }
}
