// Method authorization by caller identity, and x-forwarded-client-cert.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { EchoClient, EchoServerHandle } from '../../src/demo/echo-service.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, startEchoSetup, unary, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { capturingLogger } from '../helpers/secure-proxy.ts';

const UNARY = '/switchyard.demo.v1.Echo/Unary';
const BIDI = '/switchyard.demo.v1.Echo/Bidi';

describe('method authorization', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let pki: TestPki;
  let other: TestIdentity;
  let proxy: RunningProxy;
  const log = capturingLogger();

  before(async () => {
    pki = await makeTestPki();
    other = await issueIdentity(pki, 'other', { subject: '/CN=other.test', san: 'URI:spiffe://test/other, DNS:other.test' });
    setup = await startEchoSetup(1, {
      authorization: {
        rules: [
          { name: 'client-unary', principals: ['spiffe://test/client'], methods: [UNARY], action: 'allow' },
          { name: 'no-anonymous-bidi', principals: ['anonymous'], methods: ['switchyard.demo.v1.Echo/*'], action: 'deny' },
        ],
      },
    }, { tls: { pki, listener: { client_ca_file: pki.caCert, client_certificates: 'optional', forward_client_cert: true } }, logger: log.logger });
    ({ backends, proxy } = setup);
  });

  after(async () => {
    await setup.close();
    await pki.cleanup();
  });

  const clientFor = (identity: TestIdentity | undefined): EchoClient =>
    echoClient(`localhost:${proxy.port}`, identity ? grpc.credentials.createSsl(pki.caCertPem, identity.keyPem, identity.certPem) : grpc.credentials.createSsl(pki.caCertPem));

  const bidi = (client: EchoClient) => new Promise<void>((resolve, reject) => {
    const call = client.Bidi(new grpc.Metadata(), { deadline: Date.now() + 3_000 });
    call.on('data', () => {});
    call.on('error', reject);
    call.on('end', resolve);
    call.write({});
    call.end();
  });

  it('lets identity A call Echo/Unary but not Echo/Bidi', async () => {
    const client = clientFor(pki.client);
    try {
      const { response } = await unary(client, {});
      assert.equal(response.backend, 'backend-0');
      const bidiBefore = backends[0]!.calls.get('Bidi') ?? 0;
      const error = await expectStatus(bidi(client));
      assert.equal(error.code, grpc.status.PERMISSION_DENIED);
      assert.equal(error.details, `caller spiffe://test/client may not call ${BIDI}`);
      assert.equal(backends[0]!.calls.get('Bidi') ?? 0, bidiBefore, 'no backend was contacted');
      const line = log.lines.find((l) => l.msg === 'RPC denied by authorization' && l.method === BIDI);
      assert.equal(line?.level, 40, 'logged as a warning');
      assert.equal(line?.caller, 'spiffe://test/client');
    } finally {
      client.close();
    }
  });

  it('lets identity B call neither, and an anonymous caller nothing', async () => {
    for (const identity of [other, undefined]) {
      const client = clientFor(identity);
      try {
        const unaryBefore = backends[0]!.calls.get('Unary') ?? 0;
        const denied = await expectStatus(unary(client, {}));
        assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
        assert.equal(denied.details, `caller ${identity ? 'spiffe://test/other' : 'anonymous'} may not call ${UNARY}`);
        assert.equal((await expectStatus(bidi(client))).code, grpc.status.PERMISSION_DENIED);
        assert.equal(backends[0]!.calls.get('Unary') ?? 0, unaryBefore);
      } finally {
        client.close();
      }
    }
    const anonymous = log.lines.find((l) => l.msg === 'RPC denied by authorization' && l.caller === 'anonymous');
    assert.equal(anonymous?.rule, 'no-anonymous-bidi');
  });

  it('never forwards a client-sent x-forwarded-client-cert; sets its own from the verified certificate', async () => {
    const client = clientFor(pki.client);
    try {
      const metadata = new grpc.Metadata();
      metadata.set('x-forwarded-client-cert', 'By=spiffe://evil;Hash=00;URI=spiffe://test/admin');
      const { response } = await unary(client, {}, metadata);
      const seen = response.metadata.filter((line) => line.startsWith('x-forwarded-client-cert='));
      assert.equal(seen.length, 1);
      const hash = createHash('sha256').update(new X509Certificate(pki.client.certPem).raw).digest('hex');
      assert.equal(seen[0], `x-forwarded-client-cert=Hash=${hash};Subject="CN=client.test";URI=spiffe://test/client;DNS=client.test`);
      assert.ok(!seen[0]!.includes('evil'));
    } finally {
      client.close();
    }
  });
});

describe('x-forwarded-client-cert without a client certificate', () => {
  it('strips a forged header on a cleartext listener with no rules, and sets none', async () => {
    const { client, close } = await startEchoSetup(1);
    try {
      const metadata = new grpc.Metadata();
      metadata.set('x-forwarded-client-cert', 'Hash=00;URI=spiffe://test/admin');
      metadata.set('x-other', 'kept');
      const { response } = await unary(client, {}, metadata);
      assert.ok(!response.metadata.some((line) => line.startsWith('x-forwarded-client-cert')), response.metadata.join('\n'));
      assert.ok(response.metadata.includes('x-other=kept'));
    } finally {
      await close();
    }
  });
});
