/**
 * The composition root: makes the parts of a proxy (the RPC handler, listeners,
 * clusters, the health and admin endpoints, telemetry, the access log, the
 * overload monitor, the xDS feed) and wires them together. The lifecycle
 * (start, reload, drain) is src/lifecycle/proxy-runtime.ts, which runs the
 * parts made here; Switchyard is its public face.
 */
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import type { AdminServer, AdminTarget } from './admin/admin-server.ts';
import type { Readiness } from './admin/readiness.ts';
import type { ClusterConfig, ListenerConfig, SwitchyardConfig } from './config/schema.ts';
import type { ConfigSecrets } from './config/config-files.ts';
import { Cluster } from './cluster/cluster.ts';
import { createDiscoverySource } from './discovery/create.ts';
import type { RpcRecord } from './grpc/rpc-record.ts';
import { carriesTunnels } from './grpc/streams.ts';
import { ProxyRuntime, type DrainOptions, type DrainResult, type ReloadInput, type ReloadKind, type RuntimeParts } from './lifecycle/proxy-runtime.ts';
import type { ReloadSummary } from './lifecycle/reload-plan.ts';
import { startListener, type Listener, type ListenerEvents, type StreamHandler } from './listener/listener.ts';
import { createAccessLog } from './log/access-log.ts';
import type { Telemetry } from './metrics/telemetry.ts';
import { createRpcHandler } from './proxy/rpc-handler.ts';
import { startOverloadMonitor, type OverloadMonitor } from './resilience/overload.ts';
import { loadedCertificates, type LoadedCertificate } from './security/certificate-expiry.ts';
import { admitRpc } from './security/rpc-admission.ts';
import { VERSION } from './version.ts';
import { createWebHandler, type WebHandler } from './web/web-handler.ts';
import type { WebSocketRecord } from './websocket/session-record.ts';
import { WebSocketProxy } from './websocket/websocket-proxy.ts';
// Loaded only when the config asks for them (the admin interface, the health port, xDS): gRPC, node:http2,
// protobuf and prom-client cost memory a plain proxy does not need.
import type { XdsProxyFeed } from './xds/client/xds-proxy-feed.ts';

export type { ReloadSummary } from './lifecycle/reload-plan.ts';
export type { DrainOptions, DrainResult, ReloadInput, ReloadKind } from './lifecycle/proxy-runtime.ts';

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
  /** Observes every WebSocket upgrade's record: refused, or when its session ended (tests). */
  readonly onWebSocketEnd?: (record: WebSocketRecord) => void;
}

export class Switchyard {
  readonly logger: Logger;
  readonly #runtime: ProxyRuntime;
  /** WebSocket upgrades, extended CONNECT streams and their sessions (src/websocket/). */
  readonly #websocket: WebSocketProxy;
  /** Created with the admin interface (the only place its figures are read), and kept across reloads. */
  #telemetry: Telemetry | undefined;

  private constructor(options: SwitchyardOptions) {
    this.logger = options.logger ?? pino({ level: options.config.log_level });
    const observe = options.onRpcEnd;
    const onDrainRequest = options.onDrainRequest ?? (() => void this.drain());
    this.#websocket = this.#createWebSocketProxy(options.onWebSocketEnd);
    const rpcHandler: StreamHandler = createRpcHandler({
      serving: () => this.#runtime.serving,
      onRpcStart: (record) => this.#telemetry?.rpcStarted(record),
      onRpcEnd: (record) => {
        this.#runtime.accessLog.write(record);
        this.#telemetry?.rpcEnded(record);
        observe?.(record);
      },
      admit: (serving, connection, headers, listener) => admitRpc(serving, this.logger, connection, headers, listener),
      overloaded: () => this.#runtime.overload.overloaded,
    });
    const web = this.#createWebHandler(rpcHandler);
    // Extended CONNECT streams (RFC 8441) go to the WebSocket proxy before anything looks for a browser call in them.
    const stream = withWebSocketStreams(web.stream, this.#websocket);
    const listenerEvents: ListenerEvents = {
      onAbusiveConnection: (listener, peer, limit) => {
        this.logger.warn({ listener, peer, limit }, 'client connection closed as abusive');
        this.#telemetry?.connectionClosedAsAbusive(listener, limit);
      },
    };
    const parts: RuntimeParts = {
      logger: this.logger,
      followLogLevel: options.logger === undefined,
      createCluster: (config, secrets, xds) => this.#createCluster(config, secrets, xds),
      startListener: async (config: ListenerConfig, secrets: ConfigSecrets) => {
        const websocket = this.#websocket;
        // A browser call (gRPC-Web, Connect) or preflight is told by its headers; anything else may be on a WebSocket route.
        const listener = await startListener(config, secrets.listeners.get(config.name), {
          stream,
          http1: { upgrade: (...args) => websocket.upgrade(...args), request: (...args) => web.request(...args) || websocket.request(...args) },
        }, listenerEvents);
        this.logger.info({ listener: listener.name, address: `${listener.address.address}:${listener.address.port}`, tls: !config.plaintext }, 'listening');
        return drainingWebSocketSessions(listener, websocket);
      },
      startHealth: async (config, readiness: () => Readiness) => {
        const { startHealthEndpoint } = await import('./admin/health-endpoint.ts');
        const health = await startHealthEndpoint(config, readiness);
        this.logger.info({ address: `${health.address.address}:${health.address.port}` }, 'readiness endpoint listening (GET /ready, /live)');
        return health;
      },
      startAdmin: (settings, xds) => this.#startAdmin(settings, xds, onDrainRequest),
      createAccessLog,
      startOverloadMonitor: (settings) => this.#startOverloadMonitor(settings),
      connectXds: async (config, secrets) => {
        const tls = secrets.xds;
        if (!tls) throw new Error('xds.tls: the certificates are not loaded (load the config with loadConfig or resolveConfig)');
        const { XdsProxyFeed } = await import('./xds/client/xds-proxy-feed.ts');
        const feed = new XdsProxyFeed({ settings: config.xds!, tls, logger: this.logger });
        const { part } = await feed.start();
        return { feed, part };
      },
      reloaded: (kind, error) => this.#telemetry?.reloaded(kind, error),
      applied: (config) => this.#telemetry?.metrics.methods.configure(namedMethods(config), config.metrics.max_methods),
    };
    this.#runtime = new ProxyRuntime(parts, options.config, options.secrets);
  }

  /** Starts a proxy (see ProxyRuntime.start); rejects, having stopped what it started, if anything cannot bind. */
  static async start(options: SwitchyardOptions): Promise<Switchyard> {
    const proxy = new Switchyard(options);
    await proxy.#runtime.start();
    return proxy;
  }

  /** The certificates and keys in force (what the config's TLS files held when last read). */
  get secrets(): ConfigSecrets {
    return this.#runtime.secrets;
  }

  /** The config in force: the one started with, or the last one reload() applied. */
  get config(): SwitchyardConfig {
    return this.#runtime.config;
  }

  get listeners(): readonly Listener[] {
    return this.#runtime.listeners;
  }

  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#runtime.clusters;
  }

  /** What /ready reports; 'stopped' once drain() has finished. */
  get state(): Readiness | 'stopped' {
    return this.#runtime.state;
  }

  /** Where the admin interface listens, if the config has one. */
  get adminAddress(): AddressInfo | undefined {
    return this.#runtime.admin?.address;
  }

  /** Where the readiness endpoint listens, if the config has one. */
  get healthAddress(): AddressInfo | undefined {
    return this.#runtime.health?.address;
  }

  /** The xDS client, when the config has an `xds` section: its connection state, versions, ACKs and NACKs. */
  get xds(): XdsProxyFeed | undefined {
    return this.#runtime.xds;
  }

  /** WebSocket upgrades and their open sessions. */
  get websocket(): WebSocketProxy {
    return this.#websocket;
  }

  /** Metrics, the dashboard's window and recent changes; undefined until the config has an admin section. */
  get telemetry(): Telemetry | undefined {
    return this.#telemetry;
  }

  /** Every certificate in force, soonest expiry first. */
  certificates(): LoadedCertificate[] {
    return loadedCertificates(this.#runtime.config, this.#runtime.secrets);
  }

  /** Counts a reload that failed before reload() was called (an unreadable config file, certificates that do not load). */
  reportReloadFailure(kind: ReloadKind, message: string): void {
    this.#telemetry?.reloaded(kind, message);
  }

  /** The listener named `name`; throws if there is none (a programming error). */
  listener(name: string): Listener {
    const listener = this.#runtime.listeners.find((candidate) => candidate.name === name);
    if (!listener) throw new Error(`no listener named "${name}"`);
    return listener;
  }

  /** See ProxyRuntime.reload. */
  reload(input: ReloadInput): Promise<ReloadSummary> {
    return this.#runtime.reload(input);
  }

  /** See ProxyRuntime.drain. */
  drain(options: DrainOptions = {}): Promise<DrainResult> {
    return this.#runtime.drain(options);
  }

  /** drain() without the delay: GOAWAY at once, in-flight RPCs finish within `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    await this.drain({ delayMs: 0, timeoutMs: graceMs });
  }

  /** gRPC-Web and Connect (docs/grpc-web.md): browser calls translated, then handled by `rpc` as gRPC ones are. */
  #createWebHandler(rpc: StreamHandler): WebHandler {
    return createWebHandler({
      rpc,
      serving: () => this.#runtime.serving,
      descriptors: () => this.#runtime.secrets.descriptors,
    });
  }

  #createCluster(config: ClusterConfig, secrets: ConfigSecrets, xds: XdsProxyFeed | undefined): Cluster {
    const tls = config.tls && secrets.clusters.get(config.name);
    return new Cluster({
      config,
      source: xds?.discoverySource(config) ?? createDiscoverySource(config),
      tls: tls && config.tls ? { ...tls, serverName: config.tls.server_name, verifySubjectAltNames: config.tls.verify_subject_alt_names } : undefined,
      logger: this.logger,
      onAttemptEnd: (endpoint, latencyMs, outcome) => this.#telemetry?.attemptEnded(config.name, endpoint, latencyMs, outcome),
      onEndpointEvent: (event) => this.#telemetry?.endpointEvent(event),
    });
  }

  #createWebSocketProxy(observe: ((record: WebSocketRecord) => void) | undefined): WebSocketProxy {
    return new WebSocketProxy({
      serving: () => ({ config: this.#runtime.config, clusters: this.#runtime.clusters, secrets: this.#runtime.secrets }),
      draining: () => this.#runtime.state === 'draining' || this.#runtime.state === 'stopped',
      onUpgradeAnswered: (record) => this.#telemetry?.websocketUpgradeAnswered(record),
      onRecord: (record) => {
        this.#runtime.accessLog.writeWebSocket?.(record);
        if (record.result === 'upgraded') this.#telemetry?.websocketSessionEnded(record);
        observe?.(record);
      },
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

  async #startAdmin(settings: NonNullable<SwitchyardConfig['admin']>, xds: XdsProxyFeed | undefined, onDrainRequest: () => void): Promise<AdminServer> {
    const { Telemetry } = await import('./metrics/telemetry.ts');
    const runtime = this.#runtime;
    this.#telemetry ??= new Telemetry({
      source: {
        clusters: () => runtime.clusters.values(),
        listeners: () => runtime.listeners,
        certificates: () => this.certificates(),
        ready: () => runtime.state === 'ready',
        overloaded: () => runtime.overload.overloaded,
        ...(xds && { xds: () => xds.metrics() }),
        websocket: { perEndpoint: () => this.#websocket.sessions.perEndpoint(), openSessions: () => this.#websocket.sessions.openSessions() },
      },
      namedMethods: namedMethods(runtime.config),
      maxLearnedMethods: runtime.config.metrics.max_methods,
      version: VERSION,
    });
    const logger = this.logger;
    const target: AdminTarget = {
      get config() { return runtime.config; },
      get clusters() { return runtime.clusters; },
      get state() { return runtime.state; },
      telemetry: this.#telemetry,
      routes: () => runtime.serving.routes.routes,
      certificates: () => this.certificates(),
      requestDrain: onDrainRequest,
      get logLevel() { return logger.level; },
      set logLevel(level: string) {
        logger.info({ level, previous: logger.level }, 'log level changed through the admin interface');
        logger.level = level;
      },
    };
    const { startAdminServer } = await import('./admin/admin-server.ts');
    const admin = await startAdminServer(settings, target);
    this.logger.info({ address: `${admin.address.address}:${admin.address.port}` }, 'admin interface listening (GET / lists its endpoints; /dashboard)');
    return admin;
  }
}

/** HTTP/2 extended CONNECT streams (RFC 8441 WebSocket) go to the WebSocket proxy; every other stream to `next`. */
function withWebSocketStreams(next: StreamHandler, websocket: WebSocketProxy): StreamHandler {
  return (stream, headers, listener) => (WebSocketProxy.isExtendedConnect(headers) && carriesTunnels(stream) ? websocket.stream(stream, headers, listener) : next(stream, headers, listener));
}

/**
 * The listener, with its drain (and the close of a reload that retires it) first sending its
 * WebSocket sessions close 1001: a tunnel holds its connection open, so a drain that only sent
 * GOAWAY and stopped reading HTTP/1.1 would wait on it until the timeout.
 */
function drainingWebSocketSessions(listener: Listener, websocket: WebSocketProxy): Listener {
  const key = { name: listener.name, port: listener.address.port };
  return Object.create(listener, {
    drain: { value: () => (websocket.goAway(key), listener.drain()) },
    close: { value: (graceMs?: number) => (websocket.goAway(key), listener.close(graceMs)) },
  }) as Listener;
}

/** Methods that always get their own metric labels: those the config names. */
function namedMethods(config: SwitchyardConfig): string[] {
  const fromRoutes = config.routes.flatMap((route) => (route.match.method === undefined ? [] : [route.match.method]));
  return [...config.metrics.methods, ...fromRoutes];
}

