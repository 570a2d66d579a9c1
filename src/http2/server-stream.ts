/**
 * A stream a client opened: one request, answered through the
 * DownstreamStream contract (src/grpc/streams.ts) that the RPC path uses.
 */
import type { DownstreamConnection, DownstreamEvents, HeaderMap, TunnelStream } from '../grpc/streams.ts';
import { FAILURES } from '../grpc/failures.ts';
import { trailersOnly } from '../grpc/respond.ts';
import { ErrorCode } from './constants.ts';
import { StreamCore, type StreamHost } from './stream.ts';

export class ServerStream extends StreamCore implements TunnelStream {
  readonly connection: DownstreamConnection;
  events: DownstreamEvents | undefined;
  headersSent = false;
  /** The decoded request header list's size, in octets (RFC 9113 §6.5.2); the map is empty when it went past the limit. */
  headerListSize: number | undefined;
  /** The request's content-length, when it gave one: the DATA must add up to it (§8.1.1). */
  expectedLength: number | undefined;
  receivedLength = 0;
  /** finish() ended the response: the stream stays open until the client ends its side too. */
  #halfClose = false;

  constructor(id: number, host: StreamHost & DownstreamConnection, sendWindow: number) {
    super(id, host, sendWindow);
    this.connection = host;
  }

  attach(events: DownstreamEvents): void {
    this.events = events;
    if (!this.paused) this.releaseInbound();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    if (endStream) this.endWithHeaders(headers);
    else this.host.sendHeaders(this, headers, false);
  }

  end(trailers: HeaderMap): void {
    if (!this.headersSent) {
      // Trailers with nothing before them are a trailers-only response.
      this.respond({ ':status': 200, 'content-type': 'application/grpc', ...trailers }, true);
      return;
    }
    this.endOutbound(trailers);
  }

  finish(): void {
    if (!this.headersSent) return;
    this.#halfClose = true;
    this.endOutbound();
  }

  answerHttp(status: number, body: string): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.host.sendHeaders(this, { ':status': status, 'content-type': 'text/plain; charset=utf-8' }, false);
    this.write(Buffer.from(body));
    this.endOutbound();
  }

  /** The connection is about to close: the RPC ends itself (UNAVAILABLE); a stream nobody answered gets that here. */
  cut(reason: string): void {
    if (this.events) this.events.onCut(reason);
    else if (!this.headersSent && !this.closed) this.respond(trailersOnly(FAILURES.draining.status, `${FAILURES.draining.message} (${reason})`), true);
  }

  protected deliverData(chunk: Buffer): void {
    this.events!.onRequestData(chunk);
  }

  protected deliverEnd(): void {
    this.events!.onRequestEnd();
  }

  protected deliverDrain(): void {
    this.events?.onResponseDrain();
  }

  /** The response is complete while the client may still send: ask it to stop, without error (§8.1); a tunnel's half-close waits for the client's end. */
  protected override localEndSent(): void {
    if (this.#halfClose) return;
    this.host.sendReset(this, ErrorCode.NO_ERROR);
    this.close();
  }

  protected closedHook(): void {
    this.events?.onDownstreamClose();
  }
}
