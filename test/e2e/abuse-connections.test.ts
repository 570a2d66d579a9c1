/**
 * Connection-level limits: a slow TLS handshake, max_connections, the
 * connection idle timeout and the stream idle timeout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startBackends, startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { startChildProxy, wellBehavedLoad, type ChildProxy } from '../helpers/abuse.ts';
import { FrameType, ping, rawConnect, settings } from '../helpers/raw-h2.ts';

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

describe('max_connections, idle_timeout and stream_idle_timeout', () => {
  let setup: EchoSetup;
  let proxy: RunningProxy;

  before(async () => {
    setup = await startEchoSetup(1, {
      listeners: [{ name: 'main', port: 0, plaintext: true, max_connections: 3, http2: { idle_timeout: '300ms', stream_idle_timeout: '300ms' } }],
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

  it('sends GOAWAY to a connection with no stream for idle_timeout, then closes it', async () => {
    const connection = await rawConnect(proxy.port);
    const took = await closedWithin(connection.socket, 3_000);
    assert.ok(took >= 250, `not before the idle timeout (${took.toFixed(0)} ms)`);
    assert.ok(connection.received.includes(FrameType.GOAWAY), 'GOAWAY first');
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
