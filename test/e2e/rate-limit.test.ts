/**
 * Rate limits answer RESOURCE_EXHAUSTED, naming the limit, without contacting
 * a backend: per route, per route and caller identity, per connection.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoClient, EchoServerHandle } from '../../src/demo/echo-service.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';

/** Its own connection: grpc-js otherwise shares one between clients of the same target. */
const ownConnection = { 'grpc.use_local_subchannel_pool': 1 };

const backendCalls = (backends: EchoServerHandle[]) => backends.reduce((sum, b) => sum + [...b.calls.values()].reduce((a, n) => a + n, 0), 0);

describe('rate limits', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let perConnection: EchoSetup;

  before(async () => {
    setup = await startEchoSetup(1, {
      routes: [
        { name: 'unary', match: { method: '/switchyard.demo.v1.Echo/Unary' }, cluster: 'echo', rate_limit: { requests_per_second: 2, burst: 3 } },
        { name: 'stream', match: { prefix: '/' }, cluster: 'echo', rate_limit: { requests_per_second: 1_000, burst: 1_000, per_identity: { requests_per_second: 1, burst: 2 } } },
      ],
    });
    ({ backends, proxy } = setup);
    perConnection = await startEchoSetup(1, {
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { max_rpcs_per_second_per_connection: 4 } }],
    });
  });

  after(async () => {
    await setup.close();
    await perConnection.close();
  });

  it('a route\'s bucket: burst calls pass, the next is RESOURCE_EXHAUSTED with no backend contacted, then it refills', async () => {
    const { client } = setup;
    for (let i = 0; i < 3; i++) await unary(client, {});
    const before = backendCalls(backends);
    const error = await expectStatus(unary(client, {}));
    assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(error.details, 'rate limit of route unary exceeded (2/s, burst 3)');
    assert.equal(backendCalls(backends), before, 'no backend was contacted');
    assert.equal(proxy.records.at(-1)?.endpoint, undefined);
    // 2/s: a token every 500 ms. Refused attempts cost no token.
    await waitFor(() => unary(client, {}).then(() => true, () => false), 'the bucket to refill', 2_000);
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
    const greedy = echoClient(`127.0.0.1:${perConnection.proxy.port}`, undefined, ownConnection);
    const other = echoClient(`127.0.0.1:${perConnection.proxy.port}`, undefined, ownConnection);
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

describe('per-identity rate limit with mTLS', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let pki: TestPki;
  let other: TestIdentity;
  let proxy: RunningProxy;
  // About one token per 100 s: no refill while the test runs, so every count below is exact.
  const LIMIT = '(0.01/s, burst 3)';

  before(async () => {
    pki = await makeTestPki();
    other = await issueIdentity(pki, 'other', { subject: '/CN=other.test', san: 'URI:spiffe://test/other, DNS:other.test' });
    setup = await startEchoSetup(1, {
      routes: [{ name: 'limited', match: { prefix: '/' }, cluster: 'echo', rate_limit: { requests_per_second: 1_000, burst: 1_000, per_identity: { requests_per_second: 0.01, burst: 3 } } }],
    }, { tls: { pki, listener: { client_ca_file: pki.caCert, client_certificates: 'optional', forward_client_cert: true } } });
    ({ backends, proxy } = setup);
  });

  after(async () => {
    await setup.close();
    await pki.cleanup();
  });

  /** A client on a connection of its own, presenting `identity`'s certificate (none: anonymous). */
  const clientFor = (identity: TestIdentity | undefined): EchoClient =>
    echoClient(`localhost:${proxy.port}`, identity ? grpc.credentials.createSsl(pki.caCertPem, identity.keyPem, identity.certPem) : grpc.credentials.createSsl(pki.caCertPem), ownConnection);

  const claiming = (xfcc: string) => {
    const metadata = new grpc.Metadata();
    metadata.set('x-forwarded-client-cert', xfcc);
    return metadata;
  };

  it('A exhausts its bucket while B still passes; A stays limited on a new connection and behind a forged x-forwarded-client-cert', async () => {
    const a = clientFor(pki.client);
    const b = clientFor(other);
    const a2 = clientFor(pki.client);
    const anonymous = clientFor(undefined);
    try {
      // A: burst 3, then RESOURCE_EXHAUSTED naming A's verified identity, with no backend contacted.
      for (let i = 0; i < 3; i++) await unary(a, {});
      const before = backendCalls(backends);
      const limited = await expectStatus(unary(a, {}));
      assert.equal(limited.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(limited.details, `rate limit of route limited for caller spiffe://test/client exceeded ${LIMIT}`);
      assert.equal(backendCalls(backends), before, 'no backend was contacted');
      const firstPeer = proxy.records.at(-1)!.peer;

      // B, same route, at the same time: its own bucket.
      await unary(b, {});

      // A on a second connection: the bucket is the certificate's, not the connection's.
      const again = await expectStatus(unary(a2, {}));
      assert.equal(again.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(again.details, `rate limit of route limited for caller spiffe://test/client exceeded ${LIMIT}`);
      assert.notEqual(proxy.records.at(-1)!.peer, firstPeer, 'a different connection');

      // A claiming to be B, and B's own certificate hash, in x-forwarded-client-cert: still A's bucket...
      for (let i = 0; i < 3; i++) {
        const forged = await expectStatus(unary(a2, {}, claiming('Hash=00;Subject="CN=other.test";URI=spiffe://test/other;DNS=other.test')));
        assert.equal(forged.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.equal(forged.details, `rate limit of route limited for caller spiffe://test/client exceeded ${LIMIT}`);
      }
      // ...and B's bucket did not pay for them: B's two remaining tokens are still there, then B is limited too.
      await unary(b, {});
      await unary(b, {});
      const bLimited = await expectStatus(unary(b, {}));
      assert.equal(bLimited.details, `rate limit of route limited for caller spiffe://test/other exceeded ${LIMIT}`);

      // A caller without a certificate that claims to be A is not A: it spends the anonymous bucket, and passes.
      const { response } = await unary(anonymous, {}, claiming('Hash=00;Subject="CN=client.test";URI=spiffe://test/client;DNS=client.test'));
      assert.ok(!response.metadata.some((line) => line.startsWith('x-forwarded-client-cert')), 'the forged header was not forwarded');
    } finally {
      for (const client of [a, b, a2, anonymous]) client.close();
    }
  });
});
