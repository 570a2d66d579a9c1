/**
 * Decides when streams write, so that a push to thousands of streams neither
 * holds the event loop nor buffers the whole fleet's responses at once:
 *
 * - Streams with something to send wait in one queue (once each, in order);
 *   the queue is worked through in batches, yielding to the event loop
 *   between them (ACKs, new streams and timers are served meanwhile).
 * - A stream has at most one response written and not yet flushed to its
 *   connection: the next waits for that write to complete. A client that
 *   does not read therefore holds at most one response in the server's memory.
 * - The bytes written and not yet flushed, over all streams, stay under a
 *   budget: past it, the queue waits for writes to complete.
 *
 * Pure scheduling: the stream does the writing and reports back.
 */

/** What the fan-out drives. */
export interface FanOutStream {
  readonly ended: boolean;
  /** A write is outstanding (written, not flushed). */
  readonly writing: boolean;
  /** Writes what is due, at most one response; returns its size in bytes (0: nothing written). */
  flush(): number;
}

export interface FanOutOptions {
  /** Streams flushed before yielding to the event loop. Default 200. */
  readonly batchSize?: number;
  /** Bytes written and not yet flushed, over all streams, before the queue waits. Default 16 MiB. */
  readonly maxBytesInFlight?: number;
  /** How to yield (tests may pass their own). Default setImmediate. */
  readonly defer?: (run: () => void) => void;
}

export class FanOut<Stream extends FanOutStream = FanOutStream> {
  readonly #queue = new Set<Stream>();
  readonly #batchSize: number;
  readonly #maxBytesInFlight: number;
  readonly #defer: (run: () => void) => void;
  #bytesInFlight = 0;
  #scheduled = false;
  #closed = false;
  /** The most bytes in flight seen, for tests and metrics. */
  peakBytesInFlight = 0;

  constructor(options: FanOutOptions = {}) {
    this.#batchSize = Math.max(1, options.batchSize ?? 200);
    this.#maxBytesInFlight = Math.max(1, options.maxBytesInFlight ?? 16 * 1024 * 1024);
    this.#defer = options.defer ?? ((run) => void setImmediate(run));
  }

  get queued(): number {
    return this.#queue.size;
  }

  get bytesInFlight(): number {
    return this.#bytesInFlight;
  }

  /** `stream` has something to send (or may have): it is flushed in a coming batch. */
  schedule(stream: Stream): void {
    if (this.#closed || stream.ended) return;
    this.#queue.add(stream);
    this.#kick();
  }

  /** A write of `bytes` completed (or its stream ended): the budget is freed. */
  completed(bytes: number): void {
    this.#bytesInFlight = Math.max(0, this.#bytesInFlight - bytes);
    if (this.#queue.size > 0) this.#kick();
  }

  /** Forgets a stream that ended. */
  remove(stream: Stream): void {
    this.#queue.delete(stream);
  }

  close(): void {
    this.#closed = true;
    this.#queue.clear();
  }

  #kick(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    this.#defer(() => this.#run());
  }

  #run(): void {
    this.#scheduled = false;
    let flushed = 0;
    for (const stream of this.#queue) {
      if (this.#bytesInFlight >= this.#maxBytesInFlight) return; // completed() resumes
      if (flushed >= this.#batchSize) {
        this.#kick();
        return;
      }
      this.#queue.delete(stream);
      // A stream with a write outstanding is scheduled again by that write's completion.
      if (stream.ended || stream.writing) continue;
      const bytes = stream.flush();
      if (bytes > 0) {
        this.#bytesInFlight += bytes;
        if (this.#bytesInFlight > this.peakBytesInFlight) this.peakBytesInFlight = this.#bytesInFlight;
      }
      flushed++;
    }
  }
}
