/**
 * The base of every translating stream: a DownstreamStream for the RPC path
 * (src/proxy/) made of the client's own stream, HTTP/2 or HTTP/1.1, which
 * speaks a browser protocol. The RPC path sees gRPC: framed request messages
 * in, gRPC headers, messages and trailers out. Subclasses translate the
 * bodies and the response's shape; pausing, resetting, closing and the
 * connection are the client stream's.
 */
import type { DownstreamConnection, DownstreamEvents, DownstreamStream, HeaderMap, RpcProtocol } from '../grpc/streams.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../grpc/frame-meter.ts';
import { guardOf } from '../security/connection-guard.ts';

export abstract class WebStream implements DownstreamStream, DownstreamEvents {
  abstract readonly protocol: RpcProtocol;
  readonly inner: DownstreamStream;
  /** Headers to add to every response (CORS), or undefined. */
  readonly extraHeaders: Readonly<Record<string, string>> | undefined;
  headersSent = false;
  /** The request body could not be translated: the RPC is ending with malformed_request. */
  malformed = false;
  /** The rest of the request body is not wanted (malformed, or refused for its size). */
  protected droppingRequest = false;
  #events: DownstreamEvents | undefined;

  constructor(inner: DownstreamStream, extraHeaders: Readonly<Record<string, string>> | undefined) {
    this.inner = inner;
    this.extraHeaders = extraHeaders;
  }

  get connection(): DownstreamConnection | undefined {
    return this.inner.connection;
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  get headerListSize(): number | undefined {
    return this.inner.headerListSize;
  }

  /** The listener's limit on request messages, which a stream that buffers the body holds to. */
  get maxRequestMessageBytes(): number {
    return guardOf(this.inner.connection)?.config.maxRequestMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  get maxResponseMessageBytes(): number {
    return guardOf(this.inner.connection)?.config.maxResponseMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  attach(events: DownstreamEvents): void {
    this.#events = events;
    // The client's stream holds what arrived until it has a subscriber, so nothing is lost by attaching late.
    this.inner.attach(this);
  }

  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }

  reset(code: number): void {
    this.inner.reset(code);
  }

  abstract respond(headers: HeaderMap, endStream: boolean): void;
  abstract write(chunk: Buffer): boolean;
  abstract end(trailers: HeaderMap): void;
  abstract answerHttp(status: number, body: string): void;

  /** A chunk of the client's body, to be translated and handed on with forwardData. */
  protected abstract requestData(chunk: Buffer): void;
  /** The client's body is complete. */
  protected abstract requestEnd(): void;

  onRequestData(chunk: Buffer): void {
    if (!this.droppingRequest) this.requestData(chunk);
  }

  onRequestEnd(): void {
    if (!this.droppingRequest) this.requestEnd();
  }

  onResponseDrain(): void {
    this.#events?.onResponseDrain();
  }

  onDownstreamClose(): void {
    this.#events?.onDownstreamClose();
  }

  onCut(reason: string): void {
    this.#events?.onCut(reason);
  }

  /** The client's stream never reports this (it does not translate). */
  onMalformedRequest(): void {}

  /** Request bytes in gRPC's framing, for the RPC. */
  protected forwardData(chunk: Buffer): void {
    if (chunk.length > 0) this.#events?.onRequestData(chunk);
  }

  protected forwardEnd(): void {
    this.#events?.onRequestEnd();
  }

  /** The body cannot be translated: the RPC ends with INVALID_ARGUMENT, and the rest of the body is dropped. */
  protected refuseBody(message: string): void {
    this.malformed = true;
    this.droppingRequest = true;
    this.#events?.onMalformedRequest(message);
  }

  /**
   * A message of `length` bytes, over the listener's limit, is not read: its prefix alone is sent, so the
   * RPC path's own size check refuses it (request_too_large), and the rest of the body is dropped.
   */
  protected refuseOversized(length: number): void {
    this.droppingRequest = true;
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(Math.min(length, 0xffffffff), 1);
    this.forwardData(prefix);
  }

  /** Adds the extra headers to `headers` (which belong to this response). */
  protected withExtraHeaders(headers: HeaderMap): HeaderMap {
    if (this.extraHeaders !== undefined) Object.assign(headers, this.extraHeaders);
    return headers;
  }
}
