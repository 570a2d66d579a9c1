/**
 * A cluster joins the parts that decide where an RPC goes:
 * discovery (which endpoints exist) → availability filter (which may take
 * traffic now) → balancer policy (which one takes this RPC) → the endpoint's
 * connection pool. Availability (connect backoff, active health checks,
 * outlier ejection, slow-start weights, all_unhealthy) is decided by
 * src/health/cluster-health.ts; policies never see unavailable endpoints.
 */
import type { ClusterConfig } from '../config/schema.ts';
import { systemEnvironment, type BalancedEndpoint, type LoadBalancingPolicy, type PolicyEnvironment } from '../balancer/policy.ts';
import { createPolicy } from '../balancer/registry.ts';
import { endpointKey, type DiscoverySource, type DiscoveryUpdate, type EndpointAddress } from '../discovery/source.ts';
import { EndpointPool, type EndpointPoolOptions, type UpstreamPool, type UpstreamTls } from '../upstream/endpoint-pool.ts';
import { isEndpointFailure, isNeutral, type Outcome } from '../grpc/outcome.ts';
import { ClusterLimits } from '../resilience/cluster-limits.ts';
import { ClusterHealth, type EndpointHealth, type EndpointHealthEventKind, type EndpointHealthView, type TrackedEndpoint } from '../health/cluster-health.ts';

/** Picks a retry may spend looking for an endpoint it has not tried. */
const AVOID_TRIES = 4;
/** The latency the admin API shows reflects roughly the last few seconds. */
const LATENCY_DECAY_MS = 5_000;

/** One backend endpoint as the cluster tracks it. */
export class ClusterEndpoint implements BalancedEndpoint, TrackedEndpoint {
  readonly key: string;
  readonly address: EndpointAddress;
  readonly pool: UpstreamPool;
  /** The weight policies use: configuredWeight, reduced while slow start ramps the endpoint up. */
  weight: number;
  /** The weight discovery last gave. */
  configuredWeight: number;
  /** Active health check state; `unchecked` when the cluster has no health_check. */
  health: EndpointHealth = 'unchecked';
  /** Ejected by outlier detection. */
  ejected = false;
  activeRequests = 0;
  /** RPCs sent to this endpoint since it joined. */
  totalRequests = 0;
  /** Attempt latency, exponentially weighted (for the admin API; policies keep their own). Undefined until the first attempt ends. */
  latencyEwmaMs: number | undefined;
  #latencyAt = 0;

  constructor(address: EndpointAddress, pool: UpstreamPool) {
    this.key = endpointKey(address);
    this.address = address;
    this.weight = address.weight;
    this.configuredWeight = address.weight;
    this.pool = pool;
  }

  /** Folds one attempt's latency into latencyEwmaMs: older samples weigh e^(-age / LATENCY_DECAY_MS). */
  observeLatency(latencyMs: number, now: number): void {
    if (this.latencyEwmaMs === undefined) {
      this.latencyEwmaMs = latencyMs;
    } else {
      const keep = Math.exp(-Math.max(0, now - this.#latencyAt) / LATENCY_DECAY_MS);
      this.latencyEwmaMs = this.latencyEwmaMs * keep + latencyMs * (1 - keep);
    }
    this.#latencyAt = now;
  }
}

/** What happened to an endpoint, for the admin API's recent changes. */
export interface EndpointEvent {
  readonly cluster: string;
  readonly endpoint: string;
  readonly kind: 'added' | 'removed' | EndpointHealthEventKind;
  readonly detail?: string | undefined;
}

export interface ClusterLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ClusterOptions {
  readonly config: ClusterConfig;
  readonly source: DiscoverySource;
  readonly tls?: UpstreamTls | undefined;
  readonly logger?: ClusterLogger | undefined;
  readonly environment?: PolicyEnvironment | undefined;
  /** Called when each attempt ends, after the cluster has taken it into account (metrics). */
  readonly onAttemptEnd?: ((endpoint: ClusterEndpoint, latencyMs: number, outcome: Outcome) => void) | undefined;
  /** Endpoints joining, leaving, failing health checks, ejected and returning. */
  readonly onEndpointEvent?: ((event: EndpointEvent) => void) | undefined;
  /** Makes each endpoint's connection pool; default: an EndpointPool (tests give fakes). */
  readonly createPool?: ((options: EndpointPoolOptions) => UpstreamPool) | undefined;
}

export class Cluster {
  readonly name: string;
  readonly #config: ClusterConfig;
  readonly #source: DiscoverySource;
  readonly #tls: UpstreamTls | undefined;
  readonly #logger: ClusterLogger | undefined;
  readonly #now: () => number;
  readonly #onAttemptEnd: ClusterOptions['onAttemptEnd'];
  readonly #onEndpointEvent: ClusterOptions['onEndpointEvent'];
  readonly #makePool: (options: EndpointPoolOptions) => UpstreamPool;
  readonly #policy: LoadBalancingPolicy<ClusterEndpoint>;
  /** Circuit breakers and retry budget. */
  readonly limits: ClusterLimits;
  readonly #endpoints = new Map<string, ClusterEndpoint>();
  readonly #health: ClusterHealth;
  #available: readonly ClusterEndpoint[] = [];
  #resolved = false;
  #lastError: Error | undefined;

  constructor(options: ClusterOptions) {
    this.limits = new ClusterLimits(options.config);
    this.name = options.config.name;
    this.#config = options.config;
    this.#source = options.source;
    this.#tls = options.tls;
    this.#logger = options.logger;
    this.#onAttemptEnd = options.onAttemptEnd;
    this.#onEndpointEvent = options.onEndpointEvent;
    this.#makePool = options.createPool ?? ((poolOptions) => new EndpointPool(poolOptions));
    this.#policy = createPolicy<ClusterEndpoint>(options.config.lb_policy, options.config as unknown as Record<string, number>, options.environment);
    const environment = options.environment ?? systemEnvironment;
    this.#now = () => environment.now();
    this.#health = new ClusterHealth({
      cluster: this.name,
      config: options.config,
      tls: options.tls,
      logger: options.logger,
      now: () => environment.now(),
      random: () => environment.random(),
      onChange: () => this.#recomputeAvailable(),
      onEvent: options.onEndpointEvent && ((endpoint, kind, detail) => options.onEndpointEvent!({ cluster: this.name, endpoint, kind, detail })),
    });
  }

  /** The config the cluster was built from. */
  get config(): ClusterConfig {
    return this.#config;
  }

  /** Starts discovery. Endpoints appear as the source reports them. */
  start(): void {
    this.#source.start((update) => this.#onDiscovery(update));
  }

  /** The request header whose value ring_hash hashes, if any. */
  get hashHeader(): string | undefined {
    return this.#config.hash_header;
  }

  get endpoints(): ReadonlyMap<string, ClusterEndpoint> {
    return this.#endpoints;
  }

  /** Picks an endpoint for one RPC and counts it as active; undefined when none is available. */
  pick(hashKey: string | undefined, avoid?: ReadonlySet<ClusterEndpoint>): ClusterEndpoint | undefined {
    let endpoint = this.#policy.pick({ hashKey });
    // A retry goes elsewhere when it can: a few more picks, then take what comes.
    for (let tries = 0; avoid && endpoint && avoid.has(endpoint) && tries < AVOID_TRIES; tries++) {
      endpoint = this.#policy.pick({ hashKey: hashKey === undefined ? undefined : `${hashKey}#${tries}` });
    }
    if (endpoint) {
      endpoint.activeRequests++;
      endpoint.totalRequests++;
    }
    return endpoint;
  }

  /** Reports the end of an RPC attempt started by pick(), and how it ended. */
  release(endpoint: ClusterEndpoint, latencyMs: number, outcome: Outcome): void {
    endpoint.activeRequests--;
    this.report(endpoint, latencyMs, outcome);
  }

  /**
   * How an exchange with `endpoint` went, without ending what pick() or claim() counted: a WebSocket
   * handshake, whose tunnel stays counted as active until it closes. Feeds what release() feeds.
   */
  report(endpoint: ClusterEndpoint, latencyMs: number, outcome: Outcome): void {
    if (!isNeutral(outcome)) endpoint.observeLatency(latencyMs, this.#now());
    this.#policy.onRpcEnd?.(endpoint, latencyMs, isEndpointFailure(outcome));
    this.#health.record(endpoint, outcome);
    this.#onAttemptEnd?.(endpoint, latencyMs, outcome);
  }

  /** Whether `endpoint` may take new traffic now: a policy would see it (health, ejection, backoff, all_unhealthy). */
  isAvailable(endpoint: ClusterEndpoint): boolean {
    return this.#available.includes(endpoint);
  }

  /** Counts an endpoint chosen without the policy (a WebSocket affinity cookie) as pick() counts its own. */
  claim(endpoint: ClusterEndpoint): void {
    endpoint.activeRequests++;
    endpoint.totalRequests++;
  }

  /** Why pick() found nothing, for the UNAVAILABLE message. */
  describeUnavailable(): string {
    if (!this.#resolved) {
      return `cluster "${this.name}" has no endpoints yet${this.#lastError ? ` (discovery: ${this.#lastError.message})` : ''}`;
    }
    if (this.#endpoints.size === 0) return `cluster "${this.name}" has no endpoints`;
    return `cluster "${this.name}" has no available endpoint: ${this.#health.describeUnavailable([...this.#endpoints.values()])}`;
  }

  /** Each endpoint's availability, health check and outlier state, for the admin API. */
  healthSnapshot(): EndpointHealthView[] {
    const available = new Set(this.#available);
    return [...this.#endpoints.values()].map((endpoint) => this.#health.view(endpoint, available.has(endpoint)));
  }

  /** Stops discovery and closes connections gracefully: in-flight RPCs finish. */
  close(): void {
    this.#source.close();
    this.#health.close();
    for (const endpoint of this.#endpoints.values()) endpoint.pool.close();
    this.#endpoints.clear();
    this.#recomputeAvailable();
  }

  #onDiscovery(update: DiscoveryUpdate): void {
    if (update.type === 'error') {
      this.#lastError = update.error;
      this.#logger?.warn({ cluster: this.name, err: update.error.message }, 'discovery failed; keeping the last good endpoints');
      return;
    }
    this.#resolved = true;
    this.#lastError = undefined;
    const seen = new Set<string>();
    for (const address of update.endpoints) {
      // A draining endpoint is treated as gone: its pool closes gracefully, so its in-flight RPCs finish.
      if (address.health === 'draining') continue;
      const key = endpointKey(address);
      seen.add(key);
      const existing = this.#endpoints.get(key);
      if (existing) {
        existing.configuredWeight = address.weight;
        continue;
      }
      this.#endpoints.set(key, new ClusterEndpoint(address, this.#createPool(address)));
      this.#logger?.info({ cluster: this.name, endpoint: key }, 'endpoint added');
      this.#onEndpointEvent?.({ cluster: this.name, endpoint: key, kind: 'added' });
    }
    for (const [key, endpoint] of this.#endpoints) {
      if (seen.has(key)) continue;
      // In-flight RPCs on a removed endpoint finish; it just gets no new ones.
      endpoint.pool.close();
      this.#endpoints.delete(key);
      this.#logger?.info({ cluster: this.name, endpoint: key }, 'endpoint removed');
      this.#onEndpointEvent?.({ cluster: this.name, endpoint: key, kind: 'removed' });
    }
    this.#health.setEndpoints([...this.#endpoints.values()]);
    this.#recomputeAvailable();
  }

  #createPool(address: EndpointAddress): UpstreamPool {
    return this.#makePool({
      host: address.host,
      port: address.port,
      tls: this.#tls,
      connectTimeoutMs: this.#config.connect_timeout,
      streamWindow: this.#config.upstream_stream_window,
      maxStreamsPerConnection: this.#config.max_streams_per_connection,
      keepalive: { intervalMs: this.#config.keepalive_interval, timeoutMs: this.#config.keepalive_timeout },
      limits: this.limits,
      onStateChange: () => this.#recomputeAvailable(),
      onConnectFailure: (error) => {
        this.#logger?.warn({ cluster: this.name, endpoint: endpointKey(address), err: error.message }, 'connect failed');
        this.#source.refresh();
      },
    });
  }

  /**
   * Endpoints in connect backoff, failing health checks or ejected take no
   * traffic while others can; when none is left, all_unhealthy decides
   * (fail_open: all of them, since refusing every RPC helps no one).
   */
  #recomputeAvailable(): void {
    this.#available = this.#health.select([...this.#endpoints.values()]);
    this.#policy.setEndpoints(this.#available);
  }
}
