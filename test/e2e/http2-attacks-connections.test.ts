/**
 * Connection-level limits: a slow TLS handshake, a slow HTTP/2 preface
 * (handshake_timeout), the connection idle timeout, max_connections, the
 * stream idle timeout, and a client that reads its control frame ACKs and
 * keeps sending more.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startBackends, startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { startAttackBench, startChildProxy, wellBehavedLoad, type AttackBench, type ChildProxy } from '../helpers/abuse.ts';
import { ping, rawConnect, settings } from '../helpers/raw-h2.ts';
import { connectReady, ErrorCode, watchAnswers, type AttackConnection, type ServerAnswers } from '../helpers/raw-h2-attack.ts';

/** Sockets per kind of slow client, and idle connections. */
const SLOW_SOCKETS = 50;
const IDLE_CONNECTIONS = 200;
/** What they may add to the proxy's RSS: a socket and a connection object each. Measured: 1–4 MiB. */
const RSS_BUDGET = 32 << 20;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Resolves with how long `socket` took to be closed by the server; rejects past `withinMs`. */
function closedWithin(socket: net.Socket, withinMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${withinMs} ms`)), withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

describe('a TLS listener with a short handshake_timeout', () => {
  let pki: TestPki;
  let backends: EchoServerHandle[];
  let proxy: ChildProxy;

  before(async () => {
    pki = await makeTestPki();
    backends = await startBackends(1);
    proxy = await startChildProxy(() => `
listeners:
  - name: main
    port: 0
    tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, handshake_timeout: 300ms }
clusters:
  - name: echo
    endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }]
routes:
  - match: { prefix: / }
    cluster: echo
`);
  });

  after(async () => {
    await proxy.stop();
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  it('closes sockets that send nothing, or a few bytes slowly, at the timeout, while TLS clients are served', async () => {
    const load = wellBehavedLoad(`localhost:${proxy.port}`, 2, grpc.credentials.createSsl(pki.caCertPem));
    const rssBefore = await proxy.rss();
    const silent = Array.from({ length: 50 }, () => net.connect(proxy.port, '127.0.0.1').on('error', () => {}));
    const slow = net.connect(proxy.port, '127.0.0.1').on('error', () => {});
    // A TLS record header, one byte at a time.
    const bytes = [0x16, 0x03, 0x01, 0x02, 0x00];
    const dribble = setInterval(() => { if (bytes.length && !slow.destroyed) slow.write(Buffer.from([bytes.shift()!])); }, 50);
    try {
      const times = await Promise.all([...silent, slow].map((socket) => closedWithin(socket, 3_000)));
      assert.ok(Math.min(...times) >= 250, `not closed before the timeout (${Math.min(...times).toFixed(0)} ms)`);
    } finally {
      clearInterval(dribble);
    }
    const report = await load.stop();
    assert.deepEqual(report.errors, []);
    assert.ok(report.calls > 0);
    assert.ok(proxy.alive());
    const rssAfter = await proxy.rss();
    console.log(`slow handshake: 51 sockets closed; RSS ${(rssBefore / 2 ** 20).toFixed(1)} → ${(rssAfter / 2 ** 20).toFixed(1)} MiB; client p99 ${report.p99Ms.toFixed(1)} ms over ${report.calls} calls`);
  });
});

describe('h2c: a slow HTTP/2 preface (handshake_timeout) and idle connections (idle_timeout)', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench({ http2: '{ handshake_timeout: 300ms, idle_timeout: 300ms }' });
  });

  after(() => bench.close());

  /** A socket that sends `first`, then `dribble` a byte every 50 ms; resolves with what the server said and when it closed the socket. */
  async function slowClient(first: Buffer, dribble: Buffer): Promise<{ answers: ServerAnswers; closedAfterMs: number }> {
    const socket = net.connect(bench.proxy.port, '127.0.0.1').on('error', () => {});
    const answers = watchAnswers(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    if (first.length > 0) socket.write(first);
    let next = 0;
    const timer = setInterval(() => { if (next < dribble.length && !socket.destroyed) socket.write(dribble.subarray(next, ++next)); }, 50);
    try {
      return { answers, closedAfterMs: await closedWithin(socket, 3_000) };
    } finally {
      clearInterval(timer);
    }
  }

  it(`${SLOW_SOCKETS} sockets of each kind of slow preface are closed at handshake_timeout; past the preface's first line with GOAWAY SETTINGS_TIMEOUT`, async () => {
    const kinds = [
      { name: 'silent', first: Buffer.alloc(0), dribble: Buffer.alloc(0), goAway: undefined },
      { name: 'the preface a byte at a time', first: Buffer.alloc(0), dribble: PREFACE, goAway: undefined },
      { name: 'its first line, then the rest a byte at a time', first: PREFACE.subarray(0, 16), dribble: PREFACE.subarray(16), goAway: ErrorCode.SETTINGS_TIMEOUT },
      { name: 'the whole preface and no SETTINGS', first: PREFACE, dribble: Buffer.alloc(0), goAway: ErrorCode.SETTINGS_TIMEOUT },
    ];
    let results: { answers: ServerAnswers; closedAfterMs: number }[][] = [];
    await bench.underLoad('slow prefaces', RSS_BUDGET, async () => {
      results = await Promise.all(kinds.map((kind) => Promise.all(Array.from({ length: SLOW_SOCKETS }, () => slowClient(kind.first, kind.dribble)))));
    });
    kinds.forEach((kind, i) => {
      const times = results[i]!.map((r) => r.closedAfterMs);
      assert.ok(Math.min(...times) >= 250, `${kind.name}: not closed before the timeout (${Math.min(...times).toFixed(0)} ms)`);
      for (const { answers } of results[i]!) assert.equal(answers.goAway?.code, kind.goAway, kind.name);
    });
  });

  it(`${IDLE_CONNECTIONS} connections with no stream get GOAWAY NO_ERROR at idle_timeout and are closed; PINGs do not keep one open`, async () => {
    const connections: AttackConnection[] = [];
    let keepalive: NodeJS.Timeout | undefined;
    try {
      await bench.underLoad('idle connections', RSS_BUDGET, async () => {
        for (let i = 0; i < IDLE_CONNECTIONS; i++) connections.push(await connectReady(bench.proxy.port));
        // One of them sends a PING every 100 ms, as a client's keepalive would.
        const pinging = connections[0]!;
        keepalive = setInterval(() => pinging.send(ping(1)), 100);
        const started = performance.now();
        await Promise.all(connections.map((c) => c.closed));
        assert.ok(performance.now() - started >= 250, 'not before the idle timeout');
      });
    } finally {
      clearInterval(keepalive);
      for (const connection of connections) connection.close();
    }
    for (const connection of connections) {
      assert.equal(connection.answers.goAway?.code, ErrorCode.NO_ERROR);
    }
  });
});

describe('max_connections and stream_idle_timeout', () => {
  let setup: EchoSetup;
  let proxy: RunningProxy;

  before(async () => {
    setup = await startEchoSetup(1, {
      listeners: [{ name: 'main', port: 0, plaintext: true, max_connections: 3, http2: { stream_idle_timeout: '300ms' } }],
    });
    ({ proxy } = setup);
  });

  after(() => setup.close());

  it('closes a connection beyond max_connections at once, and accepts again when one goes', async () => {
    const open = await Promise.all([rawConnect(proxy.port), rawConnect(proxy.port), rawConnect(proxy.port)]);
    const extra = net.connect(proxy.port, '127.0.0.1').on('error', () => {});
    const closedAfter = await closedWithin(extra, 1_000);
    assert.ok(closedAfter < 250, `closed at once (${closedAfter.toFixed(0)} ms), well before the idle timeout`);
    open[0]!.close();
    await open[0]!.closed;
    const again = await rawConnect(proxy.port);
    assert.ok(!again.socket.destroyed);
    for (const c of [...open, again]) c.close();
    await waitFor(() => proxy.proxy.listeners[0]!.connectionCount === 0, 'the connections to be gone');
  });

  it('resets a stream with no frames for stream_idle_timeout; an active one is not cut', async () => {
    const { client } = setup;
    const quiet = client.Bidi();
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      quiet.on('data', () => {});
      quiet.on('error', resolve);
    });
    assert.equal(error.code, grpc.status.CANCELLED);

    // Messages every 100 ms for a second: never idle for 300 ms.
    const busy = client.Bidi();
    let replies = 0;
    const done = new Promise<void>((resolve, reject) => {
      busy.on('data', () => replies++);
      busy.on('end', resolve);
      busy.on('error', reject);
    });
    for (let i = 0; i < 10; i++) {
      busy.write({ payload: Buffer.from([i]) });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    busy.end();
    await done;
    assert.equal(replies, 10);
    assert.equal((await unary(client, {})).response.backend, 'backend-0');
  });
});

describe('control frame limit (control_frame_burst, control_frames_per_second)', () => {
  it('a client sending PINGs and SETTINGS beyond the bucket gets GOAWAY ENHANCE_YOUR_CALM and is closed', async () => {
    const { proxy, client, close } = await startEchoSetup(1, {
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { control_frame_burst: 20, control_frames_per_second: 1 } }],
    });
    try {
      const connection = await rawConnect(proxy.port);
      // Well under anything nghttp2 itself objects to: 40 frames, 5 ms apart, every answer read.
      for (let i = 0; i < 40 && !connection.socket.destroyed; i++) {
        connection.send(i % 2 ? ping(i) : settings());
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await connection.closed;
      assert.equal(connection.goawayCode, 11, 'GOAWAY ENHANCE_YOUR_CALM');
      assert.equal((await unary(client, {})).response.backend, 'backend-0');
    } finally {
      await close();
    }
  });
});
