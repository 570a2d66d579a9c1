// The ADS server's xDS protocol, over real mTLS with a raw ADS client: ACK/NACK, subscriptions,
// removal, reconnect, delta, push order and debouncing.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadEchoPackage, startEchoServer } from '../../src/demo/echo-service.ts';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterResource, listenerResource, routeConfigurationResource } from '../../src/xds/resources.ts';
import { startAdsServer, type AdsServer, type AdsServerOptions, type NackEvent } from '../../src/xds/server/ads-server.ts';
import { AdsTestClient, type DecodedResource, type SotwResponse } from '../helpers/ads-client.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { MutableProvider } from '../helpers/xds-provider.ts';

const CDS = TYPE_URL.cluster;
const EDS = TYPE_URL.endpoint;
const LDS = TYPE_URL.listener;
const RDS = TYPE_URL.route;
const GRPC = capabilitiesOf('grpc-node-js');
const NODE = { id: 'frontend-1', cluster: 'frontend', user_agent_name: 'grpc-node-js' };

const cluster = (name: string, connectTimeoutMs = 1_000) => clusterResource({ name, policy: 'round_robin', connectTimeoutMs }, GRPC);
const listener = (name: string, routeConfig: string) => listenerResource({ name, routeConfig });
const routes = (name: string, target: string) => routeConfigurationResource({ name, routes: [{ prefix: '/', cluster: target }] });
const setEndpoints = (provider: MutableProvider, name: string, ...ports: number[]) =>
  provider.setEndpoints(name, ports.map((port) => ({ host: '10.0.0.1', port, weight: 1 })));

/** The endpoint ports of a decoded ClusterLoadAssignment. */
function portsOf(resource: DecodedResource | undefined): number[] {
  const localities = (resource?.message.endpoints ?? []) as { lb_endpoints?: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[];
  return localities.flatMap((l) => l.lb_endpoints ?? []).map((e) => e.endpoint.address.socket_address.port_value).sort((a, b) => a - b);
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

describe('xDS protocol', () => {
  let pki: TestPki;

  before(async () => {
    pki = await makeTestPki();
  });
  after(async () => {
    await pki.cleanup();
  });

  interface Setup {
    readonly provider: MutableProvider;
    readonly server: AdsServer;
    readonly ads: AdsTestClient;
    readonly nacks: NackEvent[];
    readonly logs: Record<string, unknown>[];
  }

  async function setup(t: TestContext, options: Partial<AdsServerOptions> = {}): Promise<Setup> {
    const provider = new MutableProvider();
    const nacks: NackEvent[] = [];
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const server = await startAdsServer({
      port: 0,
      tls: { caPem: pki.caCertPem, certPem: pki.server.certPem, keyPem: pki.server.keyPem },
      provider,
      authorization: { identities: [{ identity: 'spiffe://test/client', node_ids: ['frontend-*'], clusters: ['*'], listeners: ['*'] }] },
      debounceMs: 5,
      logger,
      onNack: (event) => nacks.push(event),
      ...options,
    });
    const ads = new AdsTestClient({ port: server.port, ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem });
    t.after(async () => {
      ads.close();
      await server.close();
    });
    return { provider, server, ads, nacks, logs };
  }

  it('ACK: a fresh version and nonce per response; only the latest nonce counts as an ACK', async (t) => {
    const { provider, server, ads } = await setup(t);
    provider.set('cluster', cluster('a'));
    provider.set('cluster', cluster('b'));
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: CDS });
    const first = await stream.next(CDS);
    assert.deepEqual(first.names, ['a', 'b']);
    assert.notEqual(first.versionInfo, '');
    assert.notEqual(first.nonce, '');

    // A NACK that names an old nonce is stale: neither an ACK nor a NACK.
    stream.request({ typeUrl: CDS, nonce: 'not-the-latest', error: 'stale complaint' });
    await waitFor(() => server.stats.staleRequests === 1, 'the stale request');
    assert.equal(server.stats.nacks, 0);
    stream.ack(first);
    await waitFor(() => server.stats.acks === 1, 'the ACK');

    provider.set('cluster', cluster('c'));
    const second = await stream.next(CDS);
    assert.deepEqual(second.names, ['a', 'b', 'c']);
    assert.notEqual(second.versionInfo, first.versionInfo);
    assert.notEqual(second.nonce, first.nonce);
    stream.ack(second);
    await waitFor(() => server.stats.acks === 2, 'the second ACK');
  });

  it('NACK: logged and counted, the rejected version is not re-sent, a later change is', async (t) => {
    const { provider, server, ads, nacks, logs } = await setup(t);
    provider.set('cluster', cluster('a'));
    setEndpoints(provider, 'a', 1);
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: CDS });
    stream.ack(await stream.next(CDS));
    stream.request({ typeUrl: EDS, names: ['a'] });
    const good = await stream.next(EDS);
    assert.deepEqual(portsOf(good.resources[0]), [1]);
    stream.ack(good);

    setEndpoints(provider, 'a', 2);
    const bad = await stream.next(EDS);
    assert.deepEqual(portsOf(bad.resources[0]), [2]);
    stream.nack(bad, 'endpoint 10.0.0.1:2 is not acceptable');
    await waitFor(() => server.stats.nacks === 1, 'the NACK');
    assert.deepEqual(nacks, [{
      protocol: 'sotw', identity: 'spiffe://test/client', nodeId: 'frontend-1', type: 'endpoint', typeUrl: EDS,
      version: bad.versionInfo, keptVersion: good.versionInfo, message: 'endpoint 10.0.0.1:2 is not acceptable', resourceNames: ['a'],
    }]);
    const line = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('xDS NACK'));
    assert.equal(line?.node, 'frontend-1');
    assert.equal(line?.type, 'endpoint');
    assert.equal(line?.version, bad.versionInfo);
    assert.equal(line?.error, 'endpoint 10.0.0.1:2 is not acceptable');

    // Another type changes: that is the next response; the rejected EDS is not re-sent with it.
    provider.set('cluster', cluster('b'));
    const cds = await stream.next();
    assert.equal(cds.typeUrl, CDS);
    stream.ack(cds);
    await waitFor(() => server.stats.acks === 3, 'the CDS ACK');
    assert.deepEqual(stream.queued(EDS), []);

    setEndpoints(provider, 'a', 3);
    const fixed = await stream.next(EDS);
    assert.deepEqual(portsOf(fixed.resources[0]), [3]);
    assert.notEqual(fixed.versionInfo, bad.versionInfo);
    assert.notEqual(fixed.versionInfo, good.versionInfo);
    stream.ack(fixed);
    assert.equal(server.stats.nacks, 1);
  });

  it('a Cluster change NACKed for the routes the client still has is offered again once it ACKs the new routes', async (t) => {
    const { provider, ads } = await setup(t);
    provider.batch(() => {
      for (const name of ['a', 'b']) provider.set('cluster', cluster(name));
      provider.set('listener', listener('echo', 'main'));
      provider.set('route', routes('main', 'b'));
    });
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: CDS });
    stream.ack(await stream.next(CDS));
    stream.request({ typeUrl: RDS, names: ['main'] });
    stream.ack(await stream.next(RDS));

    // Cluster b goes, and the route moves to a: pushed CDS first (make before break).
    provider.batch(() => {
      provider.delete('cluster', 'b');
      provider.set('route', routes('main', 'a'));
    });
    const removal = await stream.next(CDS);
    assert.deepEqual(removal.names, ['a']);
    stream.nack(removal, 'the routes still name cluster "b"');
    const rds = await stream.next(RDS);
    stream.ack(rds);
    const again = await stream.next(CDS);
    assert.deepEqual(again.names, ['a'], 'offered again once the routes that no longer name b are accepted');
    assert.equal(again.versionInfo, removal.versionInfo);
    stream.ack(again);
  });

  it('delta NACK: not re-sent until the resource changes again', async (t) => {
    const { provider, server, ads, nacks } = await setup(t);
    setEndpoints(provider, 'a', 1);
    provider.set('cluster', cluster('a'));
    const stream = ads.delta(NODE);
    stream.request({ typeUrl: EDS, subscribe: ['a'] });
    stream.ack(await stream.next(EDS));
    stream.request({ typeUrl: CDS, subscribe: ['a'] });
    stream.ack(await stream.next(CDS));
    setEndpoints(provider, 'a', 2);
    const bad = await stream.next(EDS);
    stream.nack(bad, 'no');
    await waitFor(() => server.stats.nacks === 1, 'the NACK');
    assert.equal(nacks[0]?.protocol, 'delta');
    assert.equal(nacks[0]?.version, bad.systemVersionInfo);
    provider.set('cluster', cluster('a', 2_000));
    assert.equal((await stream.next()).typeUrl, CDS, 'the CDS change, not the rejected EDS');
    setEndpoints(provider, 'a', 3);
    const fixed = await stream.next(EDS);
    assert.deepEqual(portsOf(fixed.resources[0]), [3]);
  });

  it('wildcard and named subscriptions', async (t) => {
    const { provider, ads } = await setup(t);
    for (const name of ['c1', 'c2']) provider.set('cluster', cluster(name));
    for (const name of ['c1', 'c2']) setEndpoints(provider, name, 1);
    provider.set('listener', listener('l1', 'r1'));
    provider.set('listener', listener('l2', 'r2'));

    const wildcard = ads.sotw(NODE);
    wildcard.request({ typeUrl: LDS });
    wildcard.request({ typeUrl: CDS, names: ['*'] });
    wildcard.request({ typeUrl: EDS, names: ['c1'] });
    assert.deepEqual((await wildcard.next(LDS)).names, ['l1', 'l2'], 'no names on the first request: wildcard');
    assert.deepEqual((await wildcard.next(CDS)).names, ['c1', 'c2'], '"*": wildcard');
    assert.deepEqual((await wildcard.next(EDS)).names, ['c1'], 'EDS is always named');

    const named = ads.sotw({ ...NODE, id: 'frontend-2' });
    named.request({ typeUrl: LDS, names: ['l1'] });
    named.request({ typeUrl: CDS, names: ['c2'] });
    assert.deepEqual((await named.next(LDS)).names, ['l1']);
    assert.deepEqual((await named.next(CDS)).names, ['c2']);
  });

  it('a newly requested name is answered although unchanged', async (t) => {
    const { provider, ads } = await setup(t);
    setEndpoints(provider, 'a', 1);
    setEndpoints(provider, 'b', 2);
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: EDS, names: ['a'] });
    const first = await stream.next(EDS);
    assert.deepEqual(first.names, ['a']);
    stream.ack(first, ['a', 'b']);
    const both = await stream.next(EDS);
    assert.deepEqual(both.names, ['b'], 'EDS: only what the client lacks (it holds a)');
    stream.ack(both, ['a']);
    // Dropping b sends nothing; asking for it again is answered at once (same content, same version: the held set).
    stream.request({ typeUrl: EDS, names: ['a', 'b'] });
    const again = await stream.next(EDS);
    assert.deepEqual(again.names, ['b']);
    assert.equal(again.versionInfo, both.versionInfo);
  });

  it('a subscribed name that does not exist is pushed when it appears (SotW and delta)', async (t) => {
    const { provider, ads } = await setup(t);
    setEndpoints(provider, 'a', 1);
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: EDS, names: ['a', 'ghost'] });
    const first = await stream.next(EDS);
    assert.deepEqual(first.names, ['a']);
    stream.ack(first);
    const delta = ads.delta({ ...NODE, id: 'frontend-2' });
    delta.request({ typeUrl: EDS, subscribe: ['ghost'] });
    const absent = await delta.next(EDS);
    assert.deepEqual(absent.removed, ['ghost'], 'delta says at once that it does not exist');
    delta.ack(absent);

    setEndpoints(provider, 'ghost', 7);
    const appeared = await stream.next(EDS);
    assert.deepEqual(appeared.names, ['ghost'], 'SotW EDS: a is unchanged, not resent');
    const pushed = await delta.next(EDS);
    assert.deepEqual(pushed.names, ['ghost']);
    assert.deepEqual(portsOf(pushed.resources[0]), [7]);
  });

  it('SotW EDS and RDS pushes carry only what changed; CDS and LDS pushes the complete set', async (t) => {
    const { provider, ads } = await setup(t);
    provider.set('cluster', cluster('a'));
    provider.set('cluster', cluster('b'));
    setEndpoints(provider, 'a', 1);
    setEndpoints(provider, 'b', 2);
    provider.set('route', routes('r1', 'a'));
    provider.set('route', routes('r2', 'b'));
    provider.set('listener', listener('l1', 'r1'));
    provider.set('listener', listener('l2', 'r2'));
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: CDS });
    stream.request({ typeUrl: LDS });
    stream.request({ typeUrl: EDS, names: ['a', 'b'] });
    stream.request({ typeUrl: RDS, names: ['r1', 'r2'] });
    const firstEds = await stream.next(EDS);
    assert.deepEqual(firstEds.names, ['a', 'b'], 'the first answer carries every requested name');
    stream.ack(firstEds);
    for (const type of [CDS, LDS, RDS]) stream.ack(await stream.next(type));

    setEndpoints(provider, 'b', 3);
    const eds = await stream.next(EDS);
    assert.deepEqual(eds.names, ['b'], 'one of the two subscribed clusters changed: only it is sent');
    assert.deepEqual(portsOf(eds.resources[0]), [3]);
    assert.notEqual(eds.versionInfo, firstEds.versionInfo);
    stream.ack(eds);

    provider.set('route', routes('r1', 'b'));
    const rds = await stream.next(RDS);
    assert.deepEqual(rds.names, ['r1']);
    stream.ack(rds);

    provider.set('cluster', cluster('a', 2_000));
    provider.set('listener', listener('l1', 'r2'));
    const cds = await stream.next(CDS);
    assert.deepEqual(cds.names, ['a', 'b'], 'Cluster responses carry the complete set');
    stream.ack(cds);
    const lds = await stream.next(LDS);
    assert.deepEqual(lds.names, ['l1', 'l2'], 'Listener responses carry the complete set');
    stream.ack(lds);

    // Newly requested names are answered even unchanged, and alone.
    stream.request({ typeUrl: EDS, names: ['b'] });
    stream.request({ typeUrl: EDS, names: ['a', 'b'] });
    const resubscribed = await stream.next(EDS);
    assert.deepEqual(resubscribed.names, ['a']);
    stream.ack(resubscribed);
    await sleep(50);
    assert.deepEqual(stream.queued(), [], 'nothing else was sent');
  });

  it('removal: full-set types drop the resource; for RDS/EDS nothing is sent (the parent stops naming it)', async (t) => {
    const { provider, ads } = await setup(t);
    provider.set('cluster', cluster('a'));
    provider.set('cluster', cluster('b'));
    setEndpoints(provider, 'a', 1);
    setEndpoints(provider, 'b', 2);
    provider.set('route', routes('r1', 'a'));
    provider.set('route', routes('r2', 'b'));
    // Route configurations are served to identities allowed a listener that names them.
    provider.set('listener', listener('l1', 'r1'));
    provider.set('listener', listener('l2', 'r2'));
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: CDS });
    stream.request({ typeUrl: EDS, names: ['a', 'b'] });
    stream.request({ typeUrl: RDS, names: ['r1', 'r2'] });
    for (const type of [CDS, EDS, RDS]) stream.ack(await stream.next(type));

    provider.batch(() => {
      provider.delete('cluster', 'b');
      provider.delete('endpoint', 'b');
      provider.delete('route', 'r2');
    });
    const cds = await stream.next(CDS);
    assert.deepEqual(cds.names, ['a']);
    stream.ack(cds);
    await sleep(50);
    assert.deepEqual(stream.queued(), [], 'no EDS or RDS response: SotW cannot say one is gone');
    // The client drops b with its cluster and unsubscribes: nothing is sent either.
    stream.request({ typeUrl: EDS, names: ['a'] });
    stream.request({ typeUrl: RDS, names: ['r1'] });
    await sleep(50);
    assert.deepEqual(stream.queued(), []);

    provider.delete('cluster', 'a');
    assert.deepEqual((await stream.next(CDS)).names, [], 'an empty CDS response: no clusters at all');
  });

  it('reconnect with a known version: the current set is sent; delta initial_resource_versions skip what is unchanged', async (t) => {
    const { provider, ads } = await setup(t);
    provider.set('cluster', cluster('a'));
    provider.set('cluster', cluster('b'));
    const first = ads.sotw(NODE);
    first.request({ typeUrl: CDS });
    const seen = await first.next(CDS);
    first.ack(seen);
    first.cancel();
    await first.closed;

    const same = ads.sotw(NODE);
    same.request({ typeUrl: CDS, versionInfo: seen.versionInfo });
    const resent = await same.next(CDS);
    assert.deepEqual(resent.names, ['a', 'b']);
    assert.equal(resent.versionInfo, seen.versionInfo, 'the same set has the same version on any stream');
    same.cancel();
    await same.closed;

    provider.set('cluster', cluster('c'));
    const later = ads.sotw(NODE);
    later.request({ typeUrl: CDS, versionInfo: seen.versionInfo });
    const current = await later.next(CDS);
    assert.deepEqual(current.names, ['a', 'b', 'c']);
    assert.notEqual(current.versionInfo, seen.versionInfo);

    setEndpoints(provider, 'a', 1);
    setEndpoints(provider, 'b', 2);
    const delta = ads.delta(NODE);
    delta.request({ typeUrl: EDS, subscribe: ['a', 'b'] });
    const held = await delta.next(EDS);
    delta.ack(held);
    delta.cancel();
    await delta.closed;
    setEndpoints(provider, 'b', 3);
    const again = ads.delta(NODE);
    again.request({ typeUrl: EDS, subscribe: ['a', 'b', 'gone'], initialVersions: { ...held.versions, gone: 'v0' } });
    const diff = await again.next(EDS);
    assert.deepEqual(diff.names, ['b'], 'a is unchanged: not resent');
    assert.deepEqual(portsOf(diff.resources[0]), [3]);
    assert.deepEqual(diff.removed, ['gone']);
  });

  it('delta subscribe, unsubscribe and removed_resources', async (t) => {
    const { provider, ads } = await setup(t);
    for (const name of ['a', 'b', 'c']) setEndpoints(provider, name, 1);
    const stream = ads.delta(NODE);
    stream.request({ typeUrl: EDS, subscribe: ['a'] });
    const a = await stream.next(EDS);
    assert.deepEqual(a.names, ['a']);
    stream.ack(a);
    stream.request({ typeUrl: EDS, subscribe: ['b'] });
    const b = await stream.next(EDS);
    assert.deepEqual(b.names, ['b'], 'only the new subscription');
    assert.deepEqual(b.removed, []);
    stream.ack(b);
    // Unsubscribing sends nothing: the next response is the answer to the next subscription.
    stream.request({ typeUrl: EDS, unsubscribe: ['a'] });
    stream.request({ typeUrl: EDS, subscribe: ['c'] });
    const c = await stream.next(EDS);
    assert.deepEqual([c.names, c.removed], [['c'], []]);
    stream.ack(c);
    provider.batch(() => {
      setEndpoints(provider, 'a', 9);
      provider.delete('endpoint', 'b');
    });
    const removal = await stream.next(EDS);
    assert.deepEqual([removal.names, removal.removed], [[], ['b']], 'a is no longer subscribed; b is gone');
    stream.ack(removal);

    const wildcard = ads.delta({ ...NODE, id: 'frontend-2' });
    provider.set('cluster', cluster('x'));
    provider.set('cluster', cluster('y'));
    wildcard.request({ typeUrl: CDS });
    const all = await wildcard.next(CDS);
    assert.deepEqual(all.names, ['x', 'y']);
    wildcard.ack(all);
    provider.delete('cluster', 'y');
    const gone = await wildcard.next(CDS);
    assert.deepEqual([gone.names, gone.removed], [[], ['y']]);
    wildcard.ack(gone);
    wildcard.request({ typeUrl: CDS, subscribe: ['x', 'missing'] });
    const explicit = await wildcard.next(CDS);
    assert.deepEqual([explicit.names, explicit.removed], [['x'], ['missing']]);
    wildcard.ack(explicit);
    wildcard.request({ typeUrl: CDS, unsubscribe: ['x', 'missing'] });
    const unsubscribed = await wildcard.next(CDS);
    assert.deepEqual([unsubscribed.names, unsubscribed.removed], [['x'], ['missing']], 'under a wildcard: x is still covered, missing is not');
  });

  it('pushes clusters and endpoints before listeners and routes when everything changes at once', async (t) => {
    const { provider, ads } = await setup(t);
    const changeAll = (version: number) => provider.batch(() => {
      provider.set('route', routes('r', `c${version}`));
      provider.set('listener', listener(`l${version}`, 'r'));
      setEndpoints(provider, 'c', version);
      provider.set('cluster', cluster('c', 1_000 + version));
    });
    changeAll(1);
    const sotw = ads.sotw(NODE);
    sotw.request({ typeUrl: LDS });
    sotw.request({ typeUrl: RDS, names: ['r'] });
    sotw.request({ typeUrl: CDS });
    sotw.request({ typeUrl: EDS, names: ['c'] });
    for (const type of [LDS, RDS, CDS, EDS]) sotw.ack(await sotw.next(type));
    const delta = ads.delta({ ...NODE, id: 'frontend-delta' });
    delta.request({ typeUrl: LDS });
    delta.request({ typeUrl: RDS, subscribe: ['r'] });
    delta.request({ typeUrl: CDS });
    delta.request({ typeUrl: EDS, subscribe: ['c'] });
    for (const type of [LDS, RDS, CDS, EDS]) delta.ack(await delta.next(type));

    changeAll(2);
    const next4 = async (stream: { next(): Promise<{ typeUrl: string }> }) => [await stream.next(), await stream.next(), await stream.next(), await stream.next()].map((r) => r.typeUrl);
    assert.deepEqual(await next4(sotw), [CDS, EDS, LDS, RDS]);
    assert.deepEqual(await next4(delta), [CDS, EDS, LDS, RDS]);

    // A listener change waits while a cluster change is still to be sent behind an unacknowledged CDS response.
    for (const r of sotw.responses.slice(-4)) sotw.ack(r);
    provider.set('cluster', cluster('c', 5_000));
    const inflight = await sotw.next(CDS);
    const reads = provider.reads;
    provider.batch(() => {
      provider.set('cluster', cluster('c', 6_000));
      provider.set('listener', listener('l-other', 'r'));
    });
    await waitFor(() => provider.reads > reads, 'the push attempt');
    assert.deepEqual(sotw.queued(), [], 'nothing sent while the CDS response is unacknowledged');
    sotw.ack(inflight);
    assert.deepEqual([(await sotw.next()).typeUrl, (await sotw.next()).typeUrl], [CDS, LDS]);
  });

  it('debounces: 50 rapid endpoint changes become a handful of pushes', async (t) => {
    const { provider, ads, server } = await setup(t, { debounceMs: 100, maxDebounceMs: 1_000 });
    setEndpoints(provider, 'a', 1);
    const stream = ads.sotw(NODE);
    stream.request({ typeUrl: EDS, names: ['a'] });
    stream.ack(await stream.next(EDS));
    const before = server.stats.responses;
    // The client ACKs as it goes, as a real one does, until it sees the last change.
    const received: SotwResponse[] = [];
    const acker = (async () => {
      for (;;) {
        const response = await stream.next(EDS, 10_000);
        received.push(response);
        stream.ack(response);
        if (portsOf(response.resources[0])[0] === 1_050) return;
      }
    })();
    for (let i = 1; i <= 50; i++) {
      setEndpoints(provider, 'a', 1_000 + i);
      await sleep(2);
    }
    await acker;
    const pushes = server.stats.responses - before;
    assert.equal(pushes, received.length);
    assert.ok(pushes >= 1 && pushes <= 5, `expected a handful of pushes, got ${pushes}`);
    t.diagnostic(`50 changes over ${received.length} push(es)`);
  });

  it('ends a stream that sends no request, and ends every stream with UNAVAILABLE on close', async (t) => {
    const { provider, server, ads } = await setup(t, { firstRequestTimeoutMs: 200 });
    provider.set('cluster', cluster('a'));
    const silent = ads.sotw(NODE);
    const status = await silent.closed;
    assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(status.details, 'no DiscoveryRequest within 200 ms');

    const sotw = ads.sotw(NODE);
    sotw.request({ typeUrl: CDS });
    const delta = ads.delta(NODE);
    delta.request({ typeUrl: CDS });
    await Promise.all([sotw.next(CDS), delta.next(CDS)]);
    assert.equal(server.streamCount, 2);
    await server.close();
    for (const stream of [sotw, delta]) {
      const closed = await stream.closed;
      assert.equal(closed.code, grpc.status.UNAVAILABLE);
      assert.equal(closed.details, 'xDS server shutting down');
    }
    assert.equal(server.streamCount, 0);
  });
});

describe('a real @grpc/grpc-js-xds client', () => {
  it('accepts what the server sends (no NACK) and follows an endpoint change', async (t) => {
    const backends = await Promise.all([0, 1, 2].map((i) => startEchoServer({ name: `backend-${i}`, host: '127.0.0.1' })));
    const provider = new MutableProvider();
    provider.set('listener', listener('echo', 'echo-routes'));
    provider.set('route', routes('echo-routes', 'echo'));
    provider.setByCapability('cluster', 'echo', (capabilities) => clusterResource({ name: 'echo', policy: 'least_request', connectTimeoutMs: 1_000 }, capabilities));
    const endpointsOf = (count: number) => backends.slice(0, count).map((b) => ({ host: '127.0.0.1', port: b.port, weight: 1, zone: 'zone-1' }));
    provider.setEndpoints('echo', endpointsOf(2));
    // gRPC's xDS client cannot speak TLS to a control plane: this is the relay's plaintext mode.
    const server = await startAdsServer({
      port: 0, insecure: true, insecureIdentity: 'local', provider, debounceMs: 5,
      authorization: { identities: [{ identity: 'local', node_ids: ['proxyless-*'], clusters: ['*'], listeners: ['*'] }] },
    });
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: `127.0.0.1:${server.port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'proxyless-1', cluster: 'proxyless', locality: {} },
    });
    const xds = await import('@grpc/grpc-js-xds');
    xds.register();
    const { Echo } = loadEchoPackage();
    const client = new Echo('xds:///echo', grpc.credentials.createInsecure());
    t.after(async () => {
      client.close();
      await server.close(500);
      await Promise.all(backends.map((b) => b.close()));
    });
    const call = () => new Promise<string>((resolve, reject) => {
      client.Unary({}, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error: grpc.ServiceError | null, response?: { backend: string }) => (error ? reject(error) : resolve(response!.backend)));
    });
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await call());
    assert.deepEqual([...seen].sort(), ['backend-0', 'backend-1']);
    provider.setEndpoints('echo', endpointsOf(3));
    const deadline = Date.now() + 5_000;
    while (!seen.has('backend-2')) {
      if (Date.now() > deadline) throw new Error('the new endpoint never received an RPC');
      seen.add(await call());
    }
    assert.equal(server.stats.nacks, 0);
    assert.ok(server.stats.acks >= 5, `ACKs: ${server.stats.acks}`);
  });
});
