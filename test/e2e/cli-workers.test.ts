import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startBackends, echoClient, unary } from '../helpers/harness.ts';
import { exitOf, logEntries, runCli } from '../helpers/cli.ts';

it('--workers 2 runs two proxy processes on one port, and both drain on SIGTERM', async () => {
  const backends = await startBackends(2);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-workers-'));
  const config = path.join(dir, 'switchyard.yaml');
  await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
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
