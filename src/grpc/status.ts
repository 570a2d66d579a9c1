/** gRPC status codes (grpc/doc/statuscodes.md). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof Status)[keyof typeof Status];

export const GRPC_STATUS_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(Status));

/** Percent-encodes a grpc-message as the gRPC HTTP/2 spec asks (non-printable ASCII and '%'). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const NAME_BY_CODE: readonly string[] = Object.keys(Status);

/** `OK`, `UNAVAILABLE`, …: the names metrics and logs use. An RPC that ended without a status is counted as UNKNOWN, as gRPC clients see it. */
export function statusName(code: number | undefined): string {
  return (code === undefined ? undefined : NAME_BY_CODE[code]) ?? 'UNKNOWN';
}
