/**
 * Observability of a TLS proxy with mTLS: /certs and the expiry gauge follow
 * a rotation, reloads are counted by outcome, and nothing secret (key or
 * certificate material, request credentials) reaches a log line, even at debug.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { watchCertificates, type CertificateWatcher } from '../../src/lifecycle/cert-rotation.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { echoClient, expectStatus, startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { capturingLogger } from '../helpers/secure-proxy.ts';
import { adminJson, scrape, valueOf } from '../helpers/admin.ts';

const BEARER = 'Bearer tok-SECRET-7f3a91';

describe('observability of a TLS proxy', () => {
  let setup: EchoSetup;
  let pki: TestPki;
  let next: TestIdentity;
  let proxy: RunningProxy;
  let watcher: CertificateWatcher;
  let accessLogFile: string;
  let certFile: string;
  let keyFile: string;
  const log = capturingLogger();

  before(async () => {
    pki = await makeTestPki();
    next = await issueIdentity(pki, 'server-v2', { subject: '/CN=localhost', san: 'DNS:localhost, IP:127.0.0.1', usage: 'serverAuth' });
    accessLogFile = path.join(pki.dir, 'access.log');
    certFile = path.join(pki.dir, 'live.crt');
    keyFile = path.join(pki.dir, 'live.key');
    await copyFile(pki.server.cert, certFile);
    await copyFile(pki.server.key, keyFile);
    setup = await startEchoSetup(1, {
      authorization: { rules: [{ name: 'client', principals: ['spiffe://test/client'], methods: ['switchyard.demo.v1.Echo/*'], action: 'allow' }] },
      access_log: { output: accessLogFile },
      admin: { port: 0 },
      log_level: 'debug',
    }, {
      tls: { pki, listener: { cert_file: certFile, key_file: keyFile, client_ca_file: pki.caCert, client_certificates: 'optional', forward_client_cert: true } },
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

  const serialOf = (pem: Buffer) => new X509Certificate(pem).serialNumber;

  test('/certs and the expiry gauge show the certificates in force, before and after a rotation', async () => {
    const before = await adminJson(proxy.proxy, '/certs');
    const serving = before.body.certificates.find((c: { source: string }) => c.source === 'listeners[secure].tls.cert_file');
    assert.equal(serving.serial, serialOf(pki.server.certPem));
    assert.ok(serving.secondsUntilExpiry > 3_600, 'a fresh test certificate is valid for hours yet');
    assert.equal(serving.file, certFile);
    assert.ok(before.body.certificates.some((c: { source: string }) => c.source === 'listeners[secure].tls.client_ca_file'));

    await copyFile(next.key, keyFile);
    await copyFile(next.cert, certFile);
    await waitFor(async () => (await adminJson(proxy.proxy, '/certs')).body.certificates.some((c: { serial: string }) => c.serial === serialOf(next.certPem)), 'the rotated certificate in /certs');
    const samples = await scrape(proxy.proxy);
    assert.ok(valueOf(samples, 'switchyard_certificate_expiry_seconds', { source: 'listeners[secure].tls.cert_file', serial: serialOf(next.certPem) }) > 3_600);
    assert.equal(valueOf(samples, 'switchyard_certificate_expiry_seconds', { serial: serialOf(pki.server.certPem) }), 0, 'the old certificate is gone');
    assert.ok(valueOf(samples, 'switchyard_reloads_total', { kind: 'certificates', result: 'ok' }) >= 1);
  });

  test('a rotation that fails to load is counted as failed, and the certificate in force stays', async () => {
    await writeFile(keyFile, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n');
    await waitFor(async () => valueOf(await scrape(proxy.proxy), 'switchyard_reloads_total', { kind: 'certificates', result: 'failed' }) >= 1, 'the failed rotation to be counted');
    const { body } = await adminJson(proxy.proxy, '/certs');
    assert.ok(body.certificates.some((c: { serial: string }) => c.serial === serialOf(next.certPem)));
    const { body: balance } = await adminJson(proxy.proxy, '/balance');
    assert.ok(balance.changes.some((c: { kind: string; message: string }) => c.kind === 'reload_failed' && c.message.startsWith('certificates reload rejected')));
    await copyFile(next.key, keyFile);
  });

  test('no key, certificate or credential reaches a log line, even at debug level', async () => {
    const identified = echoClient(`localhost:${proxy.port}`, grpc.credentials.createSsl(pki.caCertPem, pki.client.keyPem, pki.client.certPem));
    const anonymous = echoClient(`localhost:${proxy.port}`, grpc.credentials.createSsl(pki.caCertPem));
    const metadata = new grpc.Metadata();
    metadata.set('authorization', BEARER);
    try {
      await unary(identified, { payload: Buffer.from('hello') }, metadata);
      const denied = await expectStatus(unary(anonymous, {}, metadata));
      assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    } finally {
      identified.close();
      anonymous.close();
    }
    await proxy.proxy.reload({ config: proxy.proxy.config, secrets: proxy.proxy.secrets });
    await waitFor(async () => (await readFile(accessLogFile, 'utf8')).split('\n').filter(Boolean).length >= 2, 'both RPCs in the access log');

    const logged = [JSON.stringify(log.lines), await readFile(accessLogFile, 'utf8')].join('\n');
    assert.ok(log.lines.some((line) => line.msg === 'certificates reloaded'), 'the rotation was logged');
    assert.ok(log.lines.some((line) => String(line.msg).includes('denied')), 'the refusal was logged');
    const secrets = [
      BEARER, 'tok-SECRET',
      'PRIVATE KEY', 'BEGIN CERTIFICATE',
      ...[pki.server, next, pki.client].flatMap((identity) => [pemBodyChunk(identity.keyPem), pemBodyChunk(identity.certPem)]),
    ];
    for (const secret of secrets) assert.ok(!logged.includes(secret), `a log line contains ${secret.slice(0, 20)}…`);
  });
});

/** A stretch of a PEM's base64 body: enough to recognise the material if it were logged in any form. */
function pemBodyChunk(pem: Buffer): string {
  return pem.toString('utf8').split('\n')[3]!.slice(0, 40);
}
