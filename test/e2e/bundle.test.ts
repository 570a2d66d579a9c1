// The bundled command (build/bundle.ts, what `npm run build` puts in dist/bin/ and the package's
// `switchyard` bin runs). Every other test runs the sources; this one builds the bundle afresh
// and checks what a bundle can get wrong: the files it reads beside itself (the config checker
// it runs as a child, the dashboard's page, the demo's proto, package.json for the version) and
// the chunks each command loads.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { asciiOnly, bundleCli } from '../../build/bundle.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { collectLogs, exitOf, listeningPort } from '../helpers/cli.ts';

// Inside the repository, as dist/bin/ is: the bundle finds node_modules and package.json upward.
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));

describe('the bundled switchyard command', () => {
  let dir: string;
  let cli: string;
  let backends: EchoServerHandle[];

  before(async () => {
    await mkdir(OUTPUT, { recursive: true });
    dir = await mkdtemp(path.join(OUTPUT, 'bundle-'));
    await bundleCli(path.join(dir, 'bin'));
    cli = path.join(dir, 'bin', 'switchyard.js');
    backends = await startBackends(2);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });

  const run = (args: string[]) => spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

  it('is ASCII: V8 would hold a chunk with one other character as a two-byte string', async () => {
    const chunks = (await readdir(path.join(dir, 'bin'))).filter((name) => name.endsWith('.js'));
    assert.ok(chunks.length > 10);
    for (const chunk of chunks) {
      const text = await readFile(path.join(dir, 'bin', chunk), 'latin1');
      assert.doesNotMatch(text, /[^\x00-\x7f]/, chunk);
    }
    // Comments are escaped; a change to the code itself is refused.
    assert.equal(await asciiOnly('/** RFC 9113 §8.3 */\nexport const a = 1;\n', 'x.js'), '/** RFC 9113 \\u{a7}8.3 */\nexport const a = 1;\n');
    await assert.rejects(asciiOnly('export const a = /§/;\n', 'x.js'), /x\.js: non-ASCII characters outside comments/);
  });

  it('--version reads the package version', async () => {
    const child = run(['--version']);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    const { code, stderr } = await exitOf(child);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^switchyard 0\.\d+\.\d+ \(node /);
  });

  it('run: serves, reloads through its config checker, rejects a bad reload with the path, serves the dashboard, drains', async () => {
    const file = path.join(dir, 'switchyard.yaml');
    const config = (backend: number, cluster = 'echo') => `
listeners: [{ name: local, port: 0, plaintext: true }]
admin: { port: 0 }
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[backend]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: ${cluster} }]
`;
    await writeFile(file, config(0));
    const child = run(['run', '--config', file]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const client = echoClient(`127.0.0.1:${await listeningPort(child, 'local')}`);
    try {
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      await writeFile(file, config(0, 'missing'));
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg?.startsWith('config reload rejected')), 'the rejection');
      assert.match(logs.find((entry) => entry.msg?.startsWith('config reload rejected'))!.error!, /switchyard\.yaml: invalid config\n {2}routes\[0\]\.cluster: no cluster named "missing"/);
      await writeFile(file, config(1));
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg === 'config reloaded'), 'the reload');
      await waitFor(async () => (await unary(client, {})).response.backend === 'backend-1', 'the new backend');

      const admin = logs.find((entry) => entry.msg?.startsWith('admin interface listening'))!.address!;
      const page = await fetch(`http://${admin}/dashboard`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      assert.equal((await fetch(`http://${admin}/dashboard/dashboard.js`)).status, 200);
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    const { code, stderr } = await exited;
    assert.equal(code, 0, stderr);
  });

  it('demo: starts its backends from the bundled echo.proto and runs to the end', async () => {
    const child = run(['demo', '--duration', '1s']);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    const { code, stderr } = await exitOf(child);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /Switchyard, per RPC +\d+ RPCs\n {4}backend-0 /);
  });
});
