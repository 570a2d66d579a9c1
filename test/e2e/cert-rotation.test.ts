// Certificate rotation by a Kubernetes-style `..data` symlink swap, under
// load: zero failed RPCs, and new connections get the new certificate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tls from 'node:tls';
import { watchCertificates, type CertificateWatcher } from '../../src/lifecycle/cert-rotation.ts';
import { loadedCertificates } from '../../src/security/certificate-expiry.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { startEchoSetup, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';
import { capturingLogger } from '../helpers/secure-proxy.ts';

describe('certificate rotation', () => {
  let setup: EchoSetup;
  let pki: TestPki;
  let next: TestIdentity;
  let proxy: RunningProxy;
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
    pki = await makeTestPki();
    next = await issueIdentity(pki, 'server-v2', { subject: '/CN=localhost', san: 'DNS:localhost, IP:127.0.0.1', usage: 'serverAuth' });
    secretDir = path.join(pki.dir, 'secret');
    await mkdir(secretDir);
    await publish(pki.server, 'v1');
    await symlink('..data/tls.crt', path.join(secretDir, 'tls.crt'));
    await symlink('..data/tls.key', path.join(secretDir, 'tls.key'));
    setup = await startEchoSetup(2, { drain: { delay: '1ms', timeout: '2s' } }, {
      tls: { pki, listener: { cert_file: path.join(secretDir, 'tls.crt'), key_file: path.join(secretDir, 'tls.key') } },
      logger: log.logger,
    });
    ({ proxy } = setup);
    watcher = await watchCertificates(proxy.proxy, 50);
  });

  after(async () => {
    watcher.close();
    await setup.close();
    await pki.cleanup();
  });

  it('swaps ..data under load: zero failed RPCs, new connections see the new serial', async () => {
    const oldSerial = new X509Certificate(pki.server.certPem).serialNumber;
    const newSerial = new X509Certificate(next.certPem).serialNumber;
    assert.equal(await servedSerial(proxy.port), oldSerial);

    const load = steadyLoad(setup.client, { concurrency: 4 });
    try {
      await waitFor(() => load.answered() > 50, 'load before the rotation');
      await publish(next, 'v2');
      await waitFor(async () => (await servedSerial(proxy.port)) === newSerial, 'the new certificate on a new connection');
      const atRotation = load.answered();
      await waitFor(() => load.answered() > atRotation + 50, 'load after the rotation');
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);
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
