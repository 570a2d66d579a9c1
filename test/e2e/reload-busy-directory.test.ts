// `switchyard run` with its access log written next to its config and
// certificates, under steady load: a config edit and a certificate rotation
// are each applied while the log keeps being written, and the log says what
// changed and why it was looked at then.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { collectLogs, exitOf, listeningPort, runCli, type LogEntry } from '../helpers/cli.ts';
import { echoClient, startBackends, waitFor } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

interface ChangeEntry extends LogEntry {
  readonly files?: string[];
  readonly cause?: string;
  readonly waited_ms?: number;
}

describe('reloading while a busy access log shares the config directory', () => {
  let pki: TestPki;
  let next: TestIdentity;
  let backends: EchoServerHandle[];
  let dir: string;

  before(async () => {
    [pki, backends, dir] = await Promise.all([makeTestPki(), startBackends(2), mkdtemp(path.join(os.tmpdir(), 'switchyard-busy-'))]);
    next = await issueIdentity(pki, 'server-v2', { subject: '/CN=localhost', san: 'DNS:localhost, IP:127.0.0.1', usage: 'serverAuth' });
    await copyFile(pki.server.cert, path.join(dir, 'server.pem'));
    await copyFile(pki.server.key, path.join(dir, 'server-key.pem'));
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (backend: EchoServerHandle) => `
listeners: [{ name: secure, port: 0, tls: { cert_file: server.pem, key_file: server-key.pem } }]
watch_config: true
access_log: { output: access.log }
drain: { delay: 1ms, timeout: 2s }
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: ${backend.port} }] }]
routes: [{ match: { prefix: / }, cluster: echo }]
`;

  const servedSerial = (port: number) => new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.caCertPem, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on('error', reject);
  });

  /** Replaces `file` the way editors and cert tools do: a new file renamed over it. */
  const replace = async (file: string, from: string | Buffer) => {
    await writeFile(`${file}.new`, from);
    await rename(`${file}.new`, file);
  };

  it('applies a config edit and a certificate rotation while the access log is written continuously', async (t) => {
    const file = path.join(dir, 'switchyard.yaml');
    const log = path.join(dir, 'access.log');
    await writeFile(file, config(backends[0]!));
    const child = runCli(['run', '--config', file]);
    const exited = exitOf(child);
    const logs = collectLogs(child) as ChangeEntry[];
    const port = await listeningPort(child, 'secure');
    const client = echoClient(`localhost:${port}`, grpc.credentials.createSsl(pki.caCertPem));
    const load = steadyLoad(client, { concurrency: 4 });
    try {
      // The access log grows with every RPC: the directory never stays quiet for the 200 ms debounce.
      await waitFor(() => load.count('backend-0') > 200, 'steady load');
      const logSize = (await stat(log)).size;
      assert.ok(logSize > 0, 'the access log is written');

      const editedAt = performance.now();
      await replace(file, config(backends[1]!));
      const toNewBackend = load.since('backend-1');
      await waitFor(() => toNewBackend() > 0, 'RPCs on the backend the edited config names, while the load goes on');
      const editMs = performance.now() - editedAt;

      const newSerial = new X509Certificate(next.certPem).serialNumber;
      const rotatedAt = performance.now();
      await replace(path.join(dir, 'server-key.pem'), next.keyPem);
      await replace(path.join(dir, 'server.pem'), next.certPem);
      await waitFor(async () => (await servedSerial(port)) === newSerial, 'the rotated certificate on a new connection');
      const rotationMs = performance.now() - rotatedAt;
      t.diagnostic(`config edit applied after ${Math.round(editMs)} ms, certificate rotated after ${Math.round(rotationMs)} ms, under ${load.count('backend-0') + load.count('backend-1')} RPCs`);

      assert.ok((await stat(log)).size > logSize, 'the access log kept growing throughout');
      const changes = logs.filter((entry) => entry.msg?.startsWith('watched files changed'));
      const edit = changes.find((entry) => entry.files?.includes(file));
      assert.ok(edit, `the edit was logged: ${JSON.stringify(changes)}`);
      assert.equal(edit.cause, 'quiet', 'the access log does not count as a change, so the quiet wait ends');
      assert.ok(changes.every((entry) => !entry.files?.includes(log)), 'the access log is never a watched file');
      assert.ok(changes.some((entry) => entry.files?.includes(path.join(dir, 'server.pem'))), 'the rotation was logged');
      const reloading = logs.find((entry) => entry.msg === 'reloading the config' && entry.reason === 'file change') as (LogEntry & { changed?: string[] }) | undefined;
      assert.deepEqual(reloading?.changed, [file]);
    } finally {
      await load.stop();
      client.close();
      child.kill('SIGTERM');
    }
    assert.deepEqual(load.failures, []);
    const { code, stderr } = await exited;
    assert.equal(code, 0, stderr);
  });
});
