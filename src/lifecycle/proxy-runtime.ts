/**
 * A running proxy's lifecycle: starting → serving → draining → stopped, and
 * reloads while serving. It owns what runs (listeners, clusters, the health
 * and admin endpoints, the access log, the overload monitor, the xDS feed)
 * and swaps it as configs come and go; it makes none of it. Everything it
 * starts comes from `RuntimeParts`, which the composition root
 * (src/switchyard.ts) provides, and which tests replace to drive reloads
 * without sockets (test/unit/proxy-runtime.test.ts).
 *
 * A reload first does everything that can fail (create clusters, bind new
 * listeners and the health port), then commits in one step: a new Serving
 * snapshot (src/lifecycle/serving.ts) that the RPC handler reads once per
 * RPC, so in-flight RPCs finish on what they started with. Replaced clusters
 * close once they are idle; replaced listeners drain.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AdminServer } from '../admin/admin-server.ts';
import type { HealthEndpoint } from '../admin/health-endpoint.ts';
import type { Readiness } from '../admin/readiness.ts';
import type { Cluster } from '../cluster/cluster.ts';
import type { ConfigSecrets } from '../config/config-files.ts';
import type { ClusterConfig, ListenerConfig, SwitchyardConfig } from '../config/schema.ts';
import type { Listener } from '../listener/listener.ts';
import type { AccessLog } from '../log/access-log.ts';
import type { OverloadMonitor } from '../resilience/overload.ts';
import type { XdsConfigPart, XdsProxyFeed } from '../xds/client/xds-proxy-feed.ts';
import { namingTheListener } from './listen-error.ts';
import { planReload, type ReloadSummary } from './reload-plan.ts';
import { servingState, type Serving } from './serving.ts';
import { prepareTracing } from '../tracing/rpc-trace.ts';

/** `xds`: routes and clusters from the control plane (src/xds/client/). */
export type ReloadKind = 'config' | 'certificates' | 'xds';

/** A config to reload: what loadConfig returns, or a config built in code (without TLS files). */
export interface ReloadInput {
  readonly config: SwitchyardConfig;
  readonly secrets?: ConfigSecrets;
  /** What prompted it, for metrics: a config change (default) or rotated certificates. */
  readonly kind?: ReloadKind;
}

export interface DrainOptions {
  /** Keep serving, while /ready answers 503, this long before GOAWAY. Default: the config's drain.delay. */
  readonly delayMs?: number;
  /** After GOAWAY, in-flight RPCs get this long; then their connections are closed. Default: drain.timeout. */
  readonly timeoutMs?: number;
}

export interface DrainResult {
  /** Client connections still open at the timeout, closed with their RPCs. 0 for a clean drain. */
  readonly destroyed: number;
}

/** What the runtime starts and stops; the composition root makes each of them. */
export interface RuntimeParts {
  readonly logger: Logger;
  /** Whether the logger's level follows the config's log_level (not when the embedder gave its own logger). */
  readonly followLogLevel: boolean;
  createCluster(config: ClusterConfig, secrets: ConfigSecrets, xds: XdsProxyFeed | undefined): Cluster;
  startListener(config: ListenerConfig, secrets: ConfigSecrets): Promise<Listener>;
  startHealth(config: NonNullable<SwitchyardConfig['health']>, readiness: () => Readiness): Promise<HealthEndpoint>;
  startAdmin(settings: NonNullable<SwitchyardConfig['admin']>, xds: XdsProxyFeed | undefined): Promise<AdminServer>;
  createAccessLog(output: string): AccessLog;
  startOverloadMonitor(settings: SwitchyardConfig['overload']): OverloadMonitor;
  /** Connects to the control plane; resolves with the feed and its first routes and clusters. */
  connectXds(config: SwitchyardConfig, secrets: ConfigSecrets): Promise<{ feed: XdsProxyFeed; part: XdsConfigPart }>;
  /** A reload ended (with the error when it failed): metrics and the admin's recent changes. */
  reloaded(kind: ReloadKind, error?: string): void;
  /** A config is now in force (method labels follow the routes). */
  applied(config: SwitchyardConfig): void;
}

const NO_SECRETS: ConfigSecrets = { listeners: new Map(), clusters: new Map() };
/** A listener a reload replaced on the same port gives it up at once; the OS may take a moment to release it. */
const REBIND_ATTEMPTS = 20;
const REBIND_WAIT_MS = 50;

export class ProxyRuntime {
  readonly #parts: RuntimeParts;
  readonly #logger: Logger;
  #state: Readiness | 'stopped' = 'starting';
  #config: SwitchyardConfig;
  #secrets: ConfigSecrets;
  #serving: Serving;
  #listeners: Listener[] = [];
  #health: HealthEndpoint | undefined;
  #admin: AdminServer | undefined;
  /** The admin settings #admin was bound with. */
  #adminSettings: SwitchyardConfig['admin'];
  #accessLog: AccessLog;
  #overload: OverloadMonitor;
  /** Listeners and clusters a reload replaced, still finishing their RPCs. */
  readonly #retiringListeners = new Set<Listener>();
  readonly #retiringClusters = new Set<Cluster>();
  /** Reloads run one at a time, in order. */
  #reloads: Promise<unknown> = Promise.resolve();
  /** With an `xds` section: the feed of routes, clusters and endpoints, and the routes and clusters it gave last. */
  #xds: XdsProxyFeed | undefined;
  #xdsPart: XdsConfigPart | undefined;
  #drained: Promise<DrainResult> | undefined;

  constructor(parts: RuntimeParts, config: SwitchyardConfig, secrets: ConfigSecrets = NO_SECRETS) {
    this.#parts = parts;
    this.#logger = parts.logger;
    this.#config = config;
    this.#secrets = secrets;
    this.#adminSettings = config.admin;
    this.#serving = servingState(config, new Map());
    this.#accessLog = parts.createAccessLog(config.access_log.output);
    this.#overload = parts.startOverloadMonitor(config.overload);
  }

  /** What serves RPCs now; read once per RPC. */
  get serving(): Serving {
    return this.#serving;
  }

  get accessLog(): AccessLog {
    return this.#accessLog;
  }

  get overload(): OverloadMonitor {
    return this.#overload;
  }

  get state(): Readiness | 'stopped' {
    return this.#state;
  }

  get config(): SwitchyardConfig {
    return this.#config;
  }

  get secrets(): ConfigSecrets {
    return this.#secrets;
  }

  get listeners(): readonly Listener[] {
    return this.#listeners;
  }

  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#serving.clusters;
  }

  get health(): HealthEndpoint | undefined {
    return this.#health;
  }

  get admin(): AdminServer | undefined {
    return this.#admin;
  }

  get xds(): XdsProxyFeed | undefined {
    return this.#xds;
  }

  /**
   * Starts the readiness endpoint (answering 503 until serving), the xDS feed, the admin interface,
   * every cluster's discovery, then every listener. If anything cannot bind, everything started is
   * stopped again and the error is thrown.
   */
  async start(): Promise<void> {
    let config = this.#config;
    const clusters = new Map<string, Cluster>();
    await prepareTracing(config.tracing);
    try {
      if (config.health) this.#health = await namingTheListener('health.port', 'the health endpoint', config.health, this.#startHealth(config.health));
      if (config.xds) {
        const { feed, part } = await this.#parts.connectXds(config, this.#secrets);
        this.#xds = feed;
        this.#xdsPart = part;
        config = { ...config, routes: part.routes, clusters: part.clusters };
        this.#config = config;
      }
      if (config.admin) this.#admin = await namingTheListener('admin.port', 'the admin interface', config.admin, this.#parts.startAdmin(config.admin, this.#xds));
      for (const clusterConfig of config.clusters) {
        const cluster = this.#parts.createCluster(clusterConfig, this.#secrets, this.#xds);
        clusters.set(clusterConfig.name, cluster);
        cluster.start();
      }
      this.#serving = servingState(config, clusters);
      for (const [i, listenerConfig] of config.listeners.entries()) {
        this.#listeners.push(await namingTheListener(`listeners[${i}].port`, `listener "${listenerConfig.name}"`, listenerConfig, this.#parts.startListener(listenerConfig, this.#secrets)));
      }
    } catch (error) {
      await Promise.all(this.#listeners.map((listener) => listener.close(0)));
      await this.#xds?.close();
      for (const cluster of clusters.values()) cluster.close();
      await this.#health?.close();
      await this.#admin?.close();
      await this.#accessLog.close();
      this.#overload.close();
      throw error;
    }
    this.#state = 'ready';
    this.#xds?.attach((part) => this.#applyXds(part));
  }

  /**
   * Applies a new config, validated already (loadConfig). New RPCs see the new routes and clusters at
   * once; in-flight ones finish where they are. Unchanged clusters keep their connections and state;
   * changed and removed ones are closed once no RPC uses them. Listeners that keep their address and
   * kind are updated in place (certificates, HTTP/2 settings); others are drained and bound anew.
   * Resolves with what changed; rejects, leaving the running config as it was, when a new listener
   * cannot bind or the proxy is draining. Calls are serialized.
   */
  reload(input: ReloadInput): Promise<ReloadSummary> {
    return this.#queueReload(input.kind ?? 'config', () => this.#reload(this.#withXds(input, this.#xdsPart)));
  }

  /** Routes and clusters from the control plane, applied as a reload of the config in force with them. */
  #applyXds(part: XdsConfigPart): Promise<ReloadSummary> {
    return this.#queueReload('xds', async () => {
      const summary = await this.#reload(this.#withXds({ config: this.#config, secrets: this.#secrets }, part));
      this.#xdsPart = part;
      return summary;
    });
  }

  /** With xDS, whatever config is reloaded takes its routes and clusters from `part`; the xds section itself changes only on restart. */
  #withXds(input: ReloadInput, part: XdsConfigPart | undefined): ReloadInput {
    if (!this.#xds || !part) {
      if (input.config.xds) throw new Error('xds: the section cannot be added by a reload; restart the proxy');
      return input;
    }
    if (!input.config.xds) throw new Error('xds: the section cannot be removed by a reload; restart the proxy');
    if (JSON.stringify(input.config.xds) !== JSON.stringify(this.#config.xds)) this.#logger.warn('xds: settings changed; they take effect when the proxy restarts');
    return { ...input, config: { ...input.config, xds: this.#config.xds, routes: part.routes, clusters: part.clusters } };
  }

  #queueReload(kind: ReloadKind, reload: () => Promise<ReloadSummary>): Promise<ReloadSummary> {
    const run = this.#reloads.then(reload).then(
      (summary) => {
        this.#parts.reloaded(kind);
        return summary;
      },
      (error: unknown) => {
        this.#parts.reloaded(kind, errorMessage(error));
        throw error;
      },
    );
    this.#reloads = run.catch(() => {});
    return run;
  }

  async #reload(input: ReloadInput): Promise<ReloadSummary> {
    if (this.#state !== 'ready') throw new Error(`cannot reload while ${this.#state}`);
    const next = { config: input.config, secrets: input.secrets ?? NO_SECRETS };
    // Compared with what actually runs: a listener or endpoint that failed to bind last time is tried again.
    const running = { ...this.#config, listeners: this.#listeners.map((listener) => listener.config), health: this.#health && this.#config.health };
    const plan = planReload({ config: running, secrets: this.#secrets }, next);
    await prepareTracing(next.config.tracing);

    // Everything that can fail happens before anything running is touched.
    const created = new Map<string, Cluster>(plan.clusters.create.map((c) => [c.name, this.#parts.createCluster(c, next.secrets, this.#xds)]));
    const retiring = this.#listeners.filter((listener) => plan.listeners.retire.includes(listener.name));
    const bound = new Map<string, Listener>();
    /** Listeners whose port an old listener holds until it is retired below. */
    const deferred: ListenerConfig[] = [];
    let health = this.#health;
    let deferHealth = false;
    try {
      for (const listenerConfig of plan.listeners.bind) {
        try {
          bound.set(listenerConfig.name, await this.#parts.startListener(listenerConfig, next.secrets));
        } catch (error) {
          const heldByRetiring = listenerConfig.port !== 0 && retiring.some((listener) => listener.address.port === listenerConfig.port);
          if (!isAddressInUse(error) || !heldByRetiring) throw new Error(`listener "${listenerConfig.name}": ${errorMessage(error)}`, { cause: error });
          deferred.push(listenerConfig);
        }
      }
      if ((plan.summary.health === 'added' || plan.summary.health === 'changed') && next.config.health) {
        try {
          health = await this.#startHealth(next.config.health);
        } catch (error) {
          if (!isAddressInUse(error) || this.#health?.address.port !== next.config.health.port) throw new Error(`health: ${errorMessage(error)}`, { cause: error });
          deferHealth = true;
        }
      }
    } catch (error) {
      await Promise.all([...bound.values()].map((listener) => listener.close(0)));
      if (health !== this.#health) await health?.close();
      for (const cluster of created.values()) cluster.close();
      throw error;
    }

    // Commit: from here on, new RPCs see the new config.
    const oldClusters = this.#serving.clusters;
    const clusters = new Map<string, Cluster>();
    for (const clusterConfig of next.config.clusters) {
      clusters.set(clusterConfig.name, created.get(clusterConfig.name) ?? oldClusters.get(clusterConfig.name)!);
    }
    for (const cluster of created.values()) cluster.start();
    this.#serving = servingState(next.config, clusters);
    for (const listenerConfig of plan.listeners.update) {
      this.#listeners.find((listener) => listener.name === listenerConfig.name)!.update(listenerConfig, next.secrets.listeners.get(listenerConfig.name));
    }
    if (next.config.access_log.output !== this.#config.access_log.output) {
      const old = this.#accessLog;
      this.#accessLog = this.#parts.createAccessLog(next.config.access_log.output);
      void old.close();
    }
    if (this.#parts.followLogLevel) this.#logger.level = next.config.log_level;
    if (JSON.stringify(next.config.overload) !== JSON.stringify(this.#config.overload)) {
      this.#overload.close();
      this.#overload = this.#parts.startOverloadMonitor(next.config.overload);
    }
    const previousHealth = this.#health;
    this.#config = next.config;
    this.#secrets = next.secrets;
    if (next.secrets.xds) this.#xds?.setTls(next.secrets.xds);

    for (const name of plan.clusters.retire) this.#retireCluster(oldClusters.get(name)!);
    for (const listener of retiring) this.#retireListener(listener);
    if (plan.summary.health === 'removed' || deferHealth) health = undefined;
    if (previousHealth && previousHealth !== health) await previousHealth.close();
    if (deferHealth && next.config.health) health = await this.#startHealth(next.config.health).catch((error: unknown) => {
      this.#logger.error({ err: errorMessage(error) }, 'readiness endpoint could not be bound again; it is off until the next reload');
      return undefined;
    });
    this.#health = health;
    await this.#reloadAdmin(next.config.admin);
    this.#parts.applied(next.config);
    for (const listenerConfig of deferred) {
      const listener = await this.#bindWhenFree(listenerConfig, next.secrets);
      if (listener) bound.set(listenerConfig.name, listener);
      else plan.summary.listeners.failed.push(listenerConfig.name);
    }
    const kept = new Map(this.#listeners.map((listener) => [listener.name, listener]));
    this.#listeners = next.config.listeners
      .map((listenerConfig) => bound.get(listenerConfig.name) ?? (plan.listeners.retire.includes(listenerConfig.name) ? undefined : kept.get(listenerConfig.name)))
      .filter((listener) => listener !== undefined);

    const { summary } = plan;
    const fields = {
      routes: summary.routes,
      clusters: compact(summary.clusters),
      listeners: compact(summary.listeners),
      ...(summary.health !== 'unchanged' && { health: summary.health }),
    };
    if (summary.listeners.failed.length > 0) this.#logger.error(fields, 'config reloaded, but some listeners could not be bound again');
    else this.#logger.info(fields, 'config reloaded');
    return summary;
  }

  /**
   * Drains and stops: /ready answers 503 at once; RPCs keep being served for `delayMs` so outer
   * balancers notice; then listeners stop accepting and every client connection gets the two-phase
   * GOAWAY; in-flight RPCs get `timeoutMs` to finish, then those left end UNAVAILABLE and their
   * connections close. Then clusters, the access log and the endpoints close. Each step is logged.
   * Calling it again returns the same promise.
   */
  drain(options: DrainOptions = {}): Promise<DrainResult> {
    this.#drained ??= this.#drain(options.delayMs ?? this.#config.drain.delay, options.timeoutMs ?? this.#config.drain.timeout);
    return this.#drained;
  }

  async #drain(delayMs: number, timeoutMs: number): Promise<DrainResult> {
    this.#state = 'draining';
    this.#logger.info({ delay_ms: delayMs, timeout_ms: timeoutMs }, delayMs > 0 ? 'draining: /ready answers 503; still serving during the drain delay' : 'draining: /ready answers 503');
    if (delayMs > 0) await sleep(delayMs);
    // A reload under way finishes first, so the set of listeners is final.
    await this.#reloads;
    const listeners = [...this.#listeners, ...this.#retiringListeners];
    const connections = listeners.reduce((sum, listener) => sum + listener.connectionCount, 0);
    this.#logger.info({ connections, timeout_ms: timeoutMs }, 'draining: stopped accepting connections; GOAWAY sent to every client connection');
    const allClosed = Promise.all(listeners.map((listener) => listener.drain())).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const clean = await Promise.race([allClosed, timedOut]);
    clearTimeout(timer);
    let destroyed = 0;
    if (clean) {
      this.#logger.info('drained: every client connection has closed');
    } else {
      destroyed = (await Promise.all(listeners.map((listener) => listener.destroy()))).reduce((sum, count) => sum + count, 0);
      this.#logger.warn({ connections: destroyed, timeout_ms: timeoutMs }, 'drain timeout: destroyed the connections still open, with their in-flight RPCs');
    }
    await this.#xds?.close();
    for (const cluster of [...this.#serving.clusters.values(), ...this.#retiringClusters]) cluster.close();
    this.#retiringClusters.clear();
    await this.#accessLog.close();
    await this.#health?.close();
    await this.#admin?.close();
    this.#overload.close();
    this.#state = 'stopped';
    this.#logger.info('stopped');
    return { destroyed };
  }

  #startHealth(config: NonNullable<SwitchyardConfig['health']>): Promise<HealthEndpoint> {
    return this.#parts.startHealth(config, () => (this.#state === 'stopped' ? 'draining' : this.#state));
  }

  /** Rebinds the admin interface when its settings changed; a failure leaves it off and is logged, not fatal. */
  async #reloadAdmin(settings: SwitchyardConfig['admin']): Promise<void> {
    const running = this.#admin;
    if (JSON.stringify(settings) === JSON.stringify(this.#adminSettings)) return;
    this.#adminSettings = settings;
    this.#admin = undefined;
    await running?.close();
    if (!settings) return;
    try {
      this.#admin = await this.#parts.startAdmin(settings, this.#xds);
    } catch (error) {
      this.#logger.error({ err: errorMessage(error) }, 'admin interface could not be bound; it is off until the next reload');
    }
  }

  /** Binds a listener whose port a retired listener has just given up, retrying briefly. */
  async #bindWhenFree(config: ListenerConfig, secrets: ConfigSecrets): Promise<Listener | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#parts.startListener(config, secrets);
      } catch (error) {
        if (!isAddressInUse(error) || attempt >= REBIND_ATTEMPTS) {
          this.#logger.error({ listener: config.name, err: errorMessage(error) }, 'listener could not be bound again; it is off until the next reload');
          return undefined;
        }
        await sleep(REBIND_WAIT_MS);
      }
    }
  }

  /** Drains a listener a reload removed; its connections get drain.timeout, as on shutdown. */
  #retireListener(listener: Listener): void {
    this.#retiringListeners.add(listener);
    const timeoutMs = this.#config.drain.timeout;
    this.#logger.info({ listener: listener.name, connections: listener.connectionCount }, 'listener removed: draining its connections');
    void listener.close(timeoutMs).then(() => this.#retiringListeners.delete(listener));
  }

  /**
   * Closes a cluster a reload removed or replaced once no RPC is using it (it says so: whenIdle).
   * Closing earlier would fail RPCs waiting for a connection or between retries.
   */
  #retireCluster(cluster: Cluster): void {
    this.#retiringClusters.add(cluster);
    void cluster.limits.whenIdle().then(() => {
      if (!this.#retiringClusters.delete(cluster)) return;
      cluster.close();
      this.#logger.info({ cluster: cluster.name }, 'replaced or removed cluster closed: its last RPC has finished');
    });
  }
}

function isAddressInUse(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Only the non-empty lists, for a short log line. */
function compact(summary: object): Record<string, string[]> | undefined {
  const changes = Object.entries(summary).filter(([key, names]) => key !== 'unchanged' && Array.isArray(names) && names.length > 0);
  return changes.length > 0 ? Object.fromEntries(changes) : undefined;
}
