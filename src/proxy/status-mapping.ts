/** Maps transport-level outcomes to gRPC statuses, in one place (gRPC's http-grpc-status-mapping.md). */
import { constants } from 'node:http2';
import { Status } from '../grpc/status.ts';

/** A non-200 HTTP status from a backend, as gRPC clients map it. */
export function statusFromHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400: return Status.INTERNAL;
    case 401: return Status.UNAUTHENTICATED;
    case 403: return Status.PERMISSION_DENIED;
    case 404: return Status.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return Status.UNAVAILABLE;
    default: return Status.UNKNOWN;
  }
}

/**
 * A backend stream that closed without trailers. A stream-level reset keeps
 * its meaning; a broken connection is UNAVAILABLE, the status clients retry.
 */
export function statusFromReset(rstCode: number, error: (Error & { code?: string }) | undefined): number {
  switch (rstCode) {
    case constants.NGHTTP2_REFUSED_STREAM: return Status.UNAVAILABLE;
    case constants.NGHTTP2_CANCEL: return error && error.code !== 'ERR_HTTP2_STREAM_ERROR' ? Status.UNAVAILABLE : Status.CANCELLED;
    case constants.NGHTTP2_ENHANCE_YOUR_CALM: return Status.RESOURCE_EXHAUSTED;
    case constants.NGHTTP2_INADEQUATE_SECURITY: return Status.PERMISSION_DENIED;
    default: return error?.code === 'ERR_HTTP2_STREAM_ERROR' ? Status.INTERNAL : Status.UNAVAILABLE;
  }
}

/** The backend reset this one stream (RST_STREAM), rather than the connection failing under it. */
export function isStreamReset(error: (Error & { code?: string }) | undefined): boolean {
  return error === undefined || error.code === 'ERR_HTTP2_STREAM_ERROR';
}

/** For the access log: what broke the stream, without claiming an RST_STREAM when the connection went. */
export function describeReset(rstCode: number, error: (Error & { code?: string }) | undefined): string {
  if (error === undefined || isStreamReset(error)) return `stream reset with code ${rstCode} (${rstName(rstCode)})`;
  const cause = (error as { cause?: Error }).cause;
  return `connection failed: ${cause?.message ?? error.message}`;
}

/** Node refused to open the stream on a connection the backend had sent GOAWAY on: the backend never saw it. */
export function isLocalGoAwayRefusal(error: (Error & { code?: string }) | undefined): boolean {
  return error?.code === 'ERR_HTTP2_GOAWAY_SESSION';
}

export function rstName(code: number): string {
  return RST_NAMES[code] ?? `code ${code}`;
}

const RST_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];
