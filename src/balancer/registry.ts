/**
 * The load-balancing policies: the one list of them. The config's `lb_policy`
 * enum and cluster options (src/config/schema.ts), the mapping to and from
 * xDS (src/xds/) and construction (src/cluster/) are all derived from it, so
 * a new policy is its own file plus a line here.
 */
import { leastConnections } from './least-connections.ts';
import { leastRequest } from './least-request.ts';
import { peakEwma } from './peak-ewma.ts';
import type { BalancedEndpoint, LoadBalancingPolicy, PolicyDefinition, PolicyEnvironment } from './policy.ts';
import { systemEnvironment } from './policy.ts';
import { random } from './random.ts';
import { ringHash } from './ring-hash.ts';
import { roundRobin } from './round-robin.ts';

export const POLICIES = [roundRobin, leastRequest, random, ringHash, peakEwma, leastConnections] as const;

export type PolicyName = (typeof POLICIES)[number]['name'];

export const POLICY_NAMES = POLICIES.map((policy) => policy.name) as [PolicyName, ...PolicyName[]];

export function policyDefinition(name: PolicyName): PolicyDefinition<PolicyName> {
  return POLICIES.find((policy) => policy.name === name)!;
}

/**
 * A fresh policy instance (policies hold per-cluster state: use one per cluster). `options` holds the
 * cluster's option fields by config name; an absent one takes the policy's default.
 */
export function createPolicy<E extends BalancedEndpoint>(
  name: PolicyName,
  options: Readonly<Record<string, number | undefined>> = {},
  env: PolicyEnvironment = systemEnvironment,
): LoadBalancingPolicy<E> {
  const definition = policyDefinition(name);
  const values: Record<string, number> = {};
  for (const [option, spec] of Object.entries(definition.options)) values[option] = options[option] ?? spec.default;
  return definition.create<E>(env, values);
}
