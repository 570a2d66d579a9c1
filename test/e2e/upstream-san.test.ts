// Upstream identity by SAN: a backend with a valid certificate from the same
// CA but the wrong identity (a recycled pod IP now held by another service)
// is refused, and its traffic goes to the other endpoint without a failure.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { issueIdentity, makeTestPki, type TestPki } from '../helpers/certs.ts';
import { echoClient, unary } from '../helpers/harness.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';

describe('upstream SAN verification', () => {
  let pki: TestPki;
  let payments: EchoServerHandle;
  let impostor: EchoServerHandle;
  let proxy: SecureProxy;

  before(async () => {
    pki = await makeTestPki();
    const [good, wrong] = await Promise.all([
      issueIdentity(pki, 'payments', { subject: '/CN=payments', san: 'URI:spiffe://cluster.local/ns/x/sa/payments, DNS:payments.internal, IP:127.0.0.1', usage: 'serverAuth' }),
      issueIdentity(pki, 'impostor', { subject: '/CN=orders', san: 'URI:spiffe://cluster.local/ns/x/sa/orders, DNS:localhost, IP:127.0.0.1', usage: 'serverAuth' }),
    ]);
    const credentials = (identity: typeof good) => grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: identity.certPem, private_key: identity.keyPem }]);
    [payments, impostor] = await Promise.all([
      startEchoServer({ name: 'payments', credentials: credentials(good) }),
      startEchoServer({ name: 'impostor', credentials: credentials(wrong) }),
    ]);
    proxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true }],
      clusters: [{
        name: 'payments',
        endpoints: [{ address: '127.0.0.1', port: payments.port }, { address: '127.0.0.1', port: impostor.port }],
        tls: { ca_file: pki.caCert, verify_subject_alt_names: ['spiffe://cluster.local/ns/x/sa/payments', 'dns:payments.internal'] },
      }],
      routes: [{ match: { prefix: '/' }, cluster: 'payments' }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all([payments.close(), impostor.close()]);
    await pki.cleanup();
  });

  it('refuses the wrong-SAN backend and sends every RPC to the right one, with zero client failures', async () => {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      const results = await Promise.allSettled(Array.from({ length: 40 }, () => unary(client, {}, new grpc.Metadata(), { deadline: Date.now() + 5_000 })));
      const failures = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failures, []);
      for (const r of results) if (r.status === 'fulfilled') assert.equal(r.value.response.backend, 'payments');
      assert.equal(impostor.calls.get('Unary') ?? 0, 0, 'the impostor never got an RPC');
      assert.equal(payments.calls.get('Unary'), 40);
    } finally {
      client.close();
    }
  });
});
