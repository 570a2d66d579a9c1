/**
 * The Gateway API as a source of xDS resources: watches the objects
 * (src/xds/gateway-api/source.ts), translates them on every change
 * (translate.ts), serves the result to the ADS server, and, while this
 * replica holds the Lease, writes their status (status-writer.ts).
 *
 * Each backend (Service port) is a cluster whose endpoints come from the
 * Service's EndpointSlices. A new backend's ClusterLoadAssignment is served
 * once its slices have been listed, and a route configuration that sends to a
 * backend whose endpoints are not known yet keeps its previous version until
 * they are (at most `holdMs`): no client meets a cluster without endpoints
 * because a route changed. A backend no route uses any more stays served for
 * `retainMs`, so proxies drop the routes to it before the cluster goes
 * (make before break).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { KubernetesEndpointSliceSource } from '../../discovery/kubernetes.ts';
import type { DiscoverySource, EndpointAddress } from '../../discovery/source.ts';
import type { ResourceType } from '../protos.ts';
import { clusterLoadAssignmentResource, clusterResource, listenerResource, type ClientCapabilities, type XdsLbPolicy } from '../resources.ts';
import type { ResourceProvider, XdsResource } from '../snapshot.ts';
import { indexResources, PublishedResources, toResource, type Resources } from '../published-resources.ts';
import { UNRESOLVED_CLUSTER, type BackendTarget } from './backends.ts';
import { LeaseElector } from './leader.ts';
import { GatewayApiSource } from './source.ts';
import { StatusWriter, statusPatches } from './status-writer.ts';
import { translateGatewayApi, type GatewayTranslation } from './translate.ts';
import { gatewayRouteConfigurationResource } from './xds-resources.ts';

export interface GatewayProviderLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface GatewayProviderOptions {
  readonly kubeConfig: KubeConfig;
  readonly controllerName: string;
  readonly addresses: readonly { readonly type: string; readonly value: string }[];
  readonly lease: { readonly namespace: string; readonly name: string; readonly durationMs?: number; readonly retryMs?: number };
  /** This replica, for the Lease. */
  readonly identity: string;
  readonly statusRatePerSecond?: number;
  readonly lbPolicy?: XdsLbPolicy;
  readonly connectTimeoutMs?: number;
  /** How long a route change waits for a new backend's endpoints. Default 5 s. */
  readonly holdMs?: number;
  /** How long a backend no route uses keeps its cluster. Default 30 s. */
  readonly retainMs?: number;
  readonly logger?: GatewayProviderLogger;
  /** Default: an EndpointSlice source on `kubeConfig`. */
  readonly createEndpointSource?: (target: BackendTarget) => DiscoverySource;
}

export class GatewayResourceProvider implements ResourceProvider {
  readonly #options: GatewayProviderOptions;
  readonly #source: GatewayApiSource;
  readonly #elector: LeaseElector;
  readonly #writer: StatusWriter;
  readonly #backends = new Map<string, { target: BackendTarget; source: DiscoverySource; endpoints: readonly EndpointAddress[] | undefined; unusedSince: number | undefined; startedAt: number }>();
  #translation: GatewayTranslation | undefined;
  readonly #published = new PublishedResources((capabilities) => {
    const spec = (name: string) => ({ name, policy: this.#options.lbPolicy ?? 'round_robin', connectTimeoutMs: this.#options.connectTimeoutMs ?? 2_000 });
    return indexResources([UNRESOLVED_CLUSTER, ...this.#backends.keys()].map((name) => [name, clusterResource(spec(name), capabilities)]));
  });
  #retainTimer: NodeJS.Timeout | undefined;
  #holdTimer: NodeJS.Timeout | undefined;
  #translations = 0;
  #closed = false;

  constructor(options: GatewayProviderOptions) {
    this.#options = options;
    const onError = (error: Error) => options.logger?.warn({ err: error.message }, 'Gateway API');
    this.#source = new GatewayApiSource({ kubeConfig: options.kubeConfig, onError });
    this.#writer = new StatusWriter({ kubeConfig: options.kubeConfig, ratePerSecond: options.statusRatePerSecond, onError });
    this.#elector = new LeaseElector({
      kubeConfig: options.kubeConfig,
      namespace: options.lease.namespace,
      name: options.lease.name,
      identity: options.identity,
      leaseDurationMs: options.lease.durationMs,
      retryMs: options.lease.retryMs,
      onError,
      onChange: (leader) => {
        options.logger?.info({ leader, identity: options.identity }, leader ? 'Gateway API: this replica now writes status (Lease held)' : 'Gateway API: another replica writes status');
        if (leader) this.#writeStatus();
        else this.#writer.clear();
      },
    });
  }

  /** The last translation, for tests and `switchyard verify`. */
  get translation(): GatewayTranslation | undefined {
    return this.#translation;
  }

  get isLeader(): boolean {
    return this.#elector.isLeader;
  }

  /** How many times the objects have been translated (once per coalesced burst of changes). */
  get translations(): number {
    return this.#translations;
  }

  /** Status patches not yet sent. */
  get pendingStatus(): number {
    return this.#writer.pending;
  }

  async start(): Promise<void> {
    await this.#source.start(() => this.#recompute());
    void this.#elector.start().catch((error: unknown) => this.#options.logger?.warn({ err: String(error) }, 'Gateway API: leader election failed to start'));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retainTimer);
    clearTimeout(this.#holdTimer);
    this.#source.close();
    this.#writer.close();
    for (const backend of this.#backends.values()) backend.source.close();
    this.#backends.clear();
    this.#published.close();
    await this.#elector.close();
  }

  resources(type: ResourceType, capabilities: ClientCapabilities): Resources {
    return this.#published.resources(type, capabilities);
  }

  subscribe(listener: () => void): () => void {
    return this.#published.subscribe(listener);
  }

  #recompute(): void {
    if (this.#closed) return;
    const translation = translateGatewayApi(this.#source.snapshot(), { controllerName: this.#options.controllerName, addresses: this.#options.addresses });
    this.#translation = translation;
    this.#translations++;
    this.#syncBackends(translation.backends);
    this.#published.listeners = indexResources(translation.listeners.map((listener) => [listener.name, listenerResource({ name: listener.name, routeConfig: listener.routeConfig })]));
    this.#rebuildEndpointsAndClusters();
    this.#writeStatus();
  }

  #syncBackends(targets: readonly BackendTarget[]): void {
    const now = performance.now();
    const wanted = new Set(targets.map((target) => target.cluster));
    for (const target of targets) {
      const existing = this.#backends.get(target.cluster);
      if (existing) {
        existing.unusedSince = undefined;
        continue;
      }
      const source = this.#options.createEndpointSource?.(target)
        ?? new KubernetesEndpointSliceSource({ namespace: target.namespace, service: target.service, port: target.portName, kubeConfig: this.#options.kubeConfig });
      const backend = { target, source, endpoints: undefined as readonly EndpointAddress[] | undefined, unusedSince: undefined as number | undefined, startedAt: now };
      this.#backends.set(target.cluster, backend);
      source.start((update) => {
        if (this.#closed) return;
        if (update.type === 'error') {
          this.#options.logger?.warn({ cluster: target.cluster, err: update.error.message }, 'Gateway API backend discovery failed; keeping its last endpoints');
          return;
        }
        backend.endpoints = update.endpoints;
        this.#rebuildEndpointsAndClusters();
      });
    }
    const retainMs = this.#options.retainMs ?? 30_000;
    for (const [cluster, backend] of this.#backends) {
      if (wanted.has(cluster)) continue;
      backend.unusedSince ??= now;
      if (now - backend.unusedSince >= retainMs) {
        backend.source.close();
        this.#backends.delete(cluster);
      }
    }
    clearTimeout(this.#retainTimer);
    const retained = [...this.#backends.values()].filter((backend) => backend.unusedSince !== undefined);
    if (retained.length > 0) {
      const due = Math.min(...retained.map((backend) => backend.unusedSince! + retainMs)) - now;
      this.#retainTimer = setTimeout(() => this.#recompute(), Math.max(0, due) + 10);
      this.#retainTimer.unref();
    }
  }

  #rebuildEndpointsAndClusters(): void {
    const endpoints = new Map<string, XdsResource>([[UNRESOLVED_CLUSTER, toResource(UNRESOLVED_CLUSTER, clusterLoadAssignmentResource(UNRESOLVED_CLUSTER, []))]]);
    for (const [cluster, backend] of this.#backends) {
      if (backend.endpoints !== undefined) endpoints.set(cluster, toResource(cluster, clusterLoadAssignmentResource(cluster, backend.endpoints)));
    }
    this.#published.endpoints = endpoints;
    this.#published.clustersChanged();
    this.#publishRoutes();
    this.#published.notify();
  }

  /** Each Gateway's route configuration, or its previous version while a backend it sends to has no endpoints yet. */
  #publishRoutes(): void {
    const now = performance.now();
    const holdMs = this.#options.holdMs ?? 5_000;
    const next = new Map<string, XdsResource>();
    let waitUntil = Infinity;
    for (const config of this.#translation?.routeConfigs ?? []) {
      const waiting = config.virtualHosts.flatMap((host) => host.routes).flatMap((route) => route.action.backends).map((share) => this.#backends.get(share.cluster))
        .filter((backend) => backend !== undefined && backend.endpoints === undefined && now - backend.startedAt < holdMs);
      const previous = this.#published.routes.get(config.name);
      if (waiting.length > 0 && previous) {
        next.set(config.name, previous);
        waitUntil = Math.min(waitUntil, ...waiting.map((backend) => backend!.startedAt + holdMs));
      } else {
        next.set(config.name, toResource(config.name, gatewayRouteConfigurationResource(config)));
      }
    }
    this.#published.routes = next;
    clearTimeout(this.#holdTimer);
    if (waitUntil !== Infinity) {
      this.#holdTimer = setTimeout(() => this.#rebuildEndpointsAndClusters(), Math.max(0, waitUntil - now) + 10);
      this.#holdTimer.unref();
    }
  }

  #writeStatus(): void {
    if (!this.#elector.isLeader || !this.#translation || !this.#source.synced) return;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.#writer.enqueue(statusPatches(this.#translation, this.#source.snapshot(), this.#options.controllerName, now));
  }
}
