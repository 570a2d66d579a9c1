/**
 * The contract every load-balancing policy meets. A policy is a plain object:
 * no sockets, no timers. It is fed the set of endpoints that may take traffic
 * (already filtered by health) and picks one per RPC, synchronously.
 * Time and randomness are injected so tests are exact.
 */

/** What a policy sees of an endpoint. The cluster owns these objects and keeps `activeRequests` current. */
export interface BalancedEndpoint {
  /** Stable identity, `host:port`. */
  readonly key: string;
  /** Relative share of traffic, a positive integer (default 1). */
  readonly weight: number;
  /** RPCs currently in flight on this endpoint, maintained by the cluster. */
  readonly activeRequests: number;
}

/** Per-RPC facts a policy may use to pick. */
export interface PickContext {
  /** Value of the cluster's hash header for this RPC, when the policy hashes (ring_hash). */
  readonly hashKey?: string | undefined;
}

export interface LoadBalancingPolicy<E extends BalancedEndpoint = BalancedEndpoint> {
  /** Replace the endpoint set. Called on every discovery or health change; may be called with an empty list. */
  setEndpoints(endpoints: readonly E[]): void;
  /** Pick an endpoint for one RPC, or undefined when the set is empty. Never throws. */
  pick(context: PickContext): E | undefined;
  /**
   * Called when an RPC attempt picked on `endpoint` has finished, with its latency and whether the
   * endpoint failed it (a broken stream, a refused connect, or a server-side status such as
   * UNAVAILABLE). Failures must make an endpoint less attractive, never more: one that fails in
   * a millisecond is not fast. Optional.
   */
  onRpcEnd?(endpoint: E, latencyMs: number, failed?: boolean): void;
}

/** One tuning option a policy reads from its cluster's config; the config schema is derived from these. */
export interface PolicyOption {
  readonly kind: 'integer' | 'number' | 'duration';
  readonly min: number;
  readonly max: number;
  /** In the option's unit: milliseconds for a duration. */
  readonly default: number;
}

/** Envoy's Cluster.LbPolicy values that Switchyard reads and writes. */
export type XdsLbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RING_HASH' | 'RANDOM';

/**
 * Everything Switchyard knows of a policy, in the policy's own file: the config
 * enum, the cluster options, the xDS mapping and construction are derived from
 * the list of these (src/balancer/registry.ts), so a new policy is one file.
 */
export interface PolicyDefinition<Name extends string = string> {
  /** `lb_policy` in the config. */
  readonly name: Name;
  /** Cluster fields it reads, by their config names (values reach create() parsed, durations in ms). */
  readonly options: Readonly<Record<string, PolicyOption>>;
  readonly xds: {
    /** The Envoy value that means exactly this policy, if there is one: read back from a control plane as this policy. */
    readonly exact: XdsLbPolicy | undefined;
    /** What a proxyless gRPC client is sent, being the nearest policy grpc-js runs. */
    readonly forGrpcClients: 'ROUND_ROBIN' | 'RING_HASH';
  };
  create<E extends BalancedEndpoint>(env: PolicyEnvironment, options: Readonly<Record<string, number>>): LoadBalancingPolicy<E>;
}

/** Injected clock and random source. */
export interface PolicyEnvironment {
  /** Monotonic milliseconds. */
  now(): number;
  /** Uniform in [0, 1). */
  random(): number;
}

export const systemEnvironment: PolicyEnvironment = {
  now: () => performance.now(),
  random: Math.random,
};
