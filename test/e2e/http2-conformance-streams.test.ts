/**
 * HTTP/2 conformance, streams and the frames that act on them (RFC 9113 §5.1–
 * §5.3, §6.1–§6.4, §6.9, §6.10), after h2spec's sections: raw frames against a
 * real Switchyard listener in front of a grpc-js Echo backend, each case
 * asserting the exact reaction the RFC asks for. A Bidi call keeps a stream
 * open for as long as a case needs; a Unary call with delay_ms keeps one
 * half-closed (remote) while the backend waits.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { staticCluster, startEchoSetup, type EchoSetup } from '../helpers/harness.ts';
import { startFakeBackend, type FakeBackend } from '../helpers/h2-fake-backend.ts';
import {
  continuationFrame, dataFrame, echoHeaders, echoRequest, expectAlive, expectConnectionError, expectNothingMoreOn, expectStreamError, grpcMessage, grpcStatus, handshake,
  headersFrame, readAnswer, serverSetting, unaryCall,
} from '../helpers/h2-conformance.ts';
import { ErrorCode, Flag, frame, FrameType, priorityFrame, rstStream, Setting, settingsFrame, windowUpdate } from '../helpers/raw-h2.ts';

/** A Unary call whose answer waits this long at the backend: its stream stays half-closed (remote) meanwhile. */
const SLOW_MS = 300;

describe('HTTP/2 conformance: streams (RFC 9113 §5.1–§6.10)', () => {
  let setup: EchoSetup;
  let port: number;
  /** A backend that grants the proxy no window (SETTINGS_INITIAL_WINDOW_SIZE 0): requests routed there stall. */
  let stalled: FakeBackend;

  before(async () => {
    stalled = await startFakeBackend({ opening: settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 0]]), onRequest: () => {} });
    setup = await startEchoSetup(1, (backends) => ({
      clusters: [staticCluster('echo', backends), { name: 'stalled', endpoints: [{ address: '127.0.0.1', port: stalled.port }] }],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-route', exact: 'stalled' }] }, cluster: 'stalled' },
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    }));
    port = setup.proxy.port;
  });

  after(async () => {
    await setup.close();
    await stalled.close();
  });

  describe('§5.1 stream states', () => {
    it('5.1/1: idle: DATA is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(dataFrame(1, grpcMessage(echoRequest()), true));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/2: idle: RST_STREAM is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(rstStream(1, ErrorCode.CANCEL));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/3: idle: WINDOW_UPDATE is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(windowUpdate(1, 100));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/4: idle: CONTINUATION is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(continuationFrame(1, echoHeaders()));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/5: idle: PRIORITY is accepted, and a lower stream id may still be opened after it', async () => {
      const connection = await handshake(port);
      connection.send(priorityFrame(9, 0));
      connection.send(unaryCall(3));
      assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
      connection.close();
    });

    it('5.1/6: half-closed (remote): DATA is a stream error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: SLOW_MS })));
      connection.send(dataFrame(1, grpcMessage(echoRequest())));
      await expectStreamError(connection, 1, ErrorCode.STREAM_CLOSED);
      connection.close();
    });

    it('5.1/7: half-closed (remote): HEADERS is a stream error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: SLOW_MS })));
      connection.send(headersFrame(1, echoHeaders(), { endStream: true }));
      await expectStreamError(connection, 1, ErrorCode.STREAM_CLOSED);
      connection.close();
    });

    it('5.1/8: half-closed (remote): CONTINUATION (with no header block open) is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: SLOW_MS })));
      connection.send(continuationFrame(1, echoHeaders()));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/9: half-closed (remote): WINDOW_UPDATE, PRIORITY and RST_STREAM are accepted', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: SLOW_MS })));
      connection.send(Buffer.concat([windowUpdate(1, 1000), priorityFrame(1, 0)]));
      await expectAlive(connection);
      connection.send(rstStream(1, ErrorCode.CANCEL));
      await expectAlive(connection);
      await expectNothingMoreOn(connection, 1, SLOW_MS + 100);
      connection.close();
    });

    it('5.1/10: closed after the client\'s RST_STREAM: DATA is a stream error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), rstStream(1, ErrorCode.CANCEL)]));
      connection.send(dataFrame(1, grpcMessage(echoRequest())));
      await expectStreamError(connection, 1, ErrorCode.STREAM_CLOSED);
      connection.close();
    });

    it('5.1/11: closed after the client\'s RST_STREAM: HEADERS is a stream error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), rstStream(1, ErrorCode.CANCEL)]));
      connection.send(headersFrame(1, echoHeaders(), { endStream: true }));
      await expectStreamError(connection, 1, ErrorCode.STREAM_CLOSED);
      connection.close();
    });

    it('5.1/12: closed after the client\'s RST_STREAM: CONTINUATION is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), rstStream(1, ErrorCode.CANCEL)]));
      connection.send(continuationFrame(1, echoHeaders()));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/13: closed after END_STREAM both ways: DATA is a connection error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(dataFrame(1, grpcMessage(echoRequest())));
      await expectConnectionError(connection, ErrorCode.STREAM_CLOSED);
    });

    it('5.1/14: closed after END_STREAM both ways: HEADERS is a connection error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(headersFrame(1, echoHeaders(), { endStream: true }));
      await expectConnectionError(connection, ErrorCode.STREAM_CLOSED);
    });

    it('5.1/15: closed after END_STREAM both ways: CONTINUATION is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(continuationFrame(1, echoHeaders()));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1/16: closed: PRIORITY is accepted', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(priorityFrame(1, 0));
      await expectAlive(connection);
      connection.close();
    });

    it('5.1/17: closed by the server\'s reset: frames the client had already sent are ignored (§5.4.2)', async () => {
      const connection = await handshake(port);
      // A zero WINDOW_UPDATE makes the server reset stream 1; the DATA after it was "in flight".
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), windowUpdate(1, 0)]));
      await connection.waitForFrame((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 'the reset of stream 1');
      connection.send(Buffer.concat([dataFrame(1, grpcMessage(echoRequest())), windowUpdate(1, 10), dataFrame(1, Buffer.alloc(0), true)]));
      await expectAlive(connection);
      assert.equal(connection.frames.filter((f) => f.type === FrameType.RST_STREAM).length, 1);
      connection.close();
    });
  });

  describe('§5.1.1 stream identifiers', () => {
    it('5.1.1/1: an even stream id from the client is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(2, echoHeaders(), { endStream: true }));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1.1/2: a stream id lower than one already opened is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([unaryCall(5), headersFrame(3, echoHeaders(), { endStream: true })]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('5.1.1/3: stream ids may skip: opening 7 after 1 is fine (3 and 5 are closed without use)', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([unaryCall(1), unaryCall(7)]));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      assert.equal(grpcStatus(await readAnswer(connection, 7)), 0);
      connection.close();
    });

    it('5.1.1/4: a stream id reused after its stream closed is a connection error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(unaryCall(1));
      await expectConnectionError(connection, ErrorCode.STREAM_CLOSED);
    });

    it('5.1.1/5: the largest stream id, 2^31-1, can be opened', async () => {
      const connection = await handshake(port);
      const last = 2 ** 31 - 1;
      connection.send(unaryCall(last));
      assert.equal(grpcStatus(await readAnswer(connection, last)), 0);
      connection.close();
    });
  });

  describe('§5.1.2 stream concurrency', () => {
    it('5.1.2/1: streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused with a stream error of type REFUSED_STREAM', async () => {
      const connection = await handshake(port);
      const limit = serverSetting(connection, Setting.MAX_CONCURRENT_STREAMS);
      assert.ok(limit !== undefined && limit > 0 && limit <= 1000, `SETTINGS_MAX_CONCURRENT_STREAMS is ${limit}`);
      const opens = Array.from({ length: limit + 1 }, (_, i) => headersFrame(1 + 2 * i, echoHeaders('Bidi')));
      connection.send(Buffer.concat(opens));
      const over = 1 + 2 * limit;
      await expectStreamError(connection, over, ErrorCode.REFUSED_STREAM);
      assert.equal(connection.frames.filter((f) => f.type === FrameType.RST_STREAM).length, 1, 'only the stream over the limit is refused');
      // A slot freed, a new stream is served.
      connection.send(rstStream(1, ErrorCode.CANCEL));
      connection.send(unaryCall(over + 2));
      assert.equal(grpcStatus(await readAnswer(connection, over + 2)), 0);
      connection.close();
    });
  });

  describe('§5.3 prioritization (accepted and ignored: RFC 9113 deprecates the scheme)', () => {
    it('5.3.1/1: HEADERS that make a stream depend on itself is a stream error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(1, echoHeaders(), { endStream: true, dependsOn: 1 }));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.close();
    });

    it('5.3.1/2: PRIORITY that makes a stream depend on itself is a stream error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(1, echoHeaders('Bidi')));
      connection.send(priorityFrame(1, 1));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.close();
    });

    it('5.3/3: HEADERS with priority fields (exclusive, any weight, on a stream not yet open) are served', async () => {
      const connection = await handshake(port);
      const priority = Buffer.alloc(5);
      priority.writeUInt32BE((0x80000000 | 11) >>> 0);
      priority[4] = 255;
      connection.send(Buffer.concat([frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY, 1, Buffer.concat([priority, echoHeaders()])), dataFrame(1, grpcMessage(echoRequest()), true)]));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.close();
    });

    it('5.3/4: PRIORITY frames on open, idle and closed streams, exclusive or not, change nothing', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), priorityFrame(1, 0, 0), priorityFrame(1, 3, 255, true), priorityFrame(101, 1), priorityFrame(3, 0)]));
      connection.send(dataFrame(1, grpcMessage(echoRequest()), true));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.send(unaryCall(3));
      assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
      connection.close();
    });
  });

  describe('§6.1 DATA', () => {
    it('6.1/1: DATA on stream 0 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(dataFrame(0, Buffer.from('x')));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.1/2: DATA on a stream that is neither open nor half-closed (local) is a stream error of type STREAM_CLOSED', async () => {
      const connection = await handshake(port);
      // One write: the DATA arrives while the request is still waiting for its answer.
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endStream: true }), dataFrame(1, Buffer.from('late'))]));
      await expectStreamError(connection, 1, ErrorCode.STREAM_CLOSED);
      connection.close();
    });

    it('6.1/3: DATA whose padding is as long as its payload is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      // Frame length 5: the pad length byte says 6.
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.from([6, 0, 0, 0, 0]))]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.1/4: padded DATA is accepted, the padding dropped and counted against the flow-control window', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, grpcMessage(echoRequest({ payload: Buffer.from('padded') })), true, 200)]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.includes('padded'));
      connection.close();
    });

    it('6.1/5: a message split over many DATA frames, empty ones included, is joined', async () => {
      const connection = await handshake(port);
      const message = grpcMessage(echoRequest({ payload: Buffer.from('split into pieces') }));
      const pieces = [message.subarray(0, 3), Buffer.alloc(0), message.subarray(3, 10), message.subarray(10)];
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), ...pieces.map((p) => dataFrame(1, p)), dataFrame(1, Buffer.alloc(0), true)]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.includes('split into pieces'));
      connection.close();
    });

    it('6.1/6: DATA with a pad length byte but no room for it is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), frame(FrameType.DATA, Flag.PADDED, 1, Buffer.alloc(0))]));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });
  });

  describe('§6.2 HEADERS', () => {
    it('6.2/1: HEADERS without END_HEADERS followed by PRIORITY is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endHeaders: false }), priorityFrame(1, 0)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.2/2: HEADERS for another stream while a header block is open is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endHeaders: false }), headersFrame(3, echoHeaders(), { endStream: true })]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.2/3: HEADERS on stream 0 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(0, echoHeaders(), { endStream: true }));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.2/4: HEADERS whose padding is longer than its payload is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      // Frame length 16: the pad length byte says 17.
      const payload = Buffer.concat([Buffer.from([17]), echoHeaders().subarray(0, 15)]);
      connection.send(frame(FrameType.HEADERS, Flag.PADDED | Flag.END_HEADERS | Flag.END_STREAM, 1, payload));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.2/5: padded HEADERS, and HEADERS with padding and priority, are served', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { padLength: 30 }), dataFrame(1, grpcMessage(echoRequest()), true)]));
      connection.send(Buffer.concat([headersFrame(3, echoHeaders(), { padLength: 7, dependsOn: 1 }), dataFrame(3, grpcMessage(echoRequest()), true)]));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
      connection.close();
    });

    it('6.2/6: HEADERS with PRIORITY too short for its priority fields is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.HEADERS, Flag.PRIORITY | Flag.END_HEADERS, 1, Buffer.alloc(3)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });
  });

  describe('§6.3 PRIORITY', () => {
    it('6.3/1: PRIORITY on stream 0 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(priorityFrame(0, 1));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.3/2: PRIORITY whose length is not 5 is a stream error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(1, echoHeaders('Bidi')));
      connection.send(frame(FrameType.PRIORITY, 0, 1, Buffer.alloc(4)));
      await expectStreamError(connection, 1, ErrorCode.FRAME_SIZE_ERROR);
      connection.close();
    });
  });

  describe('§6.4 RST_STREAM', () => {
    it('6.4/1: RST_STREAM on stream 0 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(rstStream(0, ErrorCode.CANCEL));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.4/2: RST_STREAM on an idle stream is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1));
      await readAnswer(connection, 1);
      connection.send(rstStream(3, ErrorCode.CANCEL));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.4/3: RST_STREAM whose length is not 4 is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(1, echoHeaders('Bidi')));
      connection.send(frame(FrameType.RST_STREAM, 0, 1, Buffer.alloc(3)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('6.4/4: RST_STREAM from the client ends its stream: nothing more is sent on it', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: 150 })));
      connection.send(rstStream(1, ErrorCode.CANCEL));
      await expectAlive(connection);
      await expectNothingMoreOn(connection, 1, 300);
      connection.close();
    });
  });

  describe('§6.9 WINDOW_UPDATE and flow control', () => {
    it('6.9/1: WINDOW_UPDATE of 0 on the connection is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(windowUpdate(0, 0));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.9/2: WINDOW_UPDATE of 0 on a stream is a stream error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), windowUpdate(1, 0)]));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.close();
    });

    it('6.9/3: WINDOW_UPDATE whose length is not 4 is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('6.9/4: the reserved bit of the increment is ignored', async () => {
      const connection = await handshake(port);
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE((0x80000000 | 1000) >>> 0);
      connection.send(frame(FrameType.WINDOW_UPDATE, 0, 0, payload));
      await expectAlive(connection);
      connection.close();
    });

    it('6.9.1/1: with SETTINGS_INITIAL_WINDOW_SIZE 1 the server sends DATA of one octet', async () => {
      const connection = await handshake(port, { initialWindowSize: 1 });
      connection.send(unaryCall(1));
      const data = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === 1, 'DATA on stream 1');
      assert.equal(data.length, 1);
      await expectNothingMoreOn(connection, 1, 100);
      connection.close();
    });

    it('6.9.1/2: WINDOW_UPDATE taking the connection window above 2^31-1 is a connection error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([windowUpdate(0, 2 ** 31 - 1 - 65_535), windowUpdate(0, 2 ** 31 - 1)]));
      await expectConnectionError(connection, ErrorCode.FLOW_CONTROL_ERROR);
    });

    it('6.9.1/3: WINDOW_UPDATE taking a stream window above 2^31-1 is a stream error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), windowUpdate(1, 2 ** 31 - 1 - 65_535), windowUpdate(1, 2 ** 31 - 1)]));
      await expectStreamError(connection, 1, ErrorCode.FLOW_CONTROL_ERROR);
      connection.close();
    });

    it('6.9.1/4: DATA beyond the stream window the server granted is a stream error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      const window = serverSetting(connection, Setting.INITIAL_WINDOW_SIZE) ?? 65_535;
      // Routed to the backend that takes nothing: the proxy stops reading the stream and grants no more window.
      const frames: Buffer[] = [headersFrame(1, echoHeaders('ClientStream', [['x-route', 'stalled']]))];
      for (let sent = 0; sent <= window; sent += 16_384) frames.push(dataFrame(1, Buffer.alloc(16_384)));
      connection.send(Buffer.concat(frames));
      await expectStreamError(connection, 1, ErrorCode.FLOW_CONTROL_ERROR);
      assert.equal(connection.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 1).length, 0, 'no window was granted on the stream');
      connection.close();
    });

    it('6.9.2/1: a change of SETTINGS_INITIAL_WINDOW_SIZE applies to streams already open', async () => {
      const connection = await handshake(port, { initialWindowSize: 0 });
      connection.send(unaryCall(1));
      await connection.waitForFrame((f) => f.type === FrameType.HEADERS && f.streamId === 1, 'the response headers');
      await expectNothingMoreOn(connection, 1, 50);
      assert.equal(connection.frames.filter((f) => f.type === FrameType.DATA).length, 0, 'no DATA with a zero window');
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1]]));
      const data = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === 1, 'DATA on stream 1');
      assert.equal(data.length, 1);
      connection.close();
    });

    it('6.9.2/2: a SETTINGS_INITIAL_WINDOW_SIZE that makes a stream window negative is tracked', async () => {
      const connection = await handshake(port, { initialWindowSize: 3 });
      connection.send(unaryCall(1));
      const first = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === 1, 'the first DATA');
      assert.equal(first.length, 3);
      // The window goes from 0 to -1; an increment of 2 leaves room for exactly one octet.
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2]]));
      await expectAlive(connection);
      connection.send(windowUpdate(1, 2));
      const second = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === 1 && f !== first, 'the second DATA');
      assert.equal(second.length, 1);
      connection.close();
    });

    it('6.9.2/3: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]]));
      await expectConnectionError(connection, ErrorCode.FLOW_CONTROL_ERROR);
    });

    it('6.9.2/4: SETTINGS_INITIAL_WINDOW_SIZE that takes an open stream\'s window above 2^31-1 is a connection error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), windowUpdate(1, 2 ** 31 - 1 - 65_535)]));
      await expectAlive(connection);
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 65_536]]));
      await expectConnectionError(connection, ErrorCode.FLOW_CONTROL_ERROR);
    });
  });

  describe('§6.10 CONTINUATION', () => {
    it('6.10/1: a header block over HEADERS and several CONTINUATION frames is served', async () => {
      const connection = await handshake(port);
      const block = echoHeaders('Unary', [['x-continued', 'c'.repeat(300)]]);
      const third = Math.ceil(block.length / 3);
      connection.send(Buffer.concat([
        headersFrame(1, block.subarray(0, third), { endHeaders: false }),
        continuationFrame(1, block.subarray(third, 2 * third), false),
        continuationFrame(1, block.subarray(2 * third), true),
        dataFrame(1, grpcMessage(echoRequest()), true),
      ]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.includes(`x-continued=${'c'.repeat(300)}`), 'the backend saw the field that spanned the frames');
      connection.close();
    });

    it('6.10/2: CONTINUATION followed by a frame other than CONTINUATION is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      const block = echoHeaders();
      connection.send(Buffer.concat([headersFrame(1, block.subarray(0, 10), { endHeaders: false }), continuationFrame(1, block.subarray(10, 20), false), dataFrame(1, Buffer.from('x'))]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.10/3: CONTINUATION on stream 0 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      const block = echoHeaders();
      connection.send(Buffer.concat([headersFrame(1, block.subarray(0, 10), { endHeaders: false }), continuationFrame(0, block.subarray(10), true)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.10/4: CONTINUATION after HEADERS with END_HEADERS is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), continuationFrame(1, echoHeaders())]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.10/5: CONTINUATION after CONTINUATION with END_HEADERS is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      const block = echoHeaders();
      connection.send(Buffer.concat([headersFrame(1, block.subarray(0, 10), { endHeaders: false }), continuationFrame(1, block.subarray(10), true), continuationFrame(1, echoHeaders())]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.10/6: CONTINUATION after DATA is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, grpcMessage(echoRequest())), continuationFrame(1, echoHeaders())]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.10/7: CONTINUATION for another stream inside a header block is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      const block = echoHeaders();
      connection.send(Buffer.concat([headersFrame(1, block.subarray(0, 10), { endHeaders: false }), continuationFrame(3, block.subarray(10), true)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });
  });
});
