/**
 * Discovery sources turn some source of truth (a static list, DNS, later xDS
 * or Kubernetes) into a stream of endpoint-set updates. The cluster consumes
 * the stream; a source never calls into the balancer.
 */

export interface EndpointAddress {
  /** IP address (v4 or v6) or host name to connect to. */
  readonly host: string;
  readonly port: number;
  /** Relative weight, a positive integer; 1 when the source has no notion of weight. */
  readonly weight: number;
  /** The zone (topology) the endpoint runs in, when the source knows it; xDS sends it as the locality. */
  readonly zone?: string | undefined;
  /**
   * `draining`: leaving (a terminating pod that still serves): it finishes the
   * RPCs it has and takes no new ones. Default `healthy`. Sources leave out
   * endpoints that cannot serve at all.
   */
  readonly health?: 'healthy' | 'draining' | undefined;
}

export type DiscoveryUpdate =
  /** The complete current set; replaces whatever came before. */
  | { readonly type: 'reset'; readonly endpoints: readonly EndpointAddress[] }
  /** The source could not refresh; consumers keep the last good set. */
  | { readonly type: 'error'; readonly error: Error };

export type DiscoveryListener = (update: DiscoveryUpdate) => void;

export interface DiscoverySource {
  /** Begin emitting updates. The first `reset` may be emitted synchronously or later. */
  start(listener: DiscoveryListener): void;
  /**
   * Ask for an early refresh (a connection failed, say). Sources rate-limit it
   * themselves; a source with nothing to refresh ignores it.
   */
  refresh(): void;
  /** Stop emitting and release timers. No update is emitted after close(). */
  close(): void;
}

export function endpointKey(address: Pick<EndpointAddress, 'host' | 'port'>): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
