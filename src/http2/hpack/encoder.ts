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
  const exact = STATIC_PAIRS.get(name)?.get(value);
  if (exact !== undefined) return integerLength(exact, 7);
  const nameIndex = STATIC_NAMES.get(name);
  const head = nameIndex === undefined ? 1 + stringLength(name) : integerLength(nameIndex, 4);
  return head + stringLength(value);
}

function encodeField(name: string, value: string, out: Buffer, offset: number): number {
  const exact = STATIC_PAIRS.get(name)?.get(value);
  if (exact !== undefined) return writeInteger(exact, 7, 0x80, out, offset);
  const neverIndexed = NEVER_INDEXED.has(name);
  // Literal without indexing (0000) or never indexed (0001), with an indexed or a new name.
  const flags = neverIndexed ? 0x10 : 0x00;
  const nameIndex = STATIC_NAMES.get(name);
  if (nameIndex !== undefined) {
    offset = writeInteger(nameIndex, 4, flags, out, offset);
  } else {
    out[offset++] = flags;
    offset = writeString(name, out, offset);
  }
  return writeString(value, out, offset);
}

function stringLength(value: string): number {
  return integerLength(value.length, 7) + value.length;
}

function writeString(value: string, out: Buffer, offset: number): number {
  offset = writeInteger(value.length, 7, 0x00, out, offset);
  return offset + out.write(value, offset, 'latin1');
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
