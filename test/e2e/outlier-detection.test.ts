import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, waitFor } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

const BASE_EJECTION_MS = 300;
const CONCURRENCY = 4;

it('outlier detection: a backend answering UNAVAILABLE in trailers is ejected after N consecutive errors, then re-admitted after the ejection time', async () => {
  const { backends, proxy, client, close } = await startEchoSetup(3, {}, {
    cluster: { outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: `${BASE_EJECTION_MS}ms`, max_ejection_time: '10s' } },
  });
  const failing = backends[0]!;
  const failingKey = `127.0.0.1:${failing.port}`;
  // Every call fails after response headers were sent: HTTP 200, grpc-status 14 in the trailers.
  failing.behaviour.unavailableEvery = 1;
  const cluster = proxy.proxy.clusters.get('echo')!;
  const load = steadyLoad(client, { concurrency: CONCURRENCY });
  try {
    await waitFor(() => cluster.endpoints.get(failingKey)!.ejected, 'the failing endpoint to be ejected');
    const outlier = cluster.healthSnapshot().find((view) => view.key === failingKey)!.outlier!;
    const ejectedAt = outlier.ejectedUntil! - BASE_EJECTION_MS;
    assert.equal(outlier.lastEjectionReason, 'consecutive_gateway_errors');
    assert.equal(outlier.totalEjections, 1);

    // It takes RPCs again once the ejection time has passed.
    await waitFor(() => proxy.records.some((r) => r.endpoint === failingKey && r.startedAt > outlier.ejectedUntil!), 're-admission', 5_000);
    // Still failing after re-admission: ejected again, for twice as long.
    await waitFor(() => cluster.endpoints.get(failingKey)!.ejected, 'the second ejection');
    const second = cluster.healthSnapshot().find((view) => view.key === failingKey)!.outlier!;
    assert.equal(second.totalEjections, 2);
    assert.equal(second.ejectionCount, 2);
    assert.ok(second.ejectedUntil! - outlier.ejectedUntil! >= 2 * BASE_EJECTION_MS);
    await load.stop();

    const onFailing = proxy.records.filter((r) => r.endpoint === failingKey);
    const beforeEjection = onFailing.filter((r) => r.startedAt <= ejectedAt);
    // Three consecutive errors, plus what was already in flight when the third came back.
    assert.ok(beforeEjection.length >= 3 && beforeEjection.length <= 3 + CONCURRENCY, `${beforeEjection.length} RPCs before the ejection`);
    const duringEjection = onFailing.filter((r) => r.startedAt > ejectedAt && r.startedAt < outlier.ejectedUntil! - 5);
    assert.deepEqual(duringEjection.map((r) => r.startedAt - ejectedAt), [], 'no RPC went to the ejected endpoint');
    assert.ok(proxy.records.filter((r) => r.startedAt > ejectedAt && r.startedAt < outlier.ejectedUntil! - 5).length > 20, 'the others kept serving');
    assert.ok(load.failures.every((failure) => failure.startsWith(`${grpc.status.UNAVAILABLE}: `)));
    assert.equal(load.failures.length, onFailing.length);
  } finally {
    await load.stop();
    await close();
  }
});
