/**
 * round_robin: weighted smooth round robin (nginx's algorithm).
 * Every pick adds each endpoint's weight to its `current`, takes the endpoint with the largest `current`
 * and subtracts the total weight from it. Over any total-weight-long window each endpoint gets exactly
 * its weight in picks, and the heavy ones are interleaved with the light ones instead of sent in runs
 * (5,1,1 gives a a b a c a a, not a a a a a b c).
 */

import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { weightOf } from './random.ts';

/**
 * Weighted smooth round robin. With all weights equal it is a plain rotating index: N picks over k endpoints
 * give every endpoint floor(N/k) or ceil(N/k). The rotation starts at a random endpoint so that many proxies
 * restarting together do not all send their first RPC to the same backend. The rotation position and the
 * smooth-weight state of endpoints that stay survive setEndpoints, so frequent updates do not restart the cycle.
 */
export const roundRobin = {
  name: 'round_robin',
  options: {},
  xds: { exact: 'ROUND_ROBIN', forGrpcClients: 'ROUND_ROBIN' },
  create: (env) => new RoundRobinPolicy(env),
} satisfies PolicyDefinition<'round_robin'>;

export class RoundRobinPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  readonly #env: PolicyEnvironment;
  #endpoints: readonly E[] = [];
  #weights = new Float64Array(0);
  #current = new Float64Array(0);
  #total = 0;
  #uniform = true;
  /** Uniform mode: the index the next pick returns. Weighted mode: where the scan for the maximum starts, which decides ties. */
  #next = 0;
  /** The last endpoint picked, to continue the rotation after it when the set changes. */
  #last: E | undefined;

  constructor(env: PolicyEnvironment = systemEnvironment) {
    this.#env = env;
  }

  setEndpoints(endpoints: readonly E[]): void {
    const previousCurrent = new Map<string, number>();
    if (!this.#uniform) {
      for (let i = 0; i < this.#endpoints.length; i++) previousCurrent.set(this.#endpoints[i]!.key, this.#current[i]!);
    }

    const n = endpoints.length;
    this.#endpoints = endpoints.slice();
    this.#weights = new Float64Array(n);
    this.#current = new Float64Array(n);
    this.#total = 0;
    this.#uniform = true;
    let lastIndex = -1;
    for (let i = 0; i < n; i++) {
      const endpoint = endpoints[i]!;
      const weight = weightOf(endpoint);
      this.#weights[i] = weight;
      this.#total += weight;
      if (weight !== this.#weights[0]) this.#uniform = false;
      this.#current[i] = previousCurrent.get(endpoint.key) ?? 0;
      if (endpoint.key === this.#last?.key) lastIndex = i;
    }

    // An endpoint that left took its `current` with it; re-centre on zero so the survivors' relative
    // positions (who is owed picks) are kept and no offset accumulates over many updates.
    if (previousCurrent.size > 0 && n > 0) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += this.#current[i]!;
      const mean = sum / n;
      for (let i = 0; i < n; i++) this.#current[i]! -= mean;
    }

    if (n === 0) this.#next = 0;
    else if (lastIndex >= 0) this.#next = (lastIndex + 1) % n;
    else if (this.#last === undefined) this.#next = Math.min(Math.floor(this.#env.random() * n), n - 1);
    else this.#next %= n; // the last pick left the set: keep roughly the same place in the rotation
  }

  pick(_context: PickContext): E | undefined {
    const endpoints = this.#endpoints;
    const n = endpoints.length;
    if (n === 0) return undefined;

    let index: number;
    if (this.#uniform) {
      index = this.#next;
      this.#next = index + 1 === n ? 0 : index + 1;
    } else {
      const weights = this.#weights;
      const current = this.#current;
      index = 0;
      let best = -Infinity;
      let i = this.#next;
      for (let scanned = 0; scanned < n; scanned++) {
        const value = current[i]! + weights[i]!;
        current[i] = value;
        if (value > best) {
          best = value;
          index = i;
        }
        if (++i === n) i = 0;
      }
      current[index] = best - this.#total;
    }

    const endpoint = endpoints[index];
    this.#last = endpoint;
    return endpoint;
  }
}
