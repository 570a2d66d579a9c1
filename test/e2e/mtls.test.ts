// Downstream mTLS: which handshakes a listener with client_ca_file accepts.
// (TLS 1.2 being refused is covered by cli-tls.test.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '../../src/config/load.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, startEchoSetup, unary, type EchoSetup } from '../helpers/harness.ts';
import { startSecureProxy } from '../helpers/secure-proxy.ts';

describe('downstream mTLS', () => {
  let backends: EchoServerHandle[];
  let pki: TestPki;
  let untrusted: TestPki;
  let expired: TestIdentity;
  let required: EchoSetup;
  let optional: EchoSetup;

  before(async () => {
    [pki, untrusted] = await Promise.all([makeTestPki(), makeTestPki()]);
    expired = await issueIdentity(pki, 'expired', { subject: '/CN=expired.test', san: 'URI:spiffe://test/expired', expired: true });
    const secured = (mode: string) => startEchoSetup(1, {}, { tls: { pki, listener: { client_ca_file: pki.caCert, client_certificates: mode } } });
    [required, optional] = await Promise.all([secured('required'), secured('optional')]);
    backends = required.backends;
  });

  after(async () => {
    await Promise.all([required.close(), optional.close()]);
    await Promise.all([pki.cleanup(), untrusted.cleanup()]);
  });

  /** One call on a client of its own, with `credentials`. */
  const call = async (setup: EchoSetup, credentials: grpc.ChannelCredentials) => {
    const client = echoClient(`localhost:${setup.proxy.port}`, credentials);
    try {
      return await unary(client, {}, new grpc.Metadata(), { deadline: Date.now() + 3_000 });
    } finally {
      client.close();
    }
  };
  const withCert = (identity: TestIdentity, ca = pki.caCertPem) => grpc.credentials.createSsl(ca, identity.keyPem, identity.certPem);

  it('accepts a client certificate signed by client_ca_file', async () => {
    const { response } = await call(required, withCert(pki.client));
    assert.equal(response.backend, 'backend-0');
  });

  it('refuses, at the handshake, no certificate, an untrusted one and an expired one when required', async () => {
    const before = backends[0]!.calls.get('Unary') ?? 0;
    for (const [what, credentials] of [
      ['no certificate', grpc.credentials.createSsl(pki.caCertPem)],
      ['a certificate from another CA', withCert(untrusted.client)],
      ['an expired certificate', withCert(expired)],
    ] as const) {
      const error = await expectStatus(call(required, credentials));
      assert.equal(error.code, grpc.status.UNAVAILABLE, what);
    }
    assert.equal(backends[0]!.calls.get('Unary') ?? 0, before, 'no refused call reached the backend');
  });

  it('refuses a cleartext h2c client on a TLS listener', async () => {
    const error = await expectStatus(call(required, grpc.credentials.createInsecure()));
    assert.equal(error.code, grpc.status.UNAVAILABLE);
  });

  it('closes a connection that does not finish its handshake within tls.handshake_timeout', async () => {
    const quick = await startSecureProxy({
      listeners: [{ name: 'quick', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, handshake_timeout: '200ms' } }],
    });
    try {
      const started = Date.now();
      await new Promise<void>((resolve, reject) => {
        const socket = connect(quick.port, '127.0.0.1');
        socket.on('error', () => {});
        socket.on('close', () => resolve());
        setTimeout(() => reject(new Error('still open after 5 s')), 5_000).unref();
      });
      assert.ok(Date.now() - started >= 150, 'not closed before the timeout');
    } finally {
      await quick.close();
    }
  });

  it('refuses at load client_certificates without client_ca_file, and a client CA file that is not a certificate', async () => {
    await assert.rejects(startSecureProxy({
      listeners: [{ name: 'l', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_certificates: 'required' } }],
    }), (error: ConfigError) => error.problems.some((p) => p.path === 'listeners[0].tls.client_ca_file' && /needs client_ca_file/.test(p.message)));
    await assert.rejects(startSecureProxy({
      listeners: [{ name: 'l', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.server.key } }],
    }), (error: ConfigError) => error.problems.some((p) => p.path === 'listeners[0].tls.client_ca_file' && /is not a PEM certificate/.test(p.message)));
  });

  it('optional: lets a client without a certificate in, and still refuses an unverifiable one', async () => {
    const { response } = await call(optional, grpc.credentials.createSsl(pki.caCertPem));
    assert.equal(response.backend, 'backend-0');
    await call(optional, withCert(pki.client));
    const error = await expectStatus(call(optional, withCert(untrusted.client)));
    assert.equal(error.code, grpc.status.UNAVAILABLE);
  });
});
