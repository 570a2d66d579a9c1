/**
 * The engine's frame parser under fast-check: a ServerConnection (with the
 * listener's default settings and budgets) on a real loopback socket is fed
 * arbitrary bytes, arbitrary frames and mutated valid conversations. For every
 * input: no exception escapes the engine (an internal error would surface as
 * an uncaught exception or as a connection closed with something other than a
 * protocol error or a socket error), and the connection is finished within a
 * deadline. Each input is followed by bytes that no connection can accept (a
 * run of zeros: whatever frame was left incomplete, then DATA on stream 0), so
 * a server that is still parsing must close; one that does not has hung. Over
 * all the runs, memory must not grow: every closed connection is collected
 * and the heap ends where it began, within a margin.
 *
 * Runs are bounded and the seed fixed (FUZZ_SEED overrides it); fast-check
 * prints the seed and the shrunk input of a failure.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import fc from 'fast-check';
import { configSchema } from '../../src/config/schema.ts';
import type { DownstreamEvents, HeaderMap } from '../../src/grpc/streams.ts';
import { Http2Error } from '../../src/http2/constants.ts';
import { ServerConnection } from '../../src/http2/server-connection.ts';
import type { ServerStream } from '../../src/http2/server-stream.ts';
import { localSettings, serverLimits } from '../../src/listener/listener-limits.ts';
import { FUZZ_SEED, fuzzRuns, mutate, mutation } from '../helpers/fuzz.ts';
import { echoHeaders, echoRequest, grpcMessage } from '../helpers/h2-conformance.ts';
import { Flag, frame, FrameType, goAwayFrame, PREFACE, pingFrame, priorityFrame, rstStream, Setting, settingsFrame, windowUpdate } from '../helpers/raw-h2.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A correct server finishes any input in milliseconds; this allows for a loaded 2-core machine. */
const DEADLINE_MS = 5_000;
/** Enough zeros to complete any frame the input left open (at most 9 + 16,384 bytes) and then make one more. */
const TERMINATOR = Buffer.alloc(2 * (9 + 16_384));
/** What the heap may have grown by over all the runs once collected: far less than a leak of these runs would cost. */
const HEAP_MARGIN = 16 << 20;

const listener = configSchema.parse({ listeners: [{ name: 'fuzz', port: 0, plaintext: true }], clusters: [], routes: [] }).listeners[0]!;

/** How the server's connections ended: the ones that are not a protocol error or a socket error are engine bugs. */
interface Ended {
  error: Error | undefined;
  done: boolean;
  /** Streams the connection still held once it had closed. */
  streamsLeft: number;
}

/** An error a connection may end with: an HTTP/2 error it found, or its socket going away. */
function expectedEnd(error: Error | undefined): boolean {
  if (error === undefined || error instanceof Http2Error) return true;
  if ((error as NodeJS.ErrnoException).code !== undefined && typeof (error as NodeJS.ErrnoException).code === 'string') return true;
  return error.message === 'the connection closed' || error.message === 'the peer ended the connection';
}

/**
 * The streams' owner in these tests: by stream id, it answers at once, echoes the request back, or
 * pauses and never reads, so the fuzzed frames meet streams in every state.
 */
function handleStream(stream: ServerStream): void {
  const kind = stream.id % 3;
  const events: DownstreamEvents = {
    onRequestData: (chunk) => {
      if (kind === 1 && !stream.closed) {
        if (!stream.headersSent) stream.respond({ ':status': 200, 'content-type': 'application/grpc' } as HeaderMap, false);
        stream.write(chunk);
      }
    },
    onRequestEnd: () => {
      if (kind !== 2) stream.end({ 'grpc-status': '0' } as HeaderMap);
    },
    onResponseDrain: () => {},
    onDownstreamClose: () => {},
    onCut: () => {},
    onMalformedRequest: () => {},
  };
  stream.attach(events);
  if (kind === 0) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' } as HeaderMap, true);
  if (kind === 2) stream.pause();
}

describe('the HTTP/2 frame parser under fast-check (a ServerConnection on loopback)', () => {
  let server: net.Server;
  let port: number;
  const ended: Ended[] = [];
  const uncaught: Error[] = [];
  const collected: WeakRef<ServerConnection>[] = [];
  const onUncaught = (error: Error) => uncaught.push(error);

  before(async () => {
    process.on('uncaughtException', onUncaught);
    server = net.createServer((socket) => {
      socket.on('error', () => {});
      const record: Ended = { error: undefined, done: false, streamsLeft: 0 };
      ended.push(record);
      const connection: ServerConnection = new ServerConnection(socket, {
        local: localSettings(listener),
        limits: serverLimits(listener),
        onStream: (stream) => handleStream(stream),
        onClosed: (error) => {
          record.error = error;
          record.done = true;
          record.streamsLeft = connection.streams.size;
        },
      });
      collected.push(new WeakRef(connection));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  after(async () => {
    process.removeListener('uncaughtException', onUncaught);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Sends `bytes` then the terminator on a new connection; resolves once the server has finished with it. */
  async function feed(bytes: Buffer): Promise<void> {
    const before = ended.length;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(bytes);
    socket.write(TERMINATOR);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), DEADLINE_MS); });
    const outcome = await Promise.race([closed.then(() => 'closed' as const), deadline]);
    clearTimeout(timer);
    socket.destroy();
    assert.equal(outcome, 'closed', `the server neither refused nor finished the input within ${DEADLINE_MS} ms`);
    const record = ended[before];
    assert.ok(record, 'the server accepted the connection');
    const finished = () => record.done;
    const until = Date.now() + DEADLINE_MS;
    while (!finished() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 2));
    assert.ok(finished(), 'the server connection was closed');
    assert.ok(expectedEnd(record.error), `the connection ended with an internal error: ${record.error?.stack}`);
    assert.deepEqual(uncaught.map((e) => e.stack), [], 'no exception escaped the engine');
    assert.equal(record.streamsLeft, 0, 'no stream outlives its connection');
  }

  /** Frames of any type (known ones more often), flags, stream id and payload: each with a correct frame header. */
  const anyFrame = fc.record({
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 10, max: 255 })),
    flags: fc.integer({ min: 0, max: 255 }),
    streamId: fc.oneof(fc.constantFrom(0, 1, 2, 3, 5, 2 ** 31 - 1), fc.nat()),
    payload: fc.uint8Array({ maxLength: 80 }),
  }).map(({ type, flags, streamId, payload }) => frame(type, flags, streamId, Buffer.from(payload)));

  /** A valid conversation: requests opened (some split over CONTINUATION, padded or with priority), their bodies, control frames. */
  const validStep = fc.oneof(
    fc.record({ id: fc.integer({ min: 0, max: 20 }), split: fc.nat(40), pad: fc.option(fc.nat(20)), end: fc.boolean() }).map(({ id, split, pad, end }) => {
      const streamId = 2 * id + 1;
      const block = echoHeaders(id % 2 === 0 ? 'Unary' : 'Bidi', [['x-step', String(id)]]);
      const cut = Math.min(split, block.length);
      const first = pad === null ? block.subarray(0, cut) : Buffer.concat([Buffer.from([pad]), block.subarray(0, cut), Buffer.alloc(pad)]);
      const flags = (pad === null ? 0 : Flag.PADDED) | (end ? Flag.END_STREAM : 0) | (cut === block.length ? Flag.END_HEADERS : 0);
      const frames = [frame(FrameType.HEADERS, flags, streamId, first)];
      if (cut < block.length) frames.push(frame(FrameType.CONTINUATION, Flag.END_HEADERS, streamId, block.subarray(cut)));
      return Buffer.concat(frames);
    }),
    fc.record({ id: fc.integer({ min: 0, max: 20 }), size: fc.nat(200), end: fc.boolean() }).map(({ id, size, end }) =>
      frame(FrameType.DATA, end ? Flag.END_STREAM : 0, 2 * id + 1, grpcMessage(echoRequest({ payload: Buffer.alloc(size, 0x61) })))),
    fc.record({ id: fc.integer({ min: 0, max: 20 }), increment: fc.integer({ min: 1, max: 1 << 20 }) }).map(({ id, increment }) => windowUpdate(id === 0 ? 0 : 2 * id - 1, increment)),
    fc.uint8Array({ minLength: 8, maxLength: 8 }).map((opaque) => pingFrame(Buffer.from(opaque))),
    fc.constantFrom(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1]]), settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]), settingsFrame([[Setting.MAX_FRAME_SIZE, 1 << 15]]), settingsFrame([], true)),
    fc.record({ id: fc.integer({ min: 0, max: 20 }), on: fc.nat(20) }).map(({ id, on }) => priorityFrame(2 * id + 1, 2 * on + 1)),
    fc.integer({ min: 0, max: 20 }).map((id) => rstStream(2 * id + 1)),
    fc.constant(goAwayFrame(0, 0)),
  );

  const opening = Buffer.concat([PREFACE, settingsFrame([])]);
  const runs = { seed: FUZZ_SEED, numRuns: fuzzRuns(120), endOnFailure: true } as const;
  let heapAfterWarmUp = 0;

  it('arbitrary bytes after the preface and SETTINGS', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), async (bytes) => feed(Buffer.concat([opening, Buffer.from(bytes)]))), runs);
    gc();
    heapAfterWarmUp = process.memoryUsage().heapUsed;
  });

  it('arbitrary frames, each with a correct header', async () => {
    await fc.assert(fc.asyncProperty(fc.array(anyFrame, { maxLength: 30 }), async (frames) => feed(Buffer.concat([opening, ...frames]))), runs);
  });

  it('valid conversations, mutated', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(validStep, { minLength: 1, maxLength: 30 }), mutation(64), async (steps, change) => feed(Buffer.concat([opening, mutate(Buffer.concat(steps), change)]))),
      runs,
    );
  });

  it('the whole byte stream mutated, the preface and SETTINGS included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(validStep, { maxLength: 10 }), mutation(), async (steps, change) => feed(mutate(Buffer.concat([opening, ...steps]), change))),
      { ...runs, numRuns: fuzzRuns(60) },
    );
  });

  it('memory: every closed connection is collected, and the heap ends within a margin of where it began', async (t) => {
    assert.ok(ended.length >= fuzzRuns(400), `${ended.length} connections fed`);
    // A connection that sent GOAWAY keeps a timer for a second, in case the peer never closes its side.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    gc();
    const alive = collected.filter((ref) => ref.deref() !== undefined).length;
    assert.equal(alive, 0, `${alive} of ${collected.length} closed connections are still reachable`);
    const heap = process.memoryUsage().heapUsed;
    t.diagnostic(`${collected.length} connections; heap after the first property ${(heapAfterWarmUp / 2 ** 20).toFixed(1)} MiB, at the end ${(heap / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(heap - heapAfterWarmUp < HEAP_MARGIN, `the heap grew by ${((heap - heapAfterWarmUp) / 2 ** 20).toFixed(1)} MiB over the runs`);
  });
});
