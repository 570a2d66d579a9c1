/**
 * A Switchyard proxy fed by an xDS control plane: the `xds` config section at
 * work. It subscribes over one ADS stream to the RouteConfiguration named by
 * `route_config`, to every Cluster (wildcard) and to the
 * ClusterLoadAssignment of each cluster, and turns them into the proxy's
 * routes and clusters (src/xds/client/translate.ts).
 *
 * - Routes and clusters are applied with Switchyard.reload(): in-flight RPCs
 *   finish on the objects they started on, and an unchanged cluster is kept
 *   (its config, `eds.service_name` included, is the same).
 * - Endpoints never reload anything: each cluster's discovery source reads
 *   an XdsEndpoints table (src/discovery/xds.ts) that EDS updates.
 * - What cannot be applied is NACKed with the resource, the field and why, and
 *   the last good config stays. A route naming a cluster the proxy does not
 *   have is refused, whichever of the two updates makes it so; endpoints are
 *   awaited (up to initial_fetch_timeout) before routes go to a new cluster.
 * - Every applied snapshot is written to `cache_file`. At start the proxy
 *   waits up to initial_fetch_timeout for a complete config; failing that it
 *   starts from the cache, and failing that with one route that answers
 *   UNAVAILABLE, and takes the control plane's config when it comes.
 */
import type { Logger } from 'pino';
import type { XdsTlsFiles } from '../../config/config-files.ts';
import type { ClusterConfig } from '../../config/schema.ts';
import type { DiscoverySource } from '../../discovery/source.ts';
import { XdsEndpoints } from '../../discovery/xds.ts';
import type { XdsMetricsView } from '../../metrics/xds-metrics.ts';
import { RESOURCE_TYPES, unpackAny, type ResourceType } from '../protos.ts';
import { AdsClient, WILDCARD, type AdsClientStatus, type AdsResource, type AdsUpdate } from './ads-client.ts';
import type { BackoffOptions } from './backoff.ts';
import { readSnapshotFile, writeSnapshotFile, type XdsSnapshotFile } from './snapshot-cache.ts';
import {
  composeConfig, pendingConfig, samePart, translateCluster, translateLoadAssignment, translateRouteConfiguration,
  type TranslatedCluster, type TranslatedRouteConfig, type XdsConfigPart,
} from './translate.ts';
import type { XdsClientSettings } from '../../config/xds-client-schema.ts';

export type { XdsConfigPart } from './translate.ts';

/** Where the config a proxy started with came from. */
export type XdsConfigOrigin = 'control-plane' | 'cache' | 'none';

export interface XdsFeedOptions {
  readonly settings: XdsClientSettings;
  readonly tls: XdsTlsFiles;
  readonly logger: Logger;
  /** Reconnect backoff; tests shorten it. */
  readonly backoff?: Partial<BackoffOptions> | undefined;
}

export interface XdsFeedStatus extends AdsClientStatus {
  readonly startedFrom: XdsConfigOrigin | undefined;
  readonly routeConfig: string;
}

type Phase = 'initial' | 'starting' | 'attached' | 'closed';

export class XdsProxyFeed {
  /** Endpoint sets by EDS name, read by the clusters' discovery sources. */
  readonly endpoints = new XdsEndpoints();
  readonly #settings: XdsClientSettings;
  readonly #logger: Logger;
  readonly #client: AdsClient;
  #routeConfig: { readonly resource: AdsResource; readonly translated: TranslatedRouteConfig } | undefined;
  /** undefined until the first Cluster response (or the cache): "not known yet", unlike "none". */
  #clusters: { readonly resources: ReadonlyMap<string, AdsResource>; readonly translated: ReadonlyMap<string, TranslatedCluster> } | undefined;
  readonly #assignments = new Map<string, AdsResource>();
  readonly #versions: Partial<Record<ResourceType, string>> = {};
  #phase: Phase = 'initial';
  /** The routes and clusters the proxy runs (or will start with). */
  #current: XdsConfigPart | undefined;
  #apply: ((part: XdsConfigPart) => Promise<unknown>) | undefined;
  readonly #attached: Promise<void>;
  #markAttached!: () => void;
  #lock: Promise<unknown> = Promise.resolve();
  readonly #waiters = new Set<() => void>();
  #startedFrom: XdsConfigOrigin | undefined;
  #cachedAt: number | undefined;
  #saving: Promise<void> | undefined;
  #saveWanted = false;

  constructor(options: XdsFeedOptions) {
    this.#settings = options.settings;
    this.#logger = options.logger;
    this.#attached = new Promise((resolve) => { this.#markAttached = resolve; });
    this.#client = new AdsClient({
      server: options.settings.server,
      tls: { ...options.tls, serverName: options.settings.tls.server_name },
      node: { id: options.settings.node_id, cluster: options.settings.node_cluster },
      logger: options.logger,
      backoff: options.backoff,
      protocol: options.settings.protocol,
    });
  }

  /**
   * Connects and waits up to initial_fetch_timeout for a complete config
   * (the route configuration, its clusters and their endpoints). Resolves
   * with the routes and clusters to start with and where they came from;
   * never rejects for want of a control plane. Call attach() once the proxy runs.
   */
  async start(): Promise<{ readonly part: XdsConfigPart; readonly from: XdsConfigOrigin }> {
    const settings = this.#settings;
    this.#client.watch('cluster', WILDCARD, (update) => this.#onClusters(update));
    this.#client.watch('route', [settings.route_config], (update) => this.#onRoutes(update));
    this.#client.watch('endpoint', [], (update) => this.#onEndpoints(update));
    this.#client.start();
    const complete = await this.#waitFor(() => this.#complete(), settings.initial_fetch_timeout);
    const from = await this.#locked(async () => {
      if (complete) return 'control-plane' as const;
      if (this.#current) {
        this.#logger.warn({ server: settings.server, waiting_for: this.#missingEndpoints(this.#current) }, 'xDS: starting with the control plane\'s routes and clusters; some endpoints have not arrived yet');
        return 'control-plane' as const;
      }
      if (await this.#startFromCache()) return 'cache' as const;
      this.#current = pendingConfig(settings.server);
      this.#logger.error({ server: settings.server, timeout_ms: settings.initial_fetch_timeout, cache_file: settings.cache_file, last_error: this.#client.status().lastError },
        'xDS: no config from the control plane and no cached snapshot; starting without routes (every RPC is answered UNAVAILABLE) and still trying to connect');
      return 'none' as const;
    });
    this.#phase = 'starting';
    this.#startedFrom = from;
    if (from === 'control-plane') this.#logger.info({ server: settings.server, versions: this.#versions }, 'xDS: starting with the control plane\'s config');
    return { part: this.#current!, from };
  }

  /** The proxy runs: from now on changed routes and clusters go through `apply` (a reload), which rejects to NACK. */
  attach(apply: (part: XdsConfigPart) => Promise<unknown>): void {
    if (this.#phase !== 'starting') return;
    this.#apply = apply;
    this.#phase = 'attached';
    this.#markAttached();
    this.#saveSoon();
  }

  /** The discovery source for a cluster this feed made (one with `eds`); undefined for any other. */
  discoverySource(config: ClusterConfig): DiscoverySource | undefined {
    return config.eds && this.endpoints.source(config.eds.service_name);
  }

  /** Certificates for the next connection to the control plane (after a rotation). */
  setTls(tls: XdsTlsFiles): void {
    this.#client.setTls({ ...tls, serverName: this.#settings.tls.server_name });
  }

  get startedFrom(): XdsConfigOrigin | undefined {
    return this.#startedFrom;
  }

  status(): XdsFeedStatus {
    const status = this.#client.status();
    return { ...status, lastUpdateAt: status.lastUpdateAt ?? this.#cachedAt, startedFrom: this.#startedFrom, routeConfig: this.#settings.route_config };
  }

  metrics(): XdsMetricsView {
    const status = this.status();
    return {
      connected: status.state === 'connected',
      lastUpdateAt: status.lastUpdateAt,
      updates: RESOURCE_TYPES.flatMap((type) => [
        { type, result: 'ack' as const, count: status.acks[type] },
        { type, result: 'nack' as const, count: status.nacks[type] },
      ]),
    };
  }

  /** Stops the ADS stream; resolves once a snapshot being written is on disk. */
  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#client.close();
    this.#markAttached();
    this.#progress();
    await this.#saving;
  }

  async #onRoutes(update: AdsUpdate): Promise<void> {
    // A RouteConfiguration response need not carry every name: no entry means no change.
    const resource = update.resources.get(this.#settings.route_config);
    if (!resource) return;
    const translated = translateRouteConfiguration(resource.message);
    await this.#warm(translated, this.#clusters?.translated);
    await this.#locked(async () => {
      const clusters = this.#clusters?.translated;
      // Before the first Cluster response the routes cannot be checked against clusters; they wait for it.
      await this.#commit(clusters && composeConfig(translated, clusters));
      this.#routeConfig = { resource, translated };
      this.#versions.route = update.version;
    });
  }

  async #onClusters(update: AdsUpdate): Promise<void> {
    const translated = new Map<string, TranslatedCluster>();
    for (const [name, resource] of update.resources) translated.set(name, translateCluster(name, resource.message));
    // Endpoints of every cluster, before a route uses it (the control plane sends clusters before the routes to them).
    this.#client.subscribe('endpoint', serviceNames(translated, this.#clusters?.translated));
    await this.#warm(this.#routeConfig?.translated, translated);
    await this.#locked(async () => {
      try {
        const routeConfig = this.#routeConfig?.translated;
        await this.#commit(routeConfig && composeConfig(routeConfig, translated));
      } catch (error) {
        this.#client.subscribe('endpoint', serviceNames(this.#clusters?.translated));
        throw error;
      }
      this.#clusters = { resources: update.resources, translated };
      this.#versions.cluster = update.version;
      const names = serviceNames(translated);
      this.#client.subscribe('endpoint', names);
      for (const name of [...this.#assignments.keys()]) {
        if (names.includes(name)) continue;
        this.#assignments.delete(name);
        this.endpoints.delete(name);
      }
    });
  }

  async #onEndpoints(update: AdsUpdate): Promise<void> {
    const sets = update.received.map((name) => [name, translateLoadAssignment(name, update.resources.get(name)!.message)] as const);
    await this.#locked(async () => {
      for (const [name, endpoints] of sets) {
        this.#assignments.set(name, update.resources.get(name)!);
        this.endpoints.set(name, endpoints);
      }
      this.#versions.endpoint = update.version;
      if (sets.length > 0) this.#logger.debug({ version: update.version, assignments: sets.map(([name, endpoints]) => ({ name, endpoints: endpoints.length })) }, 'xDS: endpoints updated');
    });
  }

  /** Makes `part` the config in force: before the proxy runs, just remembered; then applied with a reload. */
  async #commit(part: XdsConfigPart | undefined): Promise<void> {
    if (part === undefined || samePart(part, this.#current)) return;
    if (this.#phase === 'starting') await this.#attached;
    if (this.#phase === 'closed') throw new Error('the xDS client is closed');
    if (this.#phase === 'attached') {
      try {
        await this.#apply!(part);
      } catch (error) {
        throw new Error(`the proxy could not apply it: ${(error as Error).message}`, { cause: error });
      }
      this.#logger.info({ routes: part.routes.length, clusters: part.clusters.map((cluster) => cluster.name), versions: this.#versions }, 'xDS: routes and clusters applied');
    }
    this.#current = part;
  }

  /** Waits (bounded) until the endpoints of every cluster the routes use have arrived, so no route goes to an empty cluster. */
  async #warm(routeConfig: TranslatedRouteConfig | undefined, clusters: ReadonlyMap<string, TranslatedCluster> | undefined): Promise<void> {
    if (this.#phase === 'initial' || !routeConfig || !clusters) return;
    const missing = () => [...new Set(routeConfig.routes.map((route) => clusters.get(route.cluster)?.serviceName))]
      .filter((name) => name !== undefined && !this.endpoints.has(name));
    if (missing().length === 0) return;
    if (!(await this.#waitFor(() => missing().length === 0, this.#settings.initial_fetch_timeout)) && this.#phase !== 'closed') {
      this.#logger.warn({ waiting_for: missing() }, 'xDS: applying routes to clusters whose endpoints have not arrived yet');
    }
  }

  #complete(): boolean {
    return this.#current !== undefined && this.#missingEndpoints(this.#current).length === 0;
  }

  #missingEndpoints(part: XdsConfigPart): string[] {
    return part.clusters.map((cluster) => cluster.eds?.service_name).filter((name) => name !== undefined && !this.endpoints.has(name)) as string[];
  }

  /** Fills in, from the cache file, what the control plane has not sent. True when that makes a config to start with. */
  async #startFromCache(): Promise<boolean> {
    const file = this.#settings.cache_file;
    if (file === undefined) return false;
    let snapshot: XdsSnapshotFile | undefined;
    try {
      snapshot = await readSnapshotFile(file);
    } catch (error) {
      this.#logger.error({ cache_file: file, err: (error as Error).message }, 'xDS: the cached snapshot cannot be read');
      return false;
    }
    if (!snapshot) return false;
    if (snapshot.routeConfig !== this.#settings.route_config) {
      this.#logger.error({ cache_file: file, cached: snapshot.routeConfig, wanted: this.#settings.route_config }, 'xDS: the cached snapshot is for another route_config; not used');
      return false;
    }
    try {
      const decode = (type: ResourceType) => (snapshot.types[type]?.resources ?? []).map((any) => {
        const message = unpackAny(any);
        const name = String(type === 'endpoint' ? message.cluster_name : message.name);
        return { name, resource: any, message } satisfies AdsResource;
      });
      const routeResource = decode('route').find((resource) => resource.name === this.#settings.route_config);
      const routeConfig = this.#routeConfig ?? (routeResource && { resource: routeResource, translated: translateRouteConfiguration(routeResource.message) });
      const clusters = this.#clusters ?? (snapshot.types.cluster && (() => {
        const resources = new Map(decode('cluster').map((resource) => [resource.name, resource]));
        return { resources, translated: new Map([...resources].map(([name, resource]) => [name, translateCluster(name, resource.message)])) };
      })());
      if (!routeConfig || !clusters) throw new Error('it has no route configuration or no clusters');
      const part = composeConfig(routeConfig.translated, clusters.translated);
      const assignments = decode('endpoint').filter((resource) => !this.#assignments.has(resource.name)).map((resource) => [resource, translateLoadAssignment(resource.name, resource.message)] as const);
      this.#routeConfig = routeConfig;
      this.#clusters = clusters;
      for (const type of ['route', 'cluster', 'endpoint'] as const) this.#versions[type] ??= snapshot.types[type]?.version;
      for (const [resource, endpoints] of assignments) {
        this.#assignments.set(resource.name, resource);
        this.endpoints.set(resource.name, endpoints);
      }
      this.#client.subscribe('endpoint', serviceNames(clusters.translated));
      this.#current = part;
      this.#cachedAt = snapshot.writtenAt;
      this.#logger.warn({ cache_file: file, written_at: new Date(snapshot.writtenAt).toISOString(), versions: this.#versions, server: this.#settings.server, last_error: this.#client.status().lastError },
        'xDS: the control plane did not answer in time; starting from the cached snapshot, and still trying to connect');
      return true;
    } catch (error) {
      this.#logger.error({ cache_file: file, err: (error as Error).message }, 'xDS: the cached snapshot cannot be used');
      return false;
    }
  }

  /** Runs `step` after every step before it; wakes waiters and saves the snapshot after it. */
  #locked<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(step);
    this.#lock = run.then(() => {
      this.#progress();
      this.#saveSoon();
    }, () => {});
    return run;
  }

  #waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (ready()) return resolve(true);
      const finish = (result: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(result);
      };
      const check = () => {
        if (this.#phase === 'closed') finish(false);
        else if (ready()) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
    });
  }

  #progress(): void {
    for (const check of [...this.#waiters]) check();
  }

  /** Writes the applied snapshot to cache_file, one write at a time, the latest state winning. */
  #saveSoon(): void {
    const file = this.#settings.cache_file;
    if (file === undefined || this.#phase !== 'attached' || !this.#routeConfig || !this.#clusters) return;
    this.#saveWanted = true;
    if (this.#saving) return;
    this.#saving = (async () => {
      while (this.#saveWanted) {
        this.#saveWanted = false;
        try {
          await writeSnapshotFile(file, this.#snapshot());
        } catch (error) {
          this.#logger.warn({ cache_file: file, err: (error as Error).message }, 'xDS: cannot write the snapshot cache');
        }
      }
      this.#saving = undefined;
    })();
  }

  #snapshot(): XdsSnapshotFile {
    const versions = this.#versions;
    return {
      nodeId: this.#settings.node_id,
      routeConfig: this.#settings.route_config,
      writtenAt: Date.now(),
      types: {
        route: { version: versions.route ?? '', resources: [this.#routeConfig!.resource.resource] },
        cluster: { version: versions.cluster ?? '', resources: [...this.#clusters!.resources.values()].map((resource) => resource.resource) },
        endpoint: { version: versions.endpoint ?? '', resources: [...this.#assignments.values()].map((resource) => resource.resource) },
      },
    };
  }
}

/** The EDS names of `clusters` (and of `also`), sorted and unique. */
function serviceNames(clusters: ReadonlyMap<string, TranslatedCluster> | undefined, also?: ReadonlyMap<string, TranslatedCluster>): string[] {
  return [...new Set([...(clusters?.values() ?? []), ...(also?.values() ?? [])].map((cluster) => cluster.serviceName))].sort();
}
