import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LeastConnectionsPolicy } from '../../src/balancer/least-connections.ts';
import { LeastRequestPolicy } from '../../src/balancer/least-request.ts';
import { PeakEwmaPolicy } from '../../src/balancer/peak-ewma.ts';
import { RandomPolicy } from '../../src/balancer/random.ts';
import { createPolicy, POLICIES, POLICY_NAMES } from '../../src/balancer/registry.ts';
import { RingHashPolicy } from '../../src/balancer/ring-hash.ts';
import { RoundRobinPolicy } from '../../src/balancer/round-robin.ts';
import { configSchema, LB_POLICIES } from '../../src/config/schema.ts';
import { endpoint, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

describe('createPolicy', () => {
  it('the registry is the one list: the config accepts exactly its policies and their options', () => {
    assert.deepEqual([...POLICY_NAMES].sort(), [...LB_POLICIES].sort());
    const cluster = configSchema.parse({ listeners: [{ name: 'l', port: 0, plaintext: true }], clusters: [{ name: 'c', endpoints: [{ address: '10.0.0.1', port: 1 }] }] }).clusters[0]! as Record<string, unknown>;
    for (const policy of POLICIES) {
      for (const [option, spec] of Object.entries(policy.options)) assert.equal(cluster[option], spec.default, `${policy.name}: ${option}`);
    }
  });

  it('builds the named policy', () => {
    const expected = {
      round_robin: RoundRobinPolicy,
      least_request: LeastRequestPolicy,
      random: RandomPolicy,
      ring_hash: RingHashPolicy,
      peak_ewma: PeakEwmaPolicy,
      least_connections: LeastConnectionsPolicy,
    };
    for (const name of POLICY_NAMES) assert.ok(createPolicy(name, {}) instanceof expected[name as keyof typeof expected], name);
  });

  it('gives every policy the same empty-set and single-endpoint behaviour, with or without options', () => {
    for (const name of POLICY_NAMES) {
      for (const options of [{}, { ring_size: 16, active_request_bias: 2, ewma_decay: 500 }]) {
        const p = createPolicy<TestEndpoint>(name, options, testEnvironment().env);
        assert.equal(p.pick({ hashKey: 'k' }), undefined, name);
        const only = endpoint('a:1');
        p.setEndpoints([only]);
        assert.equal(p.pick({ hashKey: 'k' }), only, name);
        assert.equal(p.pick({}), only, name);
        p.onRpcEnd?.(only, 3);
        p.setEndpoints([]);
        assert.equal(p.pick({}), undefined, name);
      }
    }
  });

  it('uses the injected environment and passes options through', () => {
    const p = createPolicy<TestEndpoint>('least_request', { active_request_bias: 2 }, testEnvironment().env);
    p.setEndpoints([endpoint('heavy', 2, 3), endpoint('light', 1, 2)]);
    // Bias 2: 9/2 > 4/1, so light; with the default bias 1 it would be heavy (1.5 < 2).
    assert.deepEqual([...tally(() => p.pick({}), 100).keys()], ['light']);
  });

  it('accepts an undefined environment, as the cluster passes when none is configured', () => {
    const p = createPolicy<TestEndpoint>('peak_ewma', {}, undefined);
    p.setEndpoints([endpoint('a'), endpoint('b')]);
    assert.ok(p.pick({}) !== undefined);
  });
});
