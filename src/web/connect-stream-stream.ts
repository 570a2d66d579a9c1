/**
 * A streaming Connect call (POST `application/connect+proto|json`) as the RPC
 * path's DownstreamStream. Connect's envelopes are gRPC's frames (bit 0 of
 * the flags is "compressed" in both), so protobuf messages pass as they are,
 * each flushed as it arrives; JSON messages are transcoded one by one when a
 * descriptor set describes the method. The response always has HTTP status
 * 200 and ends with an end-of-stream envelope (flag 0x02) whose JSON holds
 * the error, if any, and the trailing metadata.
 */
import { TranscodeError, type MethodCodec } from '../config/descriptor-types.ts';
import { trailersOnly } from '../grpc/respond.ts';
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { statusFromHttp } from '../proxy/status-mapping.ts';
import { endStreamMessage } from './connect-errors.ts';
import { EnvelopeReader, FLAG_COMPRESSED, FLAG_CONNECT_END_STREAM, envelope } from './envelopes.ts';
import type { ConnectStreamCall } from './web-call.ts';
import { WebStream } from './web-stream.ts';
import { gunzip } from './gunzip.ts';

/** Response headers that describe gRPC's framing or status, not the call's metadata. */
const GRPC_FRAMING_HEADERS = new Set(['content-type', 'grpc-encoding', 'grpc-accept-encoding', 'grpc-status', 'grpc-message', 'grpc-status-details-bin', 'content-length', 'trailer']);

export class ConnectStreamStream extends WebStream {
  readonly protocol = 'connect' as const;
  readonly #call: ConnectStreamCall;
  readonly #codec: MethodCodec | undefined;
  readonly #requests: EnvelopeReader | undefined;
  readonly #responses: EnvelopeReader | undefined;
  #responseEncoding: string | undefined;
  /** Why a response message could not be transcoded; the stream then ends with INTERNAL saying so. */
  #undecodable: string | undefined;

  /** `codec` transcodes JSON; undefined for proto, or JSON without a descriptor of the method (passed as it is). */
  constructor(inner: DownstreamStream, call: ConnectStreamCall, codec: MethodCodec | undefined, extraHeaders: Readonly<Record<string, string>> | undefined) {
    super(inner, extraHeaders);
    this.#call = call;
    this.#codec = codec;
    if (codec !== undefined) {
      this.#requests = new EnvelopeReader(this.maxRequestMessageBytes);
      this.#responses = new EnvelopeReader(this.maxResponseMessageBytes);
    }
  }

  protected requestData(chunk: Buffer): void {
    const codec = this.#codec;
    if (codec === undefined) return this.forwardData(chunk);
    const messages = this.#requests!.push(chunk);
    if (typeof messages === 'number') return this.refuseOversized(messages);
    for (const { flags, message } of messages) {
      let json = message;
      if ((flags & FLAG_COMPRESSED) !== 0) {
        if (this.#call.compression !== 'gzip') return this.refuseBody(`a message is compressed with ${this.#call.compression}, which the proxy cannot read (gzip)`);
        try {
          json = gunzip(message, this.maxRequestMessageBytes);
        } catch (error) {
          return this.refuseBody(`a compressed message does not decompress: ${(error as Error).message}`);
        }
      }
      try {
        this.forwardData(envelope(0, codec.requestToBinary(json)));
      } catch (error) {
        if (!(error instanceof TranscodeError)) throw error;
        return this.refuseBody(error.message);
      }
    }
  }

  protected requestEnd(): void {
    if (this.#requests?.partial) return this.refuseBody('the request body ends inside a message');
    this.forwardEnd();
  }

  respond(headers: HeaderMap, endStream: boolean): void {
    if (this.headersSent || this.inner.closed) return;
    this.headersSent = true;
    const out: HeaderMap = { ':status': 200, 'content-type': `application/connect+${this.#call.codec}` };
    if (!endStream) {
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined && name.charCodeAt(0) !== 0x3a && !GRPC_FRAMING_HEADERS.has(name)) out[name] = value;
      }
      const encoding = headers['grpc-encoding'];
      this.#responseEncoding = typeof encoding === 'string' ? encoding : undefined;
      // Compressed messages pass as they are when not transcoded: the client decompresses them.
      if (this.#codec === undefined && this.#responseEncoding !== undefined && this.#responseEncoding !== 'identity') out['connect-content-encoding'] = this.#responseEncoding;
      this.inner.respond(this.withExtraHeaders(out), false);
      return;
    }
    // Trailers-only: all of it goes in the end-of-stream message, the only one.
    this.inner.respond(this.withExtraHeaders(out), false);
    this.inner.write(envelope(FLAG_CONNECT_END_STREAM, endStreamMessage(headers)));
    this.inner.end({});
  }

  write(chunk: Buffer): boolean {
    const codec = this.#codec;
    if (codec === undefined) return this.inner.write(chunk);
    const messages = this.#responses!.push(chunk);
    // The RPC path checks response sizes before they get here.
    if (typeof messages === 'number') return true;
    let room = true;
    for (const { flags, message } of messages) {
      try {
        const bytes = (flags & FLAG_COMPRESSED) === 0 ? message : this.#decompressResponse(message);
        room = this.inner.write(envelope(0, codec.responseToJson(bytes)));
      } catch (error) {
        // The stream goes on; a message that cannot be read is dropped, and the end says so.
        this.#undecodable ??= (error as Error).message;
      }
    }
    return room;
  }

  #decompressResponse(message: Buffer): Buffer {
    if (this.#responseEncoding !== 'gzip') throw new TranscodeError(`the backend compressed a message with ${String(this.#responseEncoding)}, which the proxy cannot read`);
    return gunzip(message, this.maxResponseMessageBytes);
  }

  end(trailers: HeaderMap): void {
    if (!this.headersSent) return this.respond({ ':status': 200, ...trailers }, true);
    if (this.inner.closed) return;
    const final = this.#undecodable !== undefined && (trailers['grpc-status'] === '0' || trailers['grpc-status'] === 0)
      ? { ...trailers, 'grpc-status': '13', 'grpc-message': this.#undecodable }
      : trailers;
    this.inner.write(envelope(FLAG_CONNECT_END_STREAM, endStreamMessage(final)));
    this.inner.end({});
  }

  answerHttp(status: number, body: string): void {
    this.respond(trailersOnly(statusFromHttp(status), body.trim()), true);
  }
}
