// peak_ewma through a real proxy to real backends, counted per backend (the
// response names the backend that served it): identical backends share evenly
// at one RPC in flight and at 32, and a backend 50 ms slower gets under 1%.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, startProxy, staticCluster, unary, type EchoClient, type RunningProxy } from '../helpers/harness.ts';

/** Sends `total` unary RPCs over the client's one connection with `concurrency` in flight; counts per backend. */
async function spread(client: EchoClient, total: number, concurrency: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let sent = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (sent < total) {
      sent++;
      const { response } = await unary(client, {});
      counts.set(response.backend, (counts.get(response.backend) ?? 0) + 1);
    }
  }));
  return counts;
}

const maxOverMin = (counts: Map<string, number>) => Math.max(...counts.values()) / Math.min(...counts.values());
const show = (counts: Map<string, number>) => JSON.stringify([...counts].sort());

describe('peak_ewma with real backends', () => {
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    backends = await startBackends(3);
    proxy = await startProxy({ clusters: [staticCluster('ewma', backends, { lb_policy: 'peak_ewma' })], routes: [{ match: { prefix: '/' }, cluster: 'ewma' }] });
    client = echoClient(`127.0.0.1:${proxy.port}`);
    // Connections set up and code compiled: what follows measures balancing, not a cold start.
    await spread(client, 300, 4);
  });

  after(async () => {
    client.close();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('identical backends, 3,000 sequential RPCs over one connection: max/min <= 1.2', async (t) => {
    const counts = await spread(client, 3_000, 1);
    t.diagnostic(`sequential: ${show(counts)}, max/min ${maxOverMin(counts).toFixed(2)}`);
    assert.equal(counts.size, 3, show(counts));
    assert.ok(maxOverMin(counts) <= 1.2, show(counts));
  });

  it('identical backends, 3,000 RPCs with 32 in flight: max/min <= 1.2', async (t) => {
    const counts = await spread(client, 3_000, 32);
    t.diagnostic(`32 in flight: ${show(counts)}, max/min ${maxOverMin(counts).toFixed(2)}`);
    assert.ok(maxOverMin(counts) <= 1.2, show(counts));
  });

  it('a backend that turns 50 ms slower gets under 1% of the RPCs once the policy has seen it', async (t) => {
    const slow = backends[2]!;
    slow.behaviour.extraDelayMs = 50;
    try {
      await spread(client, 300, 6);
      for (const concurrency of [1, 6]) {
        const counts = await spread(client, 3_000, concurrency);
        const share = (counts.get(slow.name) ?? 0) / 3_000;
        t.diagnostic(`slow backend, ${concurrency} in flight: ${show(counts)}, ${(share * 100).toFixed(2)}% on the slow one`);
        assert.ok(share < 0.01, show(counts));
      }
    } finally {
      slow.behaviour.extraDelayMs = 0;
    }
  });
});
