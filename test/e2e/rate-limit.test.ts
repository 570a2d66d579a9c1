/**
 * Rate limits answer RESOURCE_EXHAUSTED, naming the limit, without contacting
 * a backend: per route, per route and caller identity, per connection.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, expectStatus, startBackends, startProxy, staticCluster, unary, waitFor, type RunningProxy } from '../helpers/harness.ts';

/** Its own connection: grpc-js otherwise shares one between clients of the same target. */
const ownConnection = { 'grpc.use_local_subchannel_pool': 1 };

const backendCalls = (backends: EchoServerHandle[]) => backends.reduce((sum, b) => sum + [...b.calls.values()].reduce((a, n) => a + n, 0), 0);

describe('rate limits', () => {
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let perConnection: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    proxy = await startProxy({
      clusters: [staticCluster('echo', backends)],
      routes: [
        { name: 'unary', match: { method: '/switchyard.demo.v1.Echo/Unary' }, cluster: 'echo', rate_limit: { requests_per_second: 2, burst: 3 } },
        { name: 'stream', match: { prefix: '/' }, cluster: 'echo', rate_limit: { requests_per_second: 1_000, burst: 1_000, per_identity: { requests_per_second: 1, burst: 2 } } },
      ],
    });
    perConnection = await startProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { max_rpcs_per_second_per_connection: 4 } }],
      clusters: [staticCluster('echo', backends)],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
  });

  after(async () => {
    await proxy.close();
    await perConnection.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('a route\'s bucket: burst calls pass, the next is RESOURCE_EXHAUSTED with no backend contacted, then it refills', async () => {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      for (let i = 0; i < 3; i++) await unary(client, {});
      const before = backendCalls(backends);
      const error = await expectStatus(unary(client, {}));
      assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(error.details, 'rate limit of route unary exceeded (2/s, burst 3)');
      assert.equal(backendCalls(backends), before, 'no backend was contacted');
      assert.equal(proxy.records.at(-1)?.endpoint, undefined);
      // 2/s: a token every 500 ms. Refused attempts cost no token.
      await waitFor(() => unary(client, {}).then(() => true, () => false), 'the bucket to refill', 2_000);
    } finally {
      client.close();
    }
  });

  it('per identity: callers without a certificate share the "anonymous" bucket, across connections', async () => {
    const a = echoClient(`127.0.0.1:${proxy.port}`, undefined, ownConnection);
    const b = echoClient(`127.0.0.1:${proxy.port}`, undefined, ownConnection);
    try {
      const call = (client: typeof a) => new Promise<void>((resolve, reject) => {
        const stream = client.ServerStream({ count: 1 });
        stream.on('data', () => {});
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      await call(a);
      await call(b);
      const error = await expectStatus(call(a));
      assert.equal((error as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal((error as grpc.ServiceError).details, 'rate limit of route stream for caller anonymous exceeded (1/s, burst 2)');
    } finally {
      a.close();
      b.close();
    }
  });

  it('per connection: a connection over max_rpcs_per_second_per_connection is refused; another connection is not', async () => {
    const greedy = echoClient(`127.0.0.1:${perConnection.port}`, undefined, ownConnection);
    const other = echoClient(`127.0.0.1:${perConnection.port}`, undefined, ownConnection);
    try {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => unary(greedy, {})));
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as grpc.ServiceError));
      assert.ok(refused.length >= 3, `at least 3 of 8 refused (4 pass, perhaps 1 refilled) (${refused.length})`);
      for (const error of refused) {
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.equal(error.details, 'rate limit of this connection exceeded (max_rpcs_per_second_per_connection 4)');
      }
      await unary(other, {});
    } finally {
      greedy.close();
      other.close();
    }
  });
});
