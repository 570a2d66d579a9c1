/**
 * least_request: Envoy-style power of two choices on in-flight requests.
 * Draw two distinct endpoints, send the RPC to the less loaded one. Comparing two random endpoints instead of
 * scanning for the global minimum is O(1), needs no shared state, and avoids the herd effect of every proxy
 * sending to the same "least loaded" endpoint at once, while still keeping the busiest endpoints nearly idle.
 */

import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { WeightTable } from './random.ts';

export interface LeastRequestOptions {
  /** How strongly in-flight requests count against an endpoint with unequal weights; 0 ignores load. Default 1. */
  readonly activeRequestBias?: number | undefined;
}

/**
 * Power of two choices.
 *
 * Equal weights: two distinct endpoints uniformly at random, fewer activeRequests wins (ties: the first drawn).
 *
 * Unequal weights: the two candidates are drawn with probability proportional to weight, and the one with the
 * lower cost activeRequests^bias / weight wins, ties to the first drawn. This is Envoy's effective weight
 * weight / (activeRequests + 1)^bias without the "+ 1", and the difference is deliberate: Envoy applies its
 * formula inside a weighted scheduler, whereas under P2C with uniform candidates the "+ 1" makes an idle
 * weight-3 endpoint beat an idle weight-1 endpoint every time, so at low concurrency the light endpoint gets
 * nothing (a 3:1 pair splits 100:0). Here idle endpoints tie, the weighted draw decides, and the split is 3:1;
 * under load the comparison drives activeRequests^bias toward proportional to weight, as Envoy's does.
 * Bias 0 means pure weighted random.
 */
/** One failure counts as this many requests in flight... */
const FAILURE_PENALTY = 5;
/** ...and the penalty halves every second, so a recovered endpoint soon competes again. */
const PENALTY_HALF_LIFE_MS = 1_000;

export const leastRequest = {
  name: 'least_request',
  // How strongly in-flight requests count against an endpoint when weights differ (Envoy's active_request_bias).
  options: { active_request_bias: { kind: 'number', min: 0, max: 10, default: 1 } },
  xds: { exact: 'LEAST_REQUEST', forGrpcClients: 'ROUND_ROBIN' },
  create: (env, options) => new LeastRequestPolicy(env, { activeRequestBias: options.active_request_bias }),
} satisfies PolicyDefinition<'least_request'>;

export class LeastRequestPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  readonly #env: PolicyEnvironment;
  readonly #bias: number;
  #endpoints: readonly E[] = [];
  readonly #table = new WeightTable();
  /** Recent failures per endpoint key, counted as extra active requests that fade away. */
  readonly #penalties = new Map<string, { value: number; at: number }>();

  constructor(env: PolicyEnvironment = systemEnvironment, options: LeastRequestOptions = {}) {
    this.#env = env;
    const bias = options.activeRequestBias;
    this.#bias = bias !== undefined && bias >= 0 && bias < Infinity ? bias : 1;
  }

  setEndpoints(endpoints: readonly E[]): void {
    this.#endpoints = endpoints.slice();
    this.#table.rebuild(this.#endpoints);
    const keys = new Set(endpoints.map((e) => e.key));
    for (const key of this.#penalties.keys()) if (!keys.has(key)) this.#penalties.delete(key);
  }

  /** A failure weighs like FAILURE_PENALTY more active requests, halving every PENALTY_HALF_LIFE_MS. */
  onRpcEnd(endpoint: E, _latencyMs: number, failed = false): void {
    if (!failed) return;
    const now = this.#env.now();
    const penalty = this.#penalties.get(endpoint.key);
    this.#penalties.set(endpoint.key, { value: this.#penaltyOf(penalty, now) + FAILURE_PENALTY, at: now });
  }

  #penaltyOf(penalty: { value: number; at: number } | undefined, now: number): number {
    if (penalty === undefined) return 0;
    const value = penalty.value * 2 ** (-(now - penalty.at) / PENALTY_HALF_LIFE_MS);
    // A remnant below half a request would still lose every tie against an idle peer: let it go.
    return value < 0.5 ? 0 : value;
  }

  /** Active requests plus the fading failure penalty; the plain count when nothing has failed. */
  #load(endpoint: E): number {
    const active = endpoint.activeRequests;
    if (this.#penalties.size === 0) return active;
    return active + this.#penaltyOf(this.#penalties.get(endpoint.key), this.#env.now());
  }

  pick(_context: PickContext): E | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length <= 1) return endpoints[0];

    const table = this.#table;
    const i = table.draw(this.#env.random());
    const first = endpoints[i]!;
    if (this.#bias === 0 && !table.uniform) return first;
    const j = table.drawOther(this.#env.random(), i);
    const second = endpoints[j]!;

    if (table.uniform) return this.#load(second) < this.#load(first) ? second : first;
    return this.#cost(second, table.weight(j)) < this.#cost(first, table.weight(i)) ? second : first;
  }

  #cost(endpoint: E, weight: number): number {
    const active = this.#load(endpoint);
    return (this.#bias === 1 ? active : active ** this.#bias) / weight;
  }
}
