/**
 * The control plane's source of truth: its config file's clusters, routes
 * and listeners, with each cluster's endpoints from the discovery source its
 * config names (a static list, DNS, Kubernetes EndpointSlices). The same
 * DiscoverySource objects the proxy uses feed it, so a source behaves
 * identically behind a proxy and behind the control plane.
 *
 * Resources are built when something changes, not per request: a push to a
 * thousand streams encodes each resource once per client kind.
 */
import type { ClusterConfig, RouteConfig } from '../../config/schema.ts';
import { createDiscoverySource } from '../../discovery/create.ts';
import type { DiscoverySource, EndpointAddress } from '../../discovery/source.ts';
import type { ResourceType } from '../protos.ts';
import {
  clusterLoadAssignmentResource, clusterResource, listenerResource, routeConfigurationResource,
  type ClientCapabilities, type XdsRouteSpec,
} from '../resources.ts';
import type { ResourceProvider } from '../snapshot.ts';
import { indexResources, PublishedResources, toResource, type Resources } from '../published-resources.ts';
import type { ControlPlaneConfig } from './control-plane-schema.ts';

export interface ConfigProviderLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class ConfigResourceProvider implements ResourceProvider {
  #config: ControlPlaneConfig;
  #started = false;
  readonly #logger: ConfigProviderLogger | undefined;
  readonly #createSource: (cluster: ClusterConfig) => DiscoverySource;
  readonly #sources = new Map<string, DiscoverySource>();
  /** Clusters by client kind: gRPC clients and Switchyard proxies get different lb_policy values. */
  readonly #published = new PublishedResources((capabilities) => indexResources(this.#config.clusters.map((cluster) => [
    cluster.name,
    clusterResource({ name: cluster.name, policy: cluster.lb_policy, connectTimeoutMs: cluster.connect_timeout }, capabilities),
  ])));

  constructor(config: ControlPlaneConfig, options: { logger?: ConfigProviderLogger; createSource?: (cluster: ClusterConfig) => DiscoverySource } = {}) {
    this.#config = config;
    this.#logger = options.logger;
    this.#createSource = options.createSource ?? ((cluster) => createDiscoverySource(cluster));
    this.#buildStatic(config);
  }

  /** Starts every cluster's discovery; endpoints appear as sources report them. */
  start(): void {
    this.#started = true;
    for (const cluster of this.#config.clusters) this.#startSource(cluster);
  }

  /**
   * Takes a reloaded config: listeners, routes and clusters are rebuilt, and
   * subscribers hear of it once. A cluster whose config is unchanged keeps
   * its discovery source (and its endpoints); a changed one gets a new source
   * and keeps serving its last endpoints until that source reports; a removed
   * one loses its endpoints. Returns the names of added, changed and removed clusters.
   */
  reconfigure(config: ControlPlaneConfig): { added: string[]; changed: string[]; removed: string[] } {
    const before = new Map(this.#config.clusters.map((cluster) => [cluster.name, JSON.stringify(cluster)]));
    const after = new Map(config.clusters.map((cluster) => [cluster.name, cluster]));
    const added: string[] = [];
    const changed: string[] = [];
    const removed = [...before.keys()].filter((name) => !after.has(name));
    for (const [name, cluster] of after) {
      const previous = before.get(name);
      if (previous === undefined) added.push(name);
      else if (previous !== JSON.stringify(cluster)) changed.push(name);
    }
    this.#config = config;
    for (const name of [...removed, ...changed]) {
      this.#sources.get(name)?.close();
      this.#sources.delete(name);
    }
    if (removed.length > 0) {
      const next = new Map(this.#published.endpoints);
      for (const name of removed) next.delete(name);
      this.#published.endpoints = next;
    }
    this.#buildStatic(config);
    if (this.#started) for (const name of [...added, ...changed]) this.#startSource(after.get(name)!);
    this.#published.notify();
    return { added, changed, removed };
  }

  #buildStatic(config: ControlPlaneConfig): void {
    this.#published.listeners = indexResources(config.listeners.map((listener) => [listener.name, listenerResource({ name: listener.name, routeConfig: listener.route_config })]));
    const clusters = new Map(config.clusters.map((cluster) => [cluster.name, cluster]));
    this.#published.routes = indexResources(config.route_configs.map((routeConfig) => [
      routeConfig.name,
      routeConfigurationResource({ name: routeConfig.name, routes: routeConfig.routes.map((route) => routeSpec(route, clusters)) }),
    ]));
    this.#published.clustersChanged();
  }

  #startSource(cluster: ClusterConfig): void {
    const source = this.#createSource(cluster);
    this.#sources.set(cluster.name, source);
    source.start((update) => {
      // A source replaced by a reload may still report once: it no longer speaks for the cluster.
      if (this.#sources.get(cluster.name) !== source) return;
      if (update.type === 'error') {
        this.#logger?.warn({ cluster: cluster.name, err: update.error.message }, 'discovery failed; serving the last good endpoints');
        return;
      }
      this.#setEndpoints(cluster.name, update.endpoints);
    });
  }

  close(): void {
    for (const source of this.#sources.values()) source.close();
    this.#sources.clear();
    this.#published.close();
  }

  resources(type: ResourceType, capabilities: ClientCapabilities): Resources {
    return this.#published.resources(type, capabilities);
  }

  subscribe(listener: () => void): () => void {
    return this.#published.subscribe(listener);
  }

  #setEndpoints(cluster: string, endpoints: readonly EndpointAddress[]): void {
    const resource = toResource(cluster, clusterLoadAssignmentResource(cluster, endpoints));
    if (this.#published.endpoints.get(cluster)?.version === resource.version) return;
    const next = new Map(this.#published.endpoints);
    next.set(cluster, resource);
    this.#published.endpoints = next;
    this.#logger?.info({ cluster, endpoints: endpoints.length }, 'endpoints changed');
    this.#published.notify();
  }
}

function routeSpec(route: RouteConfig, clusters: ReadonlyMap<string, ClusterConfig>): XdsRouteSpec {
  const { match } = route;
  const cluster = clusters.get(route.cluster!);
  return {
    ...(match.method !== undefined ? { path: match.method } : { prefix: match.service !== undefined ? `/${match.service}/` : match.prefix }),
    cluster: route.cluster!,
    timeoutMs: route.timeout,
    hashHeader: cluster?.lb_policy === 'ring_hash' ? cluster.hash_header : undefined,
  };
}
