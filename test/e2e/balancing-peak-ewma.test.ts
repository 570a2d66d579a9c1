// peak_ewma through a real proxy to real backends, counted per backend (the
// response names the backend that served it): identical backends share evenly
// at one RPC in flight and at 32, and a backend 50 ms slower gets under 1%.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { startEchoSetup, type EchoClient, type EchoSetup } from '../helpers/harness.ts';
import { spread } from '../helpers/load.ts';

const maxOverMin = (counts: Map<string, number>) => Math.max(...counts.values()) / Math.min(...counts.values());
const show = (counts: Map<string, number>) => JSON.stringify([...counts].sort());

describe('peak_ewma with real backends', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let client: EchoClient;

  before(async () => {
    setup = await startEchoSetup(3, {}, { cluster: { lb_policy: 'peak_ewma' } });
    ({ backends, client } = setup);
    // Connections set up and code compiled: what follows measures balancing, not a cold start.
    await spread(client, 300, 4);
  });

  after(() => setup.close());

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
