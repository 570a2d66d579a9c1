// The ADS server's fan-out (src/xds/server/fan-out.ts): batches that yield, one write outstanding
// per stream, and a budget of bytes in flight over all streams. Deferred runs are stepped by hand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FanOut, type FanOutStream } from '../../src/xds/server/fan-out.ts';

class FakeStream implements FanOutStream {
  ended = false;
  writing = false;
  pending: number[] = [];
  readonly writes: number[] = [];

  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  flush(): number {
    if (this.writing) throw new Error(`${this.name} flushed with a write outstanding`);
    const bytes = this.pending.shift();
    if (bytes === undefined) return 0;
    this.writing = true;
    this.writes.push(bytes);
    return bytes;
  }
}

function steppedFanOut(options: { batchSize: number; maxBytesInFlight: number }) {
  const runs: (() => void)[] = [];
  const fanOut = new FanOut<FakeStream>({ ...options, defer: (run) => void runs.push(run) });
  return { fanOut, step: () => runs.shift()?.(), get deferred() { return runs.length; } };
}

/** The stream's write completed: what the server's write callback does. */
function complete(fanOut: FanOut<FakeStream>, stream: FakeStream): void {
  const bytes = stream.writes.at(-1)!;
  stream.writing = false;
  fanOut.completed(bytes);
  fanOut.schedule(stream);
}

describe('xDS fan-out', () => {
  it('flushes queued streams in batches, yielding between them', () => {
    const { fanOut, step } = steppedFanOut({ batchSize: 3, maxBytesInFlight: 1_000_000 });
    const streams = Array.from({ length: 7 }, (_, i) => Object.assign(new FakeStream(`s${i}`), { pending: [10] }));
    for (const stream of streams) fanOut.schedule(stream);
    fanOut.schedule(streams[0]!); // already queued: once is enough
    const flushed = () => streams.filter((s) => s.writes.length > 0).length;
    assert.equal(flushed(), 0, 'nothing happens until the event loop comes back');
    step();
    assert.equal(flushed(), 3);
    step();
    assert.equal(flushed(), 6);
    step();
    assert.equal(flushed(), 7);
    assert.equal(fanOut.queued, 0);
    assert.equal(fanOut.bytesInFlight, 70);
  });

  it('keeps one write outstanding per stream: the next waits for the completion', () => {
    const { fanOut, step } = steppedFanOut({ batchSize: 10, maxBytesInFlight: 1_000_000 });
    const stream = Object.assign(new FakeStream('slow'), { pending: [100, 200, 300] });
    fanOut.schedule(stream);
    step();
    assert.deepEqual(stream.writes, [100]);
    fanOut.schedule(stream); // a push while the write is outstanding
    step();
    assert.deepEqual(stream.writes, [100], 'not flushed again while its write is outstanding');
    complete(fanOut, stream);
    step();
    assert.deepEqual(stream.writes, [100, 200]);
    assert.equal(fanOut.bytesInFlight, 200, 'only the outstanding write counts');
  });

  it('stops when the bytes in flight reach the budget and resumes as writes complete', () => {
    const { fanOut, step, deferred } = steppedFanOut({ batchSize: 100, maxBytesInFlight: 250 });
    const streams = Array.from({ length: 5 }, (_, i) => Object.assign(new FakeStream(`s${i}`), { pending: [100] }));
    for (const stream of streams) fanOut.schedule(stream);
    step();
    assert.deepEqual(streams.map((s) => s.writes.length), [1, 1, 1, 0, 0], 'past 250 bytes in flight the queue waits');
    assert.equal(fanOut.bytesInFlight, 300);
    assert.equal(fanOut.peakBytesInFlight, 300);
    assert.equal(deferred, 0, 'nothing is scheduled until a write completes');
    complete(fanOut, streams[0]!);
    step();
    assert.deepEqual(streams.map((s) => s.writes.length), [1, 1, 1, 1, 0]);
    complete(fanOut, streams[1]!);
    complete(fanOut, streams[2]!);
    step();
    assert.deepEqual(streams.map((s) => s.writes.length), [1, 1, 1, 1, 1]);
  });

  it('skips streams that ended and frees the budget of a stream that ends with a write outstanding', () => {
    const { fanOut, step } = steppedFanOut({ batchSize: 10, maxBytesInFlight: 150 });
    const [a, b] = [Object.assign(new FakeStream('a'), { pending: [100] }), Object.assign(new FakeStream('b'), { pending: [100] })];
    fanOut.schedule(a);
    fanOut.schedule(b);
    step();
    assert.deepEqual([a.writes.length, b.writes.length], [1, 1]);
    a.ended = true;
    fanOut.completed(100); // what the stream's cleanup reports
    fanOut.schedule(a);
    assert.equal(fanOut.queued, 0, 'an ended stream is not queued');
    assert.equal(fanOut.bytesInFlight, 100);
  });
});
