/** Builds a load-balancing policy from its configured name. */

import { LeastRequestPolicy } from './least-request.ts';
import { PeakEwmaPolicy } from './peak-ewma.ts';
import type { BalancedEndpoint, LoadBalancingPolicy, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { RandomPolicy } from './random.ts';
import { RingHashPolicy } from './ring-hash.ts';
import { RoundRobinPolicy } from './round-robin.ts';

export const POLICY_NAMES = ['round_robin', 'least_request', 'random', 'ring_hash', 'peak_ewma'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** Tuning knobs; each policy reads only its own and ignores the rest. Absent or invalid values take the defaults. */
export interface PolicyOptions {
  /** ring_hash: arcs on the ring. Default 1024. */
  ringSize?: number | undefined;
  /** least_request: how strongly in-flight requests count against an endpoint when weights differ. Default 1. */
  activeRequestBias?: number | undefined;
  /** peak_ewma: time constant of the latency average, ms. Default 10 000. */
  ewmaDecayMs?: number | undefined;
}

/**
 * A fresh policy instance (policies hold per-cluster state: use one per cluster).
 * Throws only for a name outside PolicyName, which the config schema already rules out.
 */
export function createPolicy<E extends BalancedEndpoint>(
  name: PolicyName,
  options: PolicyOptions = {},
  env: PolicyEnvironment = systemEnvironment,
): LoadBalancingPolicy<E> {
  switch (name) {
    case 'round_robin':
      return new RoundRobinPolicy<E>(env);
    case 'least_request':
      return new LeastRequestPolicy<E>(env, { activeRequestBias: options.activeRequestBias });
    case 'random':
      return new RandomPolicy<E>(env);
    case 'ring_hash':
      return new RingHashPolicy<E>(env, { ringSize: options.ringSize });
    case 'peak_ewma':
      return new PeakEwmaPolicy<E>(env, { decayMs: options.ewmaDecayMs });
    default: {
      const unknown: never = name;
      throw new Error(`unknown load-balancing policy ${String(unknown)}`);
    }
  }
}
