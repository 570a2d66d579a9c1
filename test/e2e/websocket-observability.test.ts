/**
 * What an operator sees of WebSocket traffic: open sessions per endpoint (the
 * gauge KEDA scales on), upgrades by result, bytes while sessions are still
 * open, close codes, durations; one access log line per session; and the
 * dashboard's connections per endpoint, in headless Chromium.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { adminJson, scrape, type Sample } from '../helpers/admin.ts';
import { openDashboard } from '../helpers/dashboard-page.ts';
import { waitFor } from '../helpers/harness.ts';
import { openClient, refusedStatus, roundTrip, startWsBackend, startWsProxy, wsCluster, type OpenClient, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

function value(samples: readonly Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, wanted]) => sample.labels[key] === wanted))?.value;
}

describe('WebSocket metrics, access log and dashboard', () => {
  let dir: string;
  let log: string;
  let backends: WsBackend[];
  let proxy: WsProxy;
  let clients: OpenClient[];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-ws-obs-'));
    log = path.join(dir, 'access.log');
    backends = await Promise.all(['o0', 'o1', 'o2'].map((name) => startWsBackend(name)));
    proxy = await startWsProxy({
      admin: { port: 0 },
      access_log: { output: log },
      clusters: [wsCluster('chat', backends, { lb_policy: 'least_connections' })],
      websocket: { routes: [{ name: 'live', match: { prefix: '/live' }, cluster: 'chat' }] },
    });
    clients = await Promise.all(Array.from({ length: 6 }, () => openClient(`ws://127.0.0.1:${proxy.port}/live`)));
  });

  after(async () => {
    for (const client of clients) client.ws.terminate();
    await proxy.close();
    for (const backend of backends) await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts open sessions per endpoint, upgrades by result, and bytes while sessions are open', async () => {
    assert.equal((await refusedStatus(`ws://127.0.0.1:${proxy.port}/elsewhere`)).status, 404);
    for (const client of clients) await roundTrip(client, 'x'.repeat(100));
    const samples = await scrape(proxy.proxy);
    for (const backend of backends) {
      assert.equal(value(samples, 'switchyard_websocket_connections', { cluster: 'chat', endpoint: `127.0.0.1:${backend.port}` }), 2);
    }
    assert.equal(value(samples, 'switchyard_websocket_upgrades_total', { route: 'live', result: 'upgraded', protocol: 'http/1.1' }), 6);
    assert.equal(value(samples, 'switchyard_websocket_upgrades_total', { route: 'none', result: 'no_route' }), 1);
    // Frame bytes so far: each client's 100-byte masked text frame (6 + 100 bytes).
    assert.equal(value(samples, 'switchyard_websocket_bytes_total', { route: 'live', direction: 'from_client' }), 6 * 106);
    assert.ok(value(samples, 'switchyard_websocket_bytes_total', { route: 'live', direction: 'from_backend' })! >= 6 * 104);
  });

  it('shows the connections per endpoint on the dashboard', async () => {
    const balance = await adminJson(proxy.proxy, '/balance');
    const chat = balance.body.clusters.find((cluster: { name: string }) => cluster.name === 'chat');
    assert.equal(chat.websocket.connections, 6);
    assert.deepEqual(chat.endpoints.map((endpoint: { websocketConnections: number }) => endpoint.websocketConnections), [2, 2, 2]);

    const { browser, page, pageErrors } = await openDashboard(proxy.proxy, { width: 1100, height: 900 });
    try {
      const card = page.locator('[data-cluster="chat"][data-websocket="true"]');
      await card.waitFor({ timeout: 10_000 });
      for (const backend of backends) {
        const row = card.locator(`[data-websocket-endpoint="127.0.0.1:${backend.port}"]`);
        await page.waitForFunction((selector) => (globalThis as unknown as { document: { querySelector(s: string): { dataset: Record<string, string> } | null } }).document.querySelector(selector)?.dataset.connections === '2', `[data-websocket-endpoint="127.0.0.1:${backend.port}"]`, { timeout: 10_000 });
        assert.match(await row.innerText(), /2 open · 33\.3%/);
      }
      assert.equal(await card.locator('[data-stat="connections"]').innerText(), '6');
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser.close();
    }
  });

  it('writes one access log line per session, and counts its close and duration', async () => {
    const closing = clients.splice(0, 2);
    for (const client of closing) client.ws.close(4000, 'done');
    await Promise.all(closing.map((client) => client.closed));
    await waitFor(() => proxy.proxy.websocket.sessions.size === 4, 'two sessions to end');
    await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((line) => line.includes('"close_code":4000')).length === 2, 'the access log lines');
    const lines = (await readFile(log, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const sessions = lines.filter((line) => line.kind === 'websocket' && line.result === 'upgraded');
    assert.equal(sessions.length, 2);
    for (const line of sessions) {
      assert.equal(line.route, 'live');
      assert.equal(line.cluster, 'chat');
      assert.equal(line.status, 101);
      assert.equal(line.closed_by, 'client');
      assert.equal(line.close_code, 4000);
      assert.equal(line.bytes_in, 106 + 6 + 2 + 4);
      assert.match(String(line.endpoint), /^127\.0\.0\.1:\d+$/);
    }
    assert.equal(lines.filter((line) => line.kind === 'websocket' && line.result === 'no_route' && line.status === 404).length, 1);
    const samples = await scrape(proxy.proxy);
    assert.equal(value(samples, 'switchyard_websocket_closes_total', { route: 'live', closed_by: 'client', code: '4xxx' }), 2);
    assert.equal(value(samples, 'switchyard_websocket_session_duration_seconds_count', { route: 'live' }), 2);
    assert.equal(samples.filter((sample) => sample.name === 'switchyard_websocket_connections').reduce((sum, sample) => sum + sample.value, 0), 4);
  });
});
