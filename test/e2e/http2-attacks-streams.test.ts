/**
 * Attacks on the stream and frame rules: stream ids that go backwards or are
 * used again, frames on streams that are closed, frames larger than
 * SETTINGS_MAX_FRAME_SIZE, and connections that do not begin with the
 * HTTP/2 preface. Where RFC 9113 names a connection error the client gets
 * GOAWAY with that code; frames it tells a server to ignore (those after our
 * own RST_STREAM, §5.4.2) or to answer with RST_STREAM cost the client a
 * budget, and a flood of them gets GOAWAY ENHANCE_YOUR_CALM. Each attack runs
 * against a Switchyard process with a bystander calling through it
 * (test/helpers/abuse.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { startAttackBench, type AttackBench } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, ping, rstStream } from '../helpers/raw-h2.ts';
import { data, echoRequestMessage, ErrorCode, flood, watchAnswers, windowUpdate, type ServerAnswers } from '../helpers/raw-h2-attack.ts';

/** What these attacks add to the proxy's RSS: a few hundred small frames, or sockets. Measured: 0–3 MiB. */
const RSS_BUDGET = 16 << 20;
/** Connections with a bad preface opened at once. */
const BAD_PREFACE_CONNECTIONS = 200;

const unaryHeaders = grpcRequestHeaders();
const request = (id: number) => [frame(FrameType.HEADERS, Flag.END_HEADERS, id, unaryHeaders), data(id, echoRequestMessage(), Flag.END_STREAM)];
const openStream = (id: number) => frame(FrameType.HEADERS, Flag.END_HEADERS, id, unaryHeaders);
const malformed = (id: number) => frame(FrameType.HEADERS, Flag.END_HEADERS, id, Buffer.concat([unaryHeaders, headerBlock([['Upper', '1']])]));
const repeat = (times: number, make: () => Buffer) => () => Buffer.concat(Array.from({ length: times }, make));

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A raw socket that writes `bytes` and resolves with what the server sent, once it closed the socket. */
async function sendAndWaitClose(port: number, bytes: Buffer): Promise<{ answers: ServerAnswers; received: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const answers = watchAnswers(socket);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(bytes);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('the server did not close the socket within 5 s')), 5_000); })]);
  clearTimeout(timer);
  return { answers, received: Buffer.concat(chunks) };
}

describe('HTTP/2 attacks: stream ids, closed streams, frame sizes, prefaces', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench();
  });

  after(() => bench.close());

  it('a stream id lower than one already opened is a connection error PROTOCOL_ERROR (§5.1.1)', async () => {
    const outcome = await bench.attack('stream ids going backwards', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat(request(101)));
      await until(() => connection.answers.answered.has(101), 'the answer to stream 101');
      await flood(connection, (i) => Buffer.concat(request(99 - 2 * (i % 49))), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.PROTOCOL_ERROR);
    assert.equal(outcome.connection.answers.goAway?.lastStreamId, 101);
  });

  it('HEADERS on a stream that has ended both ways is a connection error STREAM_CLOSED (§5.1)', async () => {
    const outcome = await bench.attack('stream id used again', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat(request(1)));
      await until(() => connection.answers.ended.has(1), 'the end of stream 1');
      await flood(connection, () => Buffer.concat(request(1)), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.STREAM_CLOSED);
  });

  it('HEADERS, again and again, on a stream the server reset: ignored (§5.4.2) but counted, then GOAWAY ENHANCE_YOUR_CALM', async () => {
    const outcome = await bench.attack('HEADERS after our reset', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(malformed(1));
      await until(() => connection.answers.resets.get(1) === ErrorCode.PROTOCOL_ERROR, 'the reset of stream 1');
      await flood(connection, repeat(100, () => openStream(1)), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('DATA on a stream the client reset is answered with RST_STREAM STREAM_CLOSED (§5.1) and counted, then GOAWAY ENHANCE_YOUR_CALM', async () => {
    const outcome = await bench.attack('DATA after the client\'s reset', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat([openStream(1), rstStream(1)]));
      await flood(connection, repeat(100, () => data(1, Buffer.from('x'))), 1_000);
    });
    assert.equal(outcome.connection.answers.resets.get(1), ErrorCode.STREAM_CLOSED);
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('DATA on ids the client skipped below its last stream is a connection error PROTOCOL_ERROR (§5.1.1): the flood ends at its first frame', async () => {
    const outcome = await bench.attack('DATA on skipped stream ids', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(openStream(1_001));
      await flood(connection, (batch) => Buffer.concat(Array.from({ length: 100 }, (_, i) => data(1 + 2 * ((batch * 100 + i) % 500), Buffer.from('x')))), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.PROTOCOL_ERROR);
  });

  it('DATA on a stream closed so long ago that it is forgotten (1,100 streams later) is ignored: it may be late for a stream we reset', async () => {
    const outcome = await bench.attack('DATA on forgotten streams', { rssBudget: RSS_BUDGET, leaveOpen: true }, async (connection) => {
      connection.send(windowUpdate(0, 2 ** 31 - 1 - 65_535));
      for (let round = 0; round < 11; round++) {
        const ids = Array.from({ length: 100 }, (_, i) => 1 + 2 * (round * 100 + i));
        connection.send(Buffer.concat(ids.flatMap(request)));
        await until(() => ids.every((id) => connection.answers.ended.has(id)), `the answers of round ${round}`);
      }
      connection.send(Buffer.concat(Array.from({ length: 50 }, (_, i) => data(1 + 2 * i, Buffer.from('x')))));
      // Read and ignored: a PING sent after them is answered.
      connection.send(ping(7));
      await until(() => connection.received.includes(FrameType.PING), 'the PING ACK');
    });
    assert.equal(outcome.connection.answers.goAway, undefined);
  });

  it('one RST_STREAM on each stream that just ended, as grpc-js sends for a failed call, costs nothing: 1,000 of them keep the connection', async () => {
    const outcome = await bench.attack('an RST_STREAM after each answer', { rssBudget: RSS_BUDGET, leaveOpen: true }, async (connection) => {
      // The answers' DATA would spend the connection window of 65,535 bytes: open it.
      connection.send(windowUpdate(0, 2 ** 31 - 1 - 65_535));
      for (let round = 0; round < 10; round++) {
        const ids = Array.from({ length: 100 }, (_, i) => 1 + 2 * (round * 100 + i));
        connection.send(Buffer.concat(ids.flatMap(request)));
        await until(() => ids.every((id) => connection.answers.ended.has(id)), `the answers of round ${round}`);
        connection.send(Buffer.concat(ids.map((id) => rstStream(id))));
      }
      // A PING answered after the last resets were read: they were taken without a word.
      connection.send(ping(7));
      await until(() => connection.received.filter((type) => type === FrameType.PING).length > 0, 'the PING ACK');
    });
    assert.equal(outcome.connection.answers.goAway, undefined);
    assert.equal(outcome.connection.answers.resets.size, 0);
  });

  it('RST_STREAM, again and again, on a closed stream: ignored but counted, then GOAWAY ENHANCE_YOUR_CALM', async () => {
    const outcome = await bench.attack('RST_STREAM on a closed stream', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat(request(1)));
      await until(() => connection.answers.ended.has(1), 'the end of stream 1');
      await flood(connection, repeat(100, () => rstStream(1)), 1_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('streams beyond max_concurrent_streams get RST_STREAM REFUSED_STREAM, each a glitch; a flood of them gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    const slow = echoRequestMessage({ delayMs: 10_000 });
    const outcome = await bench.attack('streams over max_concurrent_streams', { rssBudget: RSS_BUDGET }, async (connection) => {
      // 100 slow RPCs fill the connection's streams; what comes after them is refused.
      connection.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => [openStream(1 + 2 * i), data(1 + 2 * i, slow, Flag.END_STREAM)]).flat()));
      await until(() => connection.answers.answered.size === 100, 'the backends\' headers on the 100 streams');
      await flood(connection, (batch) => Buffer.concat(Array.from({ length: 50 }, (_, i) => request(201 + 2 * (batch * 50 + i))).flat()), 1_000);
    });
    const { answers } = outcome.connection;
    assert.equal(answers.resets.get(201), ErrorCode.REFUSED_STREAM);
    assert.equal(answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('a DATA frame one byte over SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR (§4.2)', async () => {
    const outcome = await bench.attack('DATA over the frame size', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat([openStream(1), data(1, Buffer.alloc(16_385))]));
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.FRAME_SIZE_ERROR);
  });

  it('a frame header announcing 16 MiB is refused when its header arrives, before any of the payload is held', async () => {
    const outcome = await bench.attack('a 16 MiB frame', { rssBudget: RSS_BUDGET }, async (connection) => {
      const header = frame(FrameType.DATA, 0, 1).subarray(0, 9);
      header.writeUIntBE(2 ** 24 - 1, 0, 3);
      connection.send(Buffer.concat([openStream(1), header, Buffer.alloc(1_000)]));
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.FRAME_SIZE_ERROR);
  });

  it(`bad prefaces, ${BAD_PREFACE_CONNECTIONS} connections at once: HTTP/1.1 gets 426, garbage 400, a broken HTTP/2 preface GOAWAY PROTOCOL_ERROR`, async () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const kinds: { bytes: Buffer; check: (answer: { answers: ServerAnswers; received: Buffer }) => void }[] = [
      // Not the preface: the listener's HTTP/1.1 side answers (src/listener/http1.ts).
      {
        bytes: Buffer.from('POST /switchyard.demo.v1.Echo/Unary HTTP/1.1\r\nhost: switchyard\r\ncontent-type: application/grpc\r\n\r\n'),
        check: ({ received }) => assert.match(received.toString('latin1'), /^HTTP\/1\.1 426 /),
      },
      { bytes: Buffer.alloc(64 << 10, 0x5a), check: ({ received }) => assert.match(received.toString('latin1'), /^HTTP\/1\.1 400 /) },
      // The preface's first line, then something else (§3.4).
      { bytes: Buffer.concat([preface.subarray(0, 18), Buffer.alloc(1_000, 0x5a)]), check: ({ answers }) => assert.equal(answers.goAway?.code, ErrorCode.PROTOCOL_ERROR) },
      // The preface, then a frame other than SETTINGS first (§3.4).
      { bytes: Buffer.concat([preface, ping(1)]), check: ({ answers }) => assert.equal(answers.goAway?.code, ErrorCode.PROTOCOL_ERROR) },
    ];
    let answers: { answers: ServerAnswers; received: Buffer }[] = [];
    await bench.underLoad('bad prefaces', RSS_BUDGET, async () => {
      answers = await Promise.all(Array.from({ length: BAD_PREFACE_CONNECTIONS }, (_, i) => sendAndWaitClose(bench.proxy.port, kinds[i % kinds.length]!.bytes)));
    });
    answers.forEach((answer, i) => kinds[i % kinds.length]!.check(answer));
  });
});
