/** Answers that the proxy gives itself, without a backend. */
import type { ServerHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { encodeGrpcMessage } from './status.ts';
import { FAILURES, type FailureCode } from './failures.ts';
import type { RpcRecord } from './rpc-record.ts';

/**
 * Ends an RPC the proxy answers itself, before any backend: the catalogue's
 * status (or `status`) and `message`, which the client sees, so it must name
 * no internal address. The record is finished when the stream closes.
 */
export function refuseRpc(stream: ServerHttp2Stream, record: RpcRecord, reason: FailureCode, message: string = FAILURES[reason].message, status: number = FAILURES[reason].status): void {
  record.status = status;
  record.reason = reason;
  if (reason !== 'direct_response') record.error = message || undefined;
  stream.once('close', record.finish);
  // The request body is not needed; reading it lets the stream close cleanly.
  stream.resume();
  respondWithStatus(stream, status, message);
}

/** Ends a stream with a trailers-only gRPC response. Safe to call on a stream that is already gone. */
export function respondWithStatus(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  const headers: OutgoingHttpHeaders = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
  };
  if (message) headers['grpc-message'] = encodeGrpcMessage(message);
  stream.respond(headers, { endStream: true });
}

/** Trailers that carry a status. */
export function statusTrailers(code: number, message: string): OutgoingHttpHeaders {
  const trailers: OutgoingHttpHeaders = { 'grpc-status': String(code) };
  if (message) trailers['grpc-message'] = encodeGrpcMessage(message);
  return trailers;
}
