/**
 * What the SotW and delta subscription state machines share: the view of one
 * resource type a stream may see, the push order, and version hashing.
 *
 * Pure: no sockets, no timers. A stream asks a subscription to plan a
 * response from a TypeView; the subscription says what to send (or nothing),
 * and is told when the response was sent and how the client answered.
 */
import { createHash } from 'node:crypto';
import type { ResourceType } from '../protos.ts';
import type { XdsResource } from '../snapshot.ts';

/** The resources of one type as one stream may see them. */
export interface TypeView {
  /** Every current resource of the type, as served to this client kind (before authorization). */
  readonly resources: ReadonlyMap<string, XdsResource>;
  /** Whether this stream's identity may receive the resource named `name`; a refused name is treated as not existing. */
  allowed(name: string): boolean;
}

/** A resource the view has and allows, else undefined. */
export function visible(view: TypeView, name: string): XdsResource | undefined {
  const resource = view.resources.get(name);
  return resource !== undefined && view.allowed(name) ? resource : undefined;
}

/**
 * Make before break (xDS protocol, "Eventual consistency considerations"):
 * clusters, then their endpoints, then the listeners and the routes that
 * refer to them.
 */
export const PUSH_ORDER: readonly ResourceType[] = ['cluster', 'endpoint', 'listener', 'route'];

/** Listener and Cluster have wildcard subscriptions; the other two types are always named. */
export function supportsWildcard(type: ResourceType): boolean {
  return type === 'listener' || type === 'cluster';
}

export const WILDCARD = '*';

/**
 * A version naming a set of (name, resource version) pairs: the same set
 * gives the same version on every stream and every replica, so a client
 * that reconnects elsewhere presents a version that still means something.
 */
export function versionOf(entries: Iterable<readonly [string, string]>): string {
  return holdsOf(entries).version;
}

/** A set of (name, resource version) pairs a client holds, and its version. Shared: never mutate `holds`. */
export interface Holds {
  readonly holds: ReadonlyMap<string, string>;
  readonly version: string;
}

/** Sets seen lately. At 10,000 streams most hold one of a few sets, so each is built and hashed once. */
const MAX_INTERNED = 4_096;
const interned = new Map<string, Holds>();

/** The set of `entries` with its version (versionOf), the same object for the same set. */
export function holdsOf(entries: Iterable<readonly [string, string]>): Holds {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let key = '';
  for (const [name, version] of sorted) key += `${name}\0${version}\n`;
  let found = interned.get(key);
  if (!found) {
    found = { holds: new Map(sorted), version: createHash('sha256').update(key).digest('hex').slice(0, 16) };
    if (interned.size >= MAX_INTERNED) interned.delete(interned.keys().next().value!);
    interned.set(key, found);
  }
  return found;
}

/** Raised when a subscription grows past limits.max_resource_names; the stream ends with RESOURCE_EXHAUSTED. */
export class SubscriptionLimitError extends Error {
  override readonly name = 'SubscriptionLimitError';
}
