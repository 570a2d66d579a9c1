/**
 * HTTP/2 conformance of the engine's client side (src/http2/client-connection.ts),
 * the connections the proxy opens to backends: a raw-frame backend
 * (test/helpers/h2-fake-backend.ts) answers a real grpc-js client's RPC,
 * routed through a real Switchyard, with what RFC 9113 forbids. Each case
 * checks the reaction on the wire (RST_STREAM or GOAWAY with the code the RFC
 * names), the gRPC status the client gets (a malformed response is INTERNAL,
 * as gRPC maps a stream reset with PROTOCOL_ERROR; a connection error is
 * UNAVAILABLE), and that the proxy goes on serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { expectStatus, staticCluster, startEchoSetup, unary, waitFor, type EchoSetup } from '../helpers/harness.ts';
import { goodAnswer, responseHeaders, startFakeBackend, trailers, type FakeBackend, type FakeRequest } from '../helpers/h2-fake-backend.ts';
import { grpcMessage } from '../helpers/h2-conformance.ts';
import { ErrorCode, Flag, frame, FrameType, goAwayFrame, headerBlock, hpackInteger, pingFrame, rstStream, Setting, settingsFrame, windowUpdate } from '../helpers/raw-h2.ts';
import type { RawConnection } from '../helpers/raw-h2.ts';

/** An EchoResponse with backend = "fake" (field 2), the message the fake backends answer with. */
const ECHO_RESPONSE = Buffer.from([0x12, 0x04, ...Buffer.from('fake')]);
/** Longer than any correct reaction; a call that hangs fails with DEADLINE_EXCEEDED instead of timing out the test. */
const CALL_DEADLINE_MS = 4_000;

interface Case {
  /** SETTINGS (or anything) the backend opens each connection with. */
  readonly opening?: Buffer;
  /** How the backend answers the n-th request it receives (0-based). */
  answer(request: FakeRequest, n: number): void;
}

/** The cases' backends, by the name the x-case header routes on. */
const CASES: Record<string, Case> = {
  'no-status': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headerBlock([['content-type', 'application/grpc']]))) },
  'bad-status': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headerBlock([[':status', '20x'], ['content-type', 'application/grpc']]))) },
  'request-pseudo': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headerBlock([[':status', '200'], [':path', '/'], ['content-type', 'application/grpc']]))) },
  'connection-field': { answer: ({ connection, streamId }) => connection.send(responseHeaders(streamId, [['connection', 'close']])) },
  'upper-case': { answer: ({ connection, streamId }) => connection.send(responseHeaders(streamId, [['X-Upper', 'case']])) },
  'pseudo-trailer': {
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([responseHeaders(streamId), frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)), trailers(streamId, 0, [[':status', '200']])])),
  },
  'trailers-open': {
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([responseHeaders(streamId), frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)), frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headerBlock([['grpc-status', '0']]))])),
  },
  'informational-end': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, streamId, headerBlock([[':status', '103']]))) },
  'informational-first': {
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headerBlock([[':status', '103'], ['link', '</x>']])), goodAnswer(streamId, ECHO_RESPONSE)])),
  },
  'data-first': { answer: ({ connection, streamId }) => connection.send(Buffer.concat([frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)), responseHeaders(streamId), trailers(streamId)])) },
  'push-promise': {
    answer: ({ connection, streamId }) => {
      const promised = Buffer.concat([Buffer.from([0, 0, 0, 2]), headerBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/pushed'], [':authority', 'fake']])]);
      connection.send(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, streamId, promised));
    },
  },
  'connection-window-overflow': { answer: ({ connection }) => connection.send(Buffer.concat([windowUpdate(0, 2 ** 31 - 1)])) },
  'stream-window-overflow': { answer: ({ connection, streamId }) => connection.send(Buffer.concat([responseHeaders(streamId), windowUpdate(streamId, 2 ** 31 - 1)])) },
  'stream-window-zero': { answer: ({ connection, streamId }) => connection.send(Buffer.concat([responseHeaders(streamId), windowUpdate(streamId, 0)])) },
  'bad-hpack': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, Buffer.from(hpackInteger(200, 7, 0x80)))) },
  'data-idle-stream': { answer: ({ connection, streamId }) => connection.send(frame(FrameType.DATA, 0, streamId + 2, Buffer.from('x'))) },
  'even-stream': { answer: ({ connection }) => connection.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 2, headerBlock([[':status', '200']]))) },
  'oversized-frame': { answer: ({ connection, streamId }) => connection.send(Buffer.concat([responseHeaders(streamId), frame(FrameType.DATA, 0, streamId, Buffer.alloc(16_385))])) },
  'bad-max-frame-size': { opening: settingsFrame([[Setting.MAX_FRAME_SIZE, 100]]), answer: () => {} },
  'ping-first': { opening: Buffer.concat([pingFrame(Buffer.alloc(8)), settingsFrame([])]), answer: () => {} },
  'pings': {
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([pingFrame(Buffer.from('backend1')), responseHeaders(streamId), pingFrame(Buffer.from('backend2')), frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)), trailers(streamId)])),
  },
  'hpack-dynamic': {
    // Literals with incremental indexing, Huffman-coded (RFC 7541 C.4.3's custom-key: custom-value), then an indexed
    // reference to the entry in the trailers.
    answer: ({ connection, streamId }) => {
      const huffman = (hex: string) => Buffer.concat([Buffer.from(hpackInteger(hex.length / 2, 7, 0x80)), Buffer.from(hex, 'hex')]);
      const headers = Buffer.concat([Buffer.from([0x88]), Buffer.from([0x40]), huffman('25a849e95ba97d7f'), huffman('25a849e95bb8e8b4bf'), headerBlock([['content-type', 'application/grpc']])]);
      const trailerBlock = Buffer.concat([headerBlock([['grpc-status', '0']]), Buffer.from(hpackInteger(62, 7, 0x80))]);
      connection.send(Buffer.concat([frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headers), frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, streamId, trailerBlock)]));
    },
  },
  'goaway-refused': {
    // The first connection refuses the stream with GOAWAY (last stream 0); the proxy sends it again on a new one.
    answer: ({ connection, streamId }, n) => connection.send(n === 0 ? goAwayFrame(0, ErrorCode.NO_ERROR) : goodAnswer(streamId, ECHO_RESPONSE)),
  },
  'refused-stream': {
    // RST_STREAM REFUSED_STREAM: the backend did not process the stream, so the proxy sends it again.
    answer: ({ connection, streamId }, n) => connection.send(n === 0 ? rstStream(streamId, ErrorCode.REFUSED_STREAM) : goodAnswer(streamId, ECHO_RESPONSE)),
  },
  'reset-after-answer': {
    // A complete answer, then RST_STREAM NO_ERROR: "stop sending your request" (§8.1), not a failure.
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([goodAnswer(streamId, ECHO_RESPONSE), rstStream(streamId, ErrorCode.NO_ERROR)])),
  },
  'continuation': {
    answer: ({ connection, streamId }) => {
      const block = headerBlock([[':status', '200'], ['content-type', 'application/grpc'], ['x-long', 'l'.repeat(200)]]);
      connection.send(Buffer.concat([
        frame(FrameType.HEADERS, 0, streamId, block.subarray(0, 7)),
        frame(FrameType.CONTINUATION, 0, streamId, block.subarray(7, 100)),
        frame(FrameType.CONTINUATION, Flag.END_HEADERS, streamId, block.subarray(100)),
        frame(FrameType.DATA, 0, streamId, grpcMessage(ECHO_RESPONSE)),
        trailers(streamId),
      ]));
    },
  },
  'padded': {
    answer: ({ connection, streamId }) => {
      const block = headerBlock([[':status', '200'], ['content-type', 'application/grpc']]);
      const message = grpcMessage(ECHO_RESPONSE);
      connection.send(Buffer.concat([
        frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PADDED | Flag.PRIORITY, streamId, Buffer.concat([Buffer.from([9]), Buffer.from([0, 0, 0, 0, 16]), block, Buffer.alloc(9)])),
        frame(FrameType.DATA, Flag.PADDED, streamId, Buffer.concat([Buffer.from([100]), message, Buffer.alloc(100)])),
        trailers(streamId),
      ]));
    },
  },
  'trailers-only': {
    answer: ({ connection, streamId }) => connection.send(responseHeaders(streamId, [['grpc-status', '5'], ['grpc-message', 'not here']], true)),
  },
  'goaway-after-answer': {
    // GOAWAY naming the stream as processed, then the answer: the RPC completes, the next one gets a new connection.
    answer: ({ connection, streamId }) => connection.send(Buffer.concat([goAwayFrame(streamId, ErrorCode.NO_ERROR), goodAnswer(streamId, ECHO_RESPONSE)])),
  },
  'small-window': {
    // A stream window of 10 bytes: the request arrives in DATA frames of at most 10, each credited back.
    opening: settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 10]]),
    answer: () => {},
  },
};

describe('HTTP/2 conformance: the client side, toward backends (RFC 9113)', () => {
  let setup: EchoSetup;
  const backends = new Map<string, FakeBackend>();
  const calls = new Map<string, number>();

  before(async () => {
    for (const [name, spec] of Object.entries(CASES)) {
      calls.set(name, 0);
      backends.set(name, await startFakeBackend({
        ...(spec.opening && { opening: spec.opening }),
        onRequest: (request) => {
          const n = calls.get(name)!;
          calls.set(name, n + 1);
          spec.answer(request, n);
        },
      }));
    }
    setup = await startEchoSetup(1, (echo) => ({
      clusters: [staticCluster('echo', echo), ...[...backends].map(([name, fake]) => ({ name, endpoints: [{ address: '127.0.0.1', port: fake.port }] }))],
      routes: [
        ...[...backends.keys()].map((name) => ({ match: { prefix: '/', headers: [{ name: 'x-case', exact: name }] }, cluster: name })),
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    }));
  });

  after(async () => {
    await setup.close();
    await Promise.all([...backends.values()].map((b) => b.close()));
  });

  /** A unary call routed to the backend of `name`, with the call deadline. */
  function callCase(name: string, payload = Buffer.from('request')) {
    const metadata = new grpc.Metadata();
    metadata.set('x-case', name);
    return unary(setup.client, { payload }, metadata, { deadline: Date.now() + CALL_DEADLINE_MS });
  }

  /** The call fails with `status`; the proxy goes on serving (an RPC to the real backend succeeds). */
  async function expectFailure(name: string, status: grpc.status): Promise<grpc.ServiceError> {
    const error = await expectStatus(callCase(name));
    assert.equal(error.code, status, `${grpc.status[error.code]}: ${error.details}`);
    const { response } = await unary(setup.client, { payload: Buffer.from('still serving') }, new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS });
    assert.equal(response.payload.toString(), 'still serving');
    return error;
  }

  /** The proxy's reaction on the fake backend's connection: RST_STREAM or GOAWAY with `code`. */
  async function expectReaction(name: string, type: typeof FrameType.RST_STREAM | typeof FrameType.GOAWAY, code: number): Promise<RawConnection> {
    const connection = backends.get(name)!.connections[0]!;
    const reaction = await connection.waitForFrame((f) => f.type === type, `${type === FrameType.GOAWAY ? 'GOAWAY' : 'RST_STREAM'} from the proxy`);
    assert.equal(reaction.code, code, `code ${reaction.code}`);
    return connection;
  }

  describe('§8 malformed responses: RST_STREAM PROTOCOL_ERROR, the RPC fails INTERNAL', () => {
    for (const [name, what] of [
      ['no-status', '8.3.2/1: a response without :status'],
      ['bad-status', '8.3.2/2: a :status that is not three digits'],
      ['request-pseudo', '8.3/1: a request pseudo-header (:path) in a response'],
      ['connection-field', '8.2.2/1: a connection-specific field in a response'],
      ['upper-case', '8.2/1: an upper-case field name in a response'],
      ['pseudo-trailer', '8.1/1: a pseudo-header field in trailers'],
      ['trailers-open', '8.1/2: trailers without END_STREAM'],
      ['informational-end', '8.1/3: an informational (1xx) response with END_STREAM'],
      ['data-first', '8.1/4: DATA before the response HEADERS'],
    ] as const) {
      it(`client ${what} is a stream error of type PROTOCOL_ERROR`, async () => {
        await expectFailure(name, grpc.status.INTERNAL);
        await expectReaction(name, FrameType.RST_STREAM, ErrorCode.PROTOCOL_ERROR);
      });
    }

    it('client 8.1/5: an informational (1xx) response before the real one is skipped', async () => {
      const { response } = await callCase('informational-first');
      assert.equal(response.backend, 'fake');
    });
  });

  describe('§5–§6 frame and stream errors', () => {
    it('client 8.4/1: PUSH_PROMISE from a backend (push disabled) is a connection error of type PROTOCOL_ERROR', async () => {
      await expectFailure('push-promise', grpc.status.UNAVAILABLE);
      await expectReaction('push-promise', FrameType.GOAWAY, ErrorCode.PROTOCOL_ERROR);
    });

    it('client 6.9.1/1: WINDOW_UPDATE taking the connection window above 2^31-1 is a connection error of type FLOW_CONTROL_ERROR', async () => {
      await expectFailure('connection-window-overflow', grpc.status.UNAVAILABLE);
      await expectReaction('connection-window-overflow', FrameType.GOAWAY, ErrorCode.FLOW_CONTROL_ERROR);
    });

    it('client 6.9.1/2: WINDOW_UPDATE taking a stream window above 2^31-1 is a stream error of type FLOW_CONTROL_ERROR', async () => {
      await expectFailure('stream-window-overflow', grpc.status.INTERNAL);
      await expectReaction('stream-window-overflow', FrameType.RST_STREAM, ErrorCode.FLOW_CONTROL_ERROR);
    });

    it('client 6.9/1: WINDOW_UPDATE of 0 on a stream is a stream error of type PROTOCOL_ERROR', async () => {
      await expectFailure('stream-window-zero', grpc.status.INTERNAL);
      await expectReaction('stream-window-zero', FrameType.RST_STREAM, ErrorCode.PROTOCOL_ERROR);
    });

    it('client 4.3/1: a response header block that does not decode is a connection error of type COMPRESSION_ERROR', async () => {
      await expectFailure('bad-hpack', grpc.status.UNAVAILABLE);
      await expectReaction('bad-hpack', FrameType.GOAWAY, ErrorCode.COMPRESSION_ERROR);
    });

    it('client 5.1/1: DATA on an idle stream is a connection error of type PROTOCOL_ERROR', async () => {
      await expectFailure('data-idle-stream', grpc.status.UNAVAILABLE);
      await expectReaction('data-idle-stream', FrameType.GOAWAY, ErrorCode.PROTOCOL_ERROR);
    });

    it('client 5.1.1/1: a stream opened by the backend (push is disabled) is a connection error of type PROTOCOL_ERROR', async () => {
      await expectFailure('even-stream', grpc.status.UNAVAILABLE);
      await expectReaction('even-stream', FrameType.GOAWAY, ErrorCode.PROTOCOL_ERROR);
    });

    it('client 4.2/1: a frame over SETTINGS_MAX_FRAME_SIZE is a connection error of type FRAME_SIZE_ERROR', async () => {
      await expectFailure('oversized-frame', grpc.status.UNAVAILABLE);
      await expectReaction('oversized-frame', FrameType.GOAWAY, ErrorCode.FRAME_SIZE_ERROR);
    });

    it('client 6.5.2/1: a backend SETTINGS_MAX_FRAME_SIZE out of range is a connection error of type PROTOCOL_ERROR', async () => {
      await expectFailure('bad-max-frame-size', grpc.status.UNAVAILABLE);
      await expectReaction('bad-max-frame-size', FrameType.GOAWAY, ErrorCode.PROTOCOL_ERROR);
    });

    it('client 3.4/1: a backend whose first frame is not SETTINGS is a connection error of type PROTOCOL_ERROR', async () => {
      await expectFailure('ping-first', grpc.status.UNAVAILABLE);
      await expectReaction('ping-first', FrameType.GOAWAY, ErrorCode.PROTOCOL_ERROR);
    });
  });

  describe('what a well-behaved backend may do', () => {
    it('client 6.7/1: PINGs from the backend are answered with the same payload, the RPC unharmed', async () => {
      const { response } = await callCase('pings');
      assert.equal(response.backend, 'fake');
      const connection = backends.get('pings')!.connections[0]!;
      for (const opaque of ['backend1', 'backend2']) {
        const ack = await connection.waitForFrame((f) => f.type === FrameType.PING && f.payload!.toString() === opaque, `the ACK of ${opaque}`);
        assert.equal(ack.flags, Flag.ACK);
      }
    });

    it('client 6.5.3/1: the backend\'s SETTINGS is acknowledged, and the proxy says push is disabled', async () => {
      await callCase('pings');
      const connection = backends.get('pings')!.connections[0]!;
      assert.ok(connection.frames.some((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0), 'a SETTINGS ACK');
      const settings = connection.frames.find((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0)!.payload!;
      const entries = new Map(Array.from({ length: settings.length / 6 }, (_, i) => [settings.readUInt16BE(i * 6), settings.readUInt32BE(i * 6 + 2)]));
      assert.equal(entries.get(Setting.ENABLE_PUSH), 0);
    });

    it('client RFC 7541 2.3/1: a response using Huffman coding and the dynamic table is decoded', async () => {
      const result = await callCase('hpack-dynamic');
      assert.equal(result.response.backend, 'fake');
      assert.deepEqual(result.headers.get('custom-key'), ['custom-value']);
      assert.deepEqual(result.trailers.get('custom-key'), ['custom-value']);
    });

    it('client 6.8/1: a stream refused by GOAWAY (above its last stream id) is sent again on a new connection', async () => {
      const { response } = await callCase('goaway-refused');
      assert.equal(response.backend, 'fake');
      assert.equal(backends.get('goaway-refused')!.connections.length, 2);
    });

    it('client 8.1/6: RST_STREAM REFUSED_STREAM (§8.7) is retried on its own: the RPC succeeds', async () => {
      const { response } = await callCase('refused-stream');
      assert.equal(response.backend, 'fake');
      assert.equal(backends.get('refused-stream')!.requests.length, 2);
    });

    it('client 8.1/7: RST_STREAM NO_ERROR after a complete answer leaves the RPC a success', async () => {
      const { response } = await callCase('reset-after-answer');
      assert.equal(response.backend, 'fake');
    });

    it('client 6.10/1: response headers over HEADERS and two CONTINUATION frames are joined', async () => {
      const { response, headers } = await callCase('continuation');
      assert.equal(response.backend, 'fake');
      assert.deepEqual(headers.get('x-long'), ['l'.repeat(200)]);
    });

    it('client 6.1/1: padded DATA, and HEADERS with padding and priority fields, are read', async () => {
      const { response } = await callCase('padded');
      assert.equal(response.backend, 'fake');
    });

    it('client 8.1/8: a trailers-only response carries its status to the client', async () => {
      const error = await expectStatus(callCase('trailers-only'));
      assert.equal(error.code, grpc.status.NOT_FOUND);
      assert.equal(error.details, 'not here');
    });

    it('client 6.8/2: after a GOAWAY that names the stream, its answer still arrives; the next RPC takes a new connection', async () => {
      const fake = backends.get('goaway-after-answer')!;
      for (let i = 0; i < 2; i++) {
        const { response } = await callCase('goaway-after-answer');
        assert.equal(response.backend, 'fake', `RPC ${i}: ${JSON.stringify(response)}`);
      }
      assert.equal(fake.connections.length, 2, `connections: ${fake.connections.length}, requests on each: ${fake.connections.map((c) => fake.requests.filter((r) => r.connection === c).length).join(', ')}`);
    });

    it('client 6.9.1/3: the proxy never sends more than the backend\'s stream window', async () => {
      const fake = backends.get('small-window')!;
      const payload = Buffer.alloc(100, 0x62);
      const call = callCase('small-window', payload);
      await waitFor(() => fake.requests.length > 0, 'the request at the backend');
      const { connection, streamId } = fake.requests[0]!;
      // Credit each DATA frame as it arrives until END_STREAM, then answer.
      let credited = 0;
      for (;;) {
        const data = await connection.waitForFrame((f) => f.type === FrameType.DATA && f.streamId === streamId && connection.frames.indexOf(f) >= credited, 'request DATA');
        credited = connection.frames.indexOf(data) + 1;
        assert.ok(data.length <= 10, `a DATA frame of ${data.length} bytes in a window of 10`);
        if (data.flags & Flag.END_STREAM) break;
        if (data.length > 0) connection.send(windowUpdate(streamId, data.length));
      }
      connection.send(goodAnswer(streamId, ECHO_RESPONSE));
      const { response } = await call;
      assert.equal(response.backend, 'fake');
      const sent = connection.frames.filter((f) => f.type === FrameType.DATA && f.streamId === streamId).reduce((sum, f) => sum + f.length, 0);
      assert.ok(sent > payload.length, `${sent} bytes of request`);
    });
  });
});
