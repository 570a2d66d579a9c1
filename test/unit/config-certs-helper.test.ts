// The test PKI helper is what the TLS end-to-end tests stand on, so check it against Node's own TLS.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';

let pki: TestPki;
let server: tls.Server;
let port: number;
/** The verified client certificate subjectAltName of each accepted connection. */
const clientNames: string[] = [];

before(async () => {
  pki = await makeTestPki();
  server = tls.createServer({
    cert: pki.server.certPem,
    key: pki.server.keyPem,
    ca: pki.caCertPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  }, (socket) => {
    clientNames.push(socket.getPeerCertificate().subjectaltname ?? '');
    socket.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await pki.cleanup();
});

/** Connects with `options` and resolves with what the server sent, or rejects with the handshake error. */
function connect(options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem, ...options });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('makeTestPki', () => {
  it('makes a CA and leaves with the promised extensions', () => {
    const ca = new X509Certificate(pki.caCertPem);
    const serverCert = new X509Certificate(pki.server.certPem);
    const clientCert = new X509Certificate(pki.client.certPem);
    assert.equal(ca.ca, true);
    assert.equal(serverCert.ca, false);
    assert.ok(serverCert.checkIssued(ca) && serverCert.verify(ca.publicKey));
    assert.ok(clientCert.checkIssued(ca) && clientCert.verify(ca.publicKey));
    assert.deepEqual(serverCert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(clientCert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(serverCert.checkHost('localhost'), 'localhost');
    assert.equal(serverCert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(clientCert.subjectAltName, 'URI:spiffe://test/client, DNS:client.test');
  });

  it('serves TLS 1.3 for the name localhost, with a verified client certificate', async () => {
    assert.equal(await connect({ servername: 'localhost' }), 'ok');
    assert.equal(clientNames.at(-1), 'URI:spiffe://test/client, DNS:client.test');
  });

  it('serves TLS for the address 127.0.0.1', async () => {
    // No servername: Node then checks the server certificate against the IP address.
    assert.equal(await connect({}), 'ok');
  });

  it('fails for a name the certificate does not have', async () => {
    await assert.rejects(connect({ servername: 'example.com' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('makes unrelated CAs on each call', async () => {
    const other = await makeTestPki();
    try {
      assert.notEqual(other.dir, pki.dir);
      // The server sends its CA along with its certificate (it is in the server's `ca`), hence "in chain".
      await assert.rejects(connect({ servername: 'localhost', ca: other.caCertPem }), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
      // The server must refuse a client certificate from a CA it does not trust.
      // In TLS 1.3 the client may finish its side first; the refusal then arrives as an alert or a bare close.
      const accepted = clientNames.length;
      const outcome = await connect({ servername: 'localhost', cert: other.client.certPem, key: other.client.keyPem }).catch((error: Error) => error);
      assert.notEqual(outcome, 'ok');
      assert.equal(clientNames.length, accepted);
    } finally {
      await other.cleanup();
    }
  });
});
