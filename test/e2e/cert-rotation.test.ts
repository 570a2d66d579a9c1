// Certificate rotation by a Kubernetes-style `..data` symlink swap, under
// load: zero failed RPCs, and new connections get the new certificate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { watchCertificates, type CertificateWatcher } from '../../src/lifecycle/cert-rotation.ts';
import { loadedCertificates } from '../../src/security/certificate-expiry.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { echoClient, startBackends, unary, waitFor } from '../helpers/harness.ts';
import { capturingLogger, startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';

describe('certificate rotation', () => {
  let backends: EchoServerHandle[];
  let pki: TestPki;
  let next: TestIdentity;
  let proxy: SecureProxy;
  let watcher: CertificateWatcher;
  let secretDir: string;
  const log = capturingLogger();

  /** Writes `identity` into a new timestamped dir and swaps `..data` to it, as the kubelet does. */
  const publish = async (identity: TestIdentity, version: string) => {
    const dataDir = path.join(secretDir, `..${version}`);
    await mkdir(dataDir);
    await copyFile(identity.cert, path.join(dataDir, 'tls.crt'));
    await copyFile(identity.key, path.join(dataDir, 'tls.key'));
    await symlink(`..${version}`, path.join(secretDir, '..data_tmp'));
    await rename(path.join(secretDir, '..data_tmp'), path.join(secretDir, '..data'));
  };

  const servedSerial = (port: number) => new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.caCertPem, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on('error', reject);
  });

  before(async () => {
    [backends, pki] = await Promise.all([startBackends(2), makeTestPki()]);
    next = await issueIdentity(pki, 'server-v2', { subject: '/CN=localhost', san: 'DNS:localhost, IP:127.0.0.1', usage: 'serverAuth' });
    secretDir = path.join(pki.dir, 'secret');
    await mkdir(secretDir);
    await publish(pki.server, 'v1');
    await symlink('..data/tls.crt', path.join(secretDir, 'tls.crt'));
    await symlink('..data/tls.key', path.join(secretDir, 'tls.key'));
    proxy = await startSecureProxy({
      listeners: [{ name: 'secure', port: 0, tls: { cert_file: path.join(secretDir, 'tls.crt'), key_file: path.join(secretDir, 'tls.key') } }],
      clusters: [{ name: 'echo', endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port })) }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
      drain: { delay: '1ms', timeout: '2s' },
    }, log.logger);
    watcher = await watchCertificates(proxy.proxy, 50);
  });

  after(async () => {
    watcher.close();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  it('swaps ..data under load: zero failed RPCs, new connections see the new serial', async () => {
    const oldSerial = new X509Certificate(pki.server.certPem).serialNumber;
    const newSerial = new X509Certificate(next.certPem).serialNumber;
    assert.equal(await servedSerial(proxy.port), oldSerial);

    const client = echoClient(`localhost:${proxy.port}`, grpc.credentials.createSsl(pki.caCertPem));
    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    const worker = async () => {
      while (!stop) {
        try {
          await unary(client, {}, new grpc.Metadata(), { deadline: Date.now() + 5_000 });
          ok++;
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 4 }, worker));
    try {
      await waitFor(() => ok > 50, 'load before the rotation');
      await publish(next, 'v2');
      await waitFor(async () => (await servedSerial(proxy.port)) === newSerial, 'the new certificate on a new connection');
      const atRotation = ok;
      await waitFor(() => ok > atRotation + 50, 'load after the rotation');
    } finally {
      stop = true;
      await load;
      client.close();
    }
    assert.deepEqual(failures, []);
    assert.ok(log.lines.some((l) => l.msg === 'certificates reloaded'));
    const listed = loadedCertificates(proxy.proxy.config, proxy.proxy.secrets);
    assert.equal(listed[0]?.serialNumber, newSerial);
    assert.ok(listed[0]!.secondsUntilExpiry > 3_600 && listed[0]!.secondsUntilExpiry <= 86_400);
  });

  it('keeps the certificate in force when the new files do not load, and logs an error', async () => {
    const before = await servedSerial(proxy.port);
    const dataDir = path.join(secretDir, '..v3');
    await mkdir(dataDir);
    await copyFile(pki.client.cert, path.join(dataDir, 'tls.crt'));
    await writeFile(path.join(dataDir, 'tls.key'), 'not a key');
    await symlink('..v3', path.join(secretDir, '..data_tmp'));
    await rename(path.join(secretDir, '..data_tmp'), path.join(secretDir, '..data'));
    await waitFor(() => log.lines.some((l) => l.msg === 'certificate files changed but cannot be used; the certificates in force stay'), 'the error log');
    assert.equal(await servedSerial(proxy.port), before);
  });

  it('warns about certificates that expire within certificates.expiry_warning', () => {
    assert.ok(log.lines.some((l) => l.msg === 'certificate expires soon' && l.level === 40), 'a one-day test certificate is within the default 7 days');
  });
});
