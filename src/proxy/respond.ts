/** Answers that the proxy gives itself, without a backend. */
import type { ServerHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { encodeGrpcMessage } from '../grpc/status.ts';

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
