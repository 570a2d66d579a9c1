/**
 * HTTP/2 conformance, HTTP semantics (RFC 9113 §8.1–§8.4), after h2spec's
 * sections 8.1–8.2 (which number them by RFC 7540): raw frames against a real
 * Switchyard listener in front of a grpc-js Echo backend. A malformed request
 * is a stream error of type PROTOCOL_ERROR (§8.1.1); each case asserts that
 * RST_STREAM, that the connection goes on, and that the backend never saw
 * the request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoSetup, waitFor, type EchoSetup } from '../helpers/harness.ts';
import {
  dataFrame, echoHeaders, echoRequest, expectConnectionError, expectStreamError, grpcMessage, grpcStatus, handshake, headersFrame, readAnswer,
} from '../helpers/h2-conformance.ts';
import { ErrorCode, frame, FrameType, Flag, headerBlock, indexedField, indexedLiteral } from '../helpers/raw-h2.ts';

const UNARY = '/switchyard.demo.v1.Echo/Unary';

/** The fields of a well-formed gRPC request, in order, to be varied by each case. */
function requestFields(): [string, string][] {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', UNARY],
    [':authority', 'switchyard'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ];
}

/** A request with these fields and an empty message. */
function request(streamId: number, fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat([headersFrame(streamId, headerBlock(fields)), dataFrame(streamId, grpcMessage(echoRequest()), true)]);
}

describe('HTTP/2 conformance: HTTP messages (RFC 9113 §8)', () => {
  let setup: EchoSetup;
  let port: number;
  /** Unary calls the backend has served. */
  const served = () => setup.backends[0]!.calls.get('Unary') ?? 0;

  before(async () => {
    setup = await startEchoSetup(1);
    port = setup.proxy.port;
  });

  after(() => setup.close());

  /** Sends `bytes` on a fresh connection and expects a stream error PROTOCOL_ERROR on stream 1, the backend untouched. */
  async function expectMalformed(bytes: Buffer): Promise<void> {
    const before = served();
    const connection = await handshake(port);
    connection.send(bytes);
    await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
    // The connection still serves a good request, and the backend saw only that one.
    connection.send(request(3, requestFields()));
    assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
    assert.equal(served(), before + 1, 'the malformed request never reached the backend');
    connection.close();
  }

  describe('§8.1 HTTP message framing (h2spec 8.1)', () => {
    it('8.1/1: a second HEADERS without END_STREAM (not trailers) is a stream error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), headersFrame(1, headerBlock([['x-second', 'block']]))]));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.close();
    });

    it('8.1/2: a request with trailers (HEADERS, DATA, HEADERS with END_STREAM) is served', async () => {
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, grpcMessage(echoRequest({ payload: Buffer.from('with trailers') }))), headersFrame(1, headerBlock([['x-trailer', 'yes']]), { endStream: true })]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      assert.ok(answer.body.includes('with trailers'));
      connection.close();
    });

    it('8.1/3: the answer is HEADERS (:status 200), DATA, then trailers with END_STREAM', async () => {
      const connection = await handshake(port);
      connection.send(request(1, requestFields()));
      const answer = await readAnswer(connection, 1);
      assert.equal(answer.headers.get(':status'), '200');
      assert.match(answer.headers.get('content-type')!, /^application\/grpc(\+|$)/);
      assert.equal(answer.trailers.get('grpc-status'), '0');
      const onStream = connection.frames.filter((f) => f.streamId === 1).map((f) => f.type);
      assert.deepEqual([onStream[0], onStream.at(-1)], [FrameType.HEADERS, FrameType.HEADERS]);
      connection.close();
    });

    it('8.1.1/1: content-length that the DATA does not match (one frame) is a stream error of type PROTOCOL_ERROR', async () => {
      const fields = [...requestFields(), ['content-length', '1']] as [string, string][];
      await expectMalformed(Buffer.concat([headersFrame(1, headerBlock(fields)), dataFrame(1, grpcMessage(echoRequest({ payload: Buffer.from('longer') })), true)]));
    });

    it('8.1.1/2: content-length that the DATA does not match (several frames) is a stream error of type PROTOCOL_ERROR', async () => {
      const fields = [...requestFields(), ['content-length', '7']] as [string, string][];
      const message = grpcMessage(echoRequest({ payload: Buffer.from('abc') }));
      await expectMalformed(Buffer.concat([headersFrame(1, headerBlock(fields)), dataFrame(1, message.subarray(0, 4)), dataFrame(1, message.subarray(4)), dataFrame(1, Buffer.alloc(0), true)]));
    });

    it('8.1.1/3: content-length with no body at all is a stream error of type PROTOCOL_ERROR', async () => {
      const fields = [...requestFields(), ['content-length', '5']] as [string, string][];
      await expectMalformed(headersFrame(1, headerBlock(fields), { endStream: true }));
    });

    it('8.1.1/4: content-length that is not a number is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [...requestFields(), ['content-length', '5x']]));
    });

    it('8.1.1/6: a body that breaks content-length after the request was routed is not passed on', async () => {
      const before = served();
      const connection = await handshake(port);
      const message = grpcMessage(echoRequest({ payload: Buffer.from('too long for its content-length') }));
      connection.send(headersFrame(1, headerBlock([...requestFields(), ['content-length', '5']])));
      // The request is routed and its stream opened upstream before the body arrives.
      const routed = () => [...setup.proxy.proxy.clusters.get('echo')!.endpoints.values()].some((e) => e.activeRequests > 0);
      await waitFor(routed, 'the request to be routed');
      connection.send(dataFrame(1, message, true));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      connection.send(request(3, requestFields()));
      assert.equal(grpcStatus(await readAnswer(connection, 3)), 0);
      assert.equal(served(), before + 1, 'the malformed request never reached the backend');
      connection.close();
    });

    it('8.1.1/5: a content-length that matches the body is served', async () => {
      const message = grpcMessage(echoRequest({ payload: Buffer.from('exact') }));
      const fields = [...requestFields(), ['content-length', String(message.length)]] as [string, string][];
      const connection = await handshake(port);
      connection.send(Buffer.concat([headersFrame(1, headerBlock(fields)), dataFrame(1, message, true)]));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.close();
    });
  });

  describe('§8.2 HTTP fields (h2spec 8.1.2)', () => {
    it('8.2/1: an upper-case field name is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [...requestFields(), ['X-Upper', 'case']]));
    });

    it('8.2.1/1: a field name with a character outside tchar (a space) is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [...requestFields(), ['x bad', 'name']]));
    });

    it('8.2.1/2: a field value with CR, LF or NUL is a stream error of type PROTOCOL_ERROR', async () => {
      for (const bad of ['a\r\nb', 'a\nb', 'a\0b']) await expectMalformed(request(1, [...requestFields(), ['x-bad', bad]]));
    });

    it('8.2.1/3: a field value with leading or trailing whitespace is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [...requestFields(), ['x-bad', ' padded']]));
      await expectMalformed(request(1, [...requestFields(), ['x-bad', 'padded\t']]));
    });

    it('8.2.1/4: an empty field name is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [...requestFields(), ['', 'nameless']]));
    });

    it('8.2.1/5: a malformed field added to the dynamic table is malformed again in every block that refers to it by index', async () => {
      const before = served();
      const connection = await handshake(port);
      // Stream 1 adds ["x-bad", " padded"] (index 62) and ["x-good", "ok"] (then 62; the bad one 63) with incremental indexing.
      connection.send(Buffer.concat([
        headersFrame(1, Buffer.concat([headerBlock(requestFields()), indexedLiteral('x-bad', ' padded'), indexedLiteral('x-good', 'ok')])),
        dataFrame(1, grpcMessage(echoRequest()), true),
      ]));
      await expectStreamError(connection, 1, ErrorCode.PROTOCOL_ERROR);
      // Stream 3 refers to the bad entry by index only: checked as the decoder took it in, still malformed.
      connection.send(Buffer.concat([headersFrame(3, Buffer.concat([headerBlock(requestFields()), indexedField(63)])), dataFrame(3, grpcMessage(echoRequest()), true)]));
      await expectStreamError(connection, 3, ErrorCode.PROTOCOL_ERROR);
      // Stream 5 refers to the good entry: served, and the backend saw only it.
      connection.send(Buffer.concat([headersFrame(5, Buffer.concat([headerBlock(requestFields()), indexedField(62)])), dataFrame(5, grpcMessage(echoRequest()), true)]));
      assert.equal(grpcStatus(await readAnswer(connection, 5)), 0);
      assert.equal(served(), before + 1);
      connection.close();
    });

    it('8.2.2/1: a connection-specific field (connection, keep-alive, proxy-connection, transfer-encoding, upgrade) is a stream error of type PROTOCOL_ERROR', async () => {
      for (const [name, value] of [['connection', 'keep-alive'], ['keep-alive', 'timeout=5'], ['proxy-connection', 'keep-alive'], ['transfer-encoding', 'chunked'], ['upgrade', 'h2c']] as const) {
        await expectMalformed(request(1, [...requestFields(), [name, value]]));
      }
    });

    it('8.2.2/2: te with a value other than "trailers" is a stream error of type PROTOCOL_ERROR', async () => {
      const fields = requestFields().map(([name, value]) => [name, name === 'te' ? 'trailers, deflate' : value] as [string, string]);
      await expectMalformed(request(1, fields));
    });

    it('8.2.3/1: a regular field repeated is passed on with all its values', async () => {
      const connection = await handshake(port);
      connection.send(request(1, [...requestFields(), ['x-repeated', 'one'], ['x-repeated', 'two']]));
      const answer = await readAnswer(connection, 1);
      assert.equal(grpcStatus(answer), 0);
      const text = answer.body.toString('latin1');
      assert.ok(text.includes('x-repeated=one') && text.includes('two'), 'the backend saw both values');
      connection.close();
    });
  });

  describe('§8.3 HTTP control data: pseudo-header fields (h2spec 8.1.2.1, 8.1.2.3)', () => {
    it('8.3/1: an unknown pseudo-header field is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [[':unknown', 'extension'], ...requestFields()]));
    });

    it('8.3/2: a response pseudo-header field (:status) in a request is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [[':status', '200'], ...requestFields()]));
    });

    it('8.3/3: a pseudo-header field in trailers is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(Buffer.concat([headersFrame(1, echoHeaders()), dataFrame(1, grpcMessage(echoRequest())), headersFrame(1, headerBlock([[':method', 'POST']]), { endStream: true })]));
    });

    it('8.3/4: a pseudo-header field after a regular field is a stream error of type PROTOCOL_ERROR', async () => {
      const fields = requestFields();
      await expectMalformed(request(1, [...fields.slice(0, 3), ['x-regular', 'first'], ...fields.slice(3)]));
      await expectMalformed(request(1, [...fields, [':authority', 'late']]));
    });

    it('8.3.1/1: an empty :path is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, requestFields().map(([n, v]) => [n, n === ':path' ? '' : v] as [string, string])));
    });

    for (const omitted of [':method', ':scheme', ':path']) {
      it(`8.3.1/${2 + [':method', ':scheme', ':path'].indexOf(omitted)}: a request without ${omitted} is a stream error of type PROTOCOL_ERROR`, async () => {
        await expectMalformed(request(1, requestFields().filter(([n]) => n !== omitted)));
      });
    }

    for (const duplicated of [':method', ':scheme', ':path', ':authority']) {
      it(`8.3.1/${5 + [':method', ':scheme', ':path', ':authority'].indexOf(duplicated)}: a duplicated ${duplicated} is a stream error of type PROTOCOL_ERROR`, async () => {
        const fields = requestFields();
        const at = fields.findIndex(([n]) => n === duplicated);
        await expectMalformed(request(1, [...fields.slice(0, at + 1), fields[at]!, ...fields.slice(at + 1)]));
      });
    }

    it('8.3.1/9: :protocol without an extended CONNECT is a stream error of type PROTOCOL_ERROR', async () => {
      await expectMalformed(request(1, [[':protocol', 'websocket'], ...requestFields()]));
    });

    it('8.3.1/10: a request without :authority is served (it is optional)', async () => {
      const connection = await handshake(port);
      connection.send(request(1, requestFields().filter(([n]) => n !== ':authority')));
      assert.equal(grpcStatus(await readAnswer(connection, 1)), 0);
      connection.close();
    });
  });

  describe('§8.4 server push (h2spec 8.2)', () => {
    it('8.4/1: PUSH_PROMISE from a client is a connection error of type PROTOCOL_ERROR', async () => {
      const connection = await handshake(port);
      const payload = Buffer.concat([Buffer.from([0, 0, 0, 2]), echoHeaders()]);
      connection.send(Buffer.concat([headersFrame(1, echoHeaders('Bidi')), frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, payload)]));
      await expectConnectionError(connection, ErrorCode.PROTOCOL_ERROR);
    });
  });
});
