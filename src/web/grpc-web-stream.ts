/**
 * A gRPC-Web call (grpc's PROTOCOL-WEB.md) as the RPC path's DownstreamStream.
 * The body's framing is gRPC's, so messages pass as they are; in text mode
 * both bodies are base64, decoded and encoded a chunk at a time. The trailers
 * become the body's last frame (flag 0x80, an HTTP/1 header block), since
 * browsers cannot read HTTP trailers; a trailers-only answer stays one:
 * headers with the status and an empty body.
 */
import { trailersOnly } from '../grpc/respond.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { statusFromHttp } from '../proxy/status-mapping.ts';
import { Base64Decoder, encodeBase64Chunk } from './base64-stream.ts';
import { FLAG_GRPC_WEB_TRAILERS, envelope } from './envelopes.ts';
import type { GrpcWebCall } from './web-call.ts';
import { WebStream } from './web-stream.ts';

export class GrpcWebStream extends WebStream {
  readonly protocol = 'grpc-web' as const;
  readonly #decoder: Base64Decoder | undefined;
  readonly #textResponse: boolean;
  readonly #contentType: string;

  constructor(inner: DownstreamStream, call: GrpcWebCall, extraHeaders: Readonly<Record<string, string>> | undefined) {
    super(inner, extraHeaders);
    this.#decoder = call.textRequest ? new Base64Decoder() : undefined;
    this.#textResponse = call.textResponse;
    this.#contentType = `application/grpc-web${call.textResponse ? '-text' : ''}${call.subtype}`;
  }

  protected requestData(chunk: Buffer): void {
    if (this.#decoder === undefined) return this.forwardData(chunk);
    const decoded = this.#decoder.decode(chunk);
    if (typeof decoded === 'string') return this.refuseBody(decoded);
    this.forwardData(decoded);
  }

  protected requestEnd(): void {
    const leftover = this.#decoder?.finish();
    if (leftover !== undefined) return this.refuseBody(leftover);
    this.forwardEnd();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.headersSent || this.inner.closed) return;
    this.headersSent = true;
    headers['content-type'] = this.#contentType;
    if (endStream) {
      // Trailers-only: the status is in these headers and the body is empty (HTTP/1.1 needs the length to end it).
      headers['content-length'] = '0';
      // A body the proxy could not read is the client's error at the HTTP level too: 400, with the status in the headers.
      if (this.malformed) headers[':status'] = 400;
    }
    this.inner.respond(this.withExtraHeaders(headers), endStream);
  }

  write(chunk: Buffer): boolean {
    return this.inner.write(this.#textResponse ? encodeBase64Chunk(chunk) : chunk);
  }

  end(trailers: HeaderMap): void {
    if (!this.headersSent) {
      this.respond({ ':status': 200, ...trailers }, true);
      return;
    }
    if (this.inner.closed) return;
    const frame = envelope(FLAG_GRPC_WEB_TRAILERS, trailerBlock(trailers));
    this.inner.write(this.#textResponse ? encodeBase64Chunk(frame) : frame);
    this.inner.end({});
  }

  /** A plain HTTP answer, in gRPC-Web's terms: the status grpc's HTTP→gRPC table gives, with the text as its message. */
  answerHttp(status: number, body: string): void {
    this.respond(trailersOnly(statusFromHttp(status), body.trim()), true);
  }
}

/** Trailers as an HTTP/1 header block without the final blank line: `name: value\r\n` each, names lower-case. */
export function trailerBlock(trailers: HeaderMap): Buffer {
  let text = '';
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */) continue;
    const key = name.toLowerCase();
    if (Array.isArray(value)) for (const item of value) text += `${key}: ${item}\r\n`;
    else text += `${key}: ${String(value)}\r\n`;
  }
  return Buffer.from(text, 'latin1');
}
