import { it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, unary } from '../helpers/harness.ts';

it('a client pinging every second through the proxy never sees too_many_pings', async () => {
  const { proxy, client, close } = await startEchoSetup(1, {}, {
    client: {
      'grpc.keepalive_time_ms': 1_000,
      'grpc.keepalive_timeout_ms': 1_000,
      'grpc.keepalive_permit_without_calls': 1,
    },
  });
  try {
    await unary(client, {});
    // A long call keeps the connection busy while pings flow, then the connection idles with pings.
    const call = client.ServerStream({ count: 1, delay_ms: 2_500 });
    call.on('data', () => {});
    const [status] = (await once(call, 'status')) as [grpc.StatusObject];
    assert.equal(status.code, grpc.status.OK);
    const { response } = await unary(client, {});
    assert.equal(response.backend, 'backend-0');
    assert.equal(proxy.proxy.listeners[0]!.connectionCount, 1, 'the client kept its one connection: no GOAWAY');
  } finally {
    await close();
  }
});
