/**
 * The handshake matrix, both sides (RFC 6455 §4, RFC 8441): real `ws`
 * backends and clients, raw sockets for what no library sends, Node's HTTP/2
 * client for extended CONNECT. Each case its own test.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { once } from 'node:events';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { waitFor } from '../helpers/harness.ts';
import { Flag, FrameType, frame, headerBlock, rawConnect } from '../helpers/raw-h2.ts';
import { frameHeader, openClient, openHttp2Client, rawUpgrade, refusedStatus, roundTrip, startWsBackend, startWsProxy, upgradeRequest, wsCluster, type WsBackend, type WsProxy } from '../helpers/websocket.ts';
import { acceptFor } from '../../src/websocket/handshake.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe('WebSocket handshake over HTTP/1.1 and HTTP/2', () => {
  let good: WsBackend;
  let badAccept: WsBackend;
  let refusing: WsBackend;
  let silent: WsBackend;
  let proxy: WsProxy;
  let url: string;
  let deadPort: number;

  before(async () => {
    good = await startWsBackend('good');
    badAccept = await startWsBackend('bad-accept', { headers: (headers) => { const i = headers.findIndex((h) => h.toLowerCase().startsWith('sec-websocket-accept')); headers[i] = `Sec-WebSocket-Accept: ${acceptFor('AAAAAAAAAAAAAAAAAAAAAA==')}`; } });
    refusing = await startWsBackend('refusing', { upgrade: (_request, socket) => socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 17\r\nx-why: app\r\n\r\nnot for you, sir\n') });
    silent = await startWsBackend('silent', { upgrade: () => {} });
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    proxy = await startWsProxy({
      clusters: [
        wsCluster('good', [good]),
        wsCluster('bad-accept', [badAccept]),
        wsCluster('refusing', [refusing]),
        wsCluster('silent', [silent]),
        { name: 'one-dead', lb_policy: 'least_connections', endpoints: [{ address: '127.0.0.1', port: deadPort }, { address: '127.0.0.1', port: good.port }] },
        { name: 'all-dead', endpoints: [{ address: '127.0.0.1', port: deadPort }] },
      ],
      websocket: {
        routes: [
          { match: { path: '/bad-accept' }, cluster: 'bad-accept' },
          { match: { path: '/refusing' }, cluster: 'refusing' },
          { match: { path: '/silent' }, cluster: 'silent', handshake_timeout: '300ms' },
          { match: { path: '/one-dead' }, cluster: 'one-dead' },
          { match: { path: '/all-dead' }, cluster: 'all-dead' },
          { match: { path: '/origins' }, cluster: 'good', allowed_origins: ['https://chat.example.com'] },
          { match: { path: '/no-upgrades' }, cluster: 'good', upgrades: false, forward_requests: true },
          { match: { prefix: '/page' }, cluster: 'good', forward_requests: true },
          { match: { prefix: '/chat' }, cluster: 'good' },
        ],
      },
    });
    url = `ws://127.0.0.1:${proxy.port}`;
  });

  after(async () => {
    await proxy.close();
    for (const backend of [good, badAccept, refusing, silent]) await backend.close();
  });

  it('upgrades a valid request: 101 with the accept for the client\'s key, then messages both ways', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { 'sec-websocket-key': KEY }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    const client = await openClient(`${url}/chat`);
    assert.equal(client.backend, 'good');
    assert.equal(await roundTrip(client, 'hello'), 'good:hello');
    client.ws.close(1000);
    assert.deepEqual(await client.closed, { code: 1000, reason: '' });
  });

  it('tells the backend who the client is and keeps the Host it asked for', async () => {
    const client = await openClient(`${url}/chat`, { headers: { host: 'chat.example.com', 'x-forwarded-for': '6.6.6.6' } });
    client.ws.close();
    const seen = good.upgrades.at(-1)!;
    assert.equal(seen.host, 'chat.example.com');
    assert.equal(seen['x-forwarded-for'], '127.0.0.1', 'a client\'s own x-forwarded-for is replaced (trusted_proxy_hops 0)');
    assert.equal(seen['x-forwarded-proto'], 'http');
  });

  it('passes the subprotocol the backend chose among those the client offered', async () => {
    const client = await openClient(`${url}/chat`, {}, ['v1', 'v2']);
    // The ws backend takes the first offered; the proxy checks it was offered and passes it on.
    assert.equal(client.ws.protocol, 'v1');
    assert.equal(good.upgrades.at(-1)?.['sec-websocket-protocol'], 'v1,v2');
    client.ws.close();
  });

  it('answers a GET without Upgrade on a WebSocket route 426 naming websocket', async () => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/chat`);
    assert.equal(response.status, 426);
    assert.equal(response.headers.get('upgrade'), 'websocket');
  });

  it('refuses "Upgrade: websocket" without "Connection: Upgrade" with 400', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { connection: 'keep-alive' }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 400 /);
  });

  it('refuses an upgrade to another protocol on a WebSocket route with 400', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { upgrade: 'h2c' }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 400 /);
  });

  it('refuses a Sec-WebSocket-Key that is not 16 bytes of base64 with 400', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { 'sec-websocket-key': 'c2hvcnQ=' }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.equal(good.upgrades.filter((headers) => headers['sec-websocket-key'] === 'c2hvcnQ=').length, 0, 'never reached the backend');
  });

  it('refuses an upgrade without a Sec-WebSocket-Key with 400', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { 'sec-websocket-key': undefined }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 400 /);
  });

  it('refuses an upgrade without a Sec-WebSocket-Version with 426 and "Sec-WebSocket-Version: 13"', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { 'sec-websocket-version': undefined }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 426 /);
    assert.match(head, /\r\nsec-websocket-version: 13\r\n/i);
  });

  it('refuses version 8 with 426 and "Sec-WebSocket-Version: 13"', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', { 'sec-websocket-version': '8' }));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 426 /);
    assert.match(head, /\r\nsec-websocket-version: 13\r\n/i);
  });

  it('refuses a POST upgrade with 405 and "Allow: GET"', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/chat', {}, 'POST'));
    socket.destroy();
    assert.match(head, /^HTTP\/1\.1 405 /);
    assert.match(head, /\r\nallow: GET\r\n/i);
  });

  it('refuses an origin that is not allowed with 403, and takes one that is', async () => {
    assert.equal((await refusedStatus(`${url}/origins`, { origin: 'https://evil.example.net' })).status, 403);
    const client = await openClient(`${url}/origins`, { origin: 'https://CHAT.example.com' });
    client.ws.close();
  });

  it('answers an upgrade no route takes 404', async () => {
    assert.equal((await refusedStatus(`${url}/nowhere`)).status, 404);
  });

  it('answers an upgrade on a route with upgrades off 403, and forwards its plain requests', async () => {
    assert.equal((await refusedStatus(`${url}/no-upgrades`)).status, 403);
    const response = await fetch(`http://127.0.0.1:${proxy.port}/no-upgrades?x=1`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'good GET /no-upgrades?x=1\n');
  });

  it('forwards a plain HTTP/1.1 request on a route that says so, body and all', async () => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/page/index.html`, { method: 'POST', body: 'form=1' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backend'), 'good');
    assert.equal(await response.text(), 'good POST /page/index.html\n');
  });

  it('leaves a plain request no WebSocket route takes to the listener: 426 naming h2c', async () => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/elsewhere`);
    assert.equal(response.status, 426);
    assert.equal(response.headers.get('upgrade'), 'h2c');
  });

  it('answers 502 when the backend\'s 101 does not carry the accept for the key', async () => {
    const refused = await refusedStatus(`${url}/bad-accept`);
    assert.equal(refused.status, 502);
    assert.equal(badAccept.open.size <= 1, true);
    assert.equal(proxy.records.at(-1)?.result, 'bad_accept');
  });

  it('passes a backend\'s refusal on: its status, fields and body', async () => {
    const refused = await refusedStatus(`${url}/refusing`);
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['x-why'], 'app');
    assert.equal(refused.body, 'not for you, sir\n');
  });

  it('moves to another endpoint when one refuses connections, and answers 502 when none accepts', async () => {
    for (let i = 0; i < 4; i++) {
      const client = await openClient(`${url}/one-dead`);
      assert.equal(client.backend, 'good');
      client.ws.close();
      await client.closed;
    }
    assert.equal((await refusedStatus(`${url}/all-dead`)).status, 502);
  });

  it('answers 504 when the backend does not answer the upgrade within handshake_timeout', async () => {
    const started = performance.now();
    assert.equal((await refusedStatus(`${url}/silent`)).status, 504);
    assert.ok(performance.now() - started >= 290);
  });

  it('serves RFC 8441 over HTTP/2: 200 to the extended CONNECT, a key the proxy made, its accept checked', async () => {
    const before = good.upgrades.length;
    const { session, status, ws } = await openHttp2Client(`http://127.0.0.1:${proxy.port}`, '/chat');
    assert.equal(status, 200);
    const echoed = await new Promise<string>((resolve) => { ws!.once('message', (data) => resolve(data.toString())); ws!.send('over h2'); });
    assert.equal(echoed, 'good:over h2');
    const seen = good.upgrades[before]!;
    assert.match(String(seen['sec-websocket-key']), /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(seen['sec-websocket-version'], '13');
    ws!.close(1000);
    const code = await new Promise<number>((resolve) => ws!.once('close', resolve));
    assert.equal(code, 1000);
    session.close();
  });

  it('answers 502 over HTTP/2 when the backend\'s accept is wrong', async () => {
    const { session, status } = await openHttp2Client(`http://127.0.0.1:${proxy.port}`, '/bad-accept');
    assert.equal(status, 502);
    session.close();
  });

  it('answers an extended CONNECT whose fields HTTP/1.1 cannot carry (a control character) with 400, and lives on', async () => {
    const connection = await rawConnect(proxy.port);
    const count = proxy.records.length;
    connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock([
      [':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':path', '/chat'], [':authority', 'localhost'],
      ['sec-websocket-version', '13'], ['x-odd', 'a\u0001b'],
    ])));
    await waitFor(() => connection.frames.some((received) => received.type === FrameType.HEADERS && received.streamId === 1), 'an answer on stream 1');
    await waitFor(() => proxy.records.length > count, 'the upgrade\'s record');
    assert.equal(proxy.records.at(-1)?.status, 400);
    connection.close();
    const client = await openClient(`${url}/chat`);
    client.ws.close();
  });

  it('refuses an extended CONNECT for another protocol with 400, and one without version 13 with 426', async () => {
    const other = await openHttp2Client(`http://127.0.0.1:${proxy.port}`, '/chat', { ':protocol': 'connect-udp' });
    assert.equal(other.status, 400);
    other.session.close();
    const noVersion = await openHttp2Client(`http://127.0.0.1:${proxy.port}`, '/chat', { 'sec-websocket-version': '8' });
    assert.equal(noVersion.status, 426);
    assert.equal(noVersion.responseHeaders['sec-websocket-version'], '13');
    noVersion.session.close();
  });
});

describe('a refused upgrade\'s connection', () => {
  let backend: WsBackend;
  let proxy: WsProxy;
  // A proxy of its own, so no other test's connection (a fetch kept alive) is in its count.
  const openConnections = () => proxy.proxy.listeners[0]!.connectionCount;

  before(async () => {
    backend = await startWsBackend('refused');
    proxy = await startWsProxy({ clusters: [wsCluster('chat', [backend])], websocket: { routes: [{ match: { prefix: '/chat' }, cluster: 'chat' }] } });
  });
  after(async () => {
    await proxy.close();
    await backend.close();
  });

  it('is let go once the client closes its side, even with bytes it sent after the request unread', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/nowhere'));
    assert.match(head, /^HTTP\/1\.1 404 /);
    // Bytes sent after the answer (a first frame written before the 404 was read) wait in the proxy's socket
    // unless it drains them, and then it never sees the client's FIN behind them.
    socket.end(frameHeader(0x1, 0));
    socket.resume();
    await once(socket, 'close');
    await waitFor(() => openConnections() === 0, 'the proxy to close its side of the refused connection');
  });

  it('is cut after a linger when the client never closes its side', async () => {
    const { head, socket } = await rawUpgrade(proxy.port, upgradeRequest('/nowhere'));
    assert.match(head, /^HTTP\/1\.1 404 /);
    // This client reads the proxy's FIN and keeps its own side open.
    socket.allowHalfOpen = true;
    socket.resume();
    await once(socket, 'end');
    assert.equal(openConnections(), 1, 'held while the client keeps its side open');
    await waitFor(() => openConnections() === 0, 'the proxy to cut it after the linger (5 s)', 10_000);
    socket.destroy();
  });
});

describe('WebSocket over a TLS listener', () => {
  let pki: TestPki;
  let backend: WsBackend;
  let proxy: WsProxy;

  before(async () => {
    pki = await makeTestPki();
    backend = await startWsBackend('tls-backend');
    proxy = await startWsProxy(
      {
        listeners: [{ name: 'main', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key } }],
        clusters: [wsCluster('chat', [backend])],
        websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] },
      },
      { listeners: new Map([['main', { cert: pki.server.certPem, key: pki.server.keyPem }]]), clusters: new Map() },
    );
  });

  after(async () => {
    await proxy.close();
    await backend.close();
    await pki.cleanup();
  });

  it('upgrades over ALPN http/1.1 (wss), with x-forwarded-proto https', async () => {
    const client = await openClient(`wss://localhost:${proxy.port}/chat`, { ca: pki.caCertPem, ALPNProtocols: ['http/1.1'] } as never);
    assert.equal(await roundTrip(client, 'secure'), 'tls-backend:secure');
    assert.equal(backend.upgrades.at(-1)?.['x-forwarded-proto'], 'https');
    client.ws.close();
    await client.closed;
  });

  it('upgrades over ALPN h2 with extended CONNECT', async () => {
    const session = http2.connect(`https://localhost:${proxy.port}`, { ca: pki.caCertPem });
    await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
    assert.equal(session.remoteSettings.enableConnectProtocol, true);
    session.close();
    const { status, ws, session: second } = await openHttp2Client(`https://localhost:${proxy.port}`, '/chat', {}, { ca: pki.caCertPem });
    assert.equal(status, 200);
    ws!.close();
    second.close();
  });
});

describe('a listener with websocket.over_http2 off', () => {
  it('does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    const proxy = await startWsProxy({ listeners: [{ name: 'main', port: 0, plaintext: true, websocket: { over_http2: false } }] });
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
    assert.notEqual(settings.enableConnectProtocol, true);
    session.close();
    await proxy.close();
  });
});
