// Who may hold an xDS stream and what it receives: mTLS at the handshake, identity bound to the
// claimed node, per-identity resource rules, and limits.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterResource, listenerResource, routeConfigurationResource } from '../../src/xds/resources.ts';
import { startAdsServer, type AdsServer, type RefusalEvent } from '../../src/xds/server/ads-server.ts';
import { AdsTestClient, type TestNode } from '../helpers/ads-client.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { MutableProvider } from '../helpers/xds-provider.ts';

const CDS = TYPE_URL.cluster;
const EDS = TYPE_URL.endpoint;
const LDS = TYPE_URL.listener;
const RDS = TYPE_URL.route;
const GRPC = capabilitiesOf(undefined);

const NODE_A: TestNode = { id: 'node-a-1', cluster: 'zone-a' };
const NODE_B: TestNode = { id: 'node-b-1', cluster: 'zone-b' };

const AUTHORIZATION = {
  identities: [
    { identity: 'spiffe://test/a', node_ids: ['node-a-*'], node_clusters: ['zone-a'], clusters: ['a-*'], listeners: ['a-listener'] },
    { identity: 'spiffe://test/b', node_ids: ['node-b-*'], clusters: ['b-*'], listeners: ['b-listener'] },
    { identity: 'dns-only.test', node_ids: ['dns-*'], clusters: ['*'], listeners: [] },
  ],
};

async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

describe('xDS security', () => {
  let pki: TestPki;
  let foreign: TestPki;
  let a: TestIdentity;
  let b: TestIdentity;
  let unknown: TestIdentity;
  let dnsOnly: TestIdentity;
  let provider: MutableProvider;
  let server: AdsServer;
  const logs: Record<string, unknown>[] = [];
  const refusals: RefusalEvent[] = [];
  const clients: AdsTestClient[] = [];

  before(async () => {
    [pki, foreign] = await Promise.all([makeTestPki(), makeTestPki()]);
    [a, b, unknown, dnsOnly] = await Promise.all([
      issueIdentity(pki, 'a', { subject: '/CN=a', san: 'URI:spiffe://test/a, DNS:a.test' }),
      issueIdentity(pki, 'b', { subject: '/CN=b', san: 'URI:spiffe://test/b' }),
      issueIdentity(pki, 'unknown', { subject: '/CN=unknown', san: 'URI:spiffe://test/unknown, DNS:dns-only.test' }),
      issueIdentity(pki, 'dns-only', { subject: '/CN=dns-only', san: 'DNS:dns-only.test' }),
    ]);
    provider = new MutableProvider();
    for (const name of ['a-1', 'b-1']) {
      provider.set('cluster', clusterResource({ name, policy: 'round_robin', connectTimeoutMs: 1_000 }, GRPC));
      provider.setEndpoints(name, [{ host: '10.0.0.1', port: 1, weight: 1 }]);
    }
    for (const side of ['a', 'b']) {
      provider.set('listener', listenerResource({ name: `${side}-listener`, routeConfig: `${side}-routes` }));
      provider.set('route', routeConfigurationResource({ name: `${side}-routes`, routes: [{ prefix: '/', cluster: `${side}-1` }] }));
    }
    server = await startAdsServer({
      port: 0,
      tls: { caPem: pki.caCertPem, certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      provider,
      authorization: AUTHORIZATION,
      limits: { max_streams_per_identity: 2, max_resource_names: 5 },
      debounceMs: 5,
      logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
      onRefusal: (event) => refusals.push(event),
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await server.close();
    await Promise.all([pki.cleanup(), foreign.cleanup()]);
  });

  const connect = (identity: TestIdentity | undefined, options: { insecure?: boolean; ca?: Buffer } = {}): AdsTestClient => {
    const client = new AdsTestClient({ port: server.port, ca: options.ca ?? pki.caCertPem, cert: identity?.certPem, key: identity?.keyPem, insecure: options.insecure });
    clients.push(client);
    return client;
  };

  const refusalLog = (node: string) => logs.find((l) => l.msg === 'xDS stream refused' && l.node === node);

  it('refuses plaintext, a certificate from an untrusted CA, and no certificate, at the handshake', async () => {
    const admitted = server.stats.streamsAdmitted;
    const refused = server.stats.refusals;
    const attempts = [connect(undefined, { insecure: true }), connect(foreign.client), connect(undefined)];
    for (const client of attempts) {
      const stream = client.sotw({ id: 'node-a-9', cluster: 'zone-a' });
      stream.request({ typeUrl: CDS });
      const status = await stream.closed;
      assert.equal(status.code, grpc.status.UNAVAILABLE, status.details);
      assert.equal(stream.responses.length, 0);
    }
    assert.equal(server.stats.streamsAdmitted, admitted, 'no stream reached the ADS handlers');
    assert.equal(server.stats.refusals, refused, 'refused by TLS before any stream existed');
    assert.equal(refusalLog('node-a-9'), undefined);
  });

  it("refuses a valid certificate for node A claiming node B's id, with PERMISSION_DENIED, and logs it", async () => {
    const sotw = connect(a).sotw(NODE_B);
    sotw.request({ typeUrl: CDS });
    const status = await sotw.closed;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, 'spiffe://test/a may not claim node.id "node-b-1"');
    assert.equal(sotw.responses.length, 0);
    const line = refusalLog('node-b-1');
    assert.equal(line?.identity, 'spiffe://test/a');
    assert.equal(line?.code, 'PERMISSION_DENIED');
    assert.equal(line?.level, 40);
    assert.ok(refusals.some((r) => r.identity === 'spiffe://test/a' && r.nodeId === 'node-b-1' && r.code === grpc.status.PERMISSION_DENIED));

    const delta = connect(a).delta({ id: 'node-a-2', cluster: 'zone-b' });
    delta.request({ typeUrl: CDS });
    const wrongCluster = await delta.closed;
    assert.equal(wrongCluster.code, grpc.status.PERMISSION_DENIED);
    assert.equal(wrongCluster.details, 'spiffe://test/a may not claim node.cluster "zone-b"');
  });

  it('ends a stream whose node.id changes mid-stream', async () => {
    const stream = connect(a).sotw(NODE_A);
    stream.request({ typeUrl: CDS });
    stream.ack(await stream.next(CDS));
    stream.request({ typeUrl: EDS, names: ['a-1'], node: { id: 'node-a-2', cluster: 'zone-a' } });
    const status = await stream.closed;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, 'node.id changed on the stream from "node-a-1" to "node-a-2"');
  });

  it('sends an identity only the resources its rules allow (SotW and delta)', async () => {
    const stream = connect(a).sotw(NODE_A);
    stream.request({ typeUrl: CDS });
    stream.request({ typeUrl: EDS, names: ['a-1', 'b-1'] });
    stream.request({ typeUrl: LDS });
    stream.request({ typeUrl: RDS, names: ['a-routes', 'b-routes'] });
    const cds = await stream.next(CDS);
    assert.deepEqual(cds.names, ['a-1']);
    const eds = await stream.next(EDS);
    assert.deepEqual(eds.names, ['a-1'], 'b-1 is treated as not existing');
    const lds = await stream.next(LDS);
    assert.deepEqual(lds.names, ['a-listener']);
    const rds = await stream.next(RDS);
    assert.deepEqual(rds.names, ['a-routes'], 'the routes of an allowed listener only');
    for (const response of [cds, eds, lds, rds]) stream.ack(response);

    // A new cluster outside the rules is never pushed; one inside is.
    provider.set('cluster', clusterResource({ name: 'b-2', policy: 'round_robin', connectTimeoutMs: 1_000 }, GRPC));
    provider.set('cluster', clusterResource({ name: 'a-2', policy: 'round_robin', connectTimeoutMs: 1_000 }, GRPC));
    const next = await stream.next();
    assert.equal(next.typeUrl, CDS);
    assert.deepEqual(next.names, ['a-1', 'a-2']);

    const other = connect(b).sotw(NODE_B);
    other.request({ typeUrl: CDS });
    assert.deepEqual((await other.next(CDS)).names, ['b-1', 'b-2']);

    const delta = connect(a).delta({ id: 'node-a-3', cluster: 'zone-a' });
    delta.request({ typeUrl: CDS, subscribe: ['b-1', 'a-1'] });
    const response = await delta.next(CDS);
    assert.deepEqual(response.names, ['a-1']);
    assert.deepEqual(response.removed, ['b-1']);
    provider.delete('cluster', 'b-2');
    provider.delete('cluster', 'a-2');
  });

  it('denies a certificate whose identity is not listed, and matches DNS and SPIFFE identities as documented', async () => {
    const stream = connect(unknown).sotw({ id: 'dns-1' });
    stream.request({ typeUrl: CDS });
    const status = await stream.closed;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, 'spiffe://test/unknown is not authorized for xDS', 'its DNS SAN is listed, but a SPIFFE ID takes precedence');
    assert.equal(refusalLog('dns-1')?.identity, 'spiffe://test/unknown');

    const dns = connect(dnsOnly).sotw({ id: 'dns-1' });
    dns.request({ typeUrl: CDS });
    assert.deepEqual((await dns.next(CDS)).names, ['a-1', 'b-1']);
    dns.cancel();
  });

  it('limits streams per identity and names per subscription with RESOURCE_EXHAUSTED', async () => {
    const client = connect(b);
    const held: ReturnType<AdsTestClient['sotw']>[] = [];
    while ((server.streamsByIdentity().get('spiffe://test/b') ?? 0) < 2) {
      const stream = client.sotw({ id: `node-b-${10 + held.length}` });
      stream.request({ typeUrl: CDS });
      await stream.next(CDS);
      held.push(stream);
    }
    assert.equal(server.streamsByIdentity().get('spiffe://test/b'), 2);

    const third = client.delta({ id: 'node-b-3' });
    third.request({ typeUrl: CDS });
    const status = await third.closed;
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(status.details, 'spiffe://test/b already holds 2 xDS streams');
    assert.equal(refusalLog('node-b-3')?.identity, 'spiffe://test/b');

    // Another identity is not affected; a freed slot is usable again.
    const dns = connect(dnsOnly).sotw({ id: 'dns-2' });
    dns.request({ typeUrl: CDS });
    await dns.next(CDS);
    held.at(-1)!.cancel();
    await waitFor(() => server.streamsByIdentity().get('spiffe://test/b') === 1, 'the slot to be released');
    const again = client.sotw({ id: 'node-b-4' });
    again.request({ typeUrl: CDS });
    assert.deepEqual((await again.next(CDS)).names, ['b-1']);

    again.request({ typeUrl: EDS, names: ['b-1', 'b-2', 'b-3', 'b-4', 'b-5', 'b-6'] });
    const tooMany = await again.closed;
    assert.equal(tooMany.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(tooMany.details, 'spiffe://test/b: 6 resource names requested; the limit is 5');
  });

  it('takes ServerCredentials from the caller, and offers plaintext only when asked to, still under the rules', async () => {
    await assert.rejects(startAdsServer({ port: 0, provider, authorization: AUTHORIZATION }), /exactly one of tls, credentials and insecure/);
    const given = await startAdsServer({
      port: 0, provider, authorization: AUTHORIZATION,
      credentials: grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: pki.server.certPem, private_key: pki.server.keyPem }], true),
    });
    const plain = await startAdsServer({ port: 0, provider, authorization: AUTHORIZATION, insecure: true, insecureIdentity: 'spiffe://test/b' });
    // Credentials that do not insist on a client certificate: a stream without one is refused all the same.
    const lax = await startAdsServer({
      port: 0, provider, authorization: AUTHORIZATION,
      credentials: grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: pki.server.certPem, private_key: pki.server.keyPem }], false),
    });
    try {
      const anonymous = new AdsTestClient({ port: lax.port, ca: pki.caCertPem });
      clients.push(anonymous);
      const noCertificate = anonymous.sotw(NODE_A);
      noCertificate.request({ typeUrl: CDS });
      const status = await noCertificate.closed;
      assert.equal(status.code, grpc.status.UNAUTHENTICATED);
      assert.equal(status.details, 'xDS requires a verified client certificate');

      const viaGiven = new AdsTestClient({ port: given.port, ca: pki.caCertPem, cert: a.certPem, key: a.keyPem });
      clients.push(viaGiven);
      const stream = viaGiven.sotw(NODE_A);
      stream.request({ typeUrl: CDS });
      assert.deepEqual((await stream.next(CDS)).names, ['a-1']);

      const viaPlain = new AdsTestClient({ port: plain.port, insecure: true });
      clients.push(viaPlain);
      const asB = viaPlain.sotw(NODE_B);
      asB.request({ typeUrl: CDS });
      assert.deepEqual((await asB.next(CDS)).names, ['b-1'], 'attributed to the configured identity');
      const asA = viaPlain.sotw(NODE_A);
      asA.request({ typeUrl: CDS });
      assert.equal((await asA.closed).code, grpc.status.PERMISSION_DENIED);
    } finally {
      await Promise.all([given.close(), plain.close(), lax.close()]);
    }
  });
});
