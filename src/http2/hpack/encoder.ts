/**
 * The HPACK encoder of one HTTP/2 connection. It never uses the dynamic table,
 * as HAProxy's does not: a field is an exact static-table match (one byte), or
 * a literal without indexing, its name indexed when the static table has it.
 * Nothing an encoder sends can then depend on what came before, so the cost of
 * a header block is its length, and a proxy forwarding many clients' headers
 * never evicts one client's entries with another's. Strings go as they are
 * (no Huffman): what is saved in bytes is spent in CPU, and headers are a small
 * part of a forwarded RPC.
 */
import type { HeaderMap } from '../../grpc/streams.ts';
import { STATIC_NAMES, STATIC_PAIRS } from './static-table.ts';

/** Fields whose values must never be indexed by anyone downstream either (RFC 7541 §7.1.3). */
const NEVER_INDEXED = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** What the static table and §7.1.3 say of a field name, found with one lookup per field. */
interface NameInfo {
  /** The static table's index of the name (its first entry). */
  readonly index: number;
  /** Static-table entries with this name, by value. */
  readonly pairs: ReadonlyMap<string, number> | undefined;
  /** The literal's first byte: without indexing (0000) or never indexed (0001). */
  readonly flags: number;
}

const NAME_INFO = new Map<string, NameInfo>();
for (const [name, index] of STATIC_NAMES) NAME_INFO.set(name, { index, pairs: STATIC_PAIRS.get(name), flags: NEVER_INDEXED.has(name) ? 0x10 : 0x00 });

/** Bytes `headers` take encoded. */
export function encodedLength(headers: HeaderMap): number {
  let length = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value) length += fieldLength(name, item);
    } else {
      length += fieldLength(name, typeof value === 'string' ? value : String(value));
    }
  }
  return length;
}

/**
 * At least the bytes `headers` take encoded, found without looking anything up: a field is at most
 * two prefixed integers of up to 5 bytes, a flag byte, and its name and value (latin1, a byte a
 * character). Numbers are written as strings of at most 24 characters.
 */
export function encodedBound(headers: HeaderMap): number {
  let bound = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') bound += FIELD_OVERHEAD_BOUND + name.length + value.length;
    else if (Array.isArray(value)) for (const item of value) bound += FIELD_OVERHEAD_BOUND + name.length + item.length;
    else bound += FIELD_OVERHEAD_BOUND + name.length + 24;
  }
  return bound;
}

const FIELD_OVERHEAD_BOUND = 11;

/**
 * Writes `headers` into `out` at `offset` (room for encodedLength() bytes); returns the offset after them.
 * Pseudo-header fields go first (RFC 9113 §8.3): in one pass when the map has them first, as maps
 * decoded from a peer do; in two when one was added after a regular field.
 */
export function encodeHeaders(headers: HeaderMap, out: Buffer, offset: number): number {
  const start = offset;
  let regularSeen = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name.charCodeAt(0) === COLON) {
      if (regularSeen) return encodeInOrder(headers, out, start);
    } else {
      regularSeen = true;
    }
    offset = encodeValue(name, value, out, offset);
  }
  return offset;
}

function encodeInOrder(headers: HeaderMap, out: Buffer, offset: number): number {
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && name.charCodeAt(0) === COLON) offset = encodeValue(name, value, out, offset);
  }
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && name.charCodeAt(0) !== COLON) offset = encodeValue(name, value, out, offset);
  }
  return offset;
}

function encodeValue(name: string, value: string | string[] | number, out: Buffer, offset: number): number {
  if (typeof value === 'string') return encodeField(name, value, out, offset);
  if (Array.isArray(value)) {
    for (const item of value) offset = encodeField(name, item, out, offset);
    return offset;
  }
  return encodeField(name, String(value), out, offset);
}

const COLON = 0x3a;

function fieldLength(name: string, value: string): number {
  const info = NAME_INFO.get(name);
  if (info === undefined) return 1 + stringLength(name) + stringLength(value);
  const exact = info.pairs?.get(value);
  if (exact !== undefined) return integerLength(exact, 7);
  return integerLength(info.index, 4) + stringLength(value);
}

function encodeField(name: string, value: string, out: Buffer, offset: number): number {
  const info = NAME_INFO.get(name);
  if (info === undefined) {
    // A literal without indexing, with a new name (names the static table lacks are never in §7.1.3's list).
    out[offset++] = 0x00;
    offset = writeString(name, out, offset);
    return writeString(value, out, offset);
  }
  const exact = info.pairs?.get(value);
  if (exact !== undefined) return writeInteger(exact, 7, 0x80, out, offset);
  offset = writeInteger(info.index, 4, info.flags, out, offset);
  return writeString(value, out, offset);
}

function stringLength(value: string): number {
  return integerLength(value.length, 7) + value.length;
}

/** Below this length a loop writes a string faster than Buffer#write's call into C++. */
const LOOP_BELOW = 64;

function writeString(value: string, out: Buffer, offset: number): number {
  const length = value.length;
  offset = writeInteger(length, 7, 0x00, out, offset);
  if (length >= LOOP_BELOW) return offset + out.write(value, offset, 'latin1');
  // latin1, as Buffer#write would: the low byte of each code unit.
  for (let i = 0; i < length; i++) out[offset + i] = value.charCodeAt(i);
  return offset + length;
}

/** Bytes of an HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
export function integerLength(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let length = 2;
  for (value -= max; value >= 128; value = Math.floor(value / 128)) length++;
  return length;
}

export function writeInteger(value: number, prefixBits: number, flags: number, out: Buffer, offset: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[offset++] = flags | value;
    return offset;
  }
  out[offset++] = flags | max;
  value -= max;
  while (value >= 128) {
    out[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}
