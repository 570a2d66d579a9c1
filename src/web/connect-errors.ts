/**
 * gRPC statuses in the Connect protocol's terms (connectrpc.com/docs/protocol):
 * code names, the HTTP status of a unary error, the JSON `Error` and
 * `EndStreamResponse`, and trailing metadata as JSON. Pure.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import { Status } from '../grpc/status.ts';
import { decodeStatusDetails } from './status-details.ts';

/** Connect's name of each gRPC code, by code. */
const CODE_NAMES = [
  'ok', 'canceled', 'unknown', 'invalid_argument', 'deadline_exceeded', 'not_found', 'already_exists', 'permission_denied',
  'resource_exhausted', 'failed_precondition', 'aborted', 'out_of_range', 'unimplemented', 'internal', 'unavailable', 'data_loss', 'unauthenticated',
] as const;

/** The HTTP status of a unary Connect error, by gRPC code (the protocol's table). */
const HTTP_STATUS = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401] as const;

export function connectCodeName(code: number): string {
  return CODE_NAMES[code] ?? 'unknown';
}

export function connectHttpStatus(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** Headers that carry the gRPC status or frame the body: never metadata. */
const NOT_METADATA = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin', 'content-type', 'content-length', 'grpc-encoding', 'grpc-accept-encoding', 'trailer']);

/** What a gRPC response's trailers (or trailers-only headers) say about how it ended. */
export interface GrpcEnd {
  readonly code: number;
  readonly message: string;
  readonly details: string | undefined;
}

export function grpcEnd(trailers: HeaderMap): GrpcEnd {
  const status = trailers['grpc-status'];
  const code = status === undefined ? Status.UNKNOWN : Number(status);
  const message = trailers['grpc-message'];
  const details = trailers['grpc-status-details-bin'];
  return {
    code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : Status.UNKNOWN,
    message: typeof message === 'string' ? decodeGrpcMessage(message) : status === undefined ? 'the backend sent no grpc-status' : '',
    details: typeof details === 'string' ? details : undefined,
  };
}

/** The JSON `Error` object of a failed call. */
export function connectError(end: GrpcEnd): Record<string, unknown> {
  const error: Record<string, unknown> = { code: connectCodeName(end.code) };
  if (end.message) error.message = end.message;
  const details = end.details === undefined ? [] : decodeStatusDetails(end.details);
  if (details.length > 0) error.details = details.map((detail) => ({ type: detail.type, value: detail.value.toString('base64').replace(/=+$/, '') }));
  return error;
}

/** The JSON EndStreamResponse that ends a Connect stream. */
export function endStreamMessage(trailers: HeaderMap): Buffer {
  const end = grpcEnd(trailers);
  const body: Record<string, unknown> = {};
  if (end.code !== Status.OK) body.error = connectError(end);
  const metadata = metadataObject(trailers);
  if (metadata !== undefined) body.metadata = metadata;
  return Buffer.from(JSON.stringify(body));
}

/** Trailing metadata as Connect's JSON object (every value an array), or undefined when there is none. */
function metadataObject(trailers: HeaderMap): Record<string, string[]> | undefined {
  let out: Record<string, string[]> | undefined;
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || NOT_METADATA.has(name)) continue;
    (out ??= {})[name] = Array.isArray(value) ? value : [String(value)];
  }
  return out;
}

/** Sets trailing metadata as `trailer-` headers on a unary response's `headers`. */
export function addPrefixedTrailers(headers: HeaderMap, trailers: HeaderMap): void {
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || name.charCodeAt(0) === 0x3a || NOT_METADATA.has(name)) continue;
    headers[`trailer-${name}`] = value;
  }
}

/** grpc-message is percent-encoded on the wire (gRPC over HTTP/2); Connect's message is plain UTF-8. */
function decodeGrpcMessage(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
