// SIGTERM to a real `switchyard run` process under load, as in a rolling update:
// two proxy processes behind one grpc-js client, one of them drained.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, waitFor, type EchoClient } from '../helpers/harness.ts';
import { collectLogs, exitOf, logEntries, runCli, type LogEntry } from '../helpers/cli.ts';
import { probe } from '../helpers/http-probe.ts';
import { steadyLoad } from '../helpers/load.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';

const DRAIN_DELAY_MS = 500;
const DRAIN_TIMEOUT_MS = 3_000;

interface ProxyProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly healthPort: number;
  readonly logs: LogEntry[];
  readonly exited: Promise<{ code: number | null; stderr: string }>;
}

async function startProxyProcess(config: string, args: string[] = []): Promise<ProxyProcess> {
  const child = runCli(['run', '--config', config, ...args]);
  const exited = exitOf(child);
  const logs = collectLogs(child);
  const [[health], [listening]] = await Promise.all([
    logEntries(child, (e) => e.msg?.startsWith('readiness endpoint listening') === true),
    logEntries(child, (e) => e.msg === 'listening'),
  ]);
  return { child, exited, logs, port: portOf(listening!), healthPort: portOf(health!) };
}

function portOf(entry: LogEntry): number {
  return Number(entry.address!.split(':').at(-1));
}

/** A server stream of `count` messages, `delayMs` apart; resolves with how many arrived and the status. */
function serverStream(client: EchoClient, count: number, delayMs: number): Promise<{ messages: number; code: number }> {
  return new Promise((resolve) => {
    let messages = 0;
    const call = client.ServerStream({ count, delay_ms: delayMs });
    call.on('data', () => { messages++; });
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => resolve({ messages, code: status.code }));
  });
}

describe('draining on SIGTERM', () => {
  let dir: string;
  let backends: EchoServerHandle[];
  let config: string;

  before(async () => {
    backends = await startBackends(2);
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-drain-'));
    config = path.join(dir, 'switchyard.yaml');
    await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
health: { port: 0 }
drain: { delay: ${DRAIN_DELAY_MS}ms, timeout: ${DRAIN_TIMEOUT_MS}ms }
clusters:
  - name: echo
    endpoints: [${backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ')}]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });

  // Loopback hides races that real round trips expose (a GOAWAY crossing new streams): run it with latency too.
  for (const latencyMs of [0, 25]) {
  it(`reports not ready at once, serves through the delay, lets streams finish, fails no RPC and exits 0 in time (client RTT +${2 * latencyMs} ms)`, async () => {
    const [a, b] = await Promise.all([startProxyProcess(config), startProxyProcess(config)]);
    const faults = latencyMs > 0 ? await Promise.all([a.port, b.port].map((port) => startFaultProxy(port))) : [];
    for (const fault of faults) fault.latencyMs = latencyMs;
    const [portA, portB] = faults.length > 0 ? faults.map((f) => f.port) : [a.port, b.port];
    // One client over both proxies, as a client of a Service with two proxy pods is.
    const client = echoClient(`ipv4:127.0.0.1:${portA},127.0.0.1:${portB}`, undefined, {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    // Long streams on the proxy that is drained: they must finish with OK.
    const streamClient = echoClient(`127.0.0.1:${portA}`);
    try {
      assert.deepEqual(await probe(a.healthPort, '/ready').then((r) => [r.status, r.body]), [200, 'ready']);
      const load = steadyLoad(client, { concurrency: 4 });
      await waitFor(() => load.answered() > 50, 'traffic through both proxies');
      const streams = [serverStream(streamClient, 12, 100), serverStream(streamClient, 12, 100)];
      await waitFor(() => backends.reduce((n, backend) => n + backend.active, 0) >= 2, 'the streams to be in flight');

      const signalledAt = Date.now();
      a.child.kill('SIGTERM');
      await waitFor(async () => (await probe(a.healthPort, '/ready')).status === 503, '/ready to answer 503', DRAIN_DELAY_MS);
      assert.ok(Date.now() - signalledAt < DRAIN_DELAY_MS, '/ready flipped before the drain delay ended');
      assert.equal((await probe(a.healthPort, '/ready')).body, 'draining');
      assert.equal((await probe(a.healthPort, '/live')).status, 200);

      const okBefore = load.answered();
      const { code } = await a.exited;
      const elapsed = Date.now() - signalledAt;
      assert.equal(code, 0);
      assert.ok(elapsed >= DRAIN_DELAY_MS, `served for the drain delay (exited after ${elapsed} ms)`);
      assert.ok(elapsed < DRAIN_DELAY_MS + DRAIN_TIMEOUT_MS, `exited before delay + timeout (${elapsed} ms)`);
      for (const result of await Promise.all(streams)) assert.deepEqual(result, { messages: 12, code: grpc.status.OK });

      // Traffic carries on through the other proxy.
      await waitFor(() => load.answered() > okBefore + 200, 'RPCs through the remaining proxy');
      await load.stop();
      assert.deepEqual(load.failures, [], `no RPC failed (${load.answered()} succeeded)`);

      const messages = a.logs.map((entry) => entry.msg);
      for (const step of [
        'draining: /ready answers 503; still serving during the drain delay',
        'draining: stopped accepting connections; GOAWAY sent to every client connection',
        'drained: every client connection has closed',
        'stopped',
      ]) assert.ok(messages.includes(step), `logged "${step}"`);
    } finally {
      client.close();
      streamClient.close();
      a.child.kill('SIGKILL');
      b.child.kill('SIGTERM');
      await b.exited;
      await Promise.all(faults.map((f) => f.close()));
    }
  });
  }

  it('cuts what is left at the drain timeout, and exits 0 even so', async () => {
    const short = path.join(dir, 'short.yaml');
    await writeFile(short, `
listeners: [{ name: local, port: 0, plaintext: true }]
health: { port: 0 }
drain: { delay: 1ms, timeout: 300ms }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
    const proxy = await startProxyProcess(short);
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      // Ten seconds of stream: far longer than the timeout.
      const stream = serverStream(client, 100, 100);
      await waitFor(() => backends[0]!.active > 0, 'the stream to be in flight');
      const signalledAt = Date.now();
      proxy.child.kill('SIGTERM');
      const { code } = await proxy.exited;
      assert.equal(code, 0);
      assert.ok(Date.now() - signalledAt < 2_000, 'exited soon after the timeout');
      const result = await stream;
      // UNAVAILABLE, which clients and retry policies retry; a bare reset would reach grpc-js as INTERNAL.
      assert.equal(result.code, grpc.status.UNAVAILABLE);
      assert.ok(proxy.logs.some((e) => e.msg === 'drain timeout: destroyed the connections still open, with their in-flight RPCs'));
    } finally {
      client.close();
      proxy.child.kill('SIGKILL');
    }
  });
});

it('the old --drain-timeout flag is refused with a pointer to drain.timeout in the config', async () => {
  const { code, stderr } = await exitOf(runCli(['run', '--config', 'x.yaml', '--drain-timeout', '10s']));
  assert.equal(code, 2);
  assert.match(stderr, /--drain-timeout is gone: set drain\.timeout/);
});
