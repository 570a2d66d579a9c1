/**
 * Several resource providers served as one: the config file's and the
 * Gateway API's. Names do not collide (Gateway API resources are named
 * `gateway/…`, `k8s/…` and by hostname); if they do, the first provider wins.
 */
import type { ResourceType } from '../protos.ts';
import type { ClientCapabilities } from '../resources.ts';
import type { ResourceProvider, XdsResource } from '../snapshot.ts';

export class MergedResourceProvider implements ResourceProvider {
  readonly #providers: readonly ResourceProvider[];
  readonly #cache = new Map<string, { readonly parts: readonly ReadonlyMap<string, XdsResource>[]; readonly merged: ReadonlyMap<string, XdsResource> }>();

  constructor(providers: readonly ResourceProvider[]) {
    this.#providers = providers;
  }

  resources(type: ResourceType, capabilities: ClientCapabilities): ReadonlyMap<string, XdsResource> {
    const parts = this.#providers.map((provider) => provider.resources(type, capabilities));
    if (parts.length === 1) return parts[0]!;
    const key = `${type} ${JSON.stringify(capabilities)}`;
    const cached = this.#cache.get(key);
    // Providers return the same map while nothing changed, so the merge is redone only after a change.
    if (cached && cached.parts.every((part, i) => part === parts[i])) return cached.merged;
    const merged = new Map<string, XdsResource>();
    for (const part of parts) for (const [name, resource] of part) if (!merged.has(name)) merged.set(name, resource);
    this.#cache.set(key, { parts, merged });
    return merged;
  }

  subscribe(listener: () => void): () => void {
    const unsubscribes = this.#providers.map((provider) => provider.subscribe(listener));
    return () => unsubscribes.forEach((unsubscribe) => unsubscribe());
  }
}
