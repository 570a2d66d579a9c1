/**
 * Placing long-lived sessions: least_connections counts open tunnels per
 * endpoint (and keeps counting them across a reload that rebuilds the
 * cluster), ring_hash on a header keeps a key on one backend, and health
 * checks and outlier ejection keep new sessions off a failing endpoint while
 * the sessions already there carry on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { startHealthServer, type HealthServer } from '../../src/kit/server/health-server.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { waitFor } from '../helpers/harness.ts';
import { openClient, roundTrip, startWsBackend, startWsProxy, wsCluster, type OpenClient, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

const ROUTES = { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] };

function tally(clients: readonly OpenClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const client of clients) counts[client.backend!] = (counts[client.backend!] ?? 0) + 1;
  return counts;
}

async function closeAll(clients: readonly OpenClient[]): Promise<void> {
  for (const client of clients) client.ws.terminate();
  await Promise.all(clients.map((client) => client.closed));
}

describe('least_connections over WebSocket sessions', () => {
  let backends: WsBackend[];
  let proxy: WsProxy;

  before(async () => {
    backends = await Promise.all(['b0', 'b1', 'b2'].map((name) => startWsBackend(name)));
  });
  after(async () => {
    for (const backend of backends) await backend.close();
  });

  it('places 30 long-lived sessions over 3 backends 10/10/10', async (t) => {
    proxy = await startWsProxy({ clusters: [wsCluster('chat', backends, { lb_policy: 'least_connections' })], websocket: ROUTES });
    t.after(() => proxy.close());
    const url = `ws://127.0.0.1:${proxy.port}/live`;
    const clients = await Promise.all(Array.from({ length: 30 }, () => openClient(url)));
    t.after(() => closeAll(clients));
    assert.deepEqual(tally(clients), { b0: 10, b1: 10, b2: 10 });
    assert.deepEqual(backends.map((backend) => backend.open.size), [10, 10, 10]);
  });

  it('sends the next 30 to the other two when one backend already holds 20, across the reload that added them', async (t) => {
    proxy = await startWsProxy({ clusters: [wsCluster('chat', [backends[0]!], { lb_policy: 'least_connections' })], websocket: ROUTES });
    t.after(() => proxy.close());
    const url = `ws://127.0.0.1:${proxy.port}/live`;
    const first = await Promise.all(Array.from({ length: 20 }, () => openClient(url)));
    t.after(() => closeAll(first));
    assert.deepEqual(tally(first), { b0: 20 });
    // The reload builds a new cluster (its endpoint list changed): the 20 open sessions must still count.
    const config = configSchema.parse({ listeners: [{ name: 'main', port: 0, plaintext: true }], clusters: [wsCluster('chat', backends, { lb_policy: 'least_connections' })], websocket: ROUTES });
    await proxy.proxy.reload({ config: { ...config, listeners: proxy.proxy.config.listeners } });
    const next = await Promise.all(Array.from({ length: 30 }, () => openClient(url)));
    t.after(() => closeAll(next));
    assert.deepEqual(tally(next), { b1: 15, b2: 15 });
    assert.equal(await roundTrip(first[0]!, 'still here'), 'b0:still here', 'the reload cut nothing');
  });
});

describe('ring_hash on a header for WebSocket', () => {
  it('keeps every session with the same header value on one backend', async () => {
    const backends = await Promise.all(['h0', 'h1', 'h2', 'h3'].map((name) => startWsBackend(name)));
    const proxy = await startWsProxy({ clusters: [wsCluster('chat', backends, { lb_policy: 'ring_hash', hash_header: 'x-room' })], websocket: ROUTES });
    const url = `ws://127.0.0.1:${proxy.port}/room`;
    const seen = new Map<string, Set<string>>();
    for (let room = 0; room < 12; room++) {
      for (let i = 0; i < 3; i++) {
        const client = await openClient(url, { headers: { 'x-room': `room-${room}` } });
        if (!seen.has(`room-${room}`)) seen.set(`room-${room}`, new Set());
        seen.get(`room-${room}`)!.add(client.backend!);
        client.ws.close();
        await client.closed;
      }
    }
    for (const [room, where] of seen) assert.equal(where.size, 1, `${room} went to ${[...where].join(', ')}`);
    assert.ok(new Set([...seen.values()].map((where) => [...where][0])).size > 1, 'rooms spread over backends');
    await proxy.close();
    for (const backend of backends) await backend.close();
  });
});

describe('health for WebSocket clusters', () => {
  const hosts = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  let backends: WsBackend[];
  let health: HealthServer[];
  let proxy: WsProxy;

  before(async () => {
    // The kit's gRPC health server on a port of its own, the same port on each backend's host.
    const healthPort = await findPortFreeOnAll(hosts);
    health = await Promise.all(hosts.map((address) => startHealthServer({ address, port: healthPort })));
    backends = await Promise.all(hosts.map((host, i) => startWsBackend(`w${i}`, { host })));
    proxy = await startWsProxy({
      clusters: [wsCluster('chat', backends, {
        lb_policy: 'least_connections',
        health_check: { port: healthPort, interval: '200ms', interval_jitter: '10ms', timeout: '150ms', unhealthy_threshold: 1, healthy_threshold: 1 },
        outlier_detection: { consecutive_gateway_errors: 1, max_ejection_percent: 100, base_ejection_time: '1m' },
      })],
      websocket: ROUTES,
    });
    const cluster = proxy.proxy.clusters.get('chat')!;
    // Healthy, not only available: with every endpoint failing (a first check slow on a busy machine), all are available (panic).
    await waitFor(() => cluster.healthSnapshot().every((view) => view.health === 'healthy'), 'every endpoint to pass its first health check');
  });
  after(async () => {
    await proxy.close();
    for (const backend of backends) await backend.close();
    for (const server of health) await server.close();
  });

  it('keeps new sessions off an endpoint failing its health check, and leaves its open sessions be', async () => {
    const url = `ws://127.0.0.1:${proxy.port}/h`;
    const before = await Promise.all(Array.from({ length: 3 }, () => openClient(url)));
    assert.deepEqual(tally(before), { w0: 1, w1: 1, w2: 1 });
    health[1]!.setServing('', false);
    const cluster = proxy.proxy.clusters.get('chat')!;
    await waitFor(() => cluster.healthSnapshot().find((view) => view.key.startsWith('127.0.0.2'))?.health === 'unhealthy', 'w1 to fail its check');
    const after = await Promise.all(Array.from({ length: 6 }, () => openClient(url)));
    assert.equal(tally(after).w1, undefined);
    const onW1 = before.find((client) => client.backend === 'w1')!;
    assert.equal(await roundTrip(onW1, 'ok?'), 'w1:ok?', 'an unhealthy endpoint\'s open session carries on');
    health[1]!.setServing('', true);
    await waitFor(() => cluster.healthSnapshot().every((view) => view.available), 'w1 to pass again');
    await closeAll([...before, ...after]);
  });

  it('ejects an endpoint whose handshakes fail, so later sessions never try it', async () => {
    const url = `ws://127.0.0.1:${proxy.port}/h`;
    await backends[2]!.kill();
    const clients: OpenClient[] = [];
    for (let i = 0; i < 9; i++) clients.push(await openClient(url));
    assert.equal(tally(clients).w2, undefined, 'every session reached a live backend');
    const failures = proxy.records.filter((record) => record.endpoint?.startsWith('127.0.0.3') && record.result !== 'upgraded');
    assert.equal(failures.length, 0, 'a connect failure moves the upgrade to another endpoint, it does not fail it');
    assert.equal(proxy.proxy.clusters.get('chat')!.healthSnapshot().find((view) => view.key.startsWith('127.0.0.3'))?.ejected, true);
    await closeAll(clients);
  });
});
