import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, staticCluster, unary, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { spread } from '../helpers/load.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

describe('per-RPC balancing from one client connection', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    setup = await startEchoSetup(3, (echo) => ({
      clusters: [
        staticCluster('rr', echo),
        staticCluster('hash', echo, { lb_policy: 'ring_hash', hash_header: 'x-user' }),
        staticCluster('least', echo, { lb_policy: 'least_request' }),
        staticCluster('ewma', echo, { lb_policy: 'peak_ewma', ewma_decay: '2s' }),
      ],
      routes: ['rr', 'hash', 'least', 'ewma'].map((name) => ({ match: { prefix: '/', headers: [{ name: 'x-cluster', exact: name }] }, cluster: name })),
    }));
    ({ backends, proxy, client } = setup);
  });

  after(() => setup.close());

  const to = (cluster: string, extra: Record<string, string> = {}) => () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-cluster', cluster);
    for (const [key, value] of Object.entries(extra)) metadata.set(key, value);
    return metadata;
  };

  it('round_robin: 30,000 RPCs on one connection split evenly (max/min <= 1.02)', async () => {
    const counts = await spread(client, 30_000, 64, to('rr'));
    const values = [...counts.values()];
    assert.equal(values.length, 3, `every backend got traffic: ${JSON.stringify([...counts])}`);
    assert.equal(values.reduce((a, b) => a + b, 0), 30_000);
    const ratio = Math.max(...values) / Math.min(...values);
    assert.ok(ratio <= 1.02, `max/min = ${ratio.toFixed(4)} (${JSON.stringify([...counts])})`);
    assert.equal(proxy.proxy.listeners[0]!.connectionCount, 1, 'all of it came over one client connection');
  });

  it('ring_hash: a key stays on one endpoint; different keys spread', async () => {
    const owners = new Set<string>();
    for (let user = 0; user < 30; user++) {
      const counts = await spread(client, 20, 4, to('hash', { 'x-user': `user-${user}` }));
      assert.equal(counts.size, 1, `user-${user} went to ${JSON.stringify([...counts])}`);
      owners.add([...counts.keys()][0]!);
    }
    assert.ok(owners.size >= 2, '30 keys all landed on one endpoint');
  });

  it('least_request: an endpoint stuck with calls in flight gets almost no new ones', async () => {
    const stuck = backends[2]!;
    stuck.behaviour.extraDelayMs = 60_000;
    const firstRecord = proxy.records.length;
    try {
      let sent = 0;
      const worker = async () => {
        while (sent < 600) {
          sent++;
          // A call that lands on the stuck endpoint hangs until its deadline.
          await unary(client, {}, to('least')(), { deadline: new Date(Date.now() + 3_000) }).catch(() => {});
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      const stuckKey = `127.0.0.1:${stuck.port}`;
      const routed = proxy.records.slice(firstRecord).filter((r) => r.cluster === 'least');
      const toStuck = routed.filter((r) => r.endpoint === stuckKey).length;
      assert.ok(routed.length >= 590, `only ${routed.length} records`);
      assert.ok(toStuck <= 18, `the stuck endpoint got ${toStuck} of ${routed.length} calls (round robin would give a third)`);
    } finally {
      stuck.behaviour.extraDelayMs = 0;
    }
  });

  it('peak_ewma: traffic moves away from an endpoint that turns slow', async () => {
    const slow = backends[1]!;
    try {
      const warm = await spread(client, 300, 6, to('ewma'));
      assert.equal(warm.size, 3);
      slow.behaviour.extraDelayMs = 50;
      await spread(client, 300, 6, to('ewma'));
      const after = await spread(client, 600, 6, to('ewma'));
      const share = (after.get(slow.name) ?? 0) / 600;
      assert.ok(share < 0.1, `slow backend still got ${(share * 100).toFixed(1)}% (${JSON.stringify([...after])})`);
    } finally {
      slow.behaviour.extraDelayMs = 0;
    }
  });
});
