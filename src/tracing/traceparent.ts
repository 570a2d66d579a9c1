/**
 * The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/):
 * `version-traceid-parentid-flags`, lowercase hex, 55 characters for version 00.
 * Pure functions: parsing, formatting, and fresh random ids.
 */
import { cryptoModule } from '../builtins.ts';

export interface TraceParent {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero: the caller's span. */
  readonly parentId: string;
  /** The trace-flags byte, 0–255; bit 0 is "sampled". */
  readonly flags: number;
}

/** trace-flags bit 0: the caller may have recorded its span. */
export const SAMPLED = 0x01;

/** Length of a version-00 value; later versions are at least this long. */
const LENGTH = 55;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/**
 * The traceparent in a header value, or undefined if it is missing or invalid
 * (the caller then starts a new trace). Version ff and anything not lowercase
 * hex are invalid; version 00 must be exactly 55 characters. A later version
 * is read by its first four fields, which must be followed by the end of the
 * value or a dash, as the spec asks of a parser that predates that version.
 * Repeated headers arrive joined with ", " and so are rejected too.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== 'string' || value.length < LENGTH) return undefined;
  if (!isLowerHex(value, 0, 2) || (value[0] === 'f' && value[1] === 'f')) return undefined;
  const isVersion00 = value[0] === '0' && value[1] === '0';
  // Version 00 has exactly four fields; a later version may add more, each after a dash.
  if (isVersion00 ? value.length !== LENGTH : value.length > LENGTH && value[LENGTH] !== '-') return undefined;
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  if (!isLowerHex(value, 3, 35) || !isLowerHex(value, 36, 52) || !isLowerHex(value, 53, 55)) return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return undefined;
  return { traceId, parentId, flags: Number.parseInt(value.slice(53, 55), 16) };
}

/** A version-00 traceparent: the version this proxy knows, whatever version came in. */
export function formatTraceparent(traceId: string, parentId: string, flags: number): string {
  return `00-${traceId}-${parentId}-${flags < 16 ? '0' : ''}${flags.toString(16)}`;
}

/** A random 16-byte trace id, never the invalid all-zero one. */
export function newTraceId(): string {
  let id: string;
  do id = cryptoModule().randomBytes(16).toString('hex');
  while (id === ZERO_TRACE_ID);
  return id;
}

/** A random 8-byte span id, never the invalid all-zero one. */
export function newSpanId(): string {
  let id: string;
  do id = cryptoModule().randomBytes(8).toString('hex');
  while (id === ZERO_SPAN_ID);
  return id;
}

function isLowerHex(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    // 0-9 or a-f
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
