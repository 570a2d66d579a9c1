/**
 * The cluster joins discovery, availability, the balancer and the pools. Here
 * with a fake discovery source and fake pools, so endpoint changes can land
 * while RPCs are in flight, exactly where a test wants them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { Cluster } from '../../src/cluster/cluster.ts';
import { answered, failed } from '../../src/grpc/outcome.ts';
import { FakeDiscovery, FakePools } from '../helpers/fake-streams.ts';

function cluster(extra: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    listeners: [{ name: 'l', port: 0, plaintext: true }],
    clusters: [{ name: 'orders', endpoints: [{ address: '10.0.0.9', port: 1 }], ...extra }],
  }).clusters[0]!;
  const discovery = new FakeDiscovery();
  const pools = new FakePools();
  const subject = new Cluster({ config, source: discovery, createPool: pools.create, environment: { now: () => performance.now(), random: () => 0 } });
  subject.start();
  return { subject, discovery, pools };
}

const at = (...ports: number[]) => ports.map((port) => ({ host: '10.0.0.1', port, weight: 1 }));

describe('cluster: endpoint changes under in-flight RPCs', () => {
  it('an endpoint removed mid-RPC gets no new RPCs, its pool closes gracefully, and its RPC still releases cleanly', () => {
    const { subject, discovery, pools } = cluster();
    discovery.set(at(1, 2));
    const busy = subject.pick(undefined)!;
    assert.equal(busy.activeRequests, 1);
    discovery.set(at(2));
    assert.equal(pools.get(busy.key).closed, true, 'closed: in-flight streams finish, no new ones');
    assert.ok(!subject.endpoints.has(busy.key));
    for (let i = 0; i < 5; i++) {
      const endpoint = subject.pick(undefined)!;
      assert.notEqual(endpoint.key, busy.key);
      subject.release(endpoint, 1, answered(0));
    }
    subject.release(busy, 5, answered(0));
    assert.equal(busy.activeRequests, 0);
    assert.ok(!subject.endpoints.has(busy.key), 'a late release does not bring the endpoint back');
    subject.close();
  });

  it('an endpoint that comes back gets a new pool; a weight change keeps the pool', () => {
    const { subject, discovery, pools } = cluster();
    discovery.set(at(1));
    const first = pools.get('10.0.0.1:1');
    discovery.set([{ host: '10.0.0.1', port: 1, weight: 5 }]);
    assert.equal(pools.get('10.0.0.1:1'), first);
    assert.equal(subject.endpoints.get('10.0.0.1:1')!.configuredWeight, 5);
    discovery.set([]);
    discovery.set(at(1));
    assert.notEqual(pools.get('10.0.0.1:1'), first);
    subject.close();
  });

  it('a draining endpoint is treated as gone; a discovery error keeps the last good set', () => {
    const { subject, discovery } = cluster();
    discovery.set([...at(1), { host: '10.0.0.1', port: 2, weight: 1, health: 'draining' }]);
    assert.deepEqual([...subject.endpoints.keys()], ['10.0.0.1:1']);
    discovery.fail(new Error('DNS timed out'));
    assert.deepEqual([...subject.endpoints.keys()], ['10.0.0.1:1']);
    assert.equal(subject.pick(undefined)!.key, '10.0.0.1:1');
    subject.close();
  });

  it('before the first answer from discovery, it says so, with the discovery error', () => {
    const { subject, discovery } = cluster();
    assert.equal(subject.pick(undefined), undefined);
    discovery.fail(new Error('NXDOMAIN'));
    assert.equal(subject.describeUnavailable(), 'cluster "orders" has no endpoints yet (discovery: NXDOMAIN)');
    discovery.set([]);
    assert.equal(subject.describeUnavailable(), 'cluster "orders" has no endpoints');
    subject.close();
  });

  it('a retry avoids the endpoints already tried while another exists', () => {
    const { subject, discovery } = cluster();
    discovery.set(at(1, 2, 3));
    const first = subject.pick(undefined)!;
    for (let i = 0; i < 10; i++) {
      const retry = subject.pick(undefined, new Set([first]))!;
      assert.notEqual(retry.key, first.key);
      subject.release(retry, 1, answered(0));
    }
    subject.close();
  });

  it('outcomes reach outlier detection: consecutive gateway errors eject; refused and abandoned attempts do not count', () => {
    const { subject, discovery } = cluster({ outlier_detection: { consecutive_gateway_errors: 3, max_ejection_percent: 100 } });
    discovery.set(at(1, 2));
    const [one] = [...subject.endpoints.values()];
    for (let i = 0; i < 10; i++) {
      one!.activeRequests++;
      subject.release(one!, 1, i % 2 === 0 ? failed('upstream_refused') : failed('abandoned'));
    }
    assert.equal(one!.ejected, false);
    for (let i = 0; i < 3; i++) {
      one!.activeRequests++;
      subject.release(one!, 1, failed('upstream_reset'));
    }
    assert.equal(one!.ejected, true);
    assert.ok(subject.healthSnapshot().some((view) => view.key === one!.key && view.ejected));
    subject.close();
  });
});
