/**
 * Clients that never read must not make the proxy buffer without bound
 * (issue 12: five connections announcing INITIAL_WINDOW_SIZE 0, with 100
 * server streams each and no WINDOW_UPDATE, made the backends push 531 MiB into
 * the proxy; a bystander saw errors and a healthy endpoint was ejected). What
 * is held per stream is one window, the backend stops sending while its client
 * does not read, and a stream stalled for stalled_stream_timeout is reset.
 * Ways not to read: stream windows of 0; the connection window never
 * replenished; windows opened wide while the socket itself is not read, so
 * that only the proxy's own write buffer can hold the data back; and requests
 * whose answers carry no DATA at all (trailers only), sent to a socket that is
 * not read.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startAttackBench, type AttackBench } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, indexedField, indexedLiteral, type RawConnectOptions } from '../helpers/raw-h2.ts';
import { connectReady, echoRequestMessage, ErrorCode, Setting, settingsWith, windowUpdate, type AttackConnection } from '../helpers/raw-h2-attack.ts';

const SLOW_CONNECTIONS = 5;
const STREAMS_PER_CONNECTION = 100;
/**
 * RSS the attack may add to the warmed-up proxy. 500 stalled streams hold at most one 64 KiB upstream
 * window and one write queue (16 KiB) each, about 40 MiB, plus garbage not yet collected: measured
 * 44–58 MiB with stream windows of 0, 10–44 MiB with the connection window spent. It was 470 MiB with
 * 1 MiB windows.
 */
const RSS_BUDGET = 150 << 20;
/**
 * A client that opens its windows wide and does not read the socket: what the proxy holds is its write
 * buffer per connection and a window per stream. Measured: ~1 MiB. Without a bound on the write
 * buffer it grew by hundreds of MiB a second, as fast as the backends could send.
 */
const UNREAD_SOCKET_RSS_BUDGET = 64 << 20;
const UNREAD_CONNECTIONS = 2;
const UNREAD_STREAMS = 20;
/**
 * Requests of ~720 bytes answered by a direct_response whose trailers carry a 10,000-character message:
 * 10 KB written for each, none of it flow-controlled. Before the proxy stopped reading such a client,
 * its RSS grew by 100 MiB in about a second, and on for as long as the client kept sending. Now it grows
 * while the kernel's socket buffers fill (~10 MB of answers, garbage until collected), then stays:
 * measured 5–39 MiB.
 */
const TRAILERS_ONLY_RSS_BUDGET = 64 << 20;
const DENIED_MESSAGE = 'n'.repeat(10_000);
/**
 * Each request carries this much padding, so that a 64 KiB read of the socket holds fewer than
 * max_concurrent_streams (100) of them: more in one read would be refused (a glitch each), and the
 * attack would end there for a reason that is not the one tested.
 */
const REQUEST_PADDING = 700;

/** An Echo ServerStream request for 10,000 responses of 16 KiB: 160 MB per stream if nothing held it back. */
const SERVER_STREAM = [
  (id: number) => frame(FrameType.HEADERS, Flag.END_HEADERS, id, grpcRequestHeaders('/switchyard.demo.v1.Echo/ServerStream')),
  (id: number) => frame(FrameType.DATA, Flag.END_STREAM, id, echoRequestMessage({ count: 10_000, responseBytes: 16_384 })),
];
const serverStreams = (count: number) => Buffer.concat(Array.from({ length: count }, (_, i) => SERVER_STREAM.map((make) => make(1 + 2 * i))).flat());

const headersOn = (connection: AttackConnection) => connection.answers.answered.size;
const resetsOn = (connection: AttackConnection) => connection.answers.resets.size;

async function waitUntil(check: () => boolean, what: string, withinMs = 20_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('HTTP/2 attacks: clients that never read', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench({
      http2: '{ stalled_stream_timeout: 2s }',
      cluster: '    outlier_detection: { consecutive_gateway_errors: 3, max_ejection_percent: 100 }',
      routes: `  - match: { service: switchyard.test.Denied }\n    direct_response: { code: PERMISSION_DENIED, message: ${DENIED_MESSAGE} }`,
    });
  });

  after(() => bench.close());

  /** Opens SLOW_CONNECTIONS connections with `options`, 100 server streams each, and checks RSS, then the stalled-stream resets. */
  async function stallAndRelease(name: string, options: RawConnectOptions): Promise<void> {
    const connections: AttackConnection[] = [];
    try {
      await bench.underLoad(name, RSS_BUDGET, async () => {
        for (let c = 0; c < SLOW_CONNECTIONS; c++) {
          const connection = await connectReady(bench.proxy.port, options);
          connections.push(connection);
          connection.send(serverStreams(STREAMS_PER_CONNECTION));
        }
        // Every stream has its response headers: the backends are streaming into the proxy.
        await waitUntil(() => connections.every((c) => headersOn(c) >= STREAMS_PER_CONNECTION), 'every stream to have response headers');
        // While the streams are stalled (before the 2 s timeout), the RSS is sampled by the bench.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        // After the stalled-stream timeout, every stalled stream is reset.
        await waitUntil(() => connections.every((c) => resetsOn(c) >= STREAMS_PER_CONNECTION), 'the stalled streams to be reset');
      });
    } finally {
      for (const connection of connections) connection.close();
    }
    assert.deepEqual(bench.proxy.logs.filter((entry) => /ejected/.test(entry.msg ?? '')), [], 'no endpoint was ejected');
  }

  it(`stream windows of 0: ${SLOW_CONNECTIONS} × ${STREAMS_PER_CONNECTION} server streams hold one window each, and are reset after stalled_stream_timeout`, async () => {
    await stallAndRelease('INITIAL_WINDOW_SIZE 0', { initialWindowSize: 0 });
  });

  it(`a connection window never replenished: ${SLOW_CONNECTIONS} × ${STREAMS_PER_CONNECTION} server streams stall the same way`, async () => {
    // The default 65,535-byte windows and no WINDOW_UPDATE: after 64 KiB the whole connection is stalled.
    await stallAndRelease('zero connection window', {});
  });

  it(`windows opened wide and the socket not read: the proxy's write buffer is bounded (${UNREAD_CONNECTIONS} × ${UNREAD_STREAMS} server streams)`, async () => {
    const connections: AttackConnection[] = [];
    try {
      const measured = await bench.underLoad('socket not read', UNREAD_SOCKET_RSS_BUDGET, async () => {
        const rssBefore = await bench.proxy.rss();
        for (let c = 0; c < UNREAD_CONNECTIONS; c++) {
          const connection = await connectReady(bench.proxy.port, { initialWindowSize: 2 ** 31 - 1 });
          connections.push(connection);
          connection.send(Buffer.concat([windowUpdate(0, 2 ** 31 - 1 - 65_535), serverStreams(UNREAD_STREAMS)]));
          connection.socket.pause();
        }
        // The backends can push for as long as the proxy takes it; watch for 2 s, giving up early
        // once the budget is gone (the assertion then fails: no need to fill the machine's memory).
        const until = Date.now() + 2_000;
        while (Date.now() < until && (await bench.proxy.rss()) - rssBefore < UNREAD_SOCKET_RSS_BUDGET) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      });
      console.log(`# socket not read: RSS ${((measured.rssPeak - measured.rssBefore) / 2 ** 20).toFixed(1)} MiB over 2 s`);
    } finally {
      for (const connection of connections) connection.close();
    }
  });

  it('settings of 0 after the streams opened (SETTINGS_INITIAL_WINDOW_SIZE 0 mid-stream) stall them as well', async () => {
    const connections: AttackConnection[] = [];
    try {
      await bench.underLoad('INITIAL_WINDOW_SIZE 0 mid-stream', RSS_BUDGET, async () => {
        const connection = await connectReady(bench.proxy.port, {});
        connections.push(connection);
        connection.send(serverStreams(STREAMS_PER_CONNECTION));
        await waitUntil(() => headersOn(connection) >= STREAMS_PER_CONNECTION, 'every stream to have response headers');
        // The windows go to 0 (or below: §6.9.2 allows a negative window), and nothing more is granted.
        connection.send(settingsWith([[Setting.INITIAL_WINDOW_SIZE, 0]]));
        await waitUntil(() => resetsOn(connection) >= STREAMS_PER_CONNECTION, 'the stalled streams to be reset');
      });
    } finally {
      for (const connection of connections) connection.close();
    }
  });

  it('trailers-only answers to a client that does not read: the proxy stops reading it, and its write buffer stays bounded', async () => {
    let connection: AttackConnection | undefined;
    let attackerPeer = '';
    try {
      await bench.underLoad('trailers-only answers not read', TRAILERS_ONLY_RSS_BUDGET, async () => {
        const rssBefore = await bench.proxy.rss();
        connection = await connectReady(bench.proxy.port);
        attackerPeer = `:${connection.socket.localPort}`;
        // Stream 1 puts the six request fields in the HPACK dynamic table (indexes 62–67); later requests are six
        // one-byte references and the padding.
        const fields: [string, string][] = [[':method', 'POST'], [':scheme', 'http'], [':path', '/switchyard.test.Denied/Call'], [':authority', 'switchyard'], ['content-type', 'application/grpc'], ['te', 'trailers']];
        connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.concat(fields.map(([name, value]) => indexedLiteral(name, value)))));
        await waitUntil(() => connection!.answers.ended.has(1), 'the answer to stream 1');
        const references = Buffer.concat([...[67, 66, 65, 64, 63, 62].map((index) => indexedField(index)), headerBlock([['x-pad', 'p'.repeat(REQUEST_PADDING)]])]);
        connection.socket.pause();
        // 20 requests per write, for 2 s or until the budget is gone (the assertion then fails: no need to fill the machine's memory).
        let id = 3;
        const until = Date.now() + 2_000;
        while (Date.now() < until && (await bench.proxy.rss()) - rssBefore < TRAILERS_ONLY_RSS_BUDGET) {
          for (let batch = 0; batch < 50; batch++) {
            const requests = Buffer.concat(Array.from({ length: 20 }, () => frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, (id += 2) - 2, references)));
            // Once the proxy stops reading, the kernel's buffers fill and this write waits: the attack is held back.
            if (!connection.send(requests)) await Promise.race([new Promise((resolve) => connection!.socket.once('drain', resolve)), new Promise((resolve) => setTimeout(resolve, 20))]);
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      });
    } finally {
      connection?.close();
    }
    console.log(`# trailers-only answers not read: ${(await bench.rpcsFrom(attackerPeer)).length} requests answered`);
  });
});

describe('HTTP/2 attacks: what one connection may hold (max_session_memory_mb)', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench({ http2: '{ max_session_memory_mb: 1 }' });
  });

  after(() => bench.close());

  it('a connection whose stalled streams hold 1 MiB gets new streams refused (REFUSED_STREAM), not closed; its other streams go on', async () => {
    let connection: AttackConnection | undefined;
    try {
      await bench.underLoad('session memory', RSS_BUDGET, async () => {
        connection = await connectReady(bench.proxy.port, { initialWindowSize: 0 });
        // Each stalled server stream holds a write queue of 16 KiB: 100 of them are 1.6 MiB, over the limit.
        connection.send(serverStreams(STREAMS_PER_CONNECTION));
        await waitUntil(() => headersOn(connection!) >= STREAMS_PER_CONNECTION, 'every stream to have response headers');
        // Wait for their queues to fill: until a new stream is refused.
        let id = 1 + 2 * STREAMS_PER_CONNECTION;
        await waitUntil(() => {
          if (connection!.answers.resets.get(id - 2) === ErrorCode.REFUSED_STREAM) return true;
          connection!.send(Buffer.concat(SERVER_STREAM.map((make) => make(id))));
          id += 2;
          return false;
        }, 'a stream refused for the memory the connection holds', 10_000);
        assert.ok(!connection.socket.destroyed, 'refused, not closed: the client did nothing wrong');
      });
    } finally {
      connection?.close();
    }
  });
});

