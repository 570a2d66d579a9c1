/**
 * A ResourceProvider for tests: a mutable map per type. Every set/delete
 * notifies subscribers at once (the ADS server debounces).
 *
 *   const provider = new MutableProvider();
 *   provider.set('cluster', clusterResource({ name: 'echo', policy: 'round_robin', connectTimeoutMs: 1000 }, GRPC));
 *   provider.setEndpoints('echo', [{ host: '10.0.0.1', port: 50051, weight: 1 }]);
 *   provider.delete('cluster', 'echo');
 *
 * Capabilities are ignored unless a resource is set with `byCapability`
 * (a function building it per client kind).
 */
import { createHash } from 'node:crypto';
import type { EndpointAddress } from '../../src/discovery/source.ts';
import { unpackAny, type AnyMessage, type ResourceType } from '../../src/xds/protos.ts';
import { clusterLoadAssignmentResource, type ClientCapabilities } from '../../src/xds/resources.ts';
import type { ResourceProvider, XdsResource } from '../../src/xds/snapshot.ts';

type Entry = XdsResource | ((capabilities: ClientCapabilities) => AnyMessage);

export class MutableProvider implements ResourceProvider {
  readonly #entries = new Map<ResourceType, Map<string, Entry>>();
  readonly #listeners = new Set<() => void>();
  /** Served maps, rebuilt after a change: the same object is returned while nothing changes. */
  #cache = new Map<string, ReadonlyMap<string, XdsResource>>();
  /** How many times resources() was asked, for tests that care. */
  reads = 0;

  resources(type: ResourceType, capabilities: ClientCapabilities): ReadonlyMap<string, XdsResource> {
    this.reads++;
    const key = `${type}/${capabilities.leastRequest}/${capabilities.switchyardPolicies}`;
    let served = this.#cache.get(key);
    if (!served) {
      const map = new Map<string, XdsResource>();
      for (const [name, entry] of this.#entries.get(type) ?? []) {
        map.set(name, typeof entry === 'function' ? xdsResource(name, entry(capabilities)) : entry);
      }
      served = map;
      this.#cache.set(key, served);
    }
    return served;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Adds or replaces a resource; its name is read from the message (name, or cluster_name for endpoints). */
  set(type: ResourceType, resource: AnyMessage): XdsResource {
    const name = resourceName(resource);
    const entry = xdsResource(name, resource);
    this.#mutate(() => this.#typeMap(type).set(name, entry));
    return entry;
  }

  /** A resource built per client kind. */
  setByCapability(type: ResourceType, name: string, build: (capabilities: ClientCapabilities) => AnyMessage): void {
    this.#mutate(() => this.#typeMap(type).set(name, build));
  }

  setEndpoints(cluster: string, endpoints: readonly EndpointAddress[]): XdsResource {
    return this.set('endpoint', clusterLoadAssignmentResource(cluster, endpoints));
  }

  /** The names of the resources of `type`. */
  names(type: ResourceType): string[] {
    return [...(this.#entries.get(type)?.keys() ?? [])];
  }

  delete(type: ResourceType, name: string): void {
    this.#mutate(() => this.#typeMap(type).delete(name));
  }

  /** Several changes, one notification. */
  batch(changes: () => void): void {
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    try {
      changes();
    } finally {
      for (const listener of listeners) this.#listeners.add(listener);
    }
    this.#notify();
  }

  #typeMap(type: ResourceType): Map<string, Entry> {
    let map = this.#entries.get(type);
    if (!map) {
      map = new Map();
      this.#entries.set(type, map);
    }
    return map;
  }

  #mutate(change: () => void): void {
    change();
    this.#notify();
  }

  #notify(): void {
    this.#cache = new Map();
    for (const listener of this.#listeners) listener();
  }
}

/** An XdsResource whose version is a hash of its bytes, as providers make them. */
export function xdsResource(name: string, resource: AnyMessage): XdsResource {
  return { name, version: createHash('sha256').update(resource.value).digest('hex').slice(0, 12), resource };
}

function resourceName(resource: AnyMessage): string {
  const decoded = unpackAny(resource);
  const name = decoded.name ?? decoded.cluster_name;
  if (typeof name !== 'string' || name === '') throw new Error(`cannot find the name of a ${resource.type_url}`);
  return name;
}
