/**
 * Attacks that make a server spend work on streams it then throws away:
 * rapid reset (CVE-2023-44487: the client opens and cancels streams) and
 * MadeYouReset (CVE-2025-8671: the client sends something on a stream that
 * the server must answer with RST_STREAM, so the server resets it itself).
 * Both draw on one budget per connection, stream_reset_burst (200) then
 * stream_reset_rate (100/s); past it the client gets GOAWAY
 * ENHANCE_YOUR_CALM. A stream reset in the read that opened it is never
 * routed. Each attack runs against a Switchyard process with a bystander
 * calling through it (test/helpers/abuse.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startAttackBench, type AttackBench } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, rstStream } from '../helpers/raw-h2.ts';
import { data, echoRequestMessage, ErrorCode, flood, priority, windowUpdate } from '../helpers/raw-h2-attack.ts';

/**
 * RSS these attacks may add to the proxy: a reset stream costs a map entry until it is dropped, and the
 * connection is closed after a few hundred of them. Measured: 0–2 MiB.
 */
const RSS_BUDGET = 16 << 20;
/**
 * The same when each stream also carries 80 KB of DATA: 200 streams are 16 MB read and dropped, garbage
 * until the next collection. Measured: 30–45 MiB.
 */
const RSS_BUDGET_WITH_DATA = 64 << 20;
/**
 * Attacker streams that may reach the router although they were reset: only those whose reset came in a
 * later read than their HEADERS (the kernel may split a write). Routing them all, as a proxy that handles
 * streams as they are parsed does, is stream_reset_burst (200) or more.
 */
const ROUTED_BOUND = 20;
/** Of the stream_reset_burst (200) streams the server resets before it gives up on the connection, at least these are seen. */
const RESETS_SEEN = 100;
/** Streams per write: each write is read whole by the proxy, mostly. */
const STREAMS_PER_BATCH = 50;

const unaryHeaders = grpcRequestHeaders();
const SIXTEEN_KB = Buffer.alloc(16_000);
const headers = (id: number, flags: number = Flag.END_HEADERS) => frame(FrameType.HEADERS, flags, id, unaryHeaders);

/** Each kind of MadeYouReset: the frames that open stream `id` and make the server reset it, and the code it uses. */
/**
 * Streams that may be routed, and reset after, when an attack lasts `seconds`: the reset budget's burst (200),
 * its refill (100/s), and the streams that can be open at once (100).
 */
const routedWithinBudget = (seconds: number) => Math.ceil(200 + 100 * seconds + 100);

const madeYouReset: { name: string; code: number; frames: (id: number) => Buffer[]; rssBudget?: number; routedWithinBudget?: boolean }[] = [
  { name: 'WINDOW_UPDATE that overflows the stream window', code: ErrorCode.FLOW_CONTROL_ERROR, frames: (id) => [headers(id), windowUpdate(id, 2 ** 31 - 1)] },
  { name: 'WINDOW_UPDATE of 0 on a stream', code: ErrorCode.PROTOCOL_ERROR, frames: (id) => [headers(id), windowUpdate(id, 0)] },
  { name: 'DATA on a half-closed stream', code: ErrorCode.STREAM_CLOSED, frames: (id) => [headers(id, Flag.END_HEADERS | Flag.END_STREAM), data(id, echoRequestMessage())] },
  { name: 'DATA beyond the stream window', code: ErrorCode.FLOW_CONTROL_ERROR, frames: (id) => [headers(id), ...Array.from({ length: 5 }, () => data(id, SIXTEEN_KB))],
    rssBudget: RSS_BUDGET_WITH_DATA,
    // Its reset comes a window of DATA after the HEADERS, never in the read that opened the stream: each stream is
    // routed before it is reset, and only the budget bounds them.
    routedWithinBudget: true,
  },
  { name: 'a stream that depends on itself', code: ErrorCode.PROTOCOL_ERROR, frames: (id) => [headers(id), priority(id, id)] },
  {
    name: 'malformed request headers (an upper-case field name)',
    code: ErrorCode.PROTOCOL_ERROR,
    frames: (id) => [frame(FrameType.HEADERS, Flag.END_HEADERS, id, Buffer.concat([unaryHeaders, headerBlock([['X-Upper', '1']])]))],
  },
  {
    name: 'a body that does not match content-length',
    code: ErrorCode.PROTOCOL_ERROR,
    frames: (id) => [frame(FrameType.HEADERS, Flag.END_HEADERS, id, Buffer.concat([unaryHeaders, headerBlock([['content-length', '3']])])), data(id, Buffer.alloc(4), Flag.END_STREAM)],
  },
];

describe('HTTP/2 attacks: rapid reset and MadeYouReset', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench();
  });

  after(() => bench.close());

  it('rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs get GOAWAY ENHANCE_YOUR_CALM, none is routed', async () => {
    const outcome = await bench.attack('rapid reset', { rssBudget: RSS_BUDGET }, async (connection) => {
      await flood(connection, (batch) => Buffer.concat(Array.from({ length: STREAMS_PER_BATCH }, (_, i) => {
        const id = 1 + 2 * (batch * STREAMS_PER_BATCH + i);
        return [headers(id), rstStream(id)];
      }).flat()), 400);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    const routed = await bench.routedFrom(outcome.attackerPeer);
    assert.ok(routed <= ROUTED_BOUND, `${routed} of the attacker's streams were routed`);
  });

  for (const variant of madeYouReset) {
    it(`MadeYouReset (CVE-2025-8671), ${variant.name}: reset with ${variant.code}, then GOAWAY ENHANCE_YOUR_CALM`, async () => {
      let seconds = 0;
      const outcome = await bench.attack(`MadeYouReset: ${variant.name}`, { rssBudget: variant.rssBudget ?? RSS_BUDGET }, async (connection) => {
        const started = performance.now();
        await flood(connection, (batch) => Buffer.concat(Array.from({ length: STREAMS_PER_BATCH }, (_, i) => variant.frames(1 + 2 * (batch * STREAMS_PER_BATCH + i))).flat()), 400);
        await connection.closed;
        seconds = (performance.now() - started) / 1_000;
      });
      const { answers } = outcome.connection;
      assert.equal(answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
      const resetAsExpected = [...answers.resets.values()].filter((code) => code === variant.code).length;
      assert.ok(resetAsExpected >= RESETS_SEEN, `${resetAsExpected} streams reset with the code RFC 9113 gives`);
      const routed = await bench.routedFrom(outcome.attackerPeer);
      const bound = variant.routedWithinBudget ? routedWithinBudget(seconds) : ROUTED_BOUND;
      assert.ok(routed <= bound, `${routed} of the attacker's streams were routed (at most ${bound} in ${seconds.toFixed(1)} s)`);
    });
  }

  it('MadeYouReset after routing: streams already forwarded, then reset for a WINDOW_UPDATE overflow, cost the same budget', async () => {
    const slowRequest = echoRequestMessage({ delayMs: 5_000 });
    const outcome = await bench.attack('MadeYouReset after routing', { rssBudget: RSS_BUDGET }, async (connection) => {
      const { answers } = connection;
      for (let round = 0; round < 10 && !connection.socket.destroyed; round++) {
        const ids = Array.from({ length: STREAMS_PER_BATCH }, (_, i) => 1 + 2 * (round * STREAMS_PER_BATCH + i));
        connection.send(Buffer.concat(ids.flatMap((id) => [headers(id), data(id, slowRequest, Flag.END_STREAM)])));
        // The backend's response headers: the stream was routed and forwarded.
        const deadline = Date.now() + 5_000;
        while (!connection.socket.destroyed && !ids.every((id) => answers.answered.has(id))) {
          if (Date.now() > deadline) throw new Error(`round ${round}: streams were not answered`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        connection.send(Buffer.concat(ids.map((id) => windowUpdate(id, 2 ** 31 - 1))));
      }
    });
    const { answers } = outcome.connection;
    assert.equal(answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(answers.resets.get(1), ErrorCode.FLOW_CONTROL_ERROR);
  });
});
