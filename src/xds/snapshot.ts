/**
 * The seam between where resources come from and the ADS server that
 * serves them. A ResourceProvider holds the current resources (built from
 * config files, DNS, Kubernetes, or a relay's cache) and says when they
 * change; the server decides who gets what, versions it per stream, and pushes.
 */
import type { AnyMessage, ResourceType } from './protos.ts';
import type { ClientCapabilities } from './resources.ts';

/** One resource as served: its name, a version of its own (a hash of its bytes), and the packed message. */
export interface XdsResource {
  readonly name: string;
  readonly version: string;
  readonly resource: AnyMessage;
}

export interface ResourceProvider {
  /**
   * The current resources of `type`, as a client with `capabilities` should
   * see them (policies translated per client). The same map object may be
   * returned while nothing changed; never mutated after being returned.
   */
  resources(type: ResourceType, capabilities: ClientCapabilities): ReadonlyMap<string, XdsResource>;
  /** `listener` runs (synchronously) after every change; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}
