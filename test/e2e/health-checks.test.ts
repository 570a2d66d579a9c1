import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { expectStatus, startEchoSetup, staticCluster, unary, waitFor } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

const INTERVAL_MS = 100;
const UNHEALTHY_THRESHOLD = 2;
const HEALTHY_THRESHOLD = 2;
const HEALTH_CHECK = {
  interval: `${INTERVAL_MS}ms`,
  interval_jitter: '1ms',
  timeout: '90ms',
  unhealthy_threshold: UNHEALTHY_THRESHOLD,
  healthy_threshold: HEALTHY_THRESHOLD,
};

const keyOf = (backend: EchoServerHandle) => `127.0.0.1:${backend.port}`;

describe('active health checks through the proxy', () => {
  it('health checks: an endpoint reporting NOT_SERVING stops receiving RPCs within interval × threshold, and returns when SERVING', async () => {
    const { backends, proxy, client, close } = await startEchoSetup(3, {}, { backend: { health: true }, cluster: { health_check: HEALTH_CHECK } });
    const cluster = proxy.proxy.clusters.get('echo')!;
    const endpointOf = (backend: EchoServerHandle) => cluster.endpoints.get(keyOf(backend))!;
    const victim = backends[1]!;
    const load = steadyLoad(client);
    try {
      await waitFor(() => backends.every((b) => (b.calls.get('Unary') ?? 0) > 20), 'traffic on every backend');

      const flippedAt = performance.now();
      victim.setServing(false);
      await waitFor(() => endpointOf(victim).health === 'unhealthy', 'the endpoint to be marked unhealthy');
      // No RPC may start on it after interval × unhealthy_threshold, plus one interval of slack.
      const limit = flippedAt + INTERVAL_MS * UNHEALTHY_THRESHOLD + INTERVAL_MS;
      const seen = proxy.records.length;
      await waitFor(() => proxy.records.length > seen + 300 && performance.now() > limit, '300 more RPCs');
      const late = proxy.records.filter((r) => r.endpoint === keyOf(victim) && r.startedAt > limit);
      assert.equal(late.length, 0, `${late.length} RPCs reached the NOT_SERVING endpoint after ${Math.round(limit - flippedAt)} ms`);
      assert.equal(cluster.healthSnapshot().find((v) => v.key === keyOf(victim))!.healthCheck!.lastFailure, 'NOT_SERVING');

      const restoredAt = performance.now();
      victim.setServing(true);
      await waitFor(() => proxy.records.some((r) => r.endpoint === keyOf(victim) && r.startedAt > restoredAt), 'the endpoint to take RPCs again');
      const back = performance.now() - restoredAt;
      assert.ok(back < INTERVAL_MS * (HEALTHY_THRESHOLD + 1) + 200, `back after ${Math.round(back)} ms`);
    } finally {
      await load.stop();
      await close();
    }
    assert.deepEqual(load.failures, []);
  });

  it('all_unhealthy: fail_closed answers UNAVAILABLE naming the cause; fail_open keeps sending', async () => {
    const { backends, proxy: closed, client, close } = await startEchoSetup(3, (all) => ({
      clusters: [
        staticCluster('closed', all, { health_check: HEALTH_CHECK, all_unhealthy: 'fail_closed' }),
        staticCluster('open', all, { health_check: HEALTH_CHECK, all_unhealthy: 'fail_open' }),
      ],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-cluster', exact: 'open' }] }, cluster: 'open' },
        { match: { prefix: '/' }, cluster: 'closed' },
      ],
    }), { backend: { health: true } });
    const toOpen = new grpc.Metadata();
    toOpen.set('x-cluster', 'open');
    const allIn = (name: string, state: string) => [...closed.proxy.clusters.get(name)!.endpoints.values()].every((e) => e.health === state);
    try {
      await waitFor(() => allIn('closed', 'healthy') && allIn('open', 'healthy'), 'every endpoint healthy');
      assert.equal((await unary(client, {})).response.backend.startsWith('backend-'), true);

      for (const backend of backends) backend.setServing(false);
      await waitFor(() => allIn('closed', 'unhealthy') && allIn('open', 'unhealthy'), 'every endpoint unhealthy');
      const error = await expectStatus(unary(client, {}));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.equal(error.details, 'cluster "closed" has no available endpoint: all 3 endpoints unhealthy (fail_closed)');
      // fail_open: a cluster with no healthy endpoint sends to all of them rather than refuse everything.
      assert.ok((await unary(client, {}, toOpen)).response.backend.startsWith('backend-'));

      backends[2]!.setServing(true);
      await waitFor(() => closed.proxy.clusters.get('closed')!.endpoints.get(keyOf(backends[2]!))!.health === 'healthy', 'one endpoint healthy again');
      for (let i = 0; i < 5; i++) assert.equal((await unary(client, {})).response.backend, 'backend-2');
    } finally {
      await close();
    }
  });
});
