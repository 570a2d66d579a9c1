/**
 * The decoded header list is limited before routing, whether or not the client
 * has acknowledged the proxy's SETTINGS (issue 12: before the ACK, nghttp2 does
 * not apply SETTINGS_MAX_HEADER_LIST_SIZE, and a 40 KB header, or a 4 KB one
 * referenced from the HPACK dynamic table 120 times per stream, was forwarded;
 * backends then closed the connection every client shared).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { startBackends, staticCluster, waitFor } from '../helpers/harness.ts';
import { wellBehavedLoad } from '../helpers/abuse.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, indexedField, indexedLiteral, rawConnect, type RawConnection } from '../helpers/raw-h2.ts';
import * as grpc from '@grpc/grpc-js';

const MAX_FRAME = 16_384;
const BOMB_STREAMS = 99;
const BOMB_REFERENCES = 120;

/** HEADERS, then CONTINUATION frames, for a header block larger than one frame. */
function headerFrames(streamId: number, block: Buffer): Buffer {
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length || offset === 0; offset += MAX_FRAME) {
    const piece = block.subarray(offset, offset + MAX_FRAME);
    const last = offset + MAX_FRAME >= block.length;
    frames.push(frame(offset === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, (last ? Flag.END_HEADERS : 0) | (offset === 0 ? Flag.END_STREAM : 0), streamId, piece));
  }
  return Buffer.concat(frames);
}

/** A stream is answered when it gets a HEADERS frame with END_STREAM or an RST_STREAM. */
function answered(connection: RawConnection, streamId: number): boolean {
  return connection.socket.destroyed || connection.frames.some((f) => f.streamId === streamId && (f.type === FrameType.RST_STREAM || (f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0)));
}

describe('header list limits before SETTINGS are acknowledged', () => {
  let backends: EchoServerHandle[];
  let pki: TestPki;
  let proxy: SecureProxy;

  before(async () => {
    [backends, pki] = await Promise.all([startBackends(2), makeTestPki()]);
    proxy = await startSecureProxy({
      listeners: [
        { name: 'h2c', port: 0, plaintext: true },
        { name: 'tls', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key } },
      ],
      clusters: [staticCluster('echo', backends, { outlier_detection: { consecutive_gateway_errors: 3, max_ejection_percent: 100 } })],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  const transports = [
    { name: 'h2c', port: () => proxy.proxy.listener('h2c').address.port, tls: undefined, credentials: () => grpc.credentials.createInsecure(), target: (port: number) => `127.0.0.1:${port}` },
    { name: 'TLS', port: () => proxy.proxy.listener('tls').address.port, tls: () => ({ ca: pki.caCertPem, servername: 'localhost' }), credentials: () => grpc.credentials.createSsl(pki.caCertPem), target: (port: number) => `localhost:${port}` },
  ];

  for (const transport of transports) {
    /** Runs `attack` on a raw connection that never ACKs SETTINGS, with a bystander calling meanwhile; returns the attacker's records. */
    async function underAttack(attack: (connection: RawConnection) => Promise<void>) {
      const port = transport.port();
      const bystander = wellBehavedLoad(transport.target(port), 4, transport.credentials());
      await waitFor(() => bystander.calls > 10, 'the bystander to be calling');
      const connection = await rawConnect(port, { ackSettings: false, ...(transport.tls && { tls: transport.tls() }) });
      const peer = `127.0.0.1:${connection.socket.localPort}`;
      await attack(connection);
      connection.close();
      const report = await bystander.stop();
      assert.deepEqual(report.errors, [], 'the bystander saw no error');
      const ejected = proxy.proxy.clusters.get('echo')!.healthSnapshot().filter((e) => e.ejected);
      assert.deepEqual(ejected, [], 'no endpoint was ejected');
      await waitFor(() => proxy.records.some((r) => r.peer === peer), 'the attacker\'s records');
      return proxy.records.filter((r) => r.peer === peer);
    }

    it(`${transport.name}: one 40 KB header is refused before routing`, async () => {
      const records = await underAttack(async (connection) => {
        const block = Buffer.concat([grpcRequestHeaders(), headerBlock([['x-large', 'a'.repeat(40_000)]])]);
        connection.send(headerFrames(1, block));
        await waitFor(() => answered(connection, 1), 'an answer to the oversized stream');
      });
      for (const record of records) {
        assert.equal(record.endpoint, undefined, 'never sent to a backend');
        assert.equal(record.status, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(record.error ?? '', /header list/);
      }
    });

    it(`${transport.name}: a header referenced ${BOMB_REFERENCES} times from the dynamic table is refused on every stream`, async () => {
      const records = await underAttack(async (connection) => {
        // Stream 1 stores a 4,000-byte header in the decoder's dynamic table (index 62); it is within limits.
        connection.send(headerFrames(1, Buffer.concat([grpcRequestHeaders(), indexedLiteral('x-bomb', 'b'.repeat(4_000))])));
        await waitFor(() => answered(connection, 1), 'an answer to the first stream');
        const reference = Buffer.concat(Array.from({ length: BOMB_REFERENCES }, () => indexedField(62)));
        const bombs: Buffer[] = [];
        for (let i = 0; i < BOMB_STREAMS; i++) bombs.push(headerFrames(3 + 2 * i, Buffer.concat([grpcRequestHeaders(), reference])));
        connection.send(Buffer.concat(bombs));
        await waitFor(() => answered(connection, 1 + 2 * BOMB_STREAMS), 'answers to the bombs');
      });
      const bombs = records.filter((r) => r.endpoint === undefined);
      assert.ok(records.length - bombs.length <= 1, 'only the first stream reached a backend');
      for (const record of bombs) assert.equal(record.status, grpc.status.RESOURCE_EXHAUSTED);
    });
  }
});
