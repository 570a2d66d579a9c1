// Reloads that touch listeners: a rotated certificate is taken in place; a
// listener that changes kind on the same port is drained and bound anew.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { Switchyard } from '../../src/switchyard.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';

describe('reloading listeners', () => {
  let backends: EchoServerHandle[];
  let first: TestPki;
  let second: TestPki;

  before(async () => {
    [backends, first, second] = await Promise.all([startBackends(1), makeTestPki(), makeTestPki()]);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all([first.cleanup(), second.cleanup()]);
  });

  const yaml = (listener: string) => `
listeners:
  - ${listener}
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
drain: { delay: 1ms, timeout: 2s }
`;

  it('takes a rotated certificate in place: open connections carry on, new handshakes get the new certificate', async () => {
    const file = path.join(first.dir, 'rotate.yaml');
    await writeFile(file, yaml(`{ name: secure, port: 0, tls: { cert_file: ${first.server.cert}, key_file: ${first.server.key} } }`));
    const proxy = await Switchyard.start({ ...(await loadConfig(file)), logger: pino({ level: 'silent' }) });
    const listener = proxy.listener('secure');
    const target = `localhost:${listener.address.port}`;
    const trustsFirst = echoClient(target, grpc.credentials.createSsl(first.caCertPem));
    const trustsSecond = echoClient(target, grpc.credentials.createSsl(second.caCertPem));
    const stillTrustsFirst = echoClient(target, grpc.credentials.createSsl(first.caCertPem), { 'grpc.use_local_subchannel_pool': 1 });
    try {
      await unary(trustsFirst, {});
      await writeFile(file, yaml(`{ name: secure, port: 0, tls: { cert_file: ${second.server.cert}, key_file: ${second.server.key} } }`));
      const summary = await proxy.reload(await loadConfig(file));
      assert.deepEqual(summary.listeners.changed, ['secure']);
      assert.equal(proxy.listener('secure'), listener, 'the same listener, not a new socket');
      assert.equal(listener.connectionCount, 1);

      await unary(trustsFirst, {}); // its connection was made before the rotation
      await unary(trustsSecond, {}, new grpc.Metadata(), { deadline: Date.now() + 2_000 });
      const refused = await unary(stillTrustsFirst, {}, new grpc.Metadata(), { deadline: Date.now() + 1_000 }).then(() => undefined, (error: grpc.ServiceError) => error);
      assert.equal(refused?.code, grpc.status.UNAVAILABLE, 'a new handshake presents the new certificate');
    } finally {
      for (const client of [trustsFirst, trustsSecond, stillTrustsFirst]) client.close();
      await proxy.stop(1_000);
    }
  });

  it('turns an h2c listener into TLS on the same port: the old one drains, its RPC completes, the new one serves', async () => {
    const port = await findPortFreeOnAll(['127.0.0.1']);
    const file = path.join(first.dir, 'kind.yaml');
    await writeFile(file, yaml(`{ name: main, port: ${port}, plaintext: true }`));
    const proxy = await Switchyard.start({ ...(await loadConfig(file)), logger: pino({ level: 'silent' }) });
    const old = proxy.listener('main');
    const plain = echoClient(`127.0.0.1:${port}`);
    const secure = echoClient(`localhost:${port}`, grpc.credentials.createSsl(first.caCertPem));
    try {
      const slow = unary(plain, { delay_ms: 400 });
      await waitFor(() => backends[0]!.active > 0, 'the RPC to be in flight');
      await writeFile(file, yaml(`{ name: main, port: ${port}, tls: { cert_file: ${first.server.cert}, key_file: ${first.server.key} } }`));
      const summary = await proxy.reload(await loadConfig(file));
      assert.deepEqual(summary.listeners, { added: [], changed: ['main'], removed: [], unchanged: [], failed: [] });
      assert.notEqual(proxy.listener('main'), old);
      assert.equal(proxy.listener('main').address.port, port);
      assert.equal((await slow).response.backend, 'backend-0');
      assert.equal((await unary(secure, {})).response.backend, 'backend-0');
      await waitFor(() => old.connectionCount === 0, 'the old listener to drain', 2_000);
    } finally {
      plain.close();
      secure.close();
      await proxy.stop(1_000);
    }
  });
});
