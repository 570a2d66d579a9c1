/**
 * One resource type on one incremental (delta) stream: the client's
 * subscription (wildcard and explicit names), the version of each resource
 * it has acknowledged, and what to send next.
 *
 * - Resources are sent when their version differs from what the client
 *   acknowledged (or told us in initial_resource_versions on the first
 *   request), and when (re)subscribed to, even unchanged.
 * - removed_resources names what the client holds or subscribed to that no
 *   longer exists (or that this identity may not see), and a subscribed name
 *   that does not exist, once, so the client need not wait for a timeout.
 * - Unsubscribing sends nothing, except when a wildcard is also active: then
 *   the name is sent again if the wildcard covers it, else as removed.
 * - One response at a time, as in SotW; subscription changes are honoured
 *   whatever the nonce (the protocol requires it for delta).
 * - After a NACK nothing is sent while every item to send is one the client
 *   already rejected.
 */
import type { ResourceType } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';
import { SubscriptionLimitError, supportsWildcard, versionOf, visible, WILDCARD, type TypeView } from './subscriptions.ts';

export interface DeltaRequest {
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
  /** Only read on the first request of this type on the stream. */
  readonly initialVersions: ReadonlyMap<string, string>;
  readonly nonce: string;
  readonly error: string | undefined;
}

export type DeltaAnswer =
  | { readonly kind: 'ack'; readonly version: string }
  | { readonly kind: 'nack'; readonly version: string; readonly message: string; readonly resourceNames: readonly string[] }
  | { readonly kind: 'stale' }
  | { readonly kind: 'request' };

export interface DeltaPlan {
  readonly resources: readonly XdsResource[];
  readonly removed: readonly string[];
  /** A hash of everything this client subscribes to and may see: system_version_info. */
  readonly systemVersion: string;
  readonly requested: boolean;
}

interface Sent {
  readonly nonce: string;
  readonly systemVersion: string;
  readonly resources: ReadonlyMap<string, string>;
  readonly removed: ReadonlySet<string>;
}

export class DeltaSubscription {
  readonly type: ResourceType;
  #initialized = false;
  #answered = false;
  #wildcard = false;
  readonly #explicit = new Set<string>();
  /** Resource versions the client holds, as acknowledged. */
  readonly #known = new Map<string, string>();
  /** Explicit names the client was told (and acknowledged) do not exist. */
  readonly #toldAbsent = new Set<string>();
  readonly #forced = new Set<string>();
  #forcedWildcard = false;
  #inflight: Sent | undefined;
  #rejected: Sent | undefined;
  #subscriptionChanges = 0;

  constructor(type: ResourceType) {
    this.type = type;
  }

  get awaiting(): boolean {
    return this.#inflight !== undefined;
  }

  get wildcard(): boolean {
    return this.#wildcard;
  }

  get resourceNames(): ReadonlySet<string> {
    return this.#explicit;
  }

  /** Versions the client has acknowledged, by name. */
  get acknowledged(): ReadonlyMap<string, string> {
    return this.#known;
  }

  receive(request: DeltaRequest, maxNames: number): DeltaAnswer {
    if (!this.#initialized) this.#initialize(request, maxNames);
    else this.#update(request);
    if (!this.#initialized || request.subscribe.length > 0 || request.unsubscribe.length > 0) this.#subscriptionChanges++;
    if (this.#explicit.size > maxNames) throw new SubscriptionLimitError(`${this.#explicit.size} resource names subscribed; the limit is ${maxNames}`);

    const inflight = this.#inflight;
    if (!inflight || request.nonce === '') return { kind: 'request' };
    if (request.nonce !== inflight.nonce) return { kind: 'stale' };
    this.#inflight = undefined;
    const names = [...inflight.resources.keys(), ...inflight.removed];
    if (request.error !== undefined) {
      this.#rejected = inflight;
      return { kind: 'nack', version: inflight.systemVersion, message: request.error, resourceNames: names };
    }
    for (const [name, version] of inflight.resources) {
      this.#known.set(name, version);
      this.#toldAbsent.delete(name);
    }
    for (const name of inflight.removed) {
      this.#known.delete(name);
      if (this.#explicit.has(name)) this.#toldAbsent.add(name);
    }
    this.#prune();
    this.#rejected = undefined;
    return { kind: 'ack', version: inflight.systemVersion };
  }

  #initialize(request: DeltaRequest, maxNames: number): void {
    this.#initialized = true;
    if (request.initialVersions.size > maxNames) {
      throw new SubscriptionLimitError(`${request.initialVersions.size} initial_resource_versions sent; the limit is ${maxNames}`);
    }
    // Legacy wildcard: a first request that names nothing at all.
    if (request.subscribe.length === 0 && request.unsubscribe.length === 0 && supportsWildcard(this.type)) this.#wildcard = true;
    for (const name of request.subscribe) {
      if (name === WILDCARD && supportsWildcard(this.type)) this.#wildcard = true;
      else this.#explicit.add(name);
    }
    for (const name of request.unsubscribe) {
      if (name === WILDCARD && supportsWildcard(this.type)) this.#wildcard = false;
      else this.#explicit.delete(name);
    }
    for (const [name, version] of request.initialVersions) {
      if (this.#wildcard || this.#explicit.has(name)) this.#known.set(name, version);
    }
  }

  #update(request: DeltaRequest): void {
    for (const name of request.subscribe) {
      if (name === WILDCARD && supportsWildcard(this.type)) {
        this.#wildcard = true;
        this.#forcedWildcard = true;
      } else {
        this.#explicit.add(name);
        this.#forced.add(name);
        this.#toldAbsent.delete(name);
      }
    }
    for (const name of request.unsubscribe) {
      if (name === WILDCARD && supportsWildcard(this.type)) {
        this.#wildcard = false;
        this.#forcedWildcard = false;
        this.#prune();
      } else if (this.#explicit.delete(name)) {
        this.#toldAbsent.delete(name);
        // Under a wildcard the client cannot tell whether to keep it: say so, either way.
        if (this.#wildcard) this.#forced.add(name);
        else {
          this.#known.delete(name);
          this.#forced.delete(name);
        }
      }
    }
  }

  /** Forgets what the client holds outside its subscription. */
  #prune(): void {
    if (this.#wildcard) return;
    for (const name of this.#known.keys()) if (!this.#explicit.has(name)) this.#known.delete(name);
    for (const name of this.#toldAbsent) if (!this.#explicit.has(name)) this.#toldAbsent.delete(name);
  }

  /** The response to send now, or undefined; while one is outstanding, planned as if it will be acknowledged. */
  plan(view: TypeView): DeltaPlan | undefined {
    const inflight = this.#inflight;
    const holds = (name: string): string | undefined =>
      inflight?.resources.get(name) ?? (inflight?.removed.has(name) ? undefined : this.#known.get(name));
    const toldAbsent = (name: string): boolean =>
      inflight?.resources.has(name) ? false : (inflight?.removed.has(name) ?? false) || this.#toldAbsent.has(name);

    const candidates = new Set<string>([...this.#explicit, ...this.#known.keys(), ...this.#forced]);
    if (inflight) for (const name of inflight.resources.keys()) candidates.add(name);
    if (this.#wildcard) for (const name of view.resources.keys()) candidates.add(name);

    const resources: XdsResource[] = [];
    const removed: string[] = [];
    const all: [string, string][] = [];
    let requested = !this.#answered && this.#wildcard;
    for (const name of candidates) {
      const resource = visible(view, name);
      const subscribed = this.#explicit.has(name) || (this.#wildcard && resource !== undefined);
      const forced = this.#forced.has(name) || (this.#forcedWildcard && this.#wildcard && resource !== undefined);
      if (resource && subscribed) {
        all.push([name, resource.version]);
        if (forced || holds(name) !== resource.version) {
          resources.push(resource);
          requested ||= forced;
        }
        continue;
      }
      const interested = this.#wildcard || this.#explicit.has(name);
      if ((interested && holds(name) !== undefined) || forced || (this.#explicit.has(name) && !toldAbsent(name))) {
        removed.push(name);
        requested ||= forced;
      }
    }

    // The first response answers the first request.
    if (!this.#answered && (resources.length > 0 || removed.length > 0)) requested = true;
    if (!requested) {
      if (resources.length === 0 && removed.length === 0) return undefined;
      const rejected = inflight ? undefined : this.#rejected;
      if (rejected && resources.every((r) => rejected.resources.get(r.name) === r.version) && removed.every((name) => rejected.removed.has(name))) return undefined;
    }
    resources.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    removed.sort();
    return { resources, removed, systemVersion: versionOf(all), requested };
  }

  get subscriptionChanges(): number {
    return this.#subscriptionChanges;
  }

  forgetRejection(): boolean {
    const had = this.#rejected !== undefined;
    this.#rejected = undefined;
    return had;
  }

  sent(plan: DeltaPlan, nonce: string): void {
    this.#inflight = {
      nonce,
      systemVersion: plan.systemVersion,
      resources: new Map(plan.resources.map((r) => [r.name, r.version])),
      removed: new Set(plan.removed),
    };
    this.#answered = true;
    this.#forced.clear();
    this.#forcedWildcard = false;
  }
}
