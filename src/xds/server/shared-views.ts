/**
 * What every stream reads from the provider, computed once per generation
 * and shared: the resource maps per client kind, and per identity rule the
 * RouteConfigurations its listeners name. At 10,000 streams each stream used
 * to build its own copies on every push.
 */
import { RESOURCE_TYPES, type ResourceType } from '../protos.ts';
import type { ClientCapabilities } from '../resources.ts';
import type { ResourceProvider, XdsResource } from '../snapshot.ts';
import type { XdsIdentityRule } from './authorization.ts';
import { routeNamesOf } from './listener-routes.ts';

type Maps = ReadonlyMap<ResourceType, ReadonlyMap<string, XdsResource>>;

export class SharedViews {
  #generation = -1;
  readonly #byKind = new Map<string, Maps>();
  #routeFilters = new WeakMap<XdsIdentityRule, { listeners: ReadonlyMap<string, XdsResource>; filter: (name: string) => boolean }>();

  /**
   * The provider's current maps for a client kind, read once and shared until
   * the provider changes or a new generation is published. (A stream keeps
   * what it read for the rest of its generation: see StreamContext.generation.)
   */
  resourcesFor(provider: ResourceProvider, generation: number, capabilities: ClientCapabilities): Maps {
    if (generation !== this.#generation) {
      this.#generation = generation;
      this.#byKind.clear();
    }
    const key = `${capabilities.leastRequest}/${capabilities.switchyardPolicies}`;
    let maps = this.#byKind.get(key);
    if (!maps) {
      maps = new Map(RESOURCE_TYPES.map((type) => [type, provider.resources(type, capabilities)] as const));
      this.#byKind.set(key, maps);
    }
    return maps;
  }

  /** rule.routeFilter for these listeners, built once per rule and listener map. */
  routeFilter(rule: XdsIdentityRule, listeners: ReadonlyMap<string, XdsResource>): (name: string) => boolean {
    const cached = this.#routeFilters.get(rule);
    if (cached?.listeners === listeners) return cached.filter;
    const filter = rule.routeFilter(listeners, routeNamesOf);
    this.#routeFilters.set(rule, { listeners, filter });
    return filter;
  }

  /** The provider changed: the next stream to ask reads it again. */
  providerChanged(): void {
    this.#byKind.clear();
  }

  /** The rules changed: filters built for the old ones are not reused. */
  clearRules(): void {
    this.#routeFilters = new WeakMap();
  }
}
