import assert from 'node:assert/strict';
import { failed } from '../../src/grpc/outcome.ts';
import { describe, it } from 'node:test';

import { configSchema, type ClusterConfig } from '../../src/config/schema.ts';
import { ClusterHealth, type TrackedEndpoint } from '../../src/health/cluster-health.ts';
import { SlowStart } from '../../src/health/slow-start.ts';
import type { EndpointPool } from '../../src/upstream/endpoint-pool.ts';
import { waitFor } from '../helpers/harness.ts';

function clusterConfig(extra: Record<string, unknown> = {}): ClusterConfig {
  return configSchema.parse({
    listeners: [{ name: 'main', port: 0, plaintext: true }],
    clusters: [{ name: 'c', endpoints: [{ address: '127.0.0.1', port: 1 }], ...extra }],
    routes: [{ match: { prefix: '/' }, cluster: 'c' }],
  }).clusters[0]!;
}

type FakeEndpoint = TrackedEndpoint & { pool: EndpointPool & { inBackoff: boolean } };

function endpoint(key: string, weight = 1): FakeEndpoint {
  return {
    key,
    address: { host: '127.0.0.1' },
    pool: { inBackoff: false } as EndpointPool & { inBackoff: boolean },
    configuredWeight: weight,
    weight,
    health: 'unchecked',
    ejected: false,
  };
}

function setup(extra: Record<string, unknown> = {}) {
  const clock = { now: 0 };
  let changes = 0;
  const health = new ClusterHealth({
    cluster: 'c',
    config: clusterConfig(extra),
    now: () => clock.now,
    random: () => 0.5,
    onChange: () => changes++,
  });
  return { clock, health, changes: () => changes };
}

describe('cluster availability', () => {
  it('drops endpoints in connect backoff or ejected; fail_open falls back to all, fail_closed to none with the reason', () => {
    for (const policy of ['fail_open', 'fail_closed'] as const) {
      const { health, changes } = setup({ all_unhealthy: policy, outlier_detection: { consecutive_gateway_errors: 1, max_ejection_percent: 100 } });
      const endpoints = ['a', 'b', 'c'].map((k) => endpoint(k));
      health.setEndpoints(endpoints);
      assert.deepEqual(health.select(endpoints).map((e) => e.key), ['a', 'b', 'c']);
      health.record(endpoints[0]!, failed('upstream_connect_failure'));
      assert.equal(changes(), 1);
      endpoints[1]!.pool.inBackoff = true;
      assert.deepEqual(health.select(endpoints).map((e) => e.key), ['c']);
      assert.equal(endpoints[0]!.ejected, true);
      endpoints[2]!.pool.inBackoff = true;
      const none = health.select(endpoints).map((e) => e.key);
      if (policy === 'fail_open') {
        assert.deepEqual(none, ['a', 'b', 'c']);
      } else {
        assert.deepEqual(none, []);
        assert.equal(health.describeUnavailable(endpoints), 'all 3 endpoints unavailable: 1 ejected, 2 failing to connect (fail_closed)');
        assert.equal(health.describeUnavailable(endpoints.slice(0, 1)), 'its only endpoint is ejected (fail_closed)');
      }
      health.close();
    }
  });

  it('an RPC outcome on an abandoned attempt changes nothing', () => {
    const { health, changes } = setup({ outlier_detection: { consecutive_gateway_errors: 1, max_ejection_percent: 100 } });
    const endpoints = [endpoint('a')];
    health.setEndpoints(endpoints);
    for (let i = 0; i < 10; i++) health.record(endpoints[0]!, failed('abandoned'));
    assert.equal(changes(), 0);
    assert.equal(health.view(endpoints[0]!, true).outlier!.intervalRequests, 0);
    health.close();
  });
});

describe('slow start', () => {
  it('ramps linearly from 10% to 100% over the window', () => {
    const clock = { now: 1_000 };
    const ramp = new SlowStart(10_000, () => clock.now);
    ramp.begin('a');
    assert.equal(ramp.factor('a'), 0.1);
    clock.now += 5_000;
    assert.ok(Math.abs(ramp.factor('a') - 0.55) < 1e-9);
    assert.equal(ramp.ramping, true);
    clock.now += 5_000;
    assert.equal(ramp.factor('a'), 1);
    assert.equal(ramp.ramping, false);
    assert.equal(ramp.factor('never-started'), 1);
    assert.equal(new SlowStart(undefined, () => 0).factor('a'), 1);
  });

  it('endpoints of the first set get full weight at once; one that joins later ramps, and ramps again if it leaves and comes back', () => {
    const { clock, health } = setup({ slow_start_window: '10s' });
    const first = [endpoint('a', 4), endpoint('b', 4)];
    health.setEndpoints(first);
    assert.deepEqual(health.select(first).map((e) => e.weight), [4, 4]);

    clock.now = 60_000;
    const joined = [...first, endpoint('c', 4)];
    health.setEndpoints(joined);
    assert.deepEqual(health.select(joined).map((e) => e.weight), [4, 4, 0.4]);
    clock.now += 2_500;
    assert.ok(Math.abs(health.select(joined)[2]!.weight - 4 * 0.325) < 1e-9);
    clock.now += 7_500;
    assert.deepEqual(health.select(joined).map((e) => e.weight), [4, 4, 4]);
    // Removed, then back: a new join, so a new ramp.
    health.setEndpoints(first);
    health.setEndpoints(joined);
    assert.deepEqual(health.select(joined).map((e) => e.weight), [4, 4, 0.4]);
    health.close();
  });

  it('asks for recomputes on a timer while an endpoint ramps', async () => {
    let changes = 0;
    const health = new ClusterHealth({
      cluster: 'c',
      config: clusterConfig({ slow_start_window: '100ms' }),
      now: () => performance.now(),
      random: Math.random,
      onChange: () => changes++,
    });
    const endpoints = [endpoint('a')];
    health.setEndpoints(endpoints);
    endpoints.push(endpoint('b'));
    health.setEndpoints(endpoints);
    const weights: number[] = [];
    // What the cluster does on onChange: select again.
    const sample = () => weights.push(health.select(endpoints)[1]!.weight);
    sample();
    await waitFor(() => {
      if (changes > weights.length - 1) sample();
      return weights.at(-1) === 1;
    }, 'the ramp to finish', 2_000);
    assert.ok(weights.length >= 4, `weights seen: ${weights.join(', ')}`);
    assert.ok(weights.every((w, i) => i === 0 || w >= weights[i - 1]!), 'weights only grow');
    health.close();
  });
});
