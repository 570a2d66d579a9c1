/**
 * random: each RPC goes to an endpoint drawn with probability weight / total weight.
 * Also home of the weighted sampler that least_request and peak_ewma draw their two candidates with.
 */

import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';

/**
 * The weight a policy uses for `endpoint`: its weight when that is a positive finite number, else 1.
 * The contract promises a positive integer; this keeps one bad value from zeroing or poisoning a whole sum.
 */
export function weightOf(endpoint: BalancedEndpoint): number {
  const weight = endpoint.weight;
  return weight > 0 && weight < Infinity ? weight : 1;
}

/**
 * Weighted index sampling over one endpoint list, rebuilt on setEndpoints.
 * Draws take a caller-supplied uniform number, allocate nothing, and cost O(1) when all weights are equal,
 * O(log n) (binary search of cumulative weights) otherwise.
 */
export class WeightTable {
  /** cumulative[i] = sum of the weights of endpoints 0..i. */
  #cumulative = new Float64Array(0);
  #weights = new Float64Array(0);
  #total = 0;
  #uniform = true;

  /** True when every endpoint has the same weight, so draws are plain uniform indexes. */
  get uniform(): boolean {
    return this.#uniform;
  }

  get size(): number {
    return this.#weights.length;
  }

  /** The sanitised weight of endpoint `index` (see weightOf). */
  weight(index: number): number {
    return this.#weights[index] ?? 1;
  }

  rebuild(endpoints: readonly BalancedEndpoint[]): void {
    const n = endpoints.length;
    this.#weights = new Float64Array(n);
    this.#cumulative = new Float64Array(n);
    let total = 0;
    let uniform = true;
    for (let i = 0; i < n; i++) {
      const weight = weightOf(endpoints[i]!);
      total += weight;
      this.#weights[i] = weight;
      this.#cumulative[i] = total;
      if (weight !== this.#weights[0]) uniform = false;
    }
    this.#total = total;
    this.#uniform = uniform;
  }

  /** An index drawn with probability weight / total; `r` uniform in [0, 1). Needs size >= 1. */
  draw(r: number): number {
    const n = this.#weights.length;
    if (this.#uniform) {
      const index = Math.floor(r * n);
      return index < n ? index : n - 1; // r * n can round up to n when r is the largest double below 1
    }
    return this.#search(r * this.#total);
  }

  /**
   * An index other than `exclude`, drawn with probability weight / (total - weight[exclude]); `r` uniform in [0, 1).
   * Needs size >= 2. Exact and loop-free: the excluded endpoint's slice of the line is cut out, not retried.
   */
  drawOther(r: number, exclude: number): number {
    const n = this.#weights.length;
    if (this.#uniform) {
      let index = Math.floor(r * (n - 1));
      if (index > n - 2) index = n - 2;
      return index >= exclude ? index + 1 : index;
    }
    const excluded = this.#weights[exclude]!;
    const excludedStart = this.#cumulative[exclude]! - excluded;
    let x = r * (this.#total - excluded);
    if (x >= excludedStart) x += excluded;
    const index = this.#search(x);
    if (index !== exclude) return index;
    // Only reachable through rounding at a slice boundary: take the neighbour on that side.
    return exclude + 1 < n ? exclude + 1 : exclude - 1;
  }

  /** The first index whose cumulative weight exceeds x (the last one when x >= total). */
  #search(x: number): number {
    const cumulative = this.#cumulative;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle]! > x) high = middle;
      else low = middle + 1;
    }
    return low;
  }
}

/**
 * Weighted uniform random. Stateless across RPCs, so it needs no coordination between proxies
 * and never correlates with anything; its spread is only statistically even.
 */
export const random = {
  name: 'random',
  options: {},
  xds: { exact: 'RANDOM', forGrpcClients: 'ROUND_ROBIN' },
  create: (env) => new RandomPolicy(env),
} satisfies PolicyDefinition<'random'>;

export class RandomPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  readonly #env: PolicyEnvironment;
  #endpoints: readonly E[] = [];
  readonly #table = new WeightTable();

  constructor(env: PolicyEnvironment = systemEnvironment) {
    this.#env = env;
  }

  setEndpoints(endpoints: readonly E[]): void {
    this.#endpoints = endpoints.slice();
    this.#table.rebuild(this.#endpoints);
  }

  pick(_context: PickContext): E | undefined {
    const n = this.#endpoints.length;
    if (n <= 1) return this.#endpoints[0];
    return this.#endpoints[this.#table.draw(this.#env.random())];
  }
}
