// `switchyard run` validates its config in a child process (src/config/isolated-load.ts): the
// running proxy never loads zod or yaml, at start or on a reload, and still reports every
// problem of a bad config with its file and path.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { CLI, collectLogs, exitOf, listeningPort } from '../helpers/cli.ts';

/** A preload that appends to `log` every zod or yaml module the process resolves, ESM or CommonJS. */
const HOOK = (log: string) => `
import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    if (/\\/node_modules\\/(zod|yaml)\\//.test(resolved.url)) appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n');
    return resolved;
  },
});
`;

describe('switchyard run: the config is validated in a child process', () => {
  let dir: string;
  let backends: EchoServerHandle[];

  before(async () => {
    backends = await startBackends(1);
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-isolation-'));
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });

  const config = (cluster = 'echo') => `
listeners: [{ name: local, port: 0, plaintext: true }]
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: ${cluster} }]
`;

  it('serves and reloads without loading zod or yaml; a bad reload is still rejected with its path', async () => {
    const file = path.join(dir, 'switchyard.yaml');
    const loaded = path.join(dir, 'loaded.txt');
    const hook = path.join(dir, 'hook.mjs');
    await writeFile(file, config());
    await writeFile(hook, HOOK(loaded));
    const child = spawn(process.execPath, ['--import', hook, CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const client = echoClient(`127.0.0.1:${await listeningPort(child, 'local')}`);
    try {
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      await writeFile(file, config('missing'));
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg?.startsWith('config reload rejected')), 'the rejection');
      assert.match(logs.find((entry) => entry.msg?.startsWith('config reload rejected'))!.error!, /switchyard\.yaml: invalid config\n {2}routes\[0\]\.cluster: no cluster named "missing"/);
      await writeFile(file, config());
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg === 'config reloaded'), 'the reload');
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      const seen = await readFile(loaded, 'utf8').catch(() => '');
      assert.equal(seen, '', `the proxy loaded:\n${seen}`);
    } finally {
      client.close();
      child.kill('SIGTERM');
      assert.equal((await exited).code, 0);
    }
  });

  it('a bad config at start: exit code 2 and every problem, with the file, path and line', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, config('missing'));
    const { code, stderr } = await exitOf(spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.equal(code, 2);
    assert.match(stderr, /bad\.yaml: invalid config\n {2}routes\[0\]\.cluster: no cluster named "missing" \(clusters: echo\) \(line 5\)/);
  });
});
