/**
 * A reload never cuts an open tunnel: 200 sessions exchange messages while
 * the config gains a route, then its cluster gains an endpoint (the cluster
 * is rebuilt); not one session closes, and every one still answers after.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { waitFor } from '../helpers/harness.ts';
import { openClient, roundTrip, startWsBackend, startWsProxy, wsCluster, type OpenClient, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

const SESSIONS = 200;

describe('reloading under 200 open sessions', () => {
  let backends: WsBackend[];
  let proxy: WsProxy;

  before(async () => {
    backends = await Promise.all(['r0', 'r1', 'r2'].map((name) => startWsBackend(name)));
  });
  after(async () => {
    await proxy?.close();
    for (const backend of backends) await backend.close();
  });

  it('closes no session while a route is added and the cluster is rebuilt', async (t) => {
    const routes = [{ match: { prefix: '/chat' }, cluster: 'chat' }];
    const configWith = (websocketRoutes: unknown[], clusterBackends: WsBackend[]) =>
      configSchema.parse({ listeners: [{ name: 'main', port: 0, plaintext: true }], clusters: [wsCluster('chat', clusterBackends, { lb_policy: 'least_connections' })], websocket: { routes: websocketRoutes } });
    proxy = await startWsProxy({ clusters: [wsCluster('chat', backends.slice(0, 2), { lb_policy: 'least_connections' })], websocket: { routes } });
    const url = `ws://127.0.0.1:${proxy.port}/chat`;
    const clients: OpenClient[] = [];
    for (let i = 0; i < SESSIONS; i += 50) clients.push(...await Promise.all(Array.from({ length: 50 }, () => openClient(url))));
    t.after(() => { for (const client of clients) client.ws.terminate(); });
    let closedEarly = 0;
    for (const client of clients) void client.closed.then(() => { closedEarly++; });

    // Every session keeps exchanging messages, one in flight each, until told to stop.
    let running = true;
    let exchanged = 0;
    const traffic = clients.map(async (client, i) => {
      for (let n = 0; running; n++) {
        const answer = await roundTrip(client, `m${i}-${n}`);
        assert.match(answer, new RegExp(`^r[01]:m${i}-${n}$`));
        exchanged++;
      }
    });
    const listeners = proxy.proxy.config.listeners;
    await waitFor(() => exchanged > SESSIONS * 3, 'traffic on every session');

    await proxy.proxy.reload({ config: { ...configWith([...routes, { match: { prefix: '/news' }, cluster: 'chat' }], backends.slice(0, 2)), listeners } });
    const afterRoute = exchanged;
    await waitFor(() => exchanged > afterRoute + SESSIONS * 3, 'traffic after the route was added');
    await proxy.proxy.reload({ config: { ...configWith(routes, backends), listeners } });
    const afterCluster = exchanged;
    await waitFor(() => exchanged > afterCluster + SESSIONS * 3, 'traffic after the cluster was rebuilt');

    running = false;
    await Promise.all(traffic);
    assert.equal(closedEarly, 0, 'no session closed');
    assert.equal(proxy.proxy.websocket.sessions.size, SESSIONS);
    // The counts moved to the rebuilt cluster: the new endpoint takes the next sessions.
    const next = await Promise.all(Array.from({ length: 10 }, () => openClient(url)));
    assert.deepEqual(new Set(next.map((client) => client.backend)), new Set(['r2']));
    for (const client of next) client.ws.terminate();
  });
});
