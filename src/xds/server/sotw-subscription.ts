/**
 * One resource type on one state-of-the-world stream: what the client
 * subscribes to, what it holds, and what to send next.
 *
 * - Listener and Cluster responses carry the complete set the client
 *   subscribes to and may see: the protocol requires it (a resource missing
 *   from one is removed).
 * - RouteConfiguration and ClusterLoadAssignment responses carry only what
 *   the client lacks: resources whose version differs from what it holds
 *   (as sent, assuming an outstanding response will be acknowledged, else as
 *   acknowledged) and names newly requested (even unchanged). The protocol
 *   allows it: for these two types, omission means nothing. A resource that
 *   disappears is not announced (SotW cannot say so for these types): the
 *   client drops it when the Listener or Cluster stops naming it and it
 *   unsubscribes; if it comes back at a version the client does not hold it
 *   is sent.
 * - version_info is a hash of the set the client holds once it accepts the
 *   response (subscriptions.ts: versionOf): for Listener and Cluster the set
 *   carried; for the other two what it held (still subscribed) merged with
 *   what is carried.
 * - One response at a time: the next one waits for the ACK or NACK of the
 *   last (a request carrying its nonce). A request with another nonce is
 *   stale: its resource_names are recorded (they are the client's latest
 *   interest) but it is neither an ACK nor a NACK and is not answered.
 * - A response is sent when something the client subscribes to differs from
 *   what it holds (changed or appeared, and for Listener and Cluster gone),
 *   when it newly requests a name that exists (even unchanged), and on the
 *   first request for Listener and Cluster (even if empty).
 * - After a NACK nothing is sent while every difference is one the client
 *   already rejected; the client keeps its last good version, the server
 *   keeps its record of it, and the next real change is sent.
 */
import type { ResourceType } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';
import { holdsOf, SubscriptionLimitError, supportsWildcard, visible, WILDCARD, type TypeView } from './subscriptions.ts';

export interface SotwRequest {
  readonly resourceNames: readonly string[];
  /** response_nonce; '' when unset. */
  readonly nonce: string;
  /** error_detail.message when error_detail is set (a NACK), else undefined. */
  readonly error: string | undefined;
}

export type SotwAnswer =
  | { readonly kind: 'ack'; readonly version: string }
  | { readonly kind: 'nack'; readonly version: string; readonly keptVersion: string; readonly message: string; readonly resourceNames: readonly string[] }
  /** The nonce is not the latest one sent, while a response is outstanding. */
  | { readonly kind: 'stale' }
  /** Nothing was outstanding: a first request, or a change of subscription. */
  | { readonly kind: 'request' };

export interface SotwPlan {
  /** What the response carries, sorted by name: the complete set for Listener and Cluster, what changed for the other two. */
  readonly resources: readonly XdsResource[];
  /** What the client holds once it accepts the response (name → resource version): what version_info names. */
  readonly holds: ReadonlyMap<string, string>;
  readonly version: string;
  /** Answers a request (first response, newly requested names): not held back for push ordering. */
  readonly requested: boolean;
}

interface Sent {
  readonly nonce: string;
  readonly version: string;
  /** What the client holds once it accepts this response. */
  readonly content: ReadonlyMap<string, string>;
  /** What the response carried (its names go into a NACK's report). */
  readonly resources: readonly XdsResource[];
}

const ABSENT = '\0absent';
const EMPTY: ReadonlyMap<string, string> = new Map();

export class SotwSubscription {
  readonly type: ResourceType;
  /** Until a request names a resource, an empty list means "*" (Listener and Cluster only). */
  #legacyWildcard = true;
  #wildcard = false;
  #names: ReadonlySet<string> = new Set();
  /** Newly requested since the last response: answered even when unchanged. */
  #forced = new Set<string>();
  #forcedWildcard = false;
  #answered = false;
  #acked: Sent | undefined;
  #inflight: Sent | undefined;
  #rejected: ReadonlyMap<string, string> | undefined;
  #subscriptionChanges = 0;

  constructor(type: ResourceType) {
    this.type = type;
  }

  /** A response is outstanding: nothing more is sent for this type until its ACK or NACK. */
  get awaiting(): boolean {
    return this.#inflight !== undefined;
  }

  /** The version the client last acknowledged ('' before any). */
  get ackedVersion(): string {
    return this.#acked?.version ?? '';
  }

  get wildcard(): boolean {
    return this.#wildcard;
  }

  get resourceNames(): ReadonlySet<string> {
    return this.#names;
  }

  /** Applies one DiscoveryRequest of this type. Throws SubscriptionLimitError past `maxNames`. */
  receive(request: SotwRequest, maxNames: number): SotwAnswer {
    // Most requests are ACKs naming what the stream already subscribes to: nothing to change then.
    if (!this.#sameNames(request.resourceNames)) {
      const requested = new Set(request.resourceNames);
      if (requested.size > maxNames) throw new SubscriptionLimitError(`${requested.size} resource names requested; the limit is ${maxNames}`);
      this.#subscribe(requested);
    }

    const inflight = this.#inflight;
    if (!inflight) return { kind: 'request' };
    if (request.nonce !== inflight.nonce) return { kind: 'stale' };
    this.#inflight = undefined;
    if (request.error !== undefined) {
      this.#rejected = inflight.content;
      return { kind: 'nack', version: inflight.version, keptVersion: this.ackedVersion, message: request.error, resourceNames: inflight.resources.map((r) => r.name) };
    }
    this.#acked = inflight;
    this.#rejected = undefined;
    return { kind: 'ack', version: inflight.version };
  }

  /** The names of a named subscription (not Listener or Cluster, whose empty list has meanings of its own), unchanged. */
  #sameNames(names: readonly string[]): boolean {
    if (supportsWildcard(this.type) || names.length !== this.#names.size || this.#forced.size > 0) return false;
    for (const name of names) if (!this.#names.has(name)) return false;
    return true;
  }

  #subscribe(requested: Set<string>): void {
    this.#subscriptionChanges++;
    const before = this.#names;
    const wasWildcard = this.#wildcard;
    if (supportsWildcard(this.type)) {
      if (requested.size === 0) {
        this.#wildcard = this.#legacyWildcard;
      } else {
        this.#legacyWildcard = false;
        this.#wildcard = requested.delete(WILDCARD);
      }
    }
    this.#names = requested;
    for (const name of requested) if (!before.has(name)) this.#forced.add(name);
    for (const name of this.#forced) if (!requested.has(name)) this.#forced.delete(name);
    if (this.#wildcard && !wasWildcard) this.#forcedWildcard = true;
    if (!this.#wildcard) this.#forcedWildcard = false;
  }

  /**
   * The response to send now, or undefined. While a response is outstanding
   * the plan is made as if it will be acknowledged: a plan then means a
   * change waits behind it (the stream uses that to keep push order).
   */
  plan(view: TypeView): SotwPlan | undefined {
    const desired = new Map<string, XdsResource>();
    if (this.#wildcard) for (const [name, resource] of view.resources) if (view.allowed(name)) desired.set(name, resource);
    for (const name of this.#names) {
      const resource = visible(view, name);
      if (resource) desired.set(name, resource);
    }

    let requested = !this.#answered && supportsWildcard(this.type);
    if (this.#forcedWildcard && desired.size > 0) requested = true;
    for (const name of this.#forced) if (desired.has(name)) requested = true;

    const base = this.#inflight?.content ?? this.#acked?.content ?? EMPTY;
    const full = supportsWildcard(this.type);
    const changes: [string, string][] = [];
    for (const [name, resource] of desired) if (base.get(name) !== resource.version) changes.push([name, resource.version]);
    // Only a full-set response can say a resource is gone; for RouteConfiguration and ClusterLoadAssignment a removal sends nothing.
    if (full) for (const name of base.keys()) if (!desired.has(name) && (this.#wildcard || this.#names.has(name))) changes.push([name, ABSENT]);

    if (!requested) {
      if (changes.length === 0) return undefined;
      const rejected = this.#inflight ? undefined : this.#rejected;
      if (rejected && changes.every(([name, version]) => (rejected.get(name) ?? ABSENT) === version)) return undefined;
    }
    let carried: XdsResource[];
    const entries: [string, string][] = [];
    if (full) {
      carried = [...desired.values()];
      for (const r of carried) entries.push([r.name, r.version]);
    } else {
      carried = [];
      for (const [name, resource] of desired) if (base.get(name) !== resource.version || this.#forced.has(name)) carried.push(resource);
      // What the client keeps: what it held of the names it still subscribes to, updated with what is carried.
      const carriedNames = new Set(carried.map((r) => r.name));
      for (const [name, version] of base) if (this.#names.has(name) && !carriedNames.has(name)) entries.push([name, version]);
      for (const r of carried) entries.push([r.name, r.version]);
    }
    const resources = carried.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // Shared by every stream that holds the same set: one map and one hash, not one per stream.
    const { holds, version } = holdsOf(entries);
    return { resources, holds, version, requested };
  }

  get subscriptionChanges(): number {
    return this.#subscriptionChanges;
  }

  forgetRejection(): boolean {
    const had = this.#rejected !== undefined;
    this.#rejected = undefined;
    return had;
  }

  /** Records that `plan` went out with `nonce`. */
  sent(plan: SotwPlan, nonce: string): void {
    this.#inflight = { nonce, version: plan.version, content: plan.holds, resources: plan.resources };
    this.#answered = true;
    this.#forced.clear();
    this.#forcedWildcard = false;
  }
}
