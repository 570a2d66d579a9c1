/**
 * Limits on sessions and frames, end to end: a frame over the cap is refused
 * (1009) on its header, before its payload is sent; an unmasked client frame
 * gets 1002; caps per address and per listener answer 503; idle sessions,
 * silent clients and old sessions are closed with 1001; a backend that dies
 * leaves its clients a close frame, and the proxy nothing held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { waitFor } from '../helpers/harness.ts';
import { frameHeader, openClient, rawUpgrade, readCloseFrame, refusedStatus, roundTrip, startWsBackend, startWsProxy, upgradeRequest, wsCluster, type OpenClient, type WsBackend, type WsProxy } from '../helpers/websocket.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const MAX = 1024;

describe('frame limits', () => {
  let backend: WsBackend;
  let proxy: WsProxy;
  before(async () => {
    backend = await startWsBackend('f0');
    proxy = await startWsProxy({
      clusters: [wsCluster('chat', [backend])],
      websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat', max_frame_bytes: MAX, max_message_bytes: MAX, max_fragments: 4 }] },
    });
  });
  after(async () => {
    await proxy.close();
    await backend.close();
  });

  it('answers a frame whose 64-bit length is over the cap with 1009 before the payload is sent, and the backend gets 1001', async () => {
    const { socket, rest } = await rawUpgrade(proxy.port, upgradeRequest('/big'));
    await waitFor(() => backend.open.size === 1, 'the session to reach the backend');
    const closes = backend.closeCodes.length;
    // Only the header: 8 GiB announced, not one byte of it sent.
    socket.write(frameHeader(0x2, 2 ** 33));
    assert.equal(await readCloseFrame(socket, rest), 1009);
    await waitFor(() => backend.closeCodes.length > closes, 'the backend to hear of it');
    assert.equal(backend.closeCodes.at(-1), 1001);
    socket.destroy();
    await waitFor(() => proxy.proxy.websocket.sessions.size === 0, 'the session to end');
  });

  it('answers an unmasked client frame with 1002', async () => {
    const { socket, rest } = await rawUpgrade(proxy.port, upgradeRequest('/unmasked'));
    socket.write(Buffer.concat([frameHeader(0x1, 5, { masked: false }), Buffer.from('hello')]));
    assert.equal(await readCloseFrame(socket, rest), 1002);
    socket.destroy();
  });

  it('closes with 1009 a client whose message is over max_message_bytes, as the ws client reports it', async () => {
    const client = await openClient(`ws://127.0.0.1:${proxy.port}/message`);
    client.ws.send(Buffer.alloc(MAX + 1));
    assert.equal((await client.closed).code, 1009);
  });

  it('closes with 1009 toward a backend whose frame is over the cap, and 1001 toward its client', async () => {
    const client = await openClient(`ws://127.0.0.1:${proxy.port}/echo`);
    const closes = backend.closeCodes.length;
    // The echo comes back prefixed with the backend's name: over the cap by those few bytes.
    client.ws.send('x'.repeat(MAX));
    assert.equal((await client.closed).code, 1001);
    await waitFor(() => backend.closeCodes.length > closes, 'the backend\'s close');
    assert.equal(backend.closeCodes.at(-1), 1009);
  });

  it('closes with 1008 a message in more fragments than max_fragments', async () => {
    const { socket, rest } = await rawUpgrade(proxy.port, upgradeRequest('/fragments'));
    const piece = (opcode: number, fin: boolean) => Buffer.concat([frameHeader(opcode, 1, { fin }), Buffer.from([0x61 ^ 1])]);
    socket.write(Buffer.concat([piece(0x1, false), piece(0x0, false), piece(0x0, false), piece(0x0, false), piece(0x0, true)]));
    assert.equal(await readCloseFrame(socket, rest), 1008);
    socket.destroy();
  });
});

describe('connection caps', () => {
  it('answers 503 past max_connections_per_ip, and past the listener\'s max_connections', async () => {
    const backend = await startWsBackend('c0');
    const proxy = await startWsProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true, websocket: { max_connections_per_ip: 3 } }, { name: 'small', port: 0, plaintext: true, websocket: { max_connections: 2 } }],
      clusters: [wsCluster('chat', [backend])],
      websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] },
    });
    const [main, small] = proxy.proxy.listeners.map((listener) => `ws://127.0.0.1:${listener.address.port}/chat`) as [string, string];
    const clients: OpenClient[] = [];
    try {
      for (let i = 0; i < 3; i++) clients.push(await openClient(main));
      const refused = await refusedStatus(main);
      assert.equal(refused.status, 503);
      assert.match(refused.body, /from this address/);
      // Another loopback address is another client.
      clients.push(await openClient(main, { localAddress: '127.0.0.2' } as never));
      for (let i = 0; i < 2; i++) clients.push(await openClient(small));
      assert.equal((await refusedStatus(small)).status, 503);
      // A place freed is a place taken.
      clients.pop()!.ws.close();
      await waitFor(async () => (await openClient(small).then((client) => (clients.push(client), true), () => false)), 'a place on the small listener');
    } finally {
      for (const client of clients) client.ws.terminate();
      await proxy.close();
      await backend.close();
    }
  });
});

describe('timeouts', () => {
  let backend: WsBackend;
  let proxy: WsProxy;
  before(async () => {
    backend = await startWsBackend('t0');
    proxy = await startWsProxy({
      clusters: [wsCluster('chat', [backend])],
      websocket: {
        routes: [
          { match: { path: '/idle' }, cluster: 'chat', idle_timeout: '300ms', ping_interval: 'off' },
          { match: { path: '/pinged' }, cluster: 'chat', idle_timeout: '1h', ping_interval: '100ms', ping_timeout: '200ms' },
          { match: { path: '/aged' }, cluster: 'chat', max_connection_age: '400ms' },
        ],
      },
    });
  });
  after(async () => {
    await proxy.close();
    await backend.close();
  });

  it('closes an idle session with 1001 both ways after idle_timeout, and a busy one not', async () => {
    const busy = await openClient(`ws://127.0.0.1:${proxy.port}/idle`);
    const idle = await openClient(`ws://127.0.0.1:${proxy.port}/idle`);
    const started = performance.now();
    let busyClosed = false;
    void busy.closed.then(() => { busyClosed = true; });
    const keepBusy = (async () => {
      while (performance.now() - started < 600) await roundTrip(busy, 'tick');
    })();
    const { code } = await idle.closed;
    assert.equal(code, 1001);
    assert.ok(performance.now() - started >= 290, 'not before idle_timeout');
    await keepBusy;
    assert.equal(busyClosed, false, 'messages every few ms keep a session open past idle_timeout');
    busy.ws.close();
  });

  it('pings a quiet client, which stays while it answers, and drops one that stops answering', async () => {
    const answering = await openClient(`ws://127.0.0.1:${proxy.port}/pinged`);
    let pings = 0;
    answering.ws.on('ping', () => { pings++; });
    await waitFor(() => pings >= 3, 'pings from the proxy');
    assert.equal(answering.ws.readyState, answering.ws.OPEN);
    assert.equal(await roundTrip(answering, 'after pings'), 't0:after pings');
    answering.ws.close();
    await answering.closed;
    await waitFor(() => backend.open.size === 0, 'the answering session to end at the backend too');

    // A raw client reads nothing and answers nothing: gone, as far as the proxy can tell.
    const closes = backend.closeCodes.length;
    const { socket } = await rawUpgrade(proxy.port, upgradeRequest('/pinged'));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume();
    await ended;
    await waitFor(() => backend.closeCodes.length > closes, 'the backend to be told');
    assert.equal(backend.closeCodes.at(-1), 1001);
  });

  it('closes a session older than max_connection_age with 1001', async () => {
    const client = await openClient(`ws://127.0.0.1:${proxy.port}/aged`);
    const started = performance.now();
    assert.equal((await client.closed).code, 1001);
    // ±10% jitter around 400 ms.
    assert.ok(performance.now() - started >= 350);
  });
});

describe('a backend that dies mid-session', () => {
  it('leaves each client a close frame (1001, not 1006), and the proxy holds nothing after', async () => {
    const backend = await startWsBackend('d0');
    const proxy = await startWsProxy({ clusters: [wsCluster('chat', [backend], { lb_policy: 'least_connections' })], websocket: { routes: [{ match: { prefix: '/' }, cluster: 'chat' }] } });
    const url = `ws://127.0.0.1:${proxy.port}/chat`;
    try {
      // Warm up first, so the baseline includes what the first sessions load once (code, caches).
      const warm = await Promise.all(Array.from({ length: 20 }, () => openClient(url)));
      for (const client of warm) client.ws.close();
      await Promise.all(warm.map((client) => client.closed));
      await waitFor(() => proxy.proxy.websocket.sessions.size === 0, 'the warm-up sessions to end');
      gc();
      const before = process.memoryUsage().heapUsed;

      let clients: OpenClient[] | undefined = await Promise.all(Array.from({ length: 100 }, () => openClient(url)));
      for (const client of clients.slice(0, 10)) assert.equal(await roundTrip(client, 'hi'), 'd0:hi');
      await backend.kill();
      const codes = await Promise.all(clients.map((client) => client.closed.then((closed) => closed.code)));
      assert.deepEqual(new Set(codes), new Set([1001]));
      clients = undefined;

      await waitFor(() => proxy.proxy.websocket.sessions.size === 0 && proxy.proxy.listeners[0]!.connectionCount === 0, 'every session and connection to be gone');
      const endpoint = [...proxy.proxy.clusters.get('chat')!.endpoints.values()][0]!;
      assert.equal(endpoint.activeRequests, 0, 'no tunnel is still counted');
      assert.equal(proxy.proxy.websocket.sessions.perEndpoint().size, 0);
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      assert.ok(grown < 2 << 20, `the heap grew by ${(grown / 2 ** 20).toFixed(2)} MiB after the sessions ended`);
    } finally {
      await proxy.close();
    }
  });
});
