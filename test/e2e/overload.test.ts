/**
 * Past overload.max_memory_mb the proxy refuses new RPCs with UNAVAILABLE (reason
 * `overloaded`, which clients retry elsewhere) instead of failing others or
 * growing until it is killed (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { expectStatus, startEchoSetup, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { adminUrl, parseSamples } from '../helpers/admin.ts';

describe('overload', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    // A limit far below what any Node process holds: overloaded from the first sample.
    setup = await startEchoSetup(1, { admin: { port: 0 }, overload: { max_memory_mb: 1 } });
    ({ backends, proxy, client } = setup);
  });

  after(() => setup.close());

  it('refuses new RPCs with UNAVAILABLE, says so, and reports it', async () => {
    const error = await expectStatus(unary(client, {}));
    assert.equal(error.code, grpc.status.UNAVAILABLE);
    assert.equal(error.details, 'the proxy is overloaded');
    assert.equal(backends[0]!.calls.get('Unary') ?? 0, 0, 'no backend was called');
    await waitFor(() => proxy.records.length === 1, 'the record');
    assert.equal(proxy.records[0]!.reason, 'overloaded');
    const samples = parseSamples(await (await fetch(adminUrl(proxy.proxy, '/metrics'))).text());
    assert.equal(samples.find((s) => s.name === 'switchyard_overloaded')?.value, 1);
  });

  it('a reload that raises the limit accepts RPCs again', async () => {
    await proxy.proxy.reload({ config: { ...proxy.proxy.config, overload: { max_memory_mb: 1 << 20 } } });
    assert.equal((await unary(client, {})).response.backend, backends[0]!.name);
  });
});
