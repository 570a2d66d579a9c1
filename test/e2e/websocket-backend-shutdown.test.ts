/**
 * The backend side of a shutdown (docs/kit-websocket.md), with the example
 * backend (src/kit/examples/websocket-server.ts) as real processes behind a
 * proxy that health-checks them: SIGTERM to one, and its clients get close
 * 1001 spread over the window, reconnect, and land on the other backend;
 * new sessions meanwhile go to the other backend; no upgrade fails; the
 * stopped backend exits by itself, within its deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/harness.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { openClient, startWsProxy, type OpenClient, type WsProxy } from '../helpers/websocket.ts';

const EXAMPLE = fileURLToPath(new URL('../../src/kit/examples/websocket-server.ts', import.meta.url));
const DRAIN_DELAY_MS = 400;
// Long enough that the spread survives a stall of a few hundred ms in this process (the proxy and the clients share its event loop).
const CLOSE_WINDOW_MS = 1_000;
const DEADLINE_MS = 5_000;

interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly logs: { msg?: string }[];
}

async function startBackend(name: string, host: string, healthPort: number): Promise<Backend> {
  const child = spawn(process.execPath, [EXAMPLE, '--name', name, '--host', host, '--port', '0', '--health-port', String(healthPort),
    '--drain-delay-ms', String(DRAIN_DELAY_MS), '--close-window-ms', String(CLOSE_WINDOW_MS), '--deadline-ms', String(DEADLINE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: { msg?: string; port?: number }[] = [];
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as { msg?: string; port?: number });
  });
  await waitFor(() => logs.some((entry) => entry.msg === 'listening'), `${name} to listen`);
  return { name, host, port: logs.find((entry) => entry.msg === 'listening')!.port!, child, logs };
}

describe('a ws backend shutting down behind Switchyard', () => {
  const hosts = ['127.0.0.2', '127.0.0.3'];
  let backends: Backend[];
  let proxy: WsProxy;

  before(async () => {
    const healthPort = await findPortFreeOnAll(hosts);
    backends = await Promise.all(hosts.map((host, i) => startBackend(`chat-${i}`, host, healthPort)));
    proxy = await startWsProxy({
      clusters: [{
        name: 'chat',
        lb_policy: 'least_connections',
        endpoints: backends.map((backend) => ({ address: backend.host, port: backend.port })),
        health_check: { port: healthPort, interval: '200ms', interval_jitter: '10ms', timeout: '150ms', unhealthy_threshold: 1, healthy_threshold: 1 },
      }],
      websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] },
    });
    // Healthy, not only available: with every endpoint failing (a first check slow on a busy machine), all are available (panic).
    await waitFor(() => proxy.proxy.clusters.get('chat')!.healthSnapshot().every((view) => view.health === 'healthy'), 'both backends to pass their health check');
  });

  after(async () => {
    // The backends first: a child left running keeps the test process alive whatever failed before.
    for (const backend of backends ?? []) backend.child.kill('SIGKILL');
    await proxy?.close();
  });

  it('sends its clients 1001, which reconnect to the other backend without a refused upgrade, and exits in time', async () => {
    const url = `ws://127.0.0.1:${proxy.port}/chat`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => openClient(url)));
    const stopping = backends[0]!;
    const onStopping = clients.filter((client) => client.backend === stopping.name);
    assert.equal(onStopping.length, 10);

    // Each client of the stopping backend reconnects as soon as its session closes, as browsers' libraries do on 1001.
    const closedAt: number[] = [];
    const reconnected: Promise<OpenClient>[] = onStopping.map((client) => client.closed.then(({ code, reason }) => {
      assert.equal(code, 1001);
      assert.equal(reason, 'server shutting down');
      closedAt.push(performance.now());
      return openClient(url);
    }));
    const signalledAt = performance.now();
    stopping.child.kill('SIGTERM');
    const exited = once(stopping.child, 'exit');

    // During the drain delay: its sessions carry on, and new ones go to the other backend once the health check sees NOT_SERVING.
    await waitFor(() => proxy.proxy.clusters.get('chat')!.healthSnapshot().some((view) => view.health === 'unhealthy'), 'the proxy to see NOT_SERVING');
    const meanwhile = await openClient(url);
    assert.equal(meanwhile.backend, backends[1]!.name);

    const again = await Promise.all(reconnected);
    assert.deepEqual(new Set(again.map((client) => client.backend)), new Set([backends[1]!.name]), 'every reconnect reached the other backend');
    assert.ok(Math.min(...closedAt) - signalledAt >= DRAIN_DELAY_MS - 20, 'no session closed before the drain delay');
    assert.ok(Math.max(...closedAt) - Math.min(...closedAt) >= CLOSE_WINDOW_MS / 2, 'the closes were spread over the window');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    assert.ok(performance.now() - signalledAt < DEADLINE_MS, 'it exited before its deadline, every session closed');
    assert.ok(stopping.logs.some((entry) => entry.msg === 'shutdown: every session closed'));
    assert.equal(proxy.records.filter((record) => record.status >= 400).length, 0, 'no upgrade was refused');
    for (const client of [...clients, ...again, meanwhile]) client.ws.terminate();
  });
});
