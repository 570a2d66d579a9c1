/**
 * The composition root: builds listeners, the route table and clusters from
 * a validated config and wires them together. Everything a running proxy
 * owns is reachable from here, and drain() or stop() releases all of it.
 *
 * Its lifecycle: starting (readiness 503) → serving → draining (readiness
 * 503, then GOAWAY) → stopped. While serving, reload() swaps in a new config
 * without dropping an RPC: the RPC handler reads routes and clusters through
 * functions on every RPC, so in-flight RPCs finish on the objects they started on.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import { startAdminServer, type AdminServer, type AdminTarget } from './admin/admin-server.ts';
import { startHealthEndpoint, type HealthEndpoint, type Readiness } from './admin/health-endpoint.ts';
import type { ClusterConfig, SwitchyardConfig } from './config/schema.ts';
import { Cluster } from './cluster/cluster.ts';
import { createDiscoverySource } from './discovery/create.ts';
import type { ConfigSecrets } from './config/load.ts';
import { namingTheListener } from './lifecycle/listen-error.ts';
import { planReload, type ReloadSummary } from './lifecycle/reload-plan.ts';
import { startListener, type Listener, type StreamHandler } from './listener/listener.ts';
import { createAccessLog, type AccessLog } from './log/access-log.ts';
import { createRpcHandler } from './proxy/rpc-handler.ts';
import type { RpcRecord } from './grpc/rpc-record.ts';
import { RouteTable } from './router/route-table.ts';
import { Authorizer } from './security/authorization.ts';
import { admitRpc } from './security/rpc-admission.ts';
import type { AbuseLimit } from './security/connection-guard.ts';
import { startOverloadMonitor, type OverloadMonitor } from './resilience/overload.ts';
import { loadedCertificates, type LoadedCertificate } from './security/certificate-expiry.ts';
import type { Telemetry } from './metrics/telemetry.ts';
import { VERSION } from './version.ts';
// Loaded only when the config asks for them: gRPC, protobuf and prom-client cost memory a plain proxy does not need.
import type { XdsProxyFeed, XdsConfigPart } from './xds/client/xds-proxy-feed.ts';

export type { ReloadSummary } from './lifecycle/reload-plan.ts';

const NO_SECRETS: ConfigSecrets = { listeners: new Map(), clusters: new Map() };

/** How often a cluster that a reload removed is checked for RPCs still using it. */
const RETIRE_POLL_MS = 100;
/** A listener a reload replaced on the same port gives it up at once; the OS may take a moment to release it. */
const REBIND_ATTEMPTS = 20;
const REBIND_WAIT_MS = 50;

export interface SwitchyardOptions {
  readonly config: SwitchyardConfig;
  /** Certificates and keys the config names, read and checked by loadConfig. */
  readonly secrets?: ConfigSecrets;
  /** Default: a pino logger at the config's log_level, which reloads then follow. */
  readonly logger?: Logger;
  /** Observes every finished RPC (tests, the demo's live view). */
  readonly onRpcEnd?: (record: RpcRecord) => void;
  /** What the admin interface's POST /drain does. Default: drain(). `switchyard run` also exits after it. */
  readonly onDrainRequest?: () => void;
}

/** A config to reload: what loadConfig returns, or a config built in code (without TLS files). */
export interface ReloadInput {
  readonly config: SwitchyardConfig;
  readonly secrets?: ConfigSecrets;
  /** What prompted it, for metrics: a config change (default) or rotated certificates. */
  readonly kind?: ReloadKind;
}

/** `xds`: routes and clusters from the control plane (src/xds/client/). */
export type ReloadKind = 'config' | 'certificates' | 'xds';

export interface DrainOptions {
  /** Keep serving, while /ready answers 503, this long before GOAWAY. Default: the config's drain.delay. */
  readonly delayMs?: number;
  /** After GOAWAY, in-flight RPCs get this long; then their connections are destroyed. Default: drain.timeout. */
  readonly timeoutMs?: number;
}

export interface DrainResult {
  /** Client connections still open at the timeout, destroyed with their RPCs. 0 for a clean drain. */
  readonly destroyed: number;
}

export class Switchyard {
  readonly logger: Logger;
  readonly #ownLogger: boolean;
  readonly #observe: ((record: RpcRecord) => void) | undefined;
  readonly #handler: StreamHandler;
  #config: SwitchyardConfig;
  #secrets: ConfigSecrets;
  #state: Readiness | 'stopped' = 'starting';
  #routes: RouteTable;
  #authorizer: Authorizer;
  #clusters = new Map<string, Cluster>();
  #listeners: Listener[] = [];
  #accessLog: AccessLog;
  #health: HealthEndpoint | undefined;
  #admin: AdminServer | undefined;
  /** Created with the admin interface (the only place its figures are read), and kept across reloads. */
  #telemetry: Telemetry | undefined;
  /** The admin settings #admin was bound with. */
  #adminSettings: SwitchyardConfig['admin'];
  readonly #onDrainRequest: () => void;
  /** Listeners and clusters a reload replaced, still finishing their RPCs. */
  readonly #retiringListeners = new Set<Listener>();
  readonly #retiringClusters = new Set<Cluster>();
  /** Reloads run one at a time, in order. */
  #reloads: Promise<unknown> = Promise.resolve();
  /** With an `xds` section: the client feeding routes, clusters and endpoints, and the routes and clusters it gave last. */
  #xds: XdsProxyFeed | undefined;
  #xdsPart: XdsConfigPart | undefined;
  #drained: Promise<DrainResult> | undefined;
  #overload: OverloadMonitor;

  private constructor(options: SwitchyardOptions) {
    this.#config = options.config;
    this.#adminSettings = options.config.admin;
    this.#secrets = options.secrets ?? NO_SECRETS;
    this.#ownLogger = options.logger === undefined;
    this.logger = options.logger ?? pino({ level: options.config.log_level });
    this.#observe = options.onRpcEnd;
    this.#onDrainRequest = options.onDrainRequest ?? (() => void this.drain());
    this.#routes = new RouteTable(options.config.routes);
    this.#authorizer = new Authorizer(options.config.authorization);
    this.#accessLog = createAccessLog(options.config.access_log.output);
    this.#handler = createRpcHandler({
      routes: () => this.#routes,
      cluster: (name) => this.#clusters.get(name),
      tracing: () => this.#config.tracing,
      onRpcStart: (record) => this.#telemetry?.rpcStarted(record),
      onRpcEnd: (record) => {
        this.#accessLog.write(record);
        this.#telemetry?.rpcEnded(record);
        this.#observe?.(record);
      },
      admit: (stream, headers, listener) => admitRpc(this.#admission, stream, headers, listener),
      overloaded: () => this.#overload.overloaded,
    });
    this.#overload = this.#startOverloadMonitor(options.config.overload);
  }

  /**
   * Starts the readiness endpoint (answering 503 until serving), every
   * cluster's discovery, then every listener. If anything cannot bind,
   * everything started is stopped again and the error is thrown.
   */
  static async start(options: SwitchyardOptions): Promise<Switchyard> {
    const proxy = new Switchyard(options);
    let { config } = options;
    try {
      if (config.health) proxy.#health = await namingTheListener('health.port', 'the health endpoint', config.health, proxy.#startHealth(config.health));
      if (config.xds) config = await proxy.#startXds(config);
      if (config.admin) proxy.#admin = await namingTheListener('admin.port', 'the admin interface', config.admin, proxy.#startAdmin(config.admin));
      for (const clusterConfig of config.clusters) {
        const cluster = proxy.#createCluster(clusterConfig, proxy.#secrets);
        proxy.#clusters.set(clusterConfig.name, cluster);
        cluster.start();
      }
      for (const [i, listenerConfig] of config.listeners.entries()) {
        proxy.#listeners.push(await namingTheListener(`listeners[${i}].port`, `listener "${listenerConfig.name}"`, listenerConfig, proxy.#startListener(listenerConfig, proxy.#secrets)));
      }
    } catch (error) {
      await Promise.all(proxy.#listeners.map((listener) => listener.close(0)));
      await proxy.#xds?.close();
      for (const cluster of proxy.#clusters.values()) cluster.close();
      await proxy.#health?.close();
      await proxy.#admin?.close();
      await proxy.#accessLog.close();
      proxy.#overload.close();
      throw error;
    }
    proxy.#state = 'ready';
    proxy.#xds?.attach((part) => proxy.#applyXds(part));
    return proxy;
  }

  /** Connects to the control plane and waits for the first config (or the cache); the config to start with. */
  async #startXds(config: SwitchyardConfig): Promise<SwitchyardConfig> {
    const settings = config.xds!;
    const tls = this.#secrets.xds;
    if (!tls) throw new Error('xds.tls: the certificates are not loaded (load the config with loadConfig or resolveConfig)');
    const { XdsProxyFeed } = await import('./xds/client/xds-proxy-feed.ts');
    this.#xds = new XdsProxyFeed({ settings, tls, logger: this.logger });
    const { part } = await this.#xds.start();
    this.#xdsPart = part;
    this.#config = { ...config, routes: part.routes, clusters: part.clusters };
    this.#routes = new RouteTable(part.routes);
    return this.#config;
  }

  readonly #listenerEvents = {
    onAbusiveConnection: (listener: string, peer: string, limit: AbuseLimit) => {
      this.logger.warn({ listener, peer, limit }, 'client connection closed as abusive');
      this.#telemetry?.connectionClosedAsAbusive(listener, limit);
    },
  };

  readonly #admission = {
    authorizer: () => this.#authorizer,
    listener: (name: string) => this.#listeners.find((listener) => listener.name === name)?.config,
    logger: () => this.logger,
  };

  /** The certificates and keys in force (what the config's TLS files held when last read). */
  get secrets(): ConfigSecrets {
    return this.#secrets;
  }

  /** The config in force: the one started with, or the last one reload() applied. */
  get config(): SwitchyardConfig {
    return this.#config;
  }

  get listeners(): readonly Listener[] {
    return this.#listeners;
  }

  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#clusters;
  }

  /** What /ready reports; 'stopped' once drain() has finished. */
  get state(): Readiness | 'stopped' {
    return this.#state;
  }

  /** Where the admin interface listens, if the config has one. */
  get adminAddress(): AddressInfo | undefined {
    return this.#admin?.address;
  }

  /** The xDS client, when the config has an `xds` section: its connection state, versions, ACKs and NACKs. */
  get xds(): XdsProxyFeed | undefined {
    return this.#xds;
  }

  /** Metrics, the dashboard's window and recent changes; undefined until the config has an admin section. */
  get telemetry(): Telemetry | undefined {
    return this.#telemetry;
  }

  /** Every certificate in force, soonest expiry first. */
  certificates(): LoadedCertificate[] {
    return loadedCertificates(this.#config, this.#secrets);
  }

  /**
   * Counts a reload that failed before reload() was called (an unreadable
   * config file, certificates that do not load), as reload() counts its own.
   */
  reportReloadFailure(kind: ReloadKind, message: string): void {
    this.#telemetry?.reloaded(kind, message);
  }

  /** Where the readiness endpoint listens, if the config has one. */
  get healthAddress(): AddressInfo | undefined {
    return this.#health?.address;
  }

  /** The listener named `name`; throws if there is none (a programming error). */
  listener(name: string): Listener {
    const listener = this.#listeners.find((candidate) => candidate.name === name);
    if (!listener) throw new Error(`no listener named "${name}"`);
    return listener;
  }

  /**
   * Applies a new config, validated already (loadConfig). New RPCs see the
   * new routes and clusters at once; in-flight ones finish where they are.
   * Unchanged clusters keep their connections and state; changed and removed
   * ones are closed once no RPC uses them. Listeners that keep their address
   * and kind are updated in place (certificates, HTTP/2 settings); others are
   * drained and bound anew. Resolves with what changed; rejects, leaving the
   * running config as it was, when a new listener cannot bind or the proxy
   * is draining. Calls are serialized.
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
    if (JSON.stringify(input.config.xds) !== JSON.stringify(this.#config.xds)) this.logger.warn('xds: settings changed; they take effect when the proxy restarts');
    return { ...input, config: { ...input.config, xds: this.#config.xds, routes: part.routes, clusters: part.clusters } };
  }

  #queueReload(kind: ReloadKind, reload: () => Promise<ReloadSummary>): Promise<ReloadSummary> {
    const run = this.#reloads.then(reload).then(
      (summary) => {
        this.#telemetry?.reloaded(kind);
        return summary;
      },
      (error: unknown) => {
        this.#telemetry?.reloaded(kind, errorMessage(error));
        throw error;
      },
    );
    this.#reloads = run.catch(() => {});
    return run;
  }

  /**
   * Drains and stops: /ready answers 503 at once; RPCs keep being served for
   * `delayMs` so outer balancers notice; then listeners stop accepting and
   * every client connection gets the two-phase GOAWAY; in-flight RPCs get
   * `timeoutMs` to finish before the connections left are destroyed. Then
   * clusters, the access log and the readiness endpoint close. Each step is
   * logged. Calling it again returns the same promise.
   */
  drain(options: DrainOptions = {}): Promise<DrainResult> {
    this.#drained ??= this.#drain(options.delayMs ?? this.#config.drain.delay, options.timeoutMs ?? this.#config.drain.timeout);
    return this.#drained;
  }

  /** drain() without the delay: GOAWAY at once, in-flight RPCs finish within `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    await this.drain({ delayMs: 0, timeoutMs: graceMs });
  }

  async #drain(delayMs: number, timeoutMs: number): Promise<DrainResult> {
    this.#state = 'draining';
    this.logger.info({ delay_ms: delayMs, timeout_ms: timeoutMs }, delayMs > 0 ? 'draining: /ready answers 503; still serving during the drain delay' : 'draining: /ready answers 503');
    if (delayMs > 0) await sleep(delayMs);
    // A reload under way finishes first, so the set of listeners is final.
    await this.#reloads;
    const listeners = [...this.#listeners, ...this.#retiringListeners];
    const connections = listeners.reduce((sum, listener) => sum + listener.connectionCount, 0);
    this.logger.info({ connections, timeout_ms: timeoutMs }, 'draining: stopped accepting connections; GOAWAY sent to every client connection');
    const allClosed = Promise.all(listeners.map((listener) => listener.drain())).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const clean = await Promise.race([allClosed, timedOut]);
    clearTimeout(timer);
    let destroyed = 0;
    if (clean) {
      this.logger.info('drained: every client connection has closed');
    } else {
      destroyed = (await Promise.all(listeners.map((listener) => listener.destroy()))).reduce((sum, count) => sum + count, 0);
      this.logger.warn({ connections: destroyed, timeout_ms: timeoutMs }, 'drain timeout: destroyed the connections still open, with their in-flight RPCs');
    }
    await this.#xds?.close();
    for (const cluster of [...this.#clusters.values(), ...this.#retiringClusters]) cluster.close();
    this.#retiringClusters.clear();
    await this.#accessLog.close();
    await this.#health?.close();
    await this.#admin?.close();
    this.#overload.close();
    this.#state = 'stopped';
    this.logger.info('stopped');
    return { destroyed };
  }

  async #reload(input: ReloadInput): Promise<ReloadSummary> {
    if (this.#state !== 'ready') throw new Error(`cannot reload while ${this.#state}`);
    const next = { config: input.config, secrets: input.secrets ?? NO_SECRETS };
    // Compared with what actually runs: a listener or endpoint that failed to bind last time is tried again.
    const running = { ...this.#config, listeners: this.#listeners.map((listener) => listener.config), health: this.#health && this.#config.health };
    const plan = planReload({ config: running, secrets: this.#secrets }, next);

    // Everything that can fail happens before anything running is touched.
    const created = new Map<string, Cluster>(plan.clusters.create.map((c) => [c.name, this.#createCluster(c, next.secrets)]));
    const retiring = this.#listeners.filter((listener) => plan.listeners.retire.includes(listener.name));
    const bound = new Map<string, Listener>();
    /** Listeners whose port an old listener holds until it is retired below. */
    const deferred: typeof plan.listeners.bind[number][] = [];
    let health = this.#health;
    let deferHealth = false;
    try {
      for (const listenerConfig of plan.listeners.bind) {
        try {
          bound.set(listenerConfig.name, await this.#startListener(listenerConfig, next.secrets));
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
    const oldClusters = this.#clusters;
    const clusters = new Map<string, Cluster>();
    for (const clusterConfig of next.config.clusters) {
      clusters.set(clusterConfig.name, created.get(clusterConfig.name) ?? oldClusters.get(clusterConfig.name)!);
    }
    for (const cluster of created.values()) cluster.start();
    this.#clusters = clusters;
    this.#routes = new RouteTable(next.config.routes);
    this.#authorizer = new Authorizer(next.config.authorization);
    for (const listenerConfig of plan.listeners.update) {
      this.listener(listenerConfig.name).update(listenerConfig, next.secrets.listeners.get(listenerConfig.name));
    }
    if (next.config.access_log.output !== this.#config.access_log.output) {
      const old = this.#accessLog;
      this.#accessLog = createAccessLog(next.config.access_log.output);
      void old.close();
    }
    if (this.#ownLogger) this.logger.level = next.config.log_level;
    if (JSON.stringify(next.config.overload) !== JSON.stringify(this.#config.overload)) {
      this.#overload.close();
      this.#overload = this.#startOverloadMonitor(next.config.overload);
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
      this.logger.error({ err: errorMessage(error) }, 'readiness endpoint could not be bound again; it is off until the next reload');
      return undefined;
    });
    this.#health = health;
    await this.#reloadAdmin(next.config.admin);
    this.#telemetry?.metrics.methods.configure(namedMethods(next.config), next.config.metrics.max_methods);
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
    if (summary.listeners.failed.length > 0) this.logger.error(fields, 'config reloaded, but some listeners could not be bound again');
    else this.logger.info(fields, 'config reloaded');
    return summary;
  }

  #createCluster(config: ClusterConfig, secrets: ConfigSecrets): Cluster {
    const tls = config.tls && secrets.clusters.get(config.name);
    return new Cluster({
      config,
      source: this.#xds?.discoverySource(config) ?? createDiscoverySource(config),
      tls: tls && config.tls ? { ...tls, serverName: config.tls.server_name, verifySubjectAltNames: config.tls.verify_subject_alt_names } : undefined,
      logger: this.logger,
      onAttemptEnd: (endpoint, latencyMs, outcome) => this.#telemetry?.attemptEnded(config.name, endpoint, latencyMs, outcome),
      onEndpointEvent: (event) => this.#telemetry?.endpointEvent(event),
    });
  }

  #startOverloadMonitor(settings: SwitchyardConfig['overload']): OverloadMonitor {
    const monitor = startOverloadMonitor({
      maxMemoryMb: settings.max_memory_mb,
      onChange: (overloaded, rss, limit) => {
        const fields = { rss_mb: Math.round(rss / 2 ** 20), limit_mb: Math.round(limit / 2 ** 20) };
        if (overloaded) this.logger.warn(fields, 'overloaded: refusing new RPCs (UNAVAILABLE) until memory falls');
        else this.logger.info(fields, 'no longer overloaded: accepting new RPCs');
      },
    });
    if (monitor.limitBytes !== undefined) this.logger.info({ limit_mb: Math.round(monitor.limitBytes / 2 ** 20) }, 'overload limit set');
    return monitor;
  }

  async #startListener(config: SwitchyardConfig['listeners'][number], secrets: ConfigSecrets): Promise<Listener> {
    const listener = await startListener(config, secrets.listeners.get(config.name), this.#handler, this.#listenerEvents);
    this.logger.info({ listener: listener.name, address: `${listener.address.address}:${listener.address.port}`, tls: !config.plaintext }, 'listening');
    return listener;
  }

  async #startHealth(config: NonNullable<SwitchyardConfig['health']>): Promise<HealthEndpoint> {
    const health = await startHealthEndpoint(config, () => (this.#state === 'stopped' ? 'draining' : this.#state));
    this.logger.info({ address: `${health.address.address}:${health.address.port}` }, 'readiness endpoint listening (GET /ready, /live)');
    return health;
  }

  async #startAdmin(settings: NonNullable<SwitchyardConfig['admin']>): Promise<AdminServer> {
    const xds = this.#xds;
    const { Telemetry } = await import('./metrics/telemetry.ts');
    this.#telemetry ??= new Telemetry({
      source: {
        clusters: () => this.#clusters.values(),
        listeners: () => this.#listeners,
        certificates: () => this.certificates(),
        ready: () => this.#state === 'ready',
        overloaded: () => this.#overload.overloaded,
        ...(xds && { xds: () => xds.metrics() }),
      },
      namedMethods: namedMethods(this.#config),
      maxLearnedMethods: this.#config.metrics.max_methods,
      version: VERSION,
    });
    const proxy = this;
    const target: AdminTarget = {
      get config() { return proxy.#config; },
      get clusters() { return proxy.#clusters; },
      get state() { return proxy.#state; },
      telemetry: this.#telemetry,
      routes: () => this.#routes.routes,
      certificates: () => this.certificates(),
      requestDrain: () => this.#onDrainRequest(),
      get logLevel() { return proxy.logger.level; },
      set logLevel(level: string) {
        proxy.logger.info({ level, previous: proxy.logger.level }, 'log level changed through the admin interface');
        proxy.logger.level = level;
      },
    };
    const admin = await startAdminServer(settings, target);
    this.logger.info({ address: `${admin.address.address}:${admin.address.port}` }, 'admin interface listening (GET / lists its endpoints; /dashboard)');
    return admin;
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
      this.#admin = await this.#startAdmin(settings);
    } catch (error) {
      this.logger.error({ err: errorMessage(error) }, 'admin interface could not be bound; it is off until the next reload');
    }
  }

  /** Binds a listener whose port a retired listener has just given up, retrying briefly. */
  async #bindWhenFree(config: SwitchyardConfig['listeners'][number], secrets: ConfigSecrets): Promise<Listener | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#startListener(config, secrets);
      } catch (error) {
        if (!isAddressInUse(error) || attempt >= REBIND_ATTEMPTS) {
          this.logger.error({ listener: config.name, err: errorMessage(error) }, 'listener could not be bound again; it is off until the next reload');
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
    this.logger.info({ listener: listener.name, connections: listener.connectionCount }, 'listener removed: draining its connections');
    void listener.close(timeoutMs).then(() => this.#retiringListeners.delete(listener));
  }

  /**
   * Closes a cluster a reload removed or replaced once no RPC is using it.
   * Closing earlier would fail RPCs waiting for a connection or between retries.
   */
  #retireCluster(cluster: Cluster): void {
    this.#retiringClusters.add(cluster);
    const closeWhenIdle = () => {
      if (!this.#retiringClusters.has(cluster)) return true;
      if (cluster.limits.activeRequests > 0) return false;
      this.#retiringClusters.delete(cluster);
      cluster.close();
      this.logger.info({ cluster: cluster.name }, 'replaced or removed cluster closed: its last RPC has finished');
      return true;
    };
    if (closeWhenIdle()) return;
    const timer = setInterval(() => closeWhenIdle() && clearInterval(timer), RETIRE_POLL_MS);
    timer.unref();
  }
}

/** Methods that always get their own metric labels: those the config names. */
function namedMethods(config: SwitchyardConfig): string[] {
  const fromRoutes = config.routes.flatMap((route) => (route.match.method === undefined ? [] : [route.match.method]));
  return [...config.metrics.methods, ...fromRoutes];
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
