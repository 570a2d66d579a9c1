/**
 * HTTP/2 conformance, the connection as a whole (RFC 9113 §3.4, §4, §5.4,
 * §5.5, §6.5, §6.7, §6.8, §7), after h2spec's sections: raw frames against a
 * real Switchyard listener in front of a grpc-js Echo backend. Each case names
 * its section (h2spec numbers its cases by RFC 7540's sections; the RFC 9113
 * section is named here, with h2spec's number where they differ) and asserts
 * the exact reaction the RFC asks for. docs/http2-conformance.md lists them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { startEchoSetup, type EchoSetup } from '../helpers/harness.ts';
import {
  dataFrame, echoHeaders, echoRequest, expectAlive, expectClosed, expectConnectionError, grpcMessage, grpcStatus, handshake, headersFrame, readAnswer, unaryCall,
} from '../helpers/h2-conformance.ts';
import {
  ErrorCode, Flag, frame, FrameType, goAwayFrame, PREFACE, pingFrame, priorityFrame, rawConnect, rstStream, Setting, settingsFrame, windowUpdate,
} from '../helpers/raw-h2.ts';

/** Writes `bytes` on a new connection and returns all that comes back until the server closes it. */
async function exchangeRaw(port: number, bytes: Buffer): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(bytes);
  const closed = new Promise((resolve) => socket.once('close', resolve));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, 5_000);
  await closed;
  clearTimeout(timer);
  if (timedOut) throw new Error(`the server did not close the connection within 5 s; it sent ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`);
  return Buffer.concat(chunks).toString('latin1');
}

describe('HTTP/2 conformance: the connection (RFC 9113 §3–§7)', () => {
  let setup: EchoSetup;
  let port: number;

  before(async () => {
    setup = await startEchoSetup(1);
    port = setup.proxy.port;
  });

  after(() => setup.close());

  describe('§3.4 HTTP/2 connection preface (h2spec 3.5)', () => {
    it('3.4/1: the server sends SETTINGS as its first frame and answers a client preface', async () => {
      const connection = await handshake(port);
      assert.equal(connection.frames[0]!.type, FrameType.SETTINGS);
      assert.equal(connection.frames[0]!.flags & Flag.ACK, 0);
      await expectAlive(connection);
      connection.close();
    });

    it('3.4/2: a connection preface that goes wrong after its first line is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await rawConnect(port, { preface: false, keepPayloads: true });
      connection.send(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('3.4/3: bytes that are not the preface at all are taken as HTTP/1.1 (deliberate: h2c and HTTP/1.1 share the port): 400, and the connection closes', async () => {
      const answer = await exchangeRaw(port, Buffer.from('INVALID CONNECTION PREFACE\r\n\r\n'));
      assert.match(answer, /^HTTP\/1\.1 400 /);
    });

    it('3.4/4: an HTTP/1.1 request instead of the preface is answered 426 naming h2c, and the connection closes', async () => {
      const answer = await exchangeRaw(port, Buffer.from('GET / HTTP/1.1\r\nHost: switchyard\r\n\r\n'));
      assert.match(answer, /^HTTP\/1\.1 426 /);
      assert.match(answer, /\r\nupgrade: h2c\r\n/i);
    });

    it('3.4/5: the preface must be followed by SETTINGS: a PING first is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await rawConnect(port, { preface: false, keepPayloads: true });
      connection.send(Buffer.concat([PREFACE, pingFrame(Buffer.alloc(8))]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('3.4/6: a SETTINGS ACK cannot stand for the client\'s SETTINGS: PROTOCOL_ERROR', async () => {
      const connection = await rawConnect(port, { preface: false, keepPayloads: true });
      connection.send(Buffer.concat([PREFACE, settingsFrame([], true)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('3.4/7: a preface that arrives a few bytes at a time is accepted', async () => {
      const connection = await rawConnect(port, { preface: false, keepPayloads: true });
      const opening = Buffer.concat([PREFACE, settingsFrame([])]);
      for (let at = 0; at < opening.length; at += 5) {
        connection.send(opening.subarray(at, at + 5));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await connection.waitForFrame((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, 'the ACK of our SETTINGS');
      await expectAlive(connection);
      connection.close();
    });
  });

  describe('§4.1 frame format', () => {
    it('4.1/1: a frame of an unknown type is ignored', async () => {
      const connection = await handshake(port);
      connection.send(frame(0x16, 0, 0, Buffer.from('unknown')));
      await expectAlive(connection);
      connection.close();
    });

    it('4.1/2: undefined flags are ignored, and the answer carries none', async () => {
      const connection = await handshake(port);
      const opaque = Buffer.from('flagged!');
      connection.send(frame(FrameType.PING, 0xfe, 0, opaque));
      const ack = await connection.waitForFrame((f) => f.type === FrameType.PING && f.payload!.equals(opaque), 'the PING ACK');
      assert.equal(ack.flags, Flag.ACK);
      connection.close();
    });

    it('4.1/3: the reserved bit of the stream identifier is ignored', async () => {
      const connection = await handshake(port);
      const call = unaryCall(1);
      // Set the reserved bit in every frame header of the call.
      for (let at = 0; at < call.length; at += 9 + call.readUIntBE(at, 3)) call[at + 5] = call[at + 5]! | 0x80;
      connection.send(call);
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      connection.close();
    });

    it('4.1/4: frames split across reads, and many frames in one read, are parsed alike', async () => {
      const connection = await handshake(port);
      const calls = Buffer.concat([unaryCall(1), unaryCall(3), unaryCall(5)]);
      for (let at = 0; at < calls.length; at += 7) {
        connection.send(calls.subarray(at, at + 7));
        if (at % 63 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      for (const id of [1, 3, 5]) assert.equal(grpcStatus(await readAnswer(connection, id)), 0);
      connection.close();
    });
  });

  describe('§4.2 frame size', () => {
    it('4.2/1: a DATA frame of 2^14 octets is accepted', async () => {
      const connection = await handshake(port);
      // 5 bytes of gRPC prefix, 1 tag byte, 2 length bytes: the rest is payload.
      const message = grpcMessage(echoRequest({ payload: Buffer.alloc(16_384 - 8, 0x61) }));
      assert.equal(message.length, 16_384);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, message, true)]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      connection.close();
    });

    it('4.2/2: a DATA frame over SETTINGS_MAX_FRAME_SIZE is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, Buffer.alloc(16_385), true)]));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('4.2/3: a HEADERS frame over SETTINGS_MAX_FRAME_SIZE is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      const block = echoHeaders('Unary', [['x-large', 'a'.repeat(16_400)]]);
      connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, block));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('4.2/4: the server never sends a frame over the client\'s SETTINGS_MAX_FRAME_SIZE (default 2^14)', async () => {
      const connection = await handshake(port, { initialWindowSize: 1 << 20 });
      connection.send(windowUpdate(0, 1 << 20));
      connection.send(unaryCall(1, echoRequest({ responseBytes: 100_000 })));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.length > 100_000);
      const longest = Math.max(...connection.frames.map((f) => f.length));
      assert.ok(longest <= 16_384, `a frame of ${longest} bytes`);
      connection.close();
    });

    it('4.2/5: with a larger SETTINGS_MAX_FRAME_SIZE the server stays within it', async () => {
      const connection = await handshake(port, { initialWindowSize: 1 << 20, settings: [[Setting.MAX_FRAME_SIZE, 32_768]] });
      connection.send(windowUpdate(0, 1 << 20));
      connection.send(unaryCall(1, echoRequest({ responseBytes: 100_000 })));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      const longest = Math.max(...connection.frames.map((f) => f.length));
      assert.ok(longest <= 32_768, `a frame of ${longest} bytes`);
      connection.close();
    });
  });

  describe('§4.3 field section compression and decompression', () => {
    it('4.3/1: a header block that does not decode is a connection error of type COMPRESSION_ERROR', async () => {
      const connection = await handshake(port);
      // A literal whose name claims 100 bytes in a 3-byte block.
      connection.send(headersFrame(1, Buffer.from([0x00, 0x64, 0x61]), { endStream: true }));
      await expectConnectionError(connection, ErrorCode.COMPRESSION_ERROR);
    });

    it('4.3/2: a PRIORITY frame inside a header block is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endHeaders: false }), priorityFrame(1, 0)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('4.3/3: HEADERS for another stream inside a header block is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endHeaders: false }), headersFrame(3, echoHeaders(), { endStream: true })]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });
  });

  describe('§5.4 error handling', () => {
    it('5.4.1/1-2: a connection error sends GOAWAY and then closes the TCP connection', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.PING, 0, 0, Buffer.alloc(6)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
      const goAways = connection.frames.filter((f) => f.type === FrameType.GOAWAY);
      assert.equal(goAways.length, 1);
      assert.equal(connection.frames.at(-1)!.type, FrameType.GOAWAY, 'nothing after the GOAWAY');
    });

    it('5.4.1/3: the GOAWAY of a connection error names the last stream the client opened', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([unaryCall(1), headersFrame(3, echoHeaders('Bidi'))]));
      await readAnswer(connection, 1);
      connection.send(frame(FrameType.PING, 0, 1, Buffer.alloc(8)));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
      const goAway = connection.frames.find((f) => f.type === FrameType.GOAWAY)!;
      assert.equal(goAway.payload!.readUInt32BE(0), 3);
    });

    it('5.4.2/1: a stream error leaves the other streams of the connection alone', async () => {
      const connection = await handshake(port);
      connection.send(headersFrame(1, echoHeaders('Bidi')));
      // A zero WINDOW_UPDATE on stream 3 is a stream error there (§6.9); stream 1 goes on.
      connection.send(Buffer.concat([headersFrame(3, echoHeaders('Bidi')), windowUpdate(3, 0)]));
      await connection.waitForFrame((f) => f.type === FrameType.RST_STREAM && f.streamId === 3, 'the reset of stream 3');
      connection.send(dataFrame(1, grpcMessage(echoRequest({ payload: Buffer.from('still open') })), true));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.includes('still open'));
      connection.close();
    });
  });

  describe('§5.5 extending HTTP/2', () => {
    it('5.5/1: an unknown extension frame is ignored, on the connection and on a stream', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([frame(0xff, 0xff, 0, Buffer.from('extension')), headersFrame(1, echoHeaders()), frame(0xfa, 0, 1, Buffer.alloc(20))]));
      connection.send(dataFrame(1, grpcMessage(echoRequest()), true));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      await expectAlive(connection);
      connection.close();
    });

    it('5.5/2: an unknown frame inside a header block is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders(), { endHeaders: false }), frame(0xff, 0, 1, Buffer.alloc(8))]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });
  });

  describe('§6.5 SETTINGS', () => {
    it('6.5/1: SETTINGS with ACK and a payload is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('6.5/2: SETTINGS on a stream is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0)));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.5/3: SETTINGS whose length is not a multiple of 6 is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(3)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('6.5/4: an empty SETTINGS is acknowledged', async () => {
      const connection = await handshake(port);
      const acks = () => connection.frames.filter((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0).length;
      const before = acks();
      connection.send(settingsFrame([]));
      await expectAlive(connection);
      assert.equal(acks(), before + 1);
      connection.close();
    });

    it('6.5.2/1: SETTINGS_ENABLE_PUSH other than 0 or 1 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.ENABLE_PUSH, 2]]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.5.2/2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error of type FLOW_CONTROL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]]));
      await expectConnectionError(connection, ErrorCode.FLOW_CONTROL_ERROR);
    });

    it('6.5.2/3: SETTINGS_MAX_FRAME_SIZE below 2^14 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.MAX_FRAME_SIZE, 16_383]]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.5.2/4: SETTINGS_MAX_FRAME_SIZE above 2^24-1 is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.MAX_FRAME_SIZE, 2 ** 24]]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.5.2/5: an unknown setting is ignored (and acknowledged)', async () => {
      const connection = await handshake(port);
      const acks = () => connection.frames.filter((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0).length;
      const before = acks();
      connection.send(settingsFrame([[0xff, 1], [0x10, 2 ** 32 - 1]]));
      await connection.waitForFrame(() => acks() > before, 'the ACK of the SETTINGS with unknown ids');
      await expectAlive(connection);
      connection.close();
    });

    it('6.5.2/6: SETTINGS_HEADER_TABLE_SIZE 0 and SETTINGS_MAX_HEADER_LIST_SIZE are accepted; requests are still served', async () => {
      const connection = await handshake(port, { settings: [[Setting.HEADER_TABLE_SIZE, 0], [Setting.MAX_HEADER_LIST_SIZE, 8192]] });
      connection.send(unaryCall(1));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.close();
    });

    it('6.5.3/1: the values of one SETTINGS frame are applied in order', async () => {
      const connection = await handshake(port);
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 100], [Setting.INITIAL_WINDOW_SIZE, 1]]));
      connection.send(unaryCall(1));
      const data = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === 1, 'DATA on stream 1');
      assert.equal(data.length, 1);
      connection.close();
    });

    it('6.5.3/2: SETTINGS without ACK is answered with SETTINGS with ACK', async () => {
      const connection = await handshake(port);
      const acks = () => connection.frames.filter((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0).length;
      const before = acks();
      connection.send(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 65_535]]));
      await connection.waitForFrame(() => acks() === before + 1, 'a SETTINGS ACK');
      const ack = connection.frames.filter((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0).at(-1)!;
      assert.equal(ack.length, 0);
      assert.equal(ack.streamId, 0);
      connection.close();
    });
  });

  describe('§6.7 PING', () => {
    it('6.7/1: a PING is answered with a PING ACK carrying the same payload', async () => {
      const connection = await handshake(port);
      const opaque = Buffer.from('h2spec!!');
      connection.send(pingFrame(opaque));
      const ack = await connection.waitForFrame((f) => f.type === FrameType.PING, 'a PING ACK');
      assert.equal(ack.flags, Flag.ACK);
      assert.equal(ack.streamId, 0);
      assert.deepEqual(ack.payload, opaque);
      connection.close();
    });

    it('6.7/2: a PING with ACK is not answered', async () => {
      const connection = await handshake(port);
      const unsolicited = Buffer.from('unasked!');
      connection.send(pingFrame(unsolicited, true));
      await expectAlive(connection);
      assert.equal(connection.frames.filter((f) => f.type === FrameType.PING && f.payload!.equals(unsolicited)).length, 0);
      connection.close();
    });

    it('6.7/3: a PING on a stream is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.PING, 0, 1, Buffer.alloc(8)));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.7/4: a PING whose length is not 8 is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.PING, 0, 0, Buffer.alloc(9)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });
  });

  describe('§6.8 GOAWAY', () => {
    it('6.8/1: GOAWAY on a stream is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(goAwayFrame(0, ErrorCode.NO_ERROR, 1));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });

    it('6.8/2: GOAWAY shorter than 8 octets is a connection error of type FRAME_SIZE_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(frame(FrameType.GOAWAY, 0, 0, Buffer.alloc(7)));
      await expectConnectionError(connection, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('6.8/3: after the client\'s GOAWAY its open streams are still answered, then the connection closes', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: 100 })));
      connection.send(goAwayFrame(0, ErrorCode.NO_ERROR));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      await expectClosed(connection);
    });

    it('6.8/4: GOAWAY with debug data is accepted', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: 50 })));
      connection.send(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([Buffer.alloc(8), Buffer.from('shutting down for maintenance')])));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      await expectClosed(connection);
    });
  });

  describe('§7 error codes', () => {
    it('7/1: GOAWAY with an unknown error code triggers nothing special', async () => {
      const connection = await handshake(port);
      connection.send(unaryCall(1, echoRequest({ delayMs: 50 })));
      connection.send(goAwayFrame(1, 0xbeef));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.close();
    });

    it('7/2: RST_STREAM with an unknown error code triggers nothing special', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), rstStream(1, 0xbeef)]));
      await expectAlive(connection);
      connection.send(unaryCall(3));
      assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
      connection.close();
    });
  });
});
