// `switchyard run` reloading its config on SIGHUP and, with watch_config, on a
// change to the file: a bad config is logged and ignored, a good one applied.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { collectLogs, exitOf, listeningPort, runCli } from '../helpers/cli.ts';

describe('switchyard run: reloading the config', () => {
  let dir: string;
  let backends: EchoServerHandle[];

  before(async () => {
    backends = await startBackends(2);
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-reload-'));
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });

  const config = (backend: EchoServerHandle, options: { watch?: boolean; cluster?: string } = {}) => `
listeners: [{ name: local, port: 0, plaintext: true }]
watch_config: ${options.watch ?? false}
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backend.port} }] }]
routes: [{ match: { prefix: / }, cluster: ${options.cluster ?? 'echo'} }]
`;

  it('rejects a bad config with its error and keeps serving; applies a good one on SIGHUP, then on file change', async () => {
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, config(backends[0]!));
    const child = runCli(['run', '--config', file]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const count = (msg: string) => logs.filter((entry) => entry.msg?.startsWith(msg)).length;
    const client = echoClient(`127.0.0.1:${await listeningPort(child, 'local')}`);
    try {
      assert.equal((await unary(client, {})).response.backend, 'backend-0');

      await writeFile(file, config(backends[1]!, { cluster: 'ehco' }));
      child.kill('SIGHUP');
      await waitFor(() => count('config reload rejected') === 1, 'the rejection to be logged');
      const rejected = logs.find((entry) => entry.msg?.startsWith('config reload rejected'))!;
      assert.equal(rejected.reason, 'SIGHUP');
      assert.match(rejected.error!, /switchyard\.yaml: invalid config\n {2}routes\[0\]\.cluster: no cluster named "ehco"/);
      assert.equal((await unary(client, {})).response.backend, 'backend-0', 'the old config still serves');

      await writeFile(file, config(backends[1]!, { watch: true }));
      child.kill('SIGHUP');
      await waitFor(() => count('config reloaded') === 1, 'the reload');
      assert.equal((await unary(client, {})).response.backend, 'backend-1');

      // watch_config is now on: a change to the file is enough.
      await waitFor(() => count('watching the config') === 1, 'the watcher to start');
      await writeFile(file, config(backends[0]!, { watch: true }));
      await waitFor(() => count('config reloaded') === 2, 'the reload on file change');
      assert.equal(logs.filter((entry) => entry.msg === 'reloading the config').at(-1)?.reason, 'file change');
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    const { code, stderr } = await exited;
    assert.equal(code, 0, stderr);
  });
});
