import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, unary, waitFor } from '../helpers/harness.ts';

it('max_requests overflow fails fast with UNAVAILABLE naming the limit, and memory stays bounded', async () => {
  const { backends, proxy, client, close } = await startEchoSetup(1, {
    // All 2000 calls on the client's one connection at once: above the default of 100 streams, which would queue them in the client.
    listeners: [{ name: 'main', port: 0, plaintext: true, http2: { max_concurrent_streams: 2_000 } }],
  }, { cluster: { circuit_breakers: { max_requests: 20 } } });
  backends[0]!.behaviour.extraDelayMs = 500;
  try {
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 2_000 }, () => unary(client, {}).then(() => 'ok', (e: grpc.ServiceError) => e)),
    );
    const rejected = outcomes.filter((o): o is grpc.ServiceError => o !== 'ok');
    assert.equal(outcomes.length - rejected.length, 20, 'exactly max_requests calls were admitted');
    assert.ok(rejected.every((e) => e.code === grpc.status.UNAVAILABLE && /circuit breaker max_requests \(20\) reached/.test(e.details)), rejected[0]?.details ?? "");
    assert.ok(Date.now() - started < 5_000);
    assert.equal(proxy.proxy.clusters.get('echo')!.limits.overflows.max_requests, 1_980);
    assert.ok(process.memoryUsage().rss - rssBefore < 200 << 20, 'memory grew by more than 200 MiB');
  } finally {
    backends[0]!.behaviour.extraDelayMs = 0;
    await close();
  }
});

it('max_pending_requests: RPCs beyond the backend stream limit wait, up to the limit, then fail fast', async () => {
  const { backends, proxy, client, close } = await startEchoSetup(1, {}, {
    backend: { serverOptions: { 'grpc.max_concurrent_streams': 2 } },
    cluster: { circuit_breakers: { max_connections: 1, max_pending_requests: 3 } },
  });
  backends[0]!.behaviour.extraDelayMs = 300;
  try {
    // Warm the one allowed connection so its stream limit is known.
    await unary(client, {});
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => unary(client, {}).then(() => 'ok', (e: grpc.ServiceError) => e.details)));
    const ok = outcomes.filter((o) => o === 'ok').length;
    assert.equal(ok, 5, `2 in flight + 3 pending succeed: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.filter((o) => o !== 'ok').every((d) => /max_pending_requests \(3\)/.test(d)));
    await waitFor(() => proxy.proxy.clusters.get('echo')!.limits.pendingRequests === 0, 'the pending queue to drain');
  } finally {
    await close();
  }
});
