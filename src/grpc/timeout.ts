/** The `grpc-timeout` header: an ASCII integer of at most 8 digits and a unit (gRPC over HTTP/2 spec). */

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
const MAX_DIGITS = 99_999_999;

/** Milliseconds in a grpc-timeout value, or undefined when it is malformed. */
export function parseGrpcTimeout(value: string): number | undefined {
  const unit = UNIT_MS[value.charAt(value.length - 1)];
  const digits = value.slice(0, -1);
  if (unit === undefined || digits.length === 0 || digits.length > 8 || !/^\d+$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/** Formats milliseconds as a grpc-timeout value, in the finest unit that fits in 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const remaining = Math.max(0, ms);
  const micros = Math.ceil(remaining * 1_000);
  if (micros <= MAX_DIGITS) return `${micros}u`;
  const millis = Math.ceil(remaining);
  if (millis <= MAX_DIGITS) return `${millis}m`;
  const seconds = Math.ceil(remaining / 1_000);
  if (seconds <= MAX_DIGITS) return `${seconds}S`;
  return `${Math.min(MAX_DIGITS, Math.ceil(remaining / 3_600_000))}H`;
}
