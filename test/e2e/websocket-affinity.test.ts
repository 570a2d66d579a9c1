/**
 * Cookie affinity that survives a lost pod: a reconnect carrying the cookie
 * reaches its backend; once that backend is gone (a static reload, an
 * EndpointSlice change) the stale cookie gets a live backend and a new
 * cookie, never a 502; a tampered cookie is ignored; `strict` answers 503.
 * The EndpointSlices come from the fake Kubernetes API server
 * (test/helpers/fake-kube-api.ts): no cluster runs where these tests run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import type { ConfigSecrets } from '../../src/config/load.ts';
import { FakeKubeApi, endpointSlice } from '../helpers/fake-kube-api.ts';
import { waitFor } from '../helpers/harness.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { openClient, refusedStatus, roundTrip, startWsBackend, startWsProxy, wsCluster, type OpenClient, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

const SECRETS: ConfigSecrets = { listeners: new Map(), clusters: new Map(), affinityKey: Buffer.from('an affinity key of at least thirty-two bytes') };
const COOKIE = 'chat-affinity';

function routes(strict = false) {
  return { affinity_key_file: '(given in secrets)', routes: [{ match: { prefix: '/' }, cluster: 'chat', affinity: { cookie: { name: COOKIE, secure: false, max_age: '1h' }, strict } }] };
}

/** The cookie pair a browser would send back, from the 101's Set-Cookie; undefined when there was none. */
function cookieOf(client: OpenClient): string | undefined {
  const fields = client.headers['set-cookie'] ?? [];
  const ours = fields.find((field) => field.startsWith(`${COOKIE}=`));
  return ours?.split(';')[0];
}

/** Reconnects `count` times with `cookie`; every upgrade must succeed. */
async function reconnect(url: string, cookie: string, count: number): Promise<OpenClient[]> {
  const clients: OpenClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await openClient(url, { headers: { cookie: `theme=dark; ${cookie}` } });
    clients.push(client);
    client.ws.terminate();
  }
  return clients;
}

describe('affinity cookies across a static reload', () => {
  let backends: WsBackend[];
  let proxy: WsProxy;
  let url: string;

  before(async () => {
    backends = await Promise.all(['a0', 'a1', 'a2'].map((name) => startWsBackend(name)));
    proxy = await startWsProxy({ clusters: [wsCluster('chat', backends, { lb_policy: 'least_connections' })], websocket: routes() }, SECRETS);
    url = `ws://127.0.0.1:${proxy.port}/chat`;
  });
  after(async () => {
    await proxy.close();
    for (const backend of backends) await backend.close();
  });

  it('sets an opaque signed cookie, and a reconnect with it reaches the same backend', async () => {
    const first = await openClient(url);
    const cookie = cookieOf(first);
    assert.ok(cookie, 'the 101 sets the affinity cookie');
    assert.doesNotMatch(cookie, /127\.0\.0\.1|:\d+/, 'no address in the cookie');
    assert.match(first.headers['set-cookie']!.find((field) => field.startsWith(COOKIE))!, /; Path=\/; Max-Age=3600; SameSite=Lax; HttpOnly$/);
    const again = await reconnect(url, cookie, 6);
    assert.deepEqual(new Set(again.map((client) => client.backend)), new Set([first.backend]));
    assert.ok(again.every((client) => cookieOf(client) === undefined), 'a valid cookie is not set again');
    assert.equal(backends.find((backend) => backend.name === first.backend)!.upgrades.at(-1)?.cookie, 'theme=dark', 'the backend never sees the proxy\'s cookie');
    first.ws.terminate();
  });

  it('gives a stale cookie a live backend and a new cookie once its backend is removed: no 502, no open session cut', async () => {
    const first = await openClient(url);
    const cookie = cookieOf(first)!;
    const lost = first.backend!;
    const config = configSchema.parse({ listeners: [{ name: 'main', port: 0, plaintext: true }], clusters: [wsCluster('chat', backends.filter((backend) => backend.name !== lost), { lb_policy: 'least_connections' })], websocket: routes() });
    await proxy.proxy.reload({ config: { ...config, listeners: proxy.proxy.config.listeners }, secrets: SECRETS });
    const moved = await Promise.all(Array.from({ length: 10 }, () => openClient(url, { headers: { cookie } })));
    for (const client of moved) {
      assert.notEqual(client.backend, lost);
      assert.ok(cookieOf(client) && cookieOf(client) !== cookie, 'a new cookie for the new backend');
      client.ws.terminate();
    }
    assert.equal(proxy.records.filter((record) => record.status === 502 || record.status === 503).length, 0);
    assert.equal(await roundTrip(first, 'still'), `${lost}:still`, 'the session on the removed backend carries on');
    // The new cookie sticks to the new backend.
    const renewed = cookieOf(moved[0]!)!;
    const again = await reconnect(url, renewed, 3);
    assert.deepEqual(new Set(again.map((client) => client.backend)), new Set([moved[0]!.backend]));
    first.ws.terminate();
  });

  it('ignores a tampered or forged cookie: a fresh pick and a fresh cookie', async () => {
    const first = await openClient(url);
    const cookie = cookieOf(first)!;
    first.ws.terminate();
    const [name, value] = cookie.split('=') as [string, string];
    const tampered = `${name}=${value.slice(0, 5)}${value[5] === 'x' ? 'y' : 'x'}${value.slice(6)}`;
    for (const [i, bad] of [tampered, `${name}=MTI3LjAuMC4xOjgw.c2lnbmF0dXJl`, `${name}=`].entries()) {
      const client = await openClient(`${url}/tampered-${i}`, { headers: { cookie: bad } });
      assert.ok(cookieOf(client) && cookieOf(client) !== bad, bad);
      client.ws.terminate();
      await waitFor(() => proxy.records.some((record) => record.path === `/chat/tampered-${i}`), 'the session\'s record');
      assert.equal(proxy.records.find((record) => record.path === `/chat/tampered-${i}`)?.affinity, 'tampered', bad);
    }
  });
});

describe('strict affinity', () => {
  it('answers 503 when the cookie\'s backend is gone, and still takes a tampered cookie as none', async () => {
    const backends = await Promise.all(['s0', 's1'].map((name) => startWsBackend(name)));
    const proxy = await startWsProxy({ clusters: [wsCluster('chat', backends)], websocket: routes(true) }, SECRETS);
    const url = `ws://127.0.0.1:${proxy.port}/chat`;
    try {
      const first = await openClient(url);
      const cookie = cookieOf(first)!;
      first.ws.terminate();
      const lost = backends.find((backend) => backend.name === first.backend)!;
      const config = configSchema.parse({ listeners: [{ name: 'main', port: 0, plaintext: true }], clusters: [wsCluster('chat', backends.filter((backend) => backend !== lost))], websocket: routes(true) });
      await proxy.proxy.reload({ config: { ...config, listeners: proxy.proxy.config.listeners }, secrets: SECRETS });
      const refused = await refusedStatus(url, { headers: { cookie } });
      assert.equal(refused.status, 503);
      assert.match(refused.body, /affinity strict/);
      const fresh = await openClient(url, { headers: { cookie: `${COOKIE}=forged.value` } });
      assert.notEqual(fresh.backend, lost.name);
      fresh.ws.terminate();
    } finally {
      await proxy.close();
      for (const backend of backends) await backend.close();
    }
  });
});

describe('affinity cookies across an EndpointSlice change', () => {
  const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  let api: FakeKubeApi;
  let backends: WsBackend[];
  let proxy: WsProxy;
  let port: number;
  const slice = (ips: readonly string[]) => endpointSlice('chat-x1', 'chat', [...ips], { namespace: 'web', ports: [{ name: 'http', port, protocol: 'TCP' }] });

  before(async () => {
    api = await FakeKubeApi.start();
    port = await findPortFreeOnAll(HOSTS);
    backends = await Promise.all(HOSTS.map((host, i) => startWsBackend(`pod-${i}`, { host, port })));
    api.apply(slice(HOSTS));
    const kubeconfig = await api.writeKubeconfig();
    proxy = await startWsProxy({ clusters: [{ name: 'chat', lb_policy: 'least_connections', kubernetes: { namespace: 'web', service: 'chat', port: 'http', kubeconfig } }], websocket: routes() }, SECRETS);
    await waitFor(() => proxy.proxy.clusters.get('chat')!.endpoints.size === 3, 'the three pods from the slice');
  });
  after(async () => {
    await proxy.close();
    for (const backend of backends) await backend.close();
    await api.close();
  });

  it('sends a stale cookie to a live pod with a new cookie once its pod leaves the slice: zero 502s', async () => {
    const url = `ws://127.0.0.1:${proxy.port}/chat`;
    const first = await openClient(url);
    const cookie = cookieOf(first)!;
    first.ws.terminate();
    assert.deepEqual(new Set((await reconnect(url, cookie, 3)).map((client) => client.backend)), new Set([first.backend]));
    const lost = backends.find((backend) => backend.name === first.backend)!;
    api.apply(slice(HOSTS.filter((host) => host !== lost.host)));
    await waitFor(() => proxy.proxy.clusters.get('chat')!.endpoints.size === 2, 'the pod to leave the slice');
    // Its container has stopped too: only the cookie still names it.
    await lost.close();
    for (let i = 0; i < 10; i++) {
      const client = await openClient(url, { headers: { cookie } });
      assert.notEqual(client.backend, lost.name);
      assert.ok(cookieOf(client) && cookieOf(client) !== cookie);
      client.ws.terminate();
    }
    assert.equal(proxy.records.filter((record) => record.status >= 500).length, 0, 'no 502 or 503');
  });
});
