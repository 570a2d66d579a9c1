/**
 * What the agent remembers of the control plane's answers, so that a local
 * client that (re)connects while the control plane is unreachable still gets
 * its last good config. Kept per node (node.id and user_agent_name: what the
 * control plane sent depends on both, as policies are translated per client
 * kind) and per type_url, as resources by name, each with its encoded Any:
 * state-of-the-world and delta clients of the same node share it.
 *
 * Listener and Cluster responses of the state-of-the-world protocol carry
 * the complete set a stream subscribes to, so a name the stream asked for
 * and the response lacks is gone; RouteConfiguration and
 * ClusterLoadAssignment responses may carry only some names, so theirs are
 * merged. Delta responses say what is removed.
 */

/** Resource types whose state-of-the-world responses carry the complete subscribed set. */
const FULL_STATE_TYPES: ReadonlySet<string> = new Set([
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
]);

export function isFullStateType(typeUrl: string): boolean {
  return FULL_STATE_TYPES.has(typeUrl);
}

export interface CachedResource {
  /** The delta resource version, or the version_info of the state-of-the-world response that carried it. */
  readonly version: string;
  readonly any: Buffer;
}

export interface CachedType {
  /** version_info (or system_version_info) of the last response. */
  version: string;
  readonly resources: Map<string, CachedResource>;
}

/** A subscription: the names asked for, or everything (wildcard). */
export interface Interest {
  readonly wildcard: boolean;
  readonly names: ReadonlySet<string>;
}

export class ResponseCache {
  readonly #maxNodes: number;
  /** Least recently used first. */
  readonly #nodes = new Map<string, Map<string, CachedType>>();

  constructor(maxNodes: number) {
    this.#maxNodes = maxNodes;
  }

  get nodes(): number {
    return this.#nodes.size;
  }

  get(node: string, typeUrl: string): CachedType | undefined {
    const types = this.#nodes.get(node);
    if (!types) return undefined;
    this.#nodes.delete(node);
    this.#nodes.set(node, types);
    return types.get(typeUrl);
  }

  /** A state-of-the-world response, received on a stream whose subscription to its type is `interest`. */
  storeSotw(node: string, typeUrl: string, version: string, resources: ReadonlyMap<string, Buffer>, interest: Interest): void {
    const entry = this.#entry(node, typeUrl);
    entry.version = version;
    if (isFullStateType(typeUrl)) {
      for (const name of [...entry.resources.keys()]) {
        if ((interest.wildcard || interest.names.has(name)) && !resources.has(name)) entry.resources.delete(name);
      }
    }
    for (const [name, any] of resources) entry.resources.set(name, { version, any });
  }

  storeDelta(node: string, typeUrl: string, systemVersion: string, resources: readonly { name: string; version: string; any: Buffer }[], removed: readonly string[]): void {
    const entry = this.#entry(node, typeUrl);
    if (systemVersion !== '') entry.version = systemVersion;
    for (const name of removed) entry.resources.delete(name);
    for (const resource of resources) entry.resources.set(resource.name, { version: resource.version, any: resource.any });
  }

  /** The cached resources `interest` covers, by name. */
  select(node: string, typeUrl: string, interest: Interest): { version: string; resources: Map<string, CachedResource> } | undefined {
    const entry = this.get(node, typeUrl);
    if (!entry) return undefined;
    const resources = new Map<string, CachedResource>();
    if (interest.wildcard) {
      for (const [name, resource] of entry.resources) resources.set(name, resource);
    } else {
      for (const name of interest.names) {
        const resource = entry.resources.get(name);
        if (resource) resources.set(name, resource);
      }
    }
    return { version: entry.version, resources };
  }

  #entry(node: string, typeUrl: string): CachedType {
    let types = this.#nodes.get(node);
    if (types) {
      this.#nodes.delete(node);
    } else {
      types = new Map();
      // The least recently used node goes first.
      if (this.#nodes.size >= this.#maxNodes) this.#nodes.delete(this.#nodes.keys().next().value!);
    }
    this.#nodes.set(node, types);
    let entry = types.get(typeUrl);
    if (!entry) {
      entry = { version: '', resources: new Map() };
      types.set(typeUrl, entry);
    }
    return entry;
  }
}

/** The cache key of a node: what the control plane's answers depend on. */
export function nodeKey(id: string, userAgentName: string): string {
  return `${id}\u0000${userAgentName}`;
}
