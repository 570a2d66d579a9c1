/**
 * A unary Connect call (POST `application/proto|json`, or GET with the message
 * in the query) as the RPC path's DownstreamStream. The request's bare message
 * is read whole (within max_request_message_bytes) and sent as one gRPC
 * message. The response is held until the backend's trailers, since Connect
 * puts the outcome in the status line: 200 with the bare message and the
 * trailers as `trailer-` headers, or the HTTP status of the error with a JSON
 * `Error` body. JSON is transcoded both ways when a descriptor set describes
 * the method; otherwise it travels as gRPC's JSON codec.
 */
import { TranscodeError, type MethodCodec } from '../config/descriptor-types.ts';
import { Status } from '../grpc/status.ts';
import { trailersOnly } from '../grpc/respond.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { statusFromHttp } from '../proxy/status-mapping.ts';
import { addPrefixedTrailers, connectError, connectHttpStatus, grpcEnd } from './connect-errors.ts';
import { EnvelopeReader, FLAG_COMPRESSED, envelope, type Envelope } from './envelopes.ts';
import type { ConnectUnaryCall } from './web-call.ts';
import { WebStream } from './web-stream.ts';
import { gunzip } from './gunzip.ts';

/** Response headers that describe gRPC's framing, not the call: not passed to a Connect client. */
const GRPC_FRAMING_HEADERS = ['content-type', 'grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message', 'grpc-status-details-bin', 'content-length', 'trailer'];

export class ConnectUnaryStream extends WebStream {
  readonly protocol = 'connect' as const;
  readonly #call: ConnectUnaryCall;
  readonly #codec: MethodCodec | undefined;
  #body: Buffer[] = [];
  #bodyBytes = 0;
  /** Response headers, held until the trailers say how the call ended. */
  #leading: HeaderMap | undefined;
  readonly #reader: EnvelopeReader;
  #message: Envelope | undefined;
  #extraMessages = 0;

  /** `codec` transcodes JSON; undefined for proto, or JSON without a descriptor of the method. */
  constructor(inner: DownstreamStream, call: ConnectUnaryCall, codec: MethodCodec | undefined, extraHeaders: Readonly<Record<string, string>> | undefined) {
    super(inner, extraHeaders);
    this.#call = call;
    this.#codec = codec;
    this.#reader = new EnvelopeReader(this.maxResponseMessageBytes);
  }

  protected requestData(chunk: Buffer): void {
    // A GET's message is in the query; a body would be out of place, and is ignored.
    if (this.#call.get !== undefined) return;
    this.#bodyBytes += chunk.length;
    if (this.#bodyBytes > this.maxRequestMessageBytes) {
      this.#body = [];
      return this.refuseOversized(this.#bodyBytes);
    }
    this.#body.push(chunk);
  }

  protected requestEnd(): void {
    const get = this.#call.get;
    if (get !== undefined && typeof get.message === 'string') return this.refuseBody(get.message);
    let message: Buffer = get !== undefined ? (get.message as Buffer) : this.#body.length === 1 ? this.#body[0]! : Buffer.concat(this.#body);
    this.#body = [];
    let flags = 0;
    if (this.#call.compression !== 'identity' && message.length > 0) {
      if (this.#codec === undefined) flags = FLAG_COMPRESSED;
      else {
        try {
          message = gunzip(message, this.maxRequestMessageBytes);
        } catch (error) {
          return this.refuseBody(`the ${this.#call.compression} request body does not decompress: ${(error as Error).message}`);
        }
      }
    }
    if (this.#codec !== undefined) {
      try {
        message = Buffer.from(this.#codec.requestToBinary(message));
      } catch (error) {
        if (!(error instanceof TranscodeError)) throw error;
        return this.refuseBody(error.message);
      }
    }
    this.forwardData(envelope(flags, message));
    this.forwardEnd();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.headersSent || this.inner.closed) return;
    this.headersSent = true;
    if (endStream) return this.#finish(headers, headers);
    this.#leading = headers;
  }

  write(chunk: Buffer): boolean {
    const messages = this.#reader.push(chunk);
    // The RPC path checks response sizes before they get here; a message over the limit can only be counted as extra.
    if (typeof messages === 'number') {
      this.#extraMessages++;
      return true;
    }
    for (const message of messages) {
      // A unary response is one message; more is the backend's error, reported at the end, and not kept.
      if (this.#message === undefined) this.#message = message;
      else this.#extraMessages++;
    }
    return true;
  }

  end(trailers: HeaderMap): void {
    if (!this.headersSent) return this.respond({ ':status': 200, ...trailers }, true);
    this.#finish(this.#leading ?? {}, trailers);
  }

  answerHttp(status: number, body: string): void {
    this.respond(trailersOnly(statusFromHttp(status), body.trim()), true);
  }

  #finish(leading: HeaderMap, trailers: HeaderMap): void {
    if (this.inner.closed) return;
    let end = grpcEnd(trailers);
    let body: Buffer | undefined;
    if (end.code === Status.OK) {
      const outcome = this.#responseBody();
      if (typeof outcome === 'string') end = { code: Status.INTERNAL, message: outcome, details: undefined };
      else body = outcome;
    }
    const headers: HeaderMap = {};
    // A trailers-only answer has no leading metadata: all of it is trailing.
    if (trailers !== leading) {
      for (const [name, value] of Object.entries(leading)) {
        if (value !== undefined && name.charCodeAt(0) !== 0x3a && !GRPC_FRAMING_HEADERS.includes(name)) headers[name] = value;
      }
    }
    addPrefixedTrailers(headers, trailers);
    if (body === undefined) {
      body = Buffer.from(JSON.stringify(connectError(end)));
      headers[':status'] = connectHttpStatus(end.code);
      headers['content-type'] = 'application/json';
    } else {
      headers[':status'] = 200;
      headers['content-type'] = `application/${this.#call.codec}`;
    }
    headers['content-length'] = String(body.length);
    this.inner.respond(this.withExtraHeaders(headers), body.length === 0);
    if (body.length === 0) return;
    this.inner.write(body);
    this.inner.end({});
  }

  /** The response's bare message (transcoded when JSON), or why there is none to give. */
  #responseBody(): Buffer | string {
    const message = this.#message;
    if (message === undefined || this.#extraMessages > 0 || this.#reader.partial) {
      return message === undefined ? 'the backend answered a unary call without a message' : 'the backend answered a unary call with more than one message';
    }
    let bytes = message.message;
    if ((message.flags & FLAG_COMPRESSED) !== 0) {
      const encoding = this.#leading?.['grpc-encoding'];
      if (encoding !== 'gzip') return `the backend compressed its response with ${String(encoding)}, which the proxy cannot read`;
      try {
        bytes = gunzip(bytes, this.maxResponseMessageBytes);
      } catch (error) {
        return `the backend's compressed response does not decompress: ${(error as Error).message}`;
      }
    }
    if (this.#codec === undefined) return bytes;
    try {
      return Buffer.from(this.#codec.responseToJson(bytes));
    } catch (error) {
      if (!(error instanceof TranscodeError)) throw error;
      return error.message;
    }
  }
}
