import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { MAX_STREAM_ID } from '../../src/listener/goaway.ts';
import { startEchoSetup, unary, waitFor } from '../helpers/harness.ts';

/** A gRPC frame holding an EchoRequest with only delay_ms (field 2, varint) set. */
function echoRequestFrame(delayMs: number): Buffer {
  const varint: number[] = [];
  for (let value = delayMs; ; value >>>= 7) {
    if (value < 0x80) { varint.push(value); break; }
    varint.push((value & 0x7f) | 0x80);
  }
  const message = Buffer.from([0x10, ...varint]);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** Two backends behind a proxy whose one h2c listener ages connections out. */
const ageing = (age: string, grace: string) =>
  startEchoSetup(2, { listeners: [{ name: 'main', port: 0, plaintext: true, max_connection_age: age, max_connection_age_grace: grace }] });

describe('max_connection_age', () => {
  it('sends the two-phase GOAWAY after the age, and an RPC in flight still completes within the grace', async () => {
    const { proxy, close } = await ageing('300ms', '2s');
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const connectedAt = Date.now();
      const goaways: { lastStreamId: number; at: number }[] = [];
      session.on('goaway', (_code, lastStreamId) => goaways.push({ lastStreamId, at: Date.now() - connectedAt }));
      // An RPC that lasts past the age: 800 ms of backend delay.
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      stream.end(echoRequestFrame(800));
      stream.resume();
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve));
      assert.equal(trailers['grpc-status'], '0', 'the RPC in flight completed normally');
      await new Promise((resolve) => session.once('close', resolve));

      assert.ok(goaways.length >= 2, `two GOAWAY frames (got ${JSON.stringify(goaways)})`);
      assert.equal(goaways[0]!.lastStreamId, MAX_STREAM_ID, 'first: "stop opening streams", nothing refused yet');
      assert.equal(goaways[1]!.lastStreamId, 1, 'then the real last stream id: the one RPC, which may finish');
      // ±10% jitter on 300 ms.
      assert.ok(goaways[0]!.at >= 260 && goaways[0]!.at < 700, `GOAWAY after the age (${goaways[0]!.at} ms)`);
    } finally {
      session.destroy();
      await close();
    }
  });

  it('destroys a connection whose RPCs outlast the grace', async () => {
    const { proxy, close } = await ageing('100ms', '200ms');
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    session.on('error', () => {});
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => {});
      stream.end(echoRequestFrame(5_000));
      stream.resume();
      const startedAt = Date.now();
      await new Promise((resolve) => session.once('close', resolve));
      const elapsed = Date.now() - startedAt;
      assert.ok(elapsed < 1_500, `closed after age + grace, not after the RPC's 5 s (${elapsed} ms)`);
    } finally {
      session.destroy();
      await close();
    }
  });

  it('calls still running when the grace ends reach grpc-js as UNAVAILABLE, never INTERNAL', async () => {
    const { proxy, client, close } = await ageing('100ms', '200ms');
    try {
      // A unary call (no response yet) and a stream (headers and messages already sent) outlast the grace.
      const unaryCall = unary(client, { delay_ms: 5_000 }).then(() => grpc.status.OK, (error: grpc.ServiceError) => error.code);
      const stream = new Promise<number>((resolve) => {
        const call = client.ServerStream({ count: 100, delay_ms: 100 });
        call.on('data', () => {});
        call.on('error', () => {});
        call.on('status', (status: grpc.StatusObject) => resolve(status.code));
      });
      assert.deepEqual(await Promise.all([unaryCall, stream]), [grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
      await waitFor(() => proxy.records.length === 2, 'both records');
      assert.deepEqual(proxy.records.map((r) => r.reason), ['draining', 'draining']);
    } finally {
      await close();
    }
  });

  it('a grpc-js client moves to new connections as old ones age out, and no RPC fails', async () => {
    const { proxy, client, close } = await ageing('200ms', '5s');
    const listener = proxy.proxy.listener('main');
    try {
      const failures: string[] = [];
      let ok = 0;
      const loop = async () => {
        while (listener.connectionsAccepted < 4) {
          await unary(client, { delay_ms: 5 }).then(() => { ok++; }, (error: Error) => { failures.push(error.message); });
        }
      };
      await Promise.all([loop(), loop(), loop()]);
      await waitFor(() => ok > 0, 'RPCs');
      assert.deepEqual(failures, [], `no RPC failed (${ok} succeeded over ${listener.connectionsAccepted} connections)`);
      // The RPCs really came from several client connections.
      const peers = new Set(proxy.records.map((record) => record.peer));
      assert.ok(peers.size >= 3, `RPCs arrived on ${peers.size} connections`);
    } finally {
      await close();
    }
  });
});
