/**
 * Endpoints pushed by an xDS control plane (EDS). The proxy's xDS client
 * (src/xds/client/xds-proxy-feed.ts) decodes each ClusterLoadAssignment and
 * puts the endpoint set into an XdsEndpoints table, keyed by the assignment's
 * name (the cluster's EDS service name); every cluster built from an xDS
 * Cluster gets a source of its own from the table, which emits `reset` with
 * the current set when it starts and again on every push.
 *
 * The set lives in the table, not in the cluster: a cluster a reload
 * replaces gets a new source that starts from the same set, and an
 * endpoint-only change never touches the config (no reload; connections and
 * balancer state are kept).
 */
import type { DiscoveryListener, DiscoverySource, EndpointAddress } from './source.ts';

export class XdsEndpoints {
  readonly #sets = new Map<string, readonly EndpointAddress[]>();
  readonly #sources = new Map<string, Set<XdsDiscoverySource>>();

  /** Replaces the set of `serviceName` and pushes it to every started source of that name. */
  set(serviceName: string, endpoints: readonly EndpointAddress[]): void {
    const frozen = Object.freeze([...endpoints]);
    this.#sets.set(serviceName, frozen);
    for (const source of this.#sources.get(serviceName) ?? []) source.push(frozen);
  }

  /** The set of `serviceName`; undefined until the control plane sent one. */
  get(serviceName: string): readonly EndpointAddress[] | undefined {
    return this.#sets.get(serviceName);
  }

  has(serviceName: string): boolean {
    return this.#sets.has(serviceName);
  }

  /** Forgets a set (its cluster is gone); sources still running keep the last one they got. */
  delete(serviceName: string): void {
    this.#sets.delete(serviceName);
  }

  names(): IterableIterator<string> {
    return this.#sets.keys();
  }

  /** A new, unstarted source for one cluster object. */
  source(serviceName: string): DiscoverySource {
    return new XdsDiscoverySource(this, serviceName);
  }

  /** @internal */
  register(serviceName: string, source: XdsDiscoverySource): void {
    let sources = this.#sources.get(serviceName);
    if (!sources) this.#sources.set(serviceName, (sources = new Set()));
    sources.add(source);
  }

  /** @internal */
  unregister(serviceName: string, source: XdsDiscoverySource): void {
    const sources = this.#sources.get(serviceName);
    sources?.delete(source);
    if (sources?.size === 0) this.#sources.delete(serviceName);
  }
}

/** One cluster's view of an XdsEndpoints set. refresh() does nothing: the control plane pushes. */
export class XdsDiscoverySource implements DiscoverySource {
  readonly #table: XdsEndpoints;
  readonly #serviceName: string;
  #listener: DiscoveryListener | undefined;
  #closed = false;

  constructor(table: XdsEndpoints, serviceName: string) {
    this.#table = table;
    this.#serviceName = serviceName;
  }

  start(listener: DiscoveryListener): void {
    if (this.#closed || this.#listener) return;
    this.#listener = listener;
    this.#table.register(this.#serviceName, this);
    const current = this.#table.get(this.#serviceName);
    if (current) listener({ type: 'reset', endpoints: current });
  }

  refresh(): void {}

  close(): void {
    this.#closed = true;
    this.#listener = undefined;
    this.#table.unregister(this.#serviceName, this);
  }

  /** @internal */
  push(endpoints: readonly EndpointAddress[]): void {
    if (!this.#closed) this.#listener?.({ type: 'reset', endpoints });
  }
}
