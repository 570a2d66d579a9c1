/**
 * Past overload.max_memory_mb the proxy refuses new RPCs with UNAVAILABLE (reason
 * `overloaded`, which clients retry elsewhere) instead of failing others or
 * growing until it is killed (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, expectStatus, startBackends, startProxy, staticCluster, unary, waitFor, type RunningProxy } from '../helpers/harness.ts';
import { adminUrl, parseSamples } from '../helpers/admin.ts';

describe('overload', () => {
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    // A limit far below what any Node process holds: overloaded from the first sample.
    proxy = await startProxy({ admin: { port: 0 }, overload: { max_memory_mb: 1 }, clusters: [staticCluster('echo', backends)], routes: [{ match: { prefix: '/' }, cluster: 'echo' }] });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('refuses new RPCs with UNAVAILABLE, says so, and reports it', async () => {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      const error = await expectStatus(unary(client, {}));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.equal(error.details, 'the proxy is overloaded');
    } finally {
      client.close();
    }
    assert.equal(backends[0]!.calls.get('Unary') ?? 0, 0, 'no backend was called');
    await waitFor(() => proxy.records.length === 1, 'the record');
    assert.equal(proxy.records[0]!.reason, 'overloaded');
    const samples = parseSamples(await (await fetch(adminUrl(proxy.proxy, '/metrics'))).text());
    assert.equal(samples.find((s) => s.name === 'switchyard_overloaded')?.value, 1);
  });

  it('a reload that raises the limit accepts RPCs again', async () => {
    await proxy.proxy.reload({ config: { ...proxy.proxy.config, overload: { max_memory_mb: 1 << 20 } } });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      assert.equal((await unary(client, {})).response.backend, backends[0]!.name);
    } finally {
      client.close();
    }
  });
});
