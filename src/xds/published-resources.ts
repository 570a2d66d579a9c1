/**
 * What a ResourceProvider publishes, kept the same way by every provider (the
 * config files' and the Gateway API's): listeners, routes and endpoints as
 * maps swapped whole on a change, clusters built per client capabilities and
 * cached until the next change, and the subscribers told after each change.
 */
import { createHash } from 'node:crypto';
import type { AnyMessage, ResourceType } from './protos.ts';
import type { ClientCapabilities } from './resources.ts';
import type { ResourceProvider, XdsResource } from './snapshot.ts';

export type Resources = ReadonlyMap<string, XdsResource>;

const EMPTY: Resources = new Map();

/** A resource's version is a hash of its bytes: equal content, equal version, on every replica. */
export function toResource(name: string, resource: AnyMessage): XdsResource {
  return { name, resource, version: createHash('sha256').update(resource.value).digest('hex').slice(0, 16) };
}

export function indexResources(entries: readonly (readonly [string, AnyMessage])[]): Resources {
  return new Map(entries.map(([name, resource]) => [name, toResource(name, resource)]));
}

export class PublishedResources implements ResourceProvider {
  listeners: Resources = EMPTY;
  routes: Resources = EMPTY;
  endpoints: Resources = EMPTY;
  readonly #buildClusters: (capabilities: ClientCapabilities) => Resources;
  /** By JSON of the capabilities: clients that translate policies alike share one map. */
  readonly #clusters = new Map<string, Resources>();
  readonly #subscribers = new Set<() => void>();

  constructor(buildClusters: (capabilities: ClientCapabilities) => Resources) {
    this.#buildClusters = buildClusters;
  }

  resources(type: ResourceType, capabilities: ClientCapabilities): Resources {
    switch (type) {
      case 'listener': return this.listeners;
      case 'route': return this.routes;
      case 'endpoint': return this.endpoints;
      case 'cluster': return this.#clustersFor(capabilities);
    }
  }

  subscribe(subscriber: () => void): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** The clusters change: built again on the next request. */
  clustersChanged(): void {
    this.#clusters.clear();
  }

  notify(): void {
    for (const subscriber of [...this.#subscribers]) subscriber();
  }

  close(): void {
    this.#subscribers.clear();
  }

  #clustersFor(capabilities: ClientCapabilities): Resources {
    const key = JSON.stringify(capabilities);
    let resources = this.#clusters.get(key);
    if (!resources) {
      resources = this.#buildClusters(capabilities);
      this.#clusters.set(key, resources);
    }
    return resources;
  }
}
