/**
 * The Switchyard proxy as an xDS client (issue 7, item 4): a proxy whose
 * routes, clusters and endpoints come only from an ADS server over mTLS
 * (the real one, src/xds/server, serving resources built by
 * src/xds/resources.ts; test/helpers/xds-test-server.ts records the
 * messages), three real Echo backends, and grpc-js clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { packAny, TYPE_URL } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterLoadAssignmentResource, clusterResource, routeConfigurationResource, type XdsRouteSpec } from '../../src/xds/resources.ts';
import { VERSION } from '../../src/version.ts';
import { parseConfigObject, resolveConfig } from '../../src/config/load.ts';
import { scrape, valueOf } from '../helpers/admin.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { destroyStrandedSockets, XdsTestServer } from '../helpers/xds-test-server.ts';
import { echoClient, expectStatus, startBackends, unary, waitFor, type EchoClient } from '../helpers/harness.ts';
import { spread, steadyLoad } from '../helpers/load.ts';
import { closedPort } from '../helpers/ports.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';

const SWITCHYARD = capabilitiesOf('switchyard');
const UNARY = '/switchyard.demo.v1.Echo/Unary';

let pki: TestPki;
let backends: EchoServerHandle[];
let dir: string;

before(async () => {
  pki = await makeTestPki();
  backends = await startBackends(3);
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-xds-'));
});

after(async () => {
  await Promise.all(backends.map((backend) => backend.close()));
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
  destroyStrandedSockets();
});

function assignment(cluster: string, servers: readonly EchoServerHandle[]) {
  return clusterLoadAssignmentResource(cluster, servers.map((server) => ({ host: '127.0.0.1', port: server.port, weight: 1 })));
}

function routes(...specs: XdsRouteSpec[]) {
  return routeConfigurationResource({ name: 'main', routes: specs });
}

/** Clusters, then endpoints, then routes: the make-before-break order a control plane follows. */
function serve(ads: XdsTestServer, options: { clusters?: string[]; endpoints?: Record<string, readonly EchoServerHandle[]>; routes?: XdsRouteSpec[] } = {}): void {
  const clusters = options.clusters ?? ['echo'];
  ads.set('cluster', clusters.map((name) => clusterResource({ name, policy: 'round_robin', connectTimeoutMs: 1_000 }, SWITCHYARD)));
  const endpoints = options.endpoints ?? { echo: backends };
  ads.set('endpoint', Object.entries(endpoints).map(([name, servers]) => assignment(name, servers)));
  ads.set('route', [routes(...(options.routes ?? [{ prefix: '', cluster: 'echo' }]))]);
}

function xdsSection(server: string, extra: Record<string, unknown> = {}) {
  return {
    server,
    tls: { ca_file: pki.caCert, cert_file: pki.client.cert, key_file: pki.client.key },
    node_id: 'proxy-1',
    node_cluster: 'edge',
    route_config: 'main',
    initial_fetch_timeout: '3s',
    // These tests read state-of-the-world requests; delta has its own below.
    protocol: 'sotw',
    ...extra,
  };
}

function startXdsProxy(server: string, extra: Record<string, unknown> = {}): Promise<SecureProxy> {
  return startSecureProxy({
    listeners: [{ name: 'main', port: 0, plaintext: true }],
    admin: { port: 0 },
    xds: xdsSection(server, extra),
  });
}

describe('a proxy fed by xDS', () => {
  let ads: XdsTestServer;
  let proxy: SecureProxy;
  let client: EchoClient;

  before(async () => {
    ads = await XdsTestServer.start({ pki });
    serve(ads);
    proxy = await startXdsProxy(ads.address, { cache_file: path.join(dir, 'main', 'snapshot.json') });
    client = echoClient(`127.0.0.1:${proxy.port}`);
  });

  after(async () => {
    client.close();
    await proxy.close();
    await ads.close();
  });

  test('takes its routes, clusters and endpoints from the control plane; RPCs spread over the 3 backends', async () => {
    assert.equal(proxy.proxy.xds?.startedFrom, 'control-plane');
    assert.deepEqual([...proxy.proxy.clusters.keys()], ['echo']);
    assert.equal(proxy.proxy.clusters.get('echo')!.config.eds?.service_name, 'echo');
    const counts = await spread(client, 30, 1);
    assert.deepEqual([...counts.keys()].sort(), ['backend-0', 'backend-1', 'backend-2']);
    for (const count of counts.values()) assert.equal(count, 10, `round robin: ${JSON.stringify([...counts])}`);

    const first = ads.requests[0]!;
    assert.equal(first.node?.id, 'proxy-1');
    assert.equal(first.node?.cluster, 'edge');
    assert.equal(first.node?.user_agent_name, 'switchyard');
    assert.equal(first.node?.user_agent_version, VERSION);
    assert.equal(ads.server.streamsByIdentity().get('spiffe://test/client'), 1, 'the proxy presents its client certificate, and is admitted under its identity');
    const subscriptions = ads.requests.filter((request) => request.responseNonce === '' && request.stream === 1);
    assert.deepEqual(subscriptions.find((request) => request.type === 'cluster')?.resourceNames, [], 'clusters: wildcard');
    assert.deepEqual(subscriptions.find((request) => request.type === 'route')?.resourceNames, ['main']);
    for (const type of ['cluster', 'endpoint', 'route'] as const) {
      const ack = ads.acks(type).at(-1);
      assert.ok(ack, `an ACK for ${type}`);
      assert.equal(ack.versionInfo, ads.lastVersion(type));
      assert.equal(ack.responseNonce, ads.responses.filter((response) => response.type === type).at(-1)!.nonce);
    }
    assert.deepEqual(ads.acks('endpoint').at(-1)!.resourceNames, ['echo']);
    assert.equal(ads.nacks().length, 0);

    const samples = await scrape(proxy.proxy);
    assert.equal(valueOf(samples, 'switchyard_xds_connected'), 1);
    assert.ok(Math.abs(valueOf(samples, 'switchyard_xds_last_update_timestamp_seconds') - Date.now() / 1000) < 60);
    assert.ok(valueOf(samples, 'switchyard_xds_updates_total', { type: 'route', result: 'ack' }) >= 1);
    assert.equal(valueOf(samples, 'switchyard_xds_updates_total', { result: 'nack' }), 0);
  });

  test('writes the applied snapshot to cache_file', async () => {
    const file = path.join(dir, 'main', 'snapshot.json');
    await waitFor(async () => (await readFile(file, 'utf8').catch(() => '')).includes(`"version": "${ads.lastVersion('endpoint')}"`), 'the snapshot cache');
    const snapshot = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(snapshot.route_config, 'main');
    assert.deepEqual(Object.keys(snapshot.types).sort(), ['cluster', 'endpoint', 'route']);
    assert.equal(snapshot.types.route.resources[0].type_url, TYPE_URL.route);
    assert.equal(typeof snapshot.types.cluster.resources[0].value, 'string', 'Any values as base64');
  });

  test('a reload of the config file (SIGHUP, rotated certificates) keeps the routes and clusters from xDS', async () => {
    const echo = proxy.proxy.clusters.get('echo')!;
    const routeCount = proxy.proxy.config.routes.length;
    const file = await resolveConfig(parseConfigObject({
      listeners: [{ name: 'main', port: proxy.port, plaintext: true }],
      admin: { port: proxy.proxy.adminAddress!.port },
      xds: xdsSection(ads.address, { cache_file: path.join(dir, 'main', 'snapshot.json') }),
      log_level: 'warn',
    }, '(reloaded)'), { baseDir: '/' });
    const summary = await proxy.proxy.reload(file);
    assert.deepEqual(summary.clusters.unchanged, ['echo']);
    assert.equal(proxy.proxy.clusters.get('echo'), echo);
    assert.equal(proxy.proxy.config.routes.length, routeCount);
    assert.equal(proxy.proxy.config.log_level, 'warn', 'the rest of the file is applied');
    assert.equal((await spread(client, 3, 1)).size, 3);
    await assert.rejects(proxy.proxy.reload({ ...file, config: { ...file.config, xds: undefined } }), /xds: the section cannot be removed by a reload; restart the proxy/);
  });

  test('an endpoint added and one removed by EDS reach the proxy under load: zero failed RPCs, no reload', async () => {
    ads.set('endpoint', [assignment('echo', backends.slice(0, 2))]);
    const echo = proxy.proxy.clusters.get('echo')!;
    await waitFor(() => echo.endpoints.size === 2, 'the proxy to drop backend-2');
    const config = proxy.proxy.config;
    const reloads = valueOf(await scrape(proxy.proxy), 'switchyard_reloads_total');

    const load = steadyLoad(client, { concurrency: 8 });
    await waitFor(() => load.answered() > 100, 'load');
    ads.set('endpoint', [assignment('echo', backends)]);
    await waitFor(() => load.count('backend-2') > 20, 'backend-2 to take traffic');
    ads.set('endpoint', [assignment('echo', backends.slice(1))]);
    await waitFor(() => !echo.endpoints.has(`127.0.0.1:${backends[0]!.port}`), 'backend-0 to leave');
    const served = load.count('backend-0');
    await waitFor(() => load.answered() > served + 300, 'more load');
    await load.stop();

    assert.deepEqual(load.failures, []);
    assert.ok(load.count('backend-0') - served <= 8, 'backend-0 takes no new RPCs once removed (at most those in flight)');
    assert.equal(proxy.proxy.clusters.get('echo'), echo, 'the same cluster object: its connections and balancer state are kept');
    assert.equal(proxy.proxy.config, config, 'no reload');
    assert.equal(valueOf(await scrape(proxy.proxy), 'switchyard_reloads_total'), reloads);
  });

  test('a route change reloads without failing in-flight RPCs; unchanged clusters are kept', async () => {
    const other = await startEchoServer({ name: 'other-0' });
    try {
      const echo = proxy.proxy.clusters.get('echo')!;
      const slow = steadyLoad(client, { concurrency: 4, request: { delay_ms: 300 } });
      const load = steadyLoad(client, { concurrency: 4 });
      await waitFor(() => load.answered() > 50, 'load');
      serve(ads, {
        clusters: ['echo', 'other'],
        endpoints: { echo: backends.slice(1), other: [other] },
        routes: [{ path: UNARY, cluster: 'other', timeoutMs: 5_000 }, { prefix: '', cluster: 'echo' }],
      });
      await waitFor(() => load.count('other-0') > 20, 'RPCs to follow the new route');
      await load.stop();
      await slow.stop();
      assert.deepEqual([...load.failures, ...slow.failures], []);
      assert.ok(slow.answered() > 0);
      assert.equal(proxy.proxy.clusters.get('echo'), echo, 'echo did not change: same object');
      assert.deepEqual([...proxy.proxy.clusters.keys()].sort(), ['echo', 'other']);
      const route = proxy.proxy.config.routes[0]!;
      assert.equal(route.match.method, UNARY);
      assert.equal(route.timeout, 5_000, 'max_stream_duration.grpc_timeout_header_max → timeout');
      const streamed = await new Promise<string[]>((resolve, reject) => {
        const seen: string[] = [];
        client.ServerStream({ count: 2 }).on('data', (m: { backend: string }) => seen.push(m.backend)).on('end', () => resolve(seen)).on('error', reject);
      });
      assert.ok(streamed.every((name) => name !== 'other-0'), 'other methods still go to echo');
    } finally {
      // Break before make: the route away from "other" first, then the cluster (a cluster a route uses is never removed).
      ads.set('route', [routes({ prefix: '', cluster: 'echo' })]);
      await waitFor(() => proxy.proxy.config.routes.length === 1, 'the route away from the other cluster');
      serve(ads, { endpoints: { echo: backends } });
      await waitFor(() => proxy.proxy.clusters.size === 1 && proxy.proxy.clusters.get('echo')!.endpoints.size === 3, 'the original config');
      await other.close();
    }
  });

  test('a changed cluster is replaced; RPCs in flight on the old one finish', async () => {
    const old = proxy.proxy.clusters.get('echo')!;
    const slow = steadyLoad(client, { concurrency: 6, request: { delay_ms: 200 } });
    await waitFor(() => old.limits.activeRequests >= 3, 'RPCs in flight');
    ads.set('cluster', [clusterResource({ name: 'echo', policy: 'least_request', connectTimeoutMs: 2_000 }, SWITCHYARD)]);
    await waitFor(() => proxy.proxy.clusters.get('echo') !== old, 'the new cluster');
    const replaced = proxy.proxy.clusters.get('echo')!;
    assert.equal(replaced.config.lb_policy, 'least_request');
    assert.equal(replaced.config.connect_timeout, 2_000);
    assert.equal(replaced.endpoints.size, 3, 'the new cluster starts with the endpoints the proxy has');
    await waitFor(() => slow.answered() > 30, 'RPCs on the new cluster');
    await slow.stop();
    assert.deepEqual(slow.failures, []);
    await waitFor(() => old.endpoints.size === 0, 'the old cluster to close once idle');
    ads.set('cluster', [clusterResource({ name: 'echo', policy: 'round_robin', connectTimeoutMs: 1_000 }, SWITCHYARD)]);
    await waitFor(() => proxy.proxy.clusters.get('echo')!.config.lb_policy === 'round_robin', 'round robin again');
  });

  test('routes to a new cluster wait for its endpoints: no RPC finds it empty', async () => {
    const late = await startEchoServer({ name: 'late-0' });
    try {
      const load = steadyLoad(client, { concurrency: 6 });
      await waitFor(() => load.answered() > 50, 'load');
      ads.set('cluster', ['echo', 'late'].map((name) => clusterResource({ name, policy: 'round_robin', connectTimeoutMs: 1_000 }, SWITCHYARD)));
      // The route comes before the new cluster's endpoints: the proxy holds it until they arrive.
      ads.set('route', [routes({ path: UNARY, cluster: 'late' }, { prefix: '', cluster: 'echo' })]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(proxy.proxy.clusters.has('late'), false, 'not applied while the endpoints are missing');
      ads.set('endpoint', [assignment('echo', backends), assignment('late', [late])]);
      await waitFor(() => load.count('late-0') > 20, 'RPCs on the new route');
      await load.stop();
      assert.deepEqual(load.failures, []);
    } finally {
      ads.set('route', [routes({ prefix: '', cluster: 'echo' })]);
      await waitFor(() => proxy.proxy.config.routes.length === 1, 'the route away from the other cluster');
      serve(ads);
      await waitFor(() => [...proxy.proxy.clusters.keys()].join() === 'echo', 'the original config');
      await late.close();
    }
  });

  test('partial EDS and RDS responses (as a SotW control plane sends them) update what they carry; the rest stays', async () => {
    const other = await startEchoServer({ name: 'other-0' });
    try {
      serve(ads, {
        clusters: ['echo', 'other'],
        endpoints: { echo: backends, other: [other] },
        routes: [{ path: UNARY, cluster: 'other' }, { prefix: '', cluster: 'echo' }],
      });
      await waitFor(() => proxy.proxy.clusters.get('other')?.endpoints.size === 1, 'both clusters');
      const echo = proxy.proxy.clusters.get('echo')!;
      const config = proxy.proxy.config;
      const nacks = ads.nacks().length;
      let acks = ads.acks('endpoint').length;
      // Only "other" changed: the response carries it alone; "echo" missing from it does not mean removed.
      ads.sendRaw('endpoint', [assignment('other', [other, backends[0]!])], 'partial-1');
      await waitFor(() => proxy.proxy.clusters.get('other')!.endpoints.size === 2, 'the change to other');
      await waitFor(() => ads.acks('endpoint').length > acks, 'the ACK of the partial EDS response');
      assert.equal(echo.endpoints.size, 3, 'echo keeps its endpoints');
      acks = ads.acks('endpoint').length;
      ads.sendRaw('endpoint', [assignment('echo', backends.slice(1))], 'partial-2');
      await waitFor(() => echo.endpoints.size === 2, 'the change to echo');
      assert.equal(proxy.proxy.clusters.get('other')!.endpoints.size, 2, 'other keeps its endpoints');
      await waitFor(() => ads.acks('endpoint').length > acks, 'the second ACK');
      // An RDS response without "main" changes nothing (RDS omission means nothing either).
      const routeAcks = ads.acks('route').length;
      ads.sendRaw('route', [], 'partial-r');
      await waitFor(() => ads.acks('route').length > routeAcks, 'the ACK of the empty RDS response');
      assert.equal(proxy.proxy.config, config, 'no reload');
      assert.equal(ads.nacks().length, nacks);
      const { response } = await unary(client, {});
      assert.match(response.backend, /^(other-0|backend-0)$/);
    } finally {
      ads.set('route', [routes({ prefix: '', cluster: 'echo' })]);
      await waitFor(() => proxy.proxy.config.routes.length === 1, 'the route away from the other cluster');
      // The server does not know what the raw responses changed: a real change first, so that the next one is sent.
      serve(ads, { endpoints: { echo: backends.slice(0, 1) } });
      await waitFor(() => [...proxy.proxy.clusters.keys()].join() === 'echo' && proxy.proxy.clusters.get('echo')!.endpoints.size === 1, 'one backend');
      serve(ads);
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 3, 'the original config');
      await waitFor(() => ads.allAnswered(), 'every response to be answered');
      await other.close();
    }
  });

  test('what cannot be applied is NACKed with a precise message; the proxy keeps the last good config', async () => {
    const nacks = ads.nacks().length;
    const routeVersion = ads.lastVersion('route');
    ads.set('route', [routes({ prefix: '', cluster: 'ghost' })]);
    let nack = await ads.waitForRequest((request) => request.type === 'route' && request.errorDetail !== undefined, 'a NACK of the route', ads.requests.length - 1);
    assert.equal(nack.errorDetail!.code, 3);
    assert.equal(nack.errorDetail!.message, 'RouteConfiguration "main": virtual_hosts[0].routes[0].route.cluster: no Cluster named "ghost" (the control plane sent "echo")');
    assert.equal(nack.versionInfo, routeVersion, 'a NACK carries the last good version');
    assert.equal((await spread(client, 6, 1)).size, 3, 'still serving on the last good routes');

    // An unknown policy in the io.switchyard metadata.
    const badCluster = packAny(TYPE_URL.cluster, {
      name: 'echo', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} }, service_name: 'echo' }, lb_policy: 'ROUND_ROBIN',
      metadata: { filter_metadata: { 'io.switchyard': { fields: { lb_policy: { stringValue: 'fastest' } } } } },
    });
    const clusterVersion = ads.lastVersion('cluster');
    const clusterFrom = ads.requests.length;
    ads.set('cluster', [badCluster]);
    nack = await ads.waitForRequest((request) => request.type === 'cluster' && request.errorDetail !== undefined, 'a NACK of the cluster', clusterFrom);
    assert.equal(nack.errorDetail!.message, 'Cluster "echo": metadata.filter_metadata["io.switchyard"].lb_policy: unknown policy "fastest" (expected one of round_robin, least_request, random, ring_hash, peak_ewma, least_connections)');
    assert.equal(nack.versionInfo, clusterVersion);

    const badEndpoints = packAny(TYPE_URL.endpoint, {
      cluster_name: 'echo',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'not-an-ip', port_value: 80 } } } }] }],
    });
    const before = ads.requests.length;
    ads.set('endpoint', [badEndpoints]);
    nack = await ads.waitForRequest((request) => request.type === 'endpoint' && request.errorDetail !== undefined, 'a NACK of the endpoints', before);
    assert.equal(nack.errorDetail!.message, 'ClusterLoadAssignment "echo": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "not-an-ip" is not an IP address');

    assert.equal(ads.nacks().length, nacks + 3);
    assert.equal((await spread(client, 6, 1)).size, 3, 'still serving on the last good config');
    const samples = await scrape(proxy.proxy);
    for (const type of ['route', 'cluster', 'endpoint']) assert.equal(valueOf(samples, 'switchyard_xds_updates_total', { type, result: 'nack' }), 1, type);

    // Good resources are taken again.
    serve(ads, { endpoints: { echo: backends.slice(0, 1) } });
    await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 1, 'a good update after NACKs');
    assert.equal(ads.nacks().length, nacks + 3, 'the good ones are ACKed');
    serve(ads);
    await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 3, 'all backends again');
  });

  test('the control plane going away: the proxy keeps serving, says so in metrics, and reconnects', async () => {
    const load = steadyLoad(client, { concurrency: 8 });
    await waitFor(() => load.answered() > 50, 'load');
    // The versions it accepted last (the NACKed ones are not among them).
    const versions = Object.fromEntries((['route', 'cluster', 'endpoint'] as const).map((type) => [type, ads.acks(type).at(-1)!.versionInfo]));
    await ads.stop();
    await waitFor(async () => valueOf(await scrape(proxy.proxy), 'switchyard_xds_connected') === 0, 'switchyard_xds_connected 0');
    const during = load.answered();
    await waitFor(() => load.answered() > during + 200, 'RPCs while the control plane is down');
    assert.equal(proxy.proxy.xds!.status().state, 'disconnected');

    const requests = ads.requests.length;
    await ads.restart();
    await waitFor(async () => valueOf(await scrape(proxy.proxy), 'switchyard_xds_connected') === 1, 'switchyard_xds_connected 1 again', 15_000);
    await load.stop();
    assert.deepEqual(load.failures, []);

    // On the new stream the proxy says which versions it has.
    const resubscribed = () => ads.requests.slice(requests).filter((request) => request.responseNonce === '');
    await waitFor(() => new Set(resubscribed().map((request) => request.type)).size === 3, 'the three subscriptions on the new stream');
    for (const type of ['route', 'cluster', 'endpoint'] as const) {
      assert.equal(resubscribed().find((request) => request.type === type)?.versionInfo, versions[type], `${type}: the version it holds`);
    }
    assert.ok(resubscribed()[0]!.node, 'node on the first request of the new stream');

    // Changes flow again.
    ads.set('endpoint', [assignment('echo', backends.slice(0, 2))]);
    await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'a change after reconnecting');
    ads.set('endpoint', [assignment('echo', backends)]);
    await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 3, 'all backends again');
  });
});

describe('starting without a reachable control plane', () => {
  test('starts from the cached snapshot, then takes the control plane\'s config when it comes', async () => {
    const cacheFile = path.join(dir, 'cache-start', 'snapshot.json');
    const ads = await XdsTestServer.start({ pki });
    serve(ads, { endpoints: { echo: backends.slice(0, 2) } });
    const first = await startXdsProxy(ads.address, { cache_file: cacheFile });
    await waitFor(async () => (await readFile(cacheFile, 'utf8').catch(() => '')).includes('"endpoint"'), 'the snapshot cache');
    await first.close();
    const port = ads.port;
    await ads.close();

    const started = Date.now();
    const proxy = await startXdsProxy(`127.0.0.1:${port}`, { cache_file: cacheFile, initial_fetch_timeout: '500ms' });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      assert.ok(Date.now() - started >= 450, 'waited initial_fetch_timeout');
      assert.equal(proxy.proxy.xds?.startedFrom, 'cache');
      assert.deepEqual([...(await spread(client, 10, 1)).keys()].sort(), ['backend-0', 'backend-1']);
      const samples = await scrape(proxy.proxy);
      assert.equal(valueOf(samples, 'switchyard_xds_connected'), 0);
      assert.ok(valueOf(samples, 'switchyard_xds_last_update_timestamp_seconds') > 0, 'the cached snapshot\'s time');

      // The control plane comes up, with a third endpoint.
      const echo = proxy.proxy.clusters.get('echo')!;
      serve(ads);
      await ads.restart();
      await waitFor(() => echo.endpoints.size === 3, 'the control plane\'s endpoints', 15_000);
      assert.equal(proxy.proxy.clusters.get('echo'), echo, 'the same cluster: the cache and the control plane agree on it');
      assert.equal(proxy.proxy.xds!.status().state, 'connected');
    } finally {
      client.close();
      await proxy.close();
      await ads.close();
    }
  });

  test('with no cache either: starts without routes (UNAVAILABLE, saying why), then serves once the config arrives', async () => {
    const port = await closedPort();
    const proxy = await startXdsProxy(`127.0.0.1:${port}`, { initial_fetch_timeout: '300ms' });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    let ads: XdsTestServer | undefined;
    try {
      assert.equal(proxy.proxy.xds?.startedFrom, 'none');
      const error = await expectStatus(unary(client, {}));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.match(error.details, /xDS config has not arrived from the control plane \(127\.0\.0\.1:\d+\) yet/);
      assert.equal(proxy.proxy.state, 'ready');

      ads = await XdsTestServer.start({ pki, port });
      serve(ads);
      await waitFor(async () => {
        try {
          await unary(client, {});
          return true;
        } catch {
          return false;
        }
      }, 'RPCs to be served once the config arrives', 15_000);
      assert.deepEqual([...(await spread(client, 9, 1)).keys()].sort(), ['backend-0', 'backend-1', 'backend-2']);
    } finally {
      client.close();
      await proxy.close();
      await ads?.close();
    }
  });

  test('a certificate the control plane does not trust: no config, and the proxy says why', async () => {
    const strangers = await makeTestPki();
    const ads = await XdsTestServer.start({ pki });
    serve(ads);
    try {
      const proxy = await startSecureProxy({
        listeners: [{ name: 'main', port: 0, plaintext: true }],
        xds: { ...xdsSection(ads.address, { initial_fetch_timeout: '300ms' }), tls: { ca_file: pki.caCert, cert_file: strangers.client.cert, key_file: strangers.client.key } },
      });
      try {
        assert.equal(proxy.proxy.xds?.startedFrom, 'none');
        assert.equal(ads.requests.length, 0, 'refused at the handshake');
        assert.match(proxy.proxy.xds!.status().lastError ?? '', /UNAVAILABLE/);
      } finally {
        await proxy.close();
      }
    } finally {
      await ads.close();
      await strangers.cleanup();
    }
  });
});

describe('a proxy fed by delta xDS', () => {
  test('subscribes incrementally, applies changes, and after a control-plane restart is not sent again what it holds', async () => {
    const ads = await XdsTestServer.start({ pki });
    serve(ads);
    const proxy = await startXdsProxy(ads.address, { protocol: 'auto' });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      assert.equal(proxy.proxy.xds!.status().protocol, 'delta');
      assert.deepEqual([...(await spread(client, 9, 1)).keys()].sort(), ['backend-0', 'backend-1', 'backend-2']);
      assert.ok(ads.requests.length > 0 && ads.requests.every((request) => request.protocol === 'delta'));
      const subscriptions = ads.requests.filter((request) => request.responseNonce === '');
      assert.deepEqual(subscriptions.find((request) => request.type === 'cluster')?.resourceNames, ['*'], 'clusters: the wildcard, explicitly');
      assert.deepEqual(subscriptions.find((request) => request.type === 'route')?.resourceNames, ['main']);
      await waitFor(() => ads.allAnswered(), 'every response answered');
      assert.equal(ads.nacks().length, 0);

      ads.set('endpoint', [assignment('echo', backends.slice(0, 2))]);
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'an endpoint change');
      await waitFor(() => ads.allAnswered(), 'the change to be ACKed');
      const held = ads.responses.filter((response) => response.type === 'endpoint').at(-1)!.versions.echo!;

      // A replica restart: the new stream names what the proxy holds, and nothing unchanged comes back.
      const from = ads.requests.length;
      await ads.restart();
      const resubscribed = await ads.waitForRequest((request) => request.type === 'endpoint' && request.responseNonce === '', 'the EDS subscription on the new stream', from, 15_000);
      assert.deepEqual(resubscribed.initialVersions, { echo: held });
      await waitFor(() => proxy.proxy.xds!.status().state === 'connected', 'reconnected');
      await waitFor(() => ads.allAnswered(), 'the new stream to settle');
      const resent = ads.responses.filter((response) => response.stream > resubscribed.stream - 1 && response.type === 'endpoint' && response.names.includes('echo'));
      assert.deepEqual(resent, [], 'the unchanged ClusterLoadAssignment was not sent again');

      ads.set('endpoint', [assignment('echo', backends)]);
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 3, 'a change after the restart');
    } finally {
      client.close();
      await proxy.close();
      await ads.close();
    }
  });

  test('auto falls back to state of the world when the control plane does not serve delta', async () => {
    const ads = await XdsTestServer.start({ pki, sotwOnly: true });
    serve(ads);
    const proxy = await startXdsProxy(ads.address, { protocol: 'auto' });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      assert.equal(proxy.proxy.xds!.status().protocol, 'sotw');
      assert.equal(proxy.proxy.xds?.startedFrom, 'control-plane');
      assert.equal((await spread(client, 6, 1)).size, 3);
      assert.ok(ads.requests.every((request) => request.protocol === 'sotw'));
    } finally {
      client.close();
      await proxy.close();
      await ads.close();
    }
  });
});
