import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LeastRequestPolicy } from '../../src/balancer/least-request.ts';
import { PeakEwmaPolicy } from '../../src/balancer/peak-ewma.ts';
import { RandomPolicy } from '../../src/balancer/random.ts';
import { createPolicy, POLICY_NAMES } from '../../src/balancer/registry.ts';
import { RingHashPolicy } from '../../src/balancer/ring-hash.ts';
import { RoundRobinPolicy } from '../../src/balancer/round-robin.ts';
import { LB_POLICIES } from '../../src/config/schema.ts';
import { endpoint, tally, testEnvironment, type TestEndpoint } from '../helpers/seeded-random.ts';

describe('createPolicy', () => {
  it('knows every policy the config schema accepts', () => {
    assert.deepEqual([...POLICY_NAMES].sort(), [...LB_POLICIES].sort());
  });

  it('builds the named policy', () => {
    const expected = {
      round_robin: RoundRobinPolicy,
      least_request: LeastRequestPolicy,
      random: RandomPolicy,
      ring_hash: RingHashPolicy,
      peak_ewma: PeakEwmaPolicy,
    };
    for (const name of POLICY_NAMES) assert.ok(createPolicy(name, {}) instanceof expected[name], name);
  });

  it('gives every policy the same empty-set and single-endpoint behaviour, with or without options', () => {
    for (const name of POLICY_NAMES) {
      for (const options of [{}, { ringSize: 16, activeRequestBias: 2, ewmaDecayMs: 500 }]) {
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
    const p = createPolicy<TestEndpoint>('least_request', { activeRequestBias: 2 }, testEnvironment().env);
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
