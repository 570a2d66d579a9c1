/** Maps transport-level outcomes to gRPC statuses, in one place (gRPC's http-grpc-status-mapping.md). */
import { Status } from '../grpc/status.ts';

/** RST_STREAM and GOAWAY error codes (RFC 9113 §7) that the mapping below reads. */
const NO_ERROR = 0x0;
const REFUSED_STREAM = 0x7;
const CANCEL = 0x8;
const ENHANCE_YOUR_CALM = 0xb;
const INADEQUATE_SECURITY = 0xc;

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
 * A backend stream that closed without a status. A stream-level reset keeps its meaning, as gRPC
 * clients read RST_STREAM codes; a broken connection is UNAVAILABLE, the status clients retry.
 */
export function statusFromReset(rstCode: number, connectionLost: boolean): number {
  if (connectionLost) return Status.UNAVAILABLE;
  switch (rstCode) {
    case NO_ERROR:
    case REFUSED_STREAM: return Status.UNAVAILABLE;
    case CANCEL: return Status.CANCELLED;
    case ENHANCE_YOUR_CALM: return Status.RESOURCE_EXHAUSTED;
    case INADEQUATE_SECURITY: return Status.PERMISSION_DENIED;
    default: return Status.INTERNAL;
  }
}

/** The name of an HTTP/2 error code, for messages and logs. */
export function rstName(code: number): string {
  return RST_NAMES[code] ?? `code ${code}`;
}

const RST_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];
