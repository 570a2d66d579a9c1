// A port that cannot be bound at start is named as the config names it: a
// replacement proxy started while the old one drains says `health.port`, not
// just "EADDRINUSE 0.0.0.0:9901".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { exitOf, logEntries, runCli } from '../helpers/cli.ts';

/** A loopback port held open by this process until `close()`. */
async function holdPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as { port: number }).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('binding failures at start', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-listen-'));
  });

  after(() => rm(dir, { recursive: true, force: true }));

  const start = async (name: string, yaml: string) => {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(file, yaml);
    return exitOf(runCli(['run', '--config', file]));
  };

  it('a replacement started while the old proxy drains names health.port', async () => {
    const health = await holdPort();
    await health.close(); // free again, for the old proxy to take
    const file = path.join(dir, 'replace.yaml');
    await writeFile(file, `
listeners: [{ name: public, port: 0, plaintext: true }]
health: { address: 127.0.0.1, port: ${health.port} }
drain: { delay: 30s, timeout: 1s }
`);
    const old = runCli(['run', '--config', file]);
    const oldExit = exitOf(old);
    try {
      await logEntries(old, (entry) => entry.msg === 'listening');
      old.kill('SIGTERM');
      await logEntries(old, (entry) => entry.msg?.startsWith('draining') === true);
      const { code, stderr } = await exitOf(runCli(['run', '--config', file]));
      assert.equal(code, 1, stderr);
      assert.equal(stderr, `switchyard: EADDRINUSE: health.port: the health endpoint cannot listen on 127.0.0.1:${health.port}: the address is already in use. Another process holds the port: a Switchyard still draining on this host (wait for it to exit), or something else (choose another port)\n`);
    } finally {
      old.kill('SIGKILL');
      await oldExit;
    }
  });

  it('names the listener by its name and index, and the admin interface by admin.port', async () => {
    const held = await holdPort();
    try {
      const listener = await start('listener', `
listeners:
  - { name: local, port: 0, plaintext: true }
  - { name: public, address: 127.0.0.1, port: ${held.port}, plaintext: true }
`);
      assert.equal(listener.code, 1, listener.stderr);
      assert.match(listener.stderr, new RegExp(`^switchyard: EADDRINUSE: listeners\\[1\\]\\.port: listener "public" cannot listen on 127\\.0\\.0\\.1:${held.port}: the address is already in use\\.`));
      const admin = await start('admin', `
listeners: [{ name: local, port: 0, plaintext: true }]
admin: { port: ${held.port} }
`);
      assert.equal(admin.code, 1, admin.stderr);
      assert.match(admin.stderr, new RegExp(`^switchyard: EADDRINUSE: admin\\.port: the admin interface cannot listen on 127\\.0\\.0\\.1:${held.port}: the address is already in use\\.`));
    } finally {
      await held.close();
    }
  });
});
