/**
 * The client side of an HTTP/2 connection, to a backend: streams are opened
 * with request(), answers arrive on them. No stream goes out before the
 * backend's SETTINGS (its stream limit is unknown until then: the pool waits
 * for onReady). A GOAWAY refuses the streams past its last stream id, which
 * the backend never processed, so the proxy may send them again elsewhere.
 */
import type { Socket } from 'node:net';
import type { HeaderMap } from '../grpc/streams.ts';
import { ErrorCode, Flag, Http2Error, MAX_STREAM_ID, PREFACE, Setting } from './constants.ts';
import { Http2Connection, type LocalSettings } from './connection.ts';
import { Malformed, responseHeaders, trailerHeaders } from './header-rules.ts';
import { ClientStream, type ClientStreamHost } from './client-stream.ts';
import type { StreamCore } from './stream.ts';

/** A stream that could not be opened, and that the backend never saw: safe to send elsewhere. */
export class StreamRefusedError extends Error {
  readonly refused = true;
}

export interface ClientConnectionOptions {
  readonly local: LocalSettings;
  /** The backend's SETTINGS arrived: streams may be opened (within peerMaxConcurrentStreams). */
  onReady?(): void;
  /** The backend sent GOAWAY: open no more streams here. */
  onGoAway?(lastStreamId: number, code: number): void;
  /** A stream was closed and a slot freed. */
  onStreamClosed?(): void;
  /** A stream was cancelled with RST_STREAM (the pool's reset budget). */
  onCancel?(): void;
  onClosed?(error: Error | undefined): void;
}

export class ClientConnection extends Http2Connection implements ClientStreamHost {
  readonly #options: ClientConnectionOptions;
  #nextStreamId = 1;

  constructor(socket: Socket, options: ClientConnectionOptions) {
    super(socket, options.local);
    this.#options = options;
    this.writer.raw(PREFACE);
    this.sendInitialSettings([[Setting.ENABLE_PUSH, 0]]);
    this.writer.flush();
  }

  /** True once the backend's SETTINGS arrived and until it goes away or the connection closes. */
  get usable(): boolean {
    return this.peerSettingsReceived && !this.closed && this.goAwayReceived === undefined && !this.goAwaySent;
  }

  /** Opens a stream with request `headers` (not ending it). Throws StreamRefusedError when it cannot. */
  request(headers: HeaderMap): ClientStream {
    if (this.closed || this.goAwayReceived !== undefined || this.goAwaySent) throw new StreamRefusedError('the connection is going away');
    if (this.#nextStreamId > MAX_STREAM_ID) {
      // Stream ids are spent: the pool moves to a new connection.
      this.goAway(ErrorCode.NO_ERROR, 0);
      throw new StreamRefusedError('stream ids exhausted on this connection');
    }
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    this.lastLocalStreamId = id;
    const stream = new ClientStream(id, this, this.peerInitialWindow);
    this.streams.set(id, stream);
    this.sendHeaders(stream, headers, false);
    return stream;
  }

  cancelled(): void {
    this.#options.onCancel?.();
  }

  protected override peerOpens(): boolean {
    return false;
  }

  protected override onSettings(): void {
    this.#options.onReady?.();
  }

  protected override onHeaderBlock(streamId: number, flags: number, result: 'ok' | 'too_large'): void {
    const stream = this.streams.get(streamId) as ClientStream | undefined;
    if (!stream) return this.headersOnClosedStream(streamId);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (result === 'too_large') return this.#broke(stream, 'the backend sent a header list over the limit');
    const parsed = stream.responded ? trailerHeaders(this.headerList) : responseHeaders(this.headerList);
    if (parsed instanceof Malformed) return this.#broke(stream, parsed.reason);
    if (stream.responded && !endStream) return this.#broke(stream, 'trailers without END_STREAM');
    // An informational response is followed by the final one: ending the stream with it is malformed (§8.1).
    if (!stream.responded && endStream && (parsed[':status'] as string).charCodeAt(0) === 0x31) return this.#broke(stream, 'an informational response with END_STREAM');
    stream.receiveHeaders(parsed, endStream);
  }

  protected override dataReceived(stream: StreamCore): void {
    // DATA before the response's HEADERS is malformed (§8.1); passed on, it would reach the client before any headers.
    if (!(stream as ClientStream).responded) this.#broke(stream as ClientStream, 'DATA before the response headers');
  }

  /** The backend sent a malformed response on `stream`: reset it (PROTOCOL_ERROR), as a broken stream. */
  #broke(stream: ClientStream, _why: string): void {
    this.sendReset(stream, ErrorCode.PROTOCOL_ERROR);
    stream.breakWith({ rstCode: ErrorCode.PROTOCOL_ERROR, refused: false, connectionError: undefined });
  }

  protected override onPeerReset(stream: StreamCore, code: number): void {
    (stream as ClientStream).breakWith({ rstCode: code, refused: code === ErrorCode.REFUSED_STREAM, connectionError: undefined });
  }

  protected override onGoAway(lastStreamId: number, code: number): void {
    for (const stream of this.streams.values()) {
      if (stream.id > lastStreamId) (stream as ClientStream).breakWith({ rstCode: ErrorCode.REFUSED_STREAM, refused: true, connectionError: undefined });
    }
    this.#options.onGoAway?.(lastStreamId, code);
    if (this.streams.size === 0) this.closeSocket(undefined);
  }

  protected override onStreamClosed(): void {
    this.#options.onStreamClosed?.();
    if ((this.goAwayReceived !== undefined || this.goAwaySent) && this.streams.size === 0 && !this.closed) this.closeSocket(undefined);
  }

  /** Stops opening streams; closes once the open ones have finished. */
  shutdown(): void {
    if (this.closed) return;
    this.goAway(ErrorCode.NO_ERROR, 0);
    this.writer.flush();
    if (this.streams.size === 0) this.closeSocket(undefined);
  }

  protected override connectionLostFor(stream: StreamCore, error: Error): void {
    const code = error instanceof Http2Error ? error.code : ErrorCode.INTERNAL_ERROR;
    (stream as ClientStream).breakWith({ rstCode: code, refused: false, connectionError: error.message });
  }

  protected override onClosed(error: Error | undefined): void {
    this.#options.onClosed?.(error);
  }
}
