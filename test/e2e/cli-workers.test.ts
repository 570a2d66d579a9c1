import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startBackends, echoClient, unary, waitFor } from '../helpers/harness.ts';
import { collectLogs, exitOf, logEntries, runCli } from '../helpers/cli.ts';
import { closedPort } from '../helpers/ports.ts';
import * as net from 'node:net';

it('--workers 2 runs two proxy processes on one port, and both drain on SIGTERM', async () => {
  const backends = await startBackends(2);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-workers-'));
  const config = path.join(dir, 'switchyard.yaml');
  await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
drain: { delay: 1ms, timeout: 2s }
clusters:
  - name: echo
    endpoints: [${backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ')}]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
  const child = runCli(['run', '--config', config, '--workers', '2']);
  const exited = exitOf(child);
  try {
    const listening = await logEntries(child, (e) => e.msg === 'listening', 2);
    const pids = new Set(listening.map((e) => e.pid));
    const ports = new Set(listening.map((e) => e.address));
    assert.equal(pids.size, 2, 'two worker processes');
    assert.equal(ports.size, 1, `both on one address: ${[...ports].join(', ')}`);
    const port = Number([...ports][0]!.split(':').at(-1));
    // Several client connections, so the primary hands connections to both workers.
    const clients = Array.from({ length: 6 }, () => echoClient(`127.0.0.1:${port}`, undefined, { 'grpc.use_local_subchannel_pool': 1 }));
    const results = await Promise.all(clients.flatMap((client) => Array.from({ length: 10 }, () => unary(client, {}))));
    assert.equal(results.length, 60);
    for (const client of clients) client.close();
  } finally {
    child.kill('SIGTERM');
  }
  const { code } = await exited;
  assert.equal(code, 0);
  await Promise.all(backends.map((b) => b.close()));
});

it('--workers rejects a value that is not a whole number', async () => {
  const { code, stderr } = await exitOf(runCli(['run', '--config', 'x.yaml', '--workers', 'two']));
  assert.equal(code, 2);
  assert.match(stderr, /--workers: expected a whole number/);
});

it('--workers 2: SIGHUP reloads every worker; SIGTERM drains them all and the process exits within delay + timeout', async () => {
  const backends = await startBackends(1);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-workers-'));
  const config = path.join(dir, 'switchyard.yaml');
  await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
drain: { delay: 200ms, timeout: 500ms }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
  const child = runCli(['run', '--config', config, '--workers', '2']);
  const exited = exitOf(child);
  const logs = collectLogs(child);
  const count = (msg: string) => logs.filter((entry) => entry.msg === msg).length;
  let stream: grpc.ClientReadableStream<unknown> | undefined;
  try {
    await waitFor(() => count('listening') === 2, 'both workers to listen');
    const port = Number(logs.find((entry) => entry.msg === 'listening')!.address!.split(':').at(-1));

    child.kill('SIGHUP');
    await waitFor(() => count('config reloaded') === 2, 'both workers to reload');

    // A ten-second stream: the drain timeout cuts it.
    const streaming = echoClient(`127.0.0.1:${port}`);
    stream = streaming.ServerStream({ count: 100, delay_ms: 100 });
    const status = new Promise<grpc.StatusObject>((resolve) => stream!.on('status', resolve));
    stream.on('data', () => {});
    stream.on('error', () => {});
    await waitFor(() => backends[0]!.active > 0, 'the stream to be in flight');
    const signalledAt = Date.now();
    child.kill('SIGTERM');
    const { code } = await exited;
    const elapsed = Date.now() - signalledAt;
    assert.equal(code, 0);
    assert.ok(elapsed < 200 + 500 + 1_000, `exited within delay + timeout + slack (${elapsed} ms)`);
    assert.notEqual((await status).code, grpc.status.OK);
    assert.equal(count('draining workers'), 1);
    assert.equal(count('stopped'), 2, 'both workers drained and stopped on their own');
    assert.equal(count('every worker has exited'), 1);
    streaming.close();
  } finally {
    child.kill('SIGKILL');
    await Promise.all(backends.map((b) => b.close()));
  }
});

/** Two adjacent loopback ports that were both free a moment ago. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await closedPort();
    if (port < 65535 && await isFree(port + 1)) return port;
  }
  throw new Error('no two adjacent free ports found');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

it('--workers 2: each worker has its own admin port (admin.port + slot); POST /drain on either drains them all', async () => {
  const backends = await startBackends(1);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-workers-'));
  const config = path.join(dir, 'switchyard.yaml');
  const adminPort = await freePortPair();
  await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
admin: { port: ${adminPort} }
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
  const child = runCli(['run', '--config', config, '--workers', '2']);
  const exited = exitOf(child);
  const logs = collectLogs(child);
  try {
    await waitFor(() => logs.filter((e) => e.msg?.startsWith('admin interface listening')).length === 2, 'both admin interfaces');
    const addresses = logs.filter((e) => e.msg?.startsWith('admin interface listening')).map((e) => e.address).sort();
    assert.deepEqual(addresses, [`127.0.0.1:${adminPort}`, `127.0.0.1:${adminPort + 1}`]);
    for (const port of [adminPort, adminPort + 1]) {
      const response = await fetch(`http://127.0.0.1:${port}/clusters`);
      assert.equal(response.status, 200);
      assert.equal((await response.json() as { clusters: unknown[] }).clusters.length, 1);
    }
    const drain = await fetch(`http://127.0.0.1:${adminPort + 1}/drain`, { method: 'POST' });
    assert.equal(drain.status, 202);
    const { code } = await exited;
    assert.equal(code, 0, 'the whole process drained and exited');
    assert.ok(logs.some((e) => e.msg === 'every worker has exited'));
  } finally {
    child.kill('SIGKILL');
    await Promise.all(backends.map((b) => b.close()));
  }
});
