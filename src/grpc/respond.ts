/** Answers the proxy gives itself, without a backend, in gRPC's terms. */
import type { ServerHttp2Stream } from 'node:http2';
import { encodeGrpcMessage } from './status.ts';
import { FAILURES, type FailureCode } from './failures.ts';
import type { RpcRecord } from './rpc-record.ts';
import type { DownstreamEvents, DownstreamStream, HeaderMap } from './streams.ts';

/**
 * Ends an RPC the proxy answers itself, before any backend: the catalogue's
 * status (or `status`) and `message`, which the client sees, so it must name
 * no internal address. The record is finished when the stream closes.
 */
export function refuseRpc(stream: DownstreamStream, record: RpcRecord, reason: FailureCode, message: string = FAILURES[reason].message, status: number = FAILURES[reason].status): void {
  record.status = status;
  record.reason = reason;
  if (reason !== 'direct_response') record.error = message || undefined;
  stream.attach(new AnsweredRpc(record));
  // The request body is not needed; reading it lets the stream close cleanly.
  stream.resume();
  stream.respond(trailersOnly(status, message), true);
}

/** A request that is not gRPC at all: HTTP 415, as the gRPC spec says, so browsers and curl see a plain error. */
export function refuseNonGrpc(stream: DownstreamStream, record: RpcRecord): void {
  record.status = FAILURES.not_grpc.status;
  record.reason = 'not_grpc';
  stream.attach(new AnsweredRpc(record));
  stream.resume();
  stream.answerHttp(415, `switchyard: ${FAILURES.not_grpc.message}\n`);
}

/** The events of an RPC answered before it was forwarded: only its end matters. */
class AnsweredRpc implements DownstreamEvents {
  readonly #record: RpcRecord;
  constructor(record: RpcRecord) {
    this.#record = record;
  }
  onRequestData(): void {}
  onRequestEnd(): void {}
  onResponseDrain(): void {}
  onCut(): void {}
  onMalformedRequest(): void {}
  onDownstreamClose(): void {
    this.#record.finish();
  }
}

/** A trailers-only response carrying a status: the one HEADERS frame of an RPC that fails at once. */
export function trailersOnly(code: number, message: string): HeaderMap {
  const headers: HeaderMap = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code) };
  if (message) headers['grpc-message'] = encodeGrpcMessage(message);
  return headers;
}

/** Trailers that carry a status. */
export function statusTrailers(code: number, message: string): HeaderMap {
  const trailers: HeaderMap = { 'grpc-status': String(code) };
  if (message) trailers['grpc-message'] = encodeGrpcMessage(message);
  return trailers;
}

/** Ends a node:http2 stream with a trailers-only response (for surfaces other than the RPC path: the health port). */
export function respondWithStatus(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(trailersOnly(code, message) as never, { endStream: true });
}
