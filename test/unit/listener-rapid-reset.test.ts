/**
 * The listener hands a new stream to the handler only after the rest of the
 * bytes read with its HEADERS are parsed: a stream the client reset in the
 * same read never reaches the handler, and past stream_reset_burst of those
 * the connection is destroyed. Streams that are not reset are all handled.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DownstreamStream } from '../../src/grpc/streams.ts';
import { configSchema } from '../../src/config/schema.ts';
import { startListener, type Listener } from '../../src/listener/listener.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, rawConnect, rstStream } from '../helpers/raw-h2.ts';
import { waitFor } from '../helpers/harness.ts';

const listenerConfig = configSchema.parse({
  listeners: [{ name: 'main', port: 0, address: '127.0.0.1', plaintext: true, http2: { stream_reset_burst: 50, stream_reset_rate: 1 } }],
}).listeners[0]!;

/** A listener whose handler answers every stream at once with an empty 200, and counts them. */
async function countingListener(): Promise<{ listener: Listener; handled: () => number }> {
  let handled = 0;
  const listener = await startListener(listenerConfig, undefined, {
    stream: (stream: DownstreamStream) => {
      handled++;
      stream.respond({ ':status': 200 }, true);
    },
  });
  return { listener, handled: () => handled };
}

const block = grpcRequestHeaders();
const headers = (id: number, flags: number = Flag.END_HEADERS) => frame(FrameType.HEADERS, flags, id, block);

describe('listener: streams reset before routing', () => {
  it('a stream reset in the read that opened it is never handled; past the burst the connection is closed', async () => {
    const { listener, handled } = await countingListener();
    try {
      const connection = await rawConnect(listener.address.port);
      // 40 pairs (under the burst of 50), then a stream that is not reset: only that one is handled.
      connection.send(Buffer.concat([...Array.from({ length: 40 }, (_, i) => [headers(1 + 2 * i), rstStream(1 + 2 * i)]).flat(), headers(81, Flag.END_HEADERS | Flag.END_STREAM)]));
      await waitFor(() => handled() > 0, 'the stream that was not reset to be handled');
      assert.equal(handled(), 1, 'only the stream that was not reset was handled');
      assert.equal(listener.connectionCount, 1, 'under the burst the connection stays open');
      // 40 more pairs exceed the burst: the connection is destroyed without any of them handled.
      connection.send(Buffer.concat(Array.from({ length: 40 }, (_, i) => [headers(83 + 2 * i), rstStream(83 + 2 * i)]).flat()));
      await Promise.race([connection.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the connection is still open')), 5_000).unref())]);
      assert.equal(handled(), 1);
    } finally {
      await listener.destroy();
      await listener.close(0);
    }
  });

  it('streams that are not reset are all handled, however many arrive in one read', async () => {
    const { listener, handled } = await countingListener();
    try {
      const connection = await rawConnect(listener.address.port);
      connection.send(Buffer.concat(Array.from({ length: 90 }, (_, i) => headers(1 + 2 * i, Flag.END_HEADERS | Flag.END_STREAM))));
      await waitFor(() => handled() === 90, 'all 90 streams to be handled');
      assert.equal(listener.connectionCount, 1);
      connection.close();
    } finally {
      await listener.close(0);
    }
  });
});
