/**
 * Attacks through header blocks: CONTINUATION floods (a block that never
 * ends, or ends only after thousands of tiny frames) and HPACK bombs (a
 * dynamic table size beyond what was allowed, an integer that never ends, a
 * large entry referenced many times, one oversized header, thousands of
 * one-byte fields). A block is bounded while it is assembled (32
 * CONTINUATION frames, max(2 × max_header_list_size, 64 KiB) encoded) and
 * while it is decoded (max_header_list_size and 128 fields, checked whether or
 * not the client acknowledged the SETTINGS that announce them: issue 12).
 * Each attack runs against a Switchyard process with a bystander calling
 * through it (test/helpers/abuse.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startAttackBench, type AttackBench } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, indexedField, indexedLiteral } from '../helpers/raw-h2.ts';
import { ErrorCode, flood, headerFrames, tableSizeUpdate } from '../helpers/raw-h2-attack.ts';

/** What a flood of header blocks adds to the proxy's RSS: what it read, garbage until collected. Measured: 0–3 MiB. */
const RSS_BUDGET = 24 << 20;
/** A header that refers to a dynamic table entry this many times in each block. */
const BOMB_REFERENCES = 120;

const requestBlock = grpcRequestHeaders();

/** Answered: a HEADERS frame with END_STREAM or an RST_STREAM. */
function answeredStreams(answers: { ended: Set<number>; resets: Map<number, number> }): number {
  return new Set([...answers.ended, ...answers.resets.keys()]).size;
}

describe('HTTP/2 attacks: CONTINUATION floods and HPACK bombs', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench();
  });

  after(() => bench.close());

  it('CONTINUATION flood: a header block that never ends gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    const outcome = await bench.attack('endless CONTINUATION', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(frame(FrameType.HEADERS, 0, 1, requestBlock));
      const junk = headerBlock([['x-junk', 'j'.repeat(1_000)]]);
      await flood(connection, () => frame(FrameType.CONTINUATION, 0, 1, junk), 100_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(await bench.routedFrom(outcome.attackerPeer), 0);
  });

  it('CONTINUATION flood: thousands of empty CONTINUATION frames get GOAWAY ENHANCE_YOUR_CALM', async () => {
    const outcome = await bench.attack('tiny CONTINUATIONs', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(frame(FrameType.HEADERS, 0, 1, requestBlock));
      const batch = Buffer.concat(Array.from({ length: 1_000 }, () => frame(FrameType.CONTINUATION, 0, 1)));
      await flood(connection, () => batch, 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('HPACK: a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE is a COMPRESSION_ERROR', async () => {
    const outcome = await bench.attack('table size update to 2^31-1', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.concat([tableSizeUpdate(2 ** 31 - 1), requestBlock])));
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.COMPRESSION_ERROR);
  });

  it('HPACK: an integer that never ends is a COMPRESSION_ERROR, not a loop', async () => {
    const outcome = await bench.attack('endless HPACK integer', { rssBudget: RSS_BUDGET }, async (connection) => {
      // A size update whose continuation bytes all have the high bit set: 16 KB of them.
      const endless = Buffer.concat([Buffer.from([0x3f]), Buffer.alloc(16_000, 0xff)]);
      connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, endless));
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.COMPRESSION_ERROR);
  });

  it('header list size: a 40 KB header is refused before routing (before the SETTINGS ACK too); a stream of them gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    const block = Buffer.concat([requestBlock, headerBlock([['x-large', 'a'.repeat(40_000)]])]);
    const outcome = await bench.attack('40 KB headers', { rssBudget: RSS_BUDGET, connect: { ackSettings: false } }, async (connection) => {
      // The first one alone: it is answered on its stream, the connection stays.
      connection.send(headerFrames(1, block, true));
      await waitForAnswers(connection.answers, 1);
      assert.ok(!connection.socket.destroyed);
      await flood(connection, (i) => headerFrames(3 + 2 * i, block, true), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    const rpcs = await bench.rpcsFrom(outcome.attackerPeer);
    assert.ok(rpcs.length > 0);
    for (const rpc of rpcs) {
      assert.equal(rpc.endpoint, undefined, 'never sent to a backend');
      assert.equal(rpc.grpc_status, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(rpc.reason, 'header_list_too_large');
    }
  });

  it(`HPACK bomb: a 4 KB entry referenced ${BOMB_REFERENCES} times per block is refused on every stream; a stream of them gets GOAWAY ENHANCE_YOUR_CALM`, async () => {
    const outcome = await bench.attack('dynamic table references', { rssBudget: RSS_BUDGET, connect: { ackSettings: false } }, async (connection) => {
      // Stream 1 stores a 4,000-byte header in the decoder's dynamic table (index 62); it is within limits.
      connection.send(headerFrames(1, Buffer.concat([requestBlock, indexedLiteral('x-bomb', 'b'.repeat(4_000))]), true));
      await waitForAnswers(connection.answers, 1);
      // 130 bytes on the wire, 480 KB decoded.
      const bomb = Buffer.concat([requestBlock, ...Array.from({ length: BOMB_REFERENCES }, () => indexedField(62))]);
      await flood(connection, (i) => headerFrames(3 + 2 * i, bomb, true), 10_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    const rpcs = await bench.rpcsFrom(outcome.attackerPeer);
    const bombs = rpcs.filter((rpc) => rpc.endpoint === undefined);
    assert.ok(rpcs.length - bombs.length <= 1, 'only the first stream reached a backend');
    for (const rpc of bombs) assert.equal(rpc.grpc_status, grpc.status.RESOURCE_EXHAUSTED);
  });

  it('HPACK bomb: 16,000 one-byte fields in a block are refused (128 fields at most); a stream of them gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    // Static index 16 is `accept-encoding: gzip, deflate`: a regular field in one byte.
    const block = Buffer.concat([requestBlock, Buffer.alloc(16_000, indexedField(16)[0])]);
    const outcome = await bench.attack('one-byte fields', { rssBudget: RSS_BUDGET }, async (connection) => {
      await flood(connection, (i) => headerFrames(1 + 2 * i, block, true), 10_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    const rpcs = await bench.rpcsFrom(outcome.attackerPeer);
    assert.ok(rpcs.length > 0);
    for (const rpc of rpcs) assert.equal(rpc.reason, 'header_list_too_large');
  });
});

async function waitForAnswers(answers: { ended: Set<number>; resets: Map<number, number> }, count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (answeredStreams(answers) < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} streams answered within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
