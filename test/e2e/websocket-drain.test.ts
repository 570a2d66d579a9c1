/**
 * SIGTERM to a real `switchyard run` process with 200 open WebSocket
 * sessions (HTTP/1.1 and HTTP/2): /ready turns 503 at once, new upgrades get
 * 503 while the drain delay lasts and sessions keep working, then every
 * client gets close 1001 (not 1006) from the proxy and every backend a
 * masked close 1001, and the process exits 0 within the deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collectLogs, exitOf, logEntries, runCli } from '../helpers/cli.ts';
import { probe } from '../helpers/http-probe.ts';
import { waitFor } from '../helpers/harness.ts';
import { openClient, openHttp2Client, refusedStatus, roundTrip, startWsBackend, type OpenClient, type WsBackend } from '../helpers/websocket.ts';

const DRAIN_DELAY_MS = 800;
const DRAIN_TIMEOUT_MS = 5_000;
const CLOSE_TIMEOUT_MS = 2_000;
const SESSIONS = 200;

describe('draining WebSocket sessions on SIGTERM', () => {
  let dir: string;
  let backends: WsBackend[];
  let config: string;

  before(async () => {
    backends = await Promise.all(['d0', 'd1'].map((name) => startWsBackend(name)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-ws-drain-'));
    config = path.join(dir, 'switchyard.yaml');
    await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
health: { port: 0 }
drain: { delay: ${DRAIN_DELAY_MS}ms, timeout: ${DRAIN_TIMEOUT_MS}ms }
clusters:
  - name: chat
    lb_policy: least_connections
    endpoints: [${backends.map((backend) => `{ address: 127.0.0.1, port: ${backend.port} }`).join(', ')}]
websocket:
  routes: [{ match: { prefix: / }, cluster: chat, close_timeout: ${CLOSE_TIMEOUT_MS}ms }]
`);
  });

  after(async () => {
    for (const backend of backends) await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends every client close 1001 after the drain delay, refuses new upgrades with 503 meanwhile, and exits in time', async () => {
    const child = runCli(['run', '--config', config]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    try {
      const [[health], [listening]] = await Promise.all([
        logEntries(child, (entry) => entry.msg?.startsWith('readiness endpoint listening') === true),
        logEntries(child, (entry) => entry.msg === 'listening'),
      ]);
      const healthPort = Number(health!.address!.split(':').at(-1));
      const port = Number(listening!.address!.split(':').at(-1));
      const url = `ws://127.0.0.1:${port}/chat`;
      const clients: OpenClient[] = [];
      for (let i = 0; i < SESSIONS - 10; i += 50) clients.push(...await Promise.all(Array.from({ length: Math.min(50, SESSIONS - 10 - i) }, () => openClient(url))));
      // Ten more over HTTP/2 (RFC 8441), each on a connection of its own.
      const overH2 = await Promise.all(Array.from({ length: 10 }, () => openHttp2Client(`http://127.0.0.1:${port}`, '/chat')));
      const h2Closes = overH2.map(({ ws }) => new Promise<number>((resolve) => ws!.once('close', resolve)));
      assert.equal(clients.length + overH2.length, SESSIONS);
      await waitFor(() => backends.reduce((sum, backend) => sum + backend.open.size, 0) === SESSIONS, 'every session at a backend');

      const closedAt: number[] = [];
      const codes = Promise.all([
        ...clients.map((client) => client.closed.then(({ code }) => { closedAt.push(performance.now()); return code; })),
        ...h2Closes.map((closed) => closed.then((code) => { closedAt.push(performance.now()); return code; })),
      ]);
      const signalledAt = performance.now();
      child.kill('SIGTERM');
      await waitFor(async () => (await probe(healthPort, '/ready')).status === 503, '/ready to answer 503', DRAIN_DELAY_MS);

      // The delay: sessions still work, new ones are refused.
      assert.equal(await roundTrip(clients[0]!, 'during the delay'), `${clients[0]!.backend}:during the delay`);
      const refused = await refusedStatus(url);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['retry-after'], '1');
      assert.ok(performance.now() - signalledAt < DRAIN_DELAY_MS, 'checked within the delay');

      assert.deepEqual([...new Set(await codes)], [1001], 'every client got 1001 from the proxy');
      assert.ok(Math.min(...closedAt) - signalledAt >= DRAIN_DELAY_MS - 20, `no session closed before the drain delay ended (first after ${Math.round(Math.min(...closedAt) - signalledAt)} ms)`);
      await waitFor(() => backends.every((backend) => backend.open.size === 0), 'the backends to see the sessions close');
      const backendCodes = backends.flatMap((backend) => backend.closeCodes.slice(-SESSIONS));
      assert.equal(backendCodes.filter((code) => code === 1001).length, SESSIONS, 'each backend session got a close 1001');

      const { code } = await exited;
      const elapsed = performance.now() - signalledAt;
      assert.equal(code, 0);
      assert.ok(elapsed < DRAIN_DELAY_MS + DRAIN_TIMEOUT_MS, `exited within delay + timeout (${Math.round(elapsed)} ms)`);
      assert.ok(logs.some((entry) => entry.msg === 'drained: every client connection has closed'), 'a clean drain: nothing was cut at the timeout');
      for (const { session } of overH2) session.destroy();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
