import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, unary } from '../helpers/harness.ts';
import { collectLogs, exitOf, listeningPort, runCli } from '../helpers/cli.ts';

describe('the switchyard command, with TLS to clients and to backends', () => {
  let pki: TestPki;
  let backend: EchoServerHandle;

  before(async () => {
    pki = await makeTestPki();
    backend = await startEchoServer({
      name: 'tls-backend',
      credentials: grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: pki.server.certPem, private_key: pki.server.keyPem }]),
    });
  });

  after(async () => {
    await backend.close();
    await pki.cleanup();
  });

  it('serves TLS 1.3 and h2c listeners at once, verifies the backend against its CA, and drains on SIGTERM', async () => {
    const config = path.join(pki.dir, 'switchyard.yaml');
    await writeFile(config, `
drain: { delay: 1ms, timeout: 2s }
listeners:
  - name: secure
    port: 0
    tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key} }
  - name: local
    port: 0
    plaintext: true
clusters:
  - name: echo
    endpoints: [{ address: 127.0.0.1, port: ${backend.port} }]
    tls: { ca_file: ${pki.caCert}, server_name: localhost }
routes:
  - match: { service: switchyard.demo.v1.Echo }
    cluster: echo
`);
    const child = runCli(['run', '--config', config]);
    const exited = exitOf(child);
    const [securePort, localPort] = await Promise.all([listeningPort(child, 'secure'), listeningPort(child, 'local')]);
    const secure = echoClient(`localhost:${securePort}`, grpc.credentials.createSsl(pki.caCertPem));
    const local = echoClient(`127.0.0.1:${localPort}`);
    try {
      const { response } = await unary(secure, { payload: Buffer.from('over tls') });
      assert.equal(response.backend, 'tls-backend');
      assert.equal(response.payload.toString(), 'over tls');
      assert.equal((await unary(local, {})).response.backend, 'tls-backend');
    } finally {
      secure.close();
      local.close();
    }
    child.kill('SIGTERM');
    const { code } = await exited;
    assert.equal(code, 0);
  });

  it('refuses a backend whose certificate does not carry the expected name', async () => {
    const config = path.join(pki.dir, 'wrong-name.yaml');
    await writeFile(config, `
drain: { delay: 1ms, timeout: 2s }
listeners: [{ name: local, port: 0, plaintext: true }]
clusters:
  - name: echo
    endpoints: [{ address: 127.0.0.1, port: ${backend.port} }]
    tls: { ca_file: ${pki.caCert}, server_name: payments.internal }
routes: [{ match: { prefix: / }, cluster: echo }]
`);
    const child = runCli(['run', '--config', config]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const port = await listeningPort(child, 'local');
    const client = echoClient(`127.0.0.1:${port}`);
    try {
      const error = await expectStatus(unary(client, {}));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      // The client learns what failed, not the backend's address or names; the operator's log has those.
      assert.equal(error.details, 'upstream connect failed');
      assert.ok(logs.some((entry) => entry.msg === 'connect failed' && /payments\.internal/.test(String((entry as { err?: string }).err))), 'the log names the certificate mismatch');
    } finally {
      client.close();
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('a bad config exits with status 2 and names the file and the path', async () => {
    const config = path.join(pki.dir, 'bad.yaml');
    await writeFile(config, `
listeners: [{ name: local, port: 0, plaintext: true }]
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: 1 }] }]
routes:
  - match: { method: Echo }
    cluster: echo
`);
    const { code, stderr } = await exitOf(runCli(['run', '--config', config]));
    assert.equal(code, 2);
    assert.match(stderr, /bad\.yaml: invalid config/);
    assert.match(stderr, /routes\[0\]\.match\.method: expected "\/package\.Service\/Method"/);
  });

  it('an unreadable certificate exits with status 2 and names the path', async () => {
    const config = path.join(pki.dir, 'missing-cert.yaml');
    await writeFile(config, `
listeners:
  - name: secure
    port: 0
    tls: { cert_file: ${path.join(pki.dir, 'nope.pem')}, key_file: ${pki.server.key} }
`);
    const { code, stderr } = await exitOf(runCli(['check', '--config', config]));
    assert.equal(code, 2);
    assert.match(stderr, /listeners\[0\]\.tls\.cert_file: cannot read/);
  });
});

describe('the TLS listener refuses what it should', () => {
  it('refuses a client that offers only TLS 1.2', async () => {
    const tls = await import('node:tls');
    const pki = await makeTestPki();
    const config = path.join(pki.dir, 'tls12.yaml');
    await writeFile(config, `
drain: { delay: 1ms, timeout: 2s }
listeners:
  - name: secure
    port: 0
    tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key} }
`);
    const child = runCli(['run', '--config', config]);
    const exited = exitOf(child);
    try {
      const port = await listeningPort(child, 'secure');
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caCertPem, servername: 'localhost', maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'] });
        socket.once('secureConnect', () => { resolve(`connected with ${socket.getProtocol()}`); socket.destroy(); });
        socket.once('error', (error) => resolve(`refused: ${error.message}`));
      });
      assert.match(outcome, /^refused/);
    } finally {
      child.kill('SIGTERM');
      await exited;
      await pki.cleanup();
    }
  });
});
