/**
 * One port, two protocols: a listener serves gRPC over HTTP/2 and hands
 * HTTP/1.1 clients (ALPN http/1.1, or cleartext without the HTTP/2 preface)
 * to its HTTP/1.1 side, which answers what no handler takes with a clear
 * status instead of a hang or a reset.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as http from 'node:http';
import * as net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startEchoSetup, unary, waitFor, type EchoSetup } from '../helpers/harness.ts';

/** Writes `request` raw and resolves with everything the server sent until it closed. */
function rawExchange(port: number, request: string | Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => { received += chunk; });
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
    if (typeof request === 'string') socket.write(request);
    else void (async () => {
      for (const piece of request) {
        socket.write(piece);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  });
}

describe('a cleartext listener', () => {
  let setup: EchoSetup;
  before(async () => {
    setup = await startEchoSetup(1);
  });
  after(() => setup.close());

  it('answers an HTTP/1.1 request 426 naming h2c, on the port that serves gRPC', async () => {
    const response = await fetch(`http://127.0.0.1:${setup.proxy.port}/switchyard.demo.v1.Echo/Unary`, { method: 'POST', body: 'x' });
    assert.equal(response.status, 426);
    assert.equal(response.headers.get('upgrade'), 'h2c');
    assert.match(await response.text(), /gRPC over HTTP\/2/);
    assert.equal((await unary(setup.client, {})).response.backend, 'backend-0');
  });

  it('answers an upgrade no route takes 404, and a malformed request 400, then closes', async () => {
    const upgrade = await rawExchange(setup.proxy.port, 'GET /chat HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    assert.match(upgrade, /^HTTP\/1\.1 404 /);
    const malformed = await rawExchange(setup.proxy.port, 'GET / HTTP/1.1\r\nbad header line\r\n\r\n');
    assert.match(malformed, /^HTTP\/1\.1 400 /);
  });

  it('still takes the HTTP/2 preface when it arrives a few bytes at a time', async () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const goAway = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const answer = await rawExchange(setup.proxy.port, [preface.subarray(0, 2), preface.subarray(2, 9), Buffer.concat([preface.subarray(9), settings, goAway])]);
    // The server's SETTINGS frame: type 4 in the fourth byte of the first frame, not an HTTP/1.1 status line.
    assert.equal(Buffer.from(answer, 'latin1')[3], 4);
  });

  it('closes an answered HTTP/1.1 connection, so a drain has nothing of it to wait for', async () => {
    const agent = new http.Agent({ keepAlive: true });
    const status = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: setup.proxy.port, path: '/', agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode!));
      }).on('error', reject);
    });
    // 426 answers close the connection; either way nothing is left for the drain to wait on.
    assert.equal(status, 426);
    const listener = setup.proxy.proxy.listeners[0]!;
    await waitFor(() => listener.connectionCount <= 1, 'the HTTP/1.1 connection to close');
    agent.destroy();
  });
});

describe('a TLS listener', () => {
  let pki: TestPki;
  let setup: EchoSetup;
  before(async () => {
    pki = await makeTestPki();
    setup = await startEchoSetup(1, {}, { tls: { pki } });
  });
  after(async () => {
    await setup.close();
    await pki.cleanup();
  });

  it('offers ALPN http/1.1 beside h2: an HTTP/1.1 client gets 426 naming h2, gRPC clients are served', async () => {
    const { status, upgrade, alpn } = await new Promise<{ status: number; upgrade: string | undefined; alpn: string | false | null }>((resolve, reject) => {
      const options: https.RequestOptions = { host: '127.0.0.1', servername: 'localhost', port: setup.proxy.port, path: '/', method: 'GET', ca: pki.caCertPem };
      const request = https.request({ ...options, ALPNProtocols: ['http/1.1'] } as https.RequestOptions, (response) => {
        response.resume();
        resolve({ status: response.statusCode!, upgrade: response.headers.upgrade, alpn: (response.socket as TLSSocket).alpnProtocol });
      });
      request.on('error', reject);
      request.end();
    });
    assert.deepEqual({ status, upgrade, alpn }, { status: 426, upgrade: 'h2', alpn: 'http/1.1' });
    assert.equal((await unary(setup.client, {})).response.backend, 'backend-0');
  });
});
