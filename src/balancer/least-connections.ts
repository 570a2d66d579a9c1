/**
 * least_connections: the endpoint with the fewest open connections (for a
 * WebSocket cluster, open tunnels; for gRPC, RPCs in flight), scanned over
 * the whole set, ties broken round robin. Meant for long-lived connections:
 * each pick places something that stays for hours, so the exact minimum is
 * worth an O(n) scan, and least_request's random pair (which only avoids the
 * busiest) would leave a spread of several connections between endpoints.
 *
 * With weights, an endpoint's load is activeRequests / weight: a weight-2
 * endpoint is filled to twice the connections of a weight-1 one. Ties (equal
 * load) go to the first tied endpoint at or after a rotating position, so 30
 * sessions opened one after another over 3 idle endpoints land 10/10/10 and
 * a burst of simultaneous opens does not pile onto the first endpoint.
 */
import type { BalancedEndpoint, LoadBalancingPolicy, PickContext, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { weightOf } from './random.ts';

export const leastConnections = {
  name: 'least_connections',
  options: {},
  // Envoy's LEAST_REQUEST samples two endpoints (or choice_count), which is not this exact minimum.
  xds: { exact: undefined, forGrpcClients: 'ROUND_ROBIN' },
  create: (env) => new LeastConnectionsPolicy(env),
} satisfies PolicyDefinition<'least_connections'>;

export class LeastConnectionsPolicy<E extends BalancedEndpoint = BalancedEndpoint> implements LoadBalancingPolicy<E> {
  #endpoints: readonly E[] = [];
  #weights = new Float64Array(0);
  /** Where the scan for the minimum starts: it decides ties, and moves past each pick. */
  #next = 0;

  constructor(env: PolicyEnvironment = systemEnvironment) {
    // A random start, so proxies restarted together do not all place their first connection on one endpoint.
    this.#next = Math.floor(env.random() * 1024);
  }

  setEndpoints(endpoints: readonly E[]): void {
    this.#endpoints = endpoints.slice();
    this.#weights = Float64Array.from(endpoints, weightOf);
  }

  pick(_context: PickContext): E | undefined {
    const endpoints = this.#endpoints;
    const count = endpoints.length;
    if (count <= 1) return endpoints[0];
    const start = this.#next % count;
    let best = start;
    let bestLoad = endpoints[start]!.activeRequests / this.#weights[start]!;
    for (let step = 1; step < count; step++) {
      const i = (start + step) % count;
      const load = endpoints[i]!.activeRequests / this.#weights[i]!;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    this.#next = best + 1;
    return endpoints[best];
  }
}
