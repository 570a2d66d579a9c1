/**
 * A node:http2 server stream behind the DownstreamStream contract
 * (src/grpc/streams.ts). One per RPC; its event handlers are shared functions
 * that find the adapter on the stream, so no closure is made per RPC.
 */
import { constants, type ServerHttp2Stream } from 'node:http2';
import type { DownstreamConnection, DownstreamEvents, DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { respondWithStatus } from '../grpc/respond.ts';
import { FAILURES } from '../grpc/failures.ts';

const ADAPTER = Symbol('switchyard.downstream');
type Adapted = ServerHttp2Stream & { [ADAPTER]: NodeDownstream };

const END_STREAM = { endStream: true } as const;
const WAIT_FOR_TRAILERS = { waitForTrailers: true } as const;

export class NodeDownstream implements DownstreamStream {
  readonly #stream: ServerHttp2Stream;
  #events: DownstreamEvents | undefined;
  /** Trailers end() was given, sent when Node asks for them ('wantTrailers'). */
  #trailers: HeaderMap | undefined;

  constructor(stream: ServerHttp2Stream) {
    this.#stream = stream;
    (stream as Adapted)[ADAPTER] = this;
    stream.on('close', onClose);
    stream.on('wantTrailers', onWantTrailers);
  }

  get connection(): DownstreamConnection | undefined {
    return this.#stream.session;
  }

  get headersSent(): boolean {
    return this.#stream.headersSent;
  }

  get closed(): boolean {
    return this.#stream.closed || this.#stream.destroyed;
  }

  get events(): DownstreamEvents | undefined {
    return this.#events;
  }

  get trailers(): HeaderMap | undefined {
    return this.#trailers;
  }

  attach(events: DownstreamEvents): void {
    this.#events = events;
    const stream = this.#stream;
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('drain', onDrain);
    // The stream reaches the RPC a tick after it arrived (src/listener/listener.ts): a request with no
    // message may have ended, 'end' emitted, before anyone listened.
    if (stream.readableEnded) events.onRequestEnd();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    stream.respond(headers as never, endStream ? END_STREAM : WAIT_FOR_TRAILERS);
  }

  write(chunk: Buffer): boolean {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return true;
    return stream.write(chunk);
  }

  end(trailers: HeaderMap): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    this.#trailers = trailers;
    stream.end();
  }

  answerHttp(status: number, body: string): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    stream.respond({ ':status': status, 'content-type': 'text/plain' }, { endStream: false });
    stream.end(body);
  }

  reset(code: number): void {
    if (!this.#stream.closed) this.#stream.close(code);
  }

  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    this.#stream.resume();
  }

  /**
   * The listener is about to destroy the connection: the RPC ends itself (UNAVAILABLE); a stream
   * nobody has answered yet gets that from here.
   */
  cut(reason: string): void {
    if (this.#events) this.#events.onCut(reason);
    else if (!this.#stream.headersSent && !this.closed) respondWithStatus(this.#stream, FAILURES.draining.status, `${FAILURES.draining.message} (${reason})`);
  }
}

function adapterOf(stream: ServerHttp2Stream): NodeDownstream {
  return (stream as Adapted)[ADAPTER];
}

function onData(this: ServerHttp2Stream, chunk: Buffer): void {
  adapterOf(this).events?.onRequestData(chunk);
}

function onEnd(this: ServerHttp2Stream): void {
  adapterOf(this).events?.onRequestEnd();
}

function onDrain(this: ServerHttp2Stream): void {
  adapterOf(this).events?.onResponseDrain();
}

function onClose(this: ServerHttp2Stream): void {
  adapterOf(this).events?.onDownstreamClose();
}

function onWantTrailers(this: ServerHttp2Stream): void {
  const trailers = adapterOf(this).trailers;
  // end() always gives trailers; a stream ended any other way would leave the client without a status.
  this.sendTrailers((trailers ?? { 'grpc-status': String(FAILURES.upstream_protocol_error.status), 'grpc-message': 'response ended without trailers' }) as never);
}

/** RST_STREAM CANCEL, for callers that have no code of their own. */
export const CANCEL = constants.NGHTTP2_CANCEL;
