/**
 * A node:http2 client stream behind the UpstreamStream contract
 * (src/grpc/streams.ts). Made by the endpoint pool for each attempt; its event
 * handlers are shared functions that find the adapter on the stream.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { HeaderMap, UpstreamBreak, UpstreamEvents, UpstreamStream } from '../grpc/streams.ts';

const ADAPTER = Symbol('switchyard.upstream');
type Adapted = ClientHttp2Stream & { [ADAPTER]: NodeUpstream };

/** Told of each stream the proxy cancels on a connection (the pool's reset budget). */
export interface CancelCounter {
  cancelled(): void;
}

export class NodeUpstream implements UpstreamStream {
  readonly #stream: ClientHttp2Stream;
  readonly #counter: CancelCounter;
  events: UpstreamEvents | undefined;
  /** Why Node failed the stream, when it did ('error' comes before 'close'). */
  error: (Error & { code?: string }) | undefined;
  responseEnded = false;

  constructor(stream: ClientHttp2Stream, counter: CancelCounter) {
    this.#stream = stream;
    this.#counter = counter;
    (stream as Adapted)[ADAPTER] = this;
    // A failed stream emits 'error'; it must never be unhandled.
    stream.on('error', onError);
  }

  attach(events: UpstreamEvents): void {
    this.events = events;
    const stream = this.#stream;
    stream.on('response', onResponse);
    stream.on('data', onData);
    stream.on('trailers', onTrailers);
    stream.on('end', onEnd);
    stream.on('drain', onDrain);
    stream.on('close', onClose);
  }

  write(chunk: Buffer): boolean {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return true;
    return stream.write(chunk);
  }

  end(): void {
    if (!this.#stream.destroyed) this.#stream.end();
  }

  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    this.#stream.resume();
  }

  get paused(): boolean {
    return this.#stream.isPaused();
  }

  cancel(): void {
    const stream = this.#stream;
    if (stream.closed || stream.destroyed) return;
    stream.close(constants.NGHTTP2_CANCEL);
    this.#counter.cancelled();
  }

  get connectionLost(): boolean {
    const session = this.#stream.session;
    return session === undefined || session.destroyed || session.closed;
  }

  /** How the stream broke, from what Node said about it. */
  breakOf(rstCode: number): UpstreamBreak {
    const error = this.error;
    const streamReset = error === undefined || error.code === 'ERR_HTTP2_STREAM_ERROR';
    return {
      rstCode,
      // REFUSED_STREAM (sent, or applied by Node to streams above a GOAWAY's last stream id), or a stream
      // Node would not open on a connection that had just received a GOAWAY.
      refused: rstCode === constants.NGHTTP2_REFUSED_STREAM || error?.code === 'ERR_HTTP2_GOAWAY_SESSION',
      connectionError: streamReset ? undefined : ((error as { cause?: Error }).cause?.message ?? error.message),
    };
  }
}

function adapterOf(stream: ClientHttp2Stream): NodeUpstream {
  return (stream as Adapted)[ADAPTER];
}

function onError(this: ClientHttp2Stream, error: Error): void {
  adapterOf(this).error = error;
}

function onResponse(this: ClientHttp2Stream, headers: IncomingHttpHeaders, flags: number): void {
  adapterOf(this).events!.onResponse(headers as HeaderMap, (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0);
}

function onData(this: ClientHttp2Stream, chunk: Buffer): void {
  adapterOf(this).events!.onResponseData(chunk);
}

function onTrailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
  adapterOf(this).events!.onTrailers(trailers as HeaderMap);
}

function onEnd(this: ClientHttp2Stream): void {
  const adapter = adapterOf(this);
  adapter.responseEnded = true;
  adapter.events!.onResponseEnd();
}

function onDrain(this: ClientHttp2Stream): void {
  adapterOf(this).events!.onRequestDrain();
}

function onClose(this: ClientHttp2Stream): void {
  const adapter = adapterOf(this);
  adapter.events!.onUpstreamClose(adapter.responseEnded ? undefined : adapter.breakOf(this.rstCode ?? 0));
}
