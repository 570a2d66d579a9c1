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

export function describeReset(rstCode: number, error: Error | undefined): string {
  const cause = (error as { cause?: Error } | undefined)?.cause;
  const detail = cause?.message ?? error?.message;
  return detail ? `${detail} (RST_STREAM code ${rstCode})` : `stream reset with code ${rstCode}`;
}
