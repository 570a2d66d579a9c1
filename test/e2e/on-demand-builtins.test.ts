// A plaintext proxy loads none of Node's TLS, crypto, HTTP/1.1 or DNS modules (src/builtins.ts):
// they are most of what an idle proxy's memory would otherwise hold for nothing. A config that
// uses TLS loads node:tls, which shows the check can see a module load.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { CLI, collectLogs, exitOf, listeningPort } from '../helpers/cli.ts';

const ON_DEMAND = ['tls', 'crypto', 'http', 'https', 'dns/promises', 'zlib'];

/** A preload that writes the built-in modules the process loaded, when it exits. */
const RECORDER = (out: string) => `
process.on('exit', () => {
  const loaded = process.moduleLoadList.filter((entry) => entry.startsWith('NativeModule ')).map((entry) => entry.slice('NativeModule '.length));
  require('node:fs').writeFileSync(${JSON.stringify(out)}, loaded.join('\\n'));
});
`;

describe('built-in modules a config does not use are never loaded', () => {
  let pki: TestPki;
  let backends: EchoServerHandle[];

  before(async () => {
    pki = await makeTestPki();
    backends = await startBackends(1);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  /** Runs the proxy with `listener`, sends one RPC, reloads, sends another, stops it: the built-ins it loaded. */
  async function builtinsLoaded(name: string, listener: string): Promise<string[]> {
    const file = path.join(pki.dir, `${name}.yaml`);
    const out = path.join(pki.dir, `${name}.loaded`);
    const recorder = path.join(pki.dir, `${name}.cjs`);
    await writeFile(file, `
listeners: [${listener}]
drain: { delay: 1ms, timeout: 1s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`);
    await writeFile(recorder, RECORDER(out));
    const child = spawn(process.execPath, ['--require', recorder, CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const port = await listeningPort(child, 'local');
    const client = listener.includes('cert_file')
      ? echoClient(`localhost:${port}`, (await import('@grpc/grpc-js')).credentials.createSsl(pki.caCertPem))
      : echoClient(`127.0.0.1:${port}`);
    try {
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
      child.kill('SIGHUP');
      await waitFor(() => logs.some((entry) => entry.msg === 'config reloaded'), 'the reload');
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    assert.equal((await exited).code, 0);
    return (await readFile(out, 'utf8')).split('\n');
  }

  it('a plaintext proxy serves, reloads and drains without node:tls, crypto, http, https, dns/promises or zlib', async () => {
    const loaded = await builtinsLoaded('plaintext', '{ name: local, port: 0, plaintext: true }');
    assert.ok(loaded.includes('net'), `the recorder saw the process's modules: ${loaded.join(' ')}`);
    assert.deepEqual(ON_DEMAND.filter((name) => loaded.includes(name)), []);
  });

  it('a TLS listener loads node:tls', async () => {
    const loaded = await builtinsLoaded('tls', `{ name: local, port: 0, tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key} } }`);
    assert.ok(loaded.includes('tls'));
  });
});
