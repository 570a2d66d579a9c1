/**
 * Writers share one packing arena: each must still send exactly its own
 * frames, in order, however their writes interleave and wherever the arena
 * fills up and is replaced.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { FrameWriter } from '../../src/http2/frame-writer.ts';
import { HpackEncoder } from '../../src/http2/hpack/encoder.ts';

/** A loopback socket pair: what is written to `client` arrives on the server side, collected by `received()`. */
async function socketPair(): Promise<{ client: net.Socket; received: () => Promise<Buffer>; close(): void }> {
  const chunks: Buffer[] = [];
  let ended!: () => void;
  const done = new Promise<void>((resolve) => { ended = resolve; });
  const server = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => ended());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  return {
    client,
    received: async () => {
      client.end();
      await done;
      return Buffer.concat(chunks);
    },
    close: () => server.close(),
  };
}

/** Parses frames back: [type, streamId, payload] each. */
function frames(bytes: Buffer): [number, number, Buffer][] {
  const out: [number, number, Buffer][] = [];
  for (let at = 0; at < bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    out.push([bytes[at + 3]!, bytes.readUInt32BE(at + 5), bytes.subarray(at + 9, at + 9 + length)]);
    at += 9 + length;
  }
  return out;
}

describe('FrameWriter', () => {
  it('two writers interleaved over several arenas each send exactly their own frames, header blocks included, in order', async () => {
    const [a, b] = await Promise.all([socketPair(), socketPair()]);
    const writerA = new FrameWriter(a.client);
    const writerB = new FrameWriter(b.client);
    const expected: Record<'a' | 'b', [number, number, Buffer][]> = { a: [], b: [] };
    // Each writer's HPACK encoder keeps a table: the expected blocks come from a twin of it fed the same blocks.
    const encoders = { a: new HpackEncoder(), b: new HpackEncoder() };
    // Payloads below and above the copy threshold, and enough of them to fill the 64 KiB arena many times.
    for (let i = 0; i < 3000; i++) {
      const [writer, key] = i % 3 === 0 ? [writerB, 'b' as const] : [writerA, 'a' as const];
      const payload = Buffer.alloc(i % 7 === 0 ? 700 : (i % 50) + 1, i % 251);
      writer.data(2 * i + 1, payload, false);
      writer.rstStream(2 * i + 1, i);
      const code = Buffer.alloc(4);
      code.writeUInt32BE(i);
      expected[key].push([0, 2 * i + 1, payload], [3, 2 * i + 1, code]);
      if (i % 5 === 0) {
        // Header blocks of every size up to a few hundred bytes, encoded in place in the arena, and some
        // over a 200-byte frame size, split into HEADERS and CONTINUATION.
        const headers = { ':status': '200', 'x-n': String(i), 'x-pad': 'p'.repeat(i % 400), 'x-list': ['a', 'b'.repeat(i % 13)] };
        const scratch = Buffer.alloc(encoders[key].bound(headers));
        const block = scratch.subarray(0, encoders[key].encode(headers, scratch, 0));
        const maxFrameSize = i % 4 === 0 ? 200 : 16_384;
        writer.headers(2 * i + 1, headers, false, maxFrameSize);
        for (let offset = 0; offset < block.length; offset += maxFrameSize) {
          expected[key].push([offset === 0 ? 1 : 9, 2 * i + 1, block.subarray(offset, offset + maxFrameSize)]);
        }
      }
      if (i % 97 === 0) writer.flush();
    }
    writerA.flush();
    writerB.flush();
    assert.deepEqual(frames(await a.received()), expected.a);
    assert.deepEqual(frames(await b.received()), expected.b);
    a.close();
    b.close();
  });
});
