/**
 * The HPACK encoder of one HTTP/2 connection. A field is an exact static-table
 * match (one byte), an entry of its own dynamic table (one byte once it is
 * there), or a literal: with incremental indexing when the field is likely to
 * come again, without indexing when its value changes with every request
 * (deadlines, trace and request ids, lengths, error messages) or is long, and
 * never indexed for credentials (RFC 7541 §7.1.3). Strings go as they are (no
 * Huffman): what is saved in bytes is spent in CPU.
 *
 * Most of what a proxy forwards repeats on every RPC of a connection (the
 * method path, authority, content-type, te, user-agent, forwarded headers on
 * the way in; content-type, grpc-status on the way back): indexed, a request's
 * header block to a backend shrinks from some 130 bytes of literals to about a
 * dozen, and encoding it from copying strings to a lookup per field.
 *
 * The table's size is at most DEFAULT_TABLE_SIZE, and lower if the peer's
 * SETTINGS_HEADER_TABLE_SIZE is; a lower peer setting is applied at once and
 * signalled at the start of the next block (§4.2, §6.3).
 */
import { NEVER_INDEXED_FIELDS, type HeaderMap } from '../../grpc/streams.ts';
import { STATIC_NAMES, STATIC_PAIRS, STATIC_TABLE_LENGTH } from './static-table.ts';

/**
 * Fields that carry credentials: never indexed, here or by anyone downstream (RFC 7541 §7.1.3), so
 * that nobody who can add fields to a shared connection and watch its sizes can guess them (§7.1.1).
 * Fields the peer sent as never-indexed are forwarded so too, whatever their name.
 */
const NEVER_INDEXED = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key', 'x-auth-token', 'x-access-token',
  'x-csrf-token', 'x-xsrf-token', 'x-amz-security-token',
]);

/** Fields whose values differ from one request to the next: indexed, they would only push useful entries out. */
const VOLATILE = new Set([
  'grpc-timeout', 'grpc-message', 'grpc-status-details-bin', 'grpc-trace-bin', 'grpc-tags-bin', 'grpc-previous-rpc-attempts',
  'content-length', 'date', 'x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid',
  'x-b3-parentspanid', 'x-b3-sampled', 'x-cloud-trace-context', 'x-amzn-trace-id',
]);

/** The table size every HTTP/2 decoder starts with (RFC 9113 §6.5.2), and the most this encoder uses. */
const DEFAULT_TABLE_SIZE = 4096;
/** Per entry, on top of name and value (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;
/** A field longer than this goes as a literal: one such entry would take a good part of the table. */
const MAX_INDEXED_FIELD = 256;
/** Room for a dynamic table size update at the start of a block: a 5-bit prefixed integer. */
const SIZE_UPDATE_BOUND = 6;
/** A field at most: a flag byte, two prefixed integers of up to 5 bytes, then name and value (a byte a character). */
const FIELD_OVERHEAD_BOUND = 11;

/** What the static table and §7.1.3 say of a field name, found with one lookup per field. */
interface NameInfo {
  /** The static table's index of the name (its first entry). */
  readonly index: number;
  /** Static-table entries with this name, by value. */
  readonly pairs: ReadonlyMap<string, number> | undefined;
  /** A credential (NEVER_INDEXED): never indexed, here or downstream. */
  readonly neverIndexed: boolean;
}

const NAME_INFO = new Map<string, NameInfo>();
for (const [name, index] of STATIC_NAMES) NAME_INFO.set(name, { index, pairs: STATIC_PAIRS.get(name), neverIndexed: NEVER_INDEXED.has(name) });

export class HpackEncoder {
  #maxSize = DEFAULT_TABLE_SIZE;
  #size = 0;
  /** The peer lowered the table size: the next block starts with a size update. */
  #sizeChanged = false;
  /** Entries are numbered as inserted; #oldest is the number of the oldest still in the table. */
  #inserted = 0;
  #oldest = 0;
  /** The table's entries by number modulo the ring's length (an entry takes 32 bytes at least, so 128 fit). */
  readonly #names: string[] = new Array<string>(DEFAULT_TABLE_SIZE / ENTRY_OVERHEAD).fill('');
  readonly #values: string[] = new Array<string>(DEFAULT_TABLE_SIZE / ENTRY_OVERHEAD).fill('');
  /** Name, then value, to the entry's number. */
  readonly #entries = new Map<string, Map<string, number>>();

  /** The peer's SETTINGS_HEADER_TABLE_SIZE. */
  setPeerTableSize(size: number): void {
    if (size >= this.#maxSize) return;
    this.#maxSize = size;
    this.#evict(0);
    this.#sizeChanged = true;
  }

  /** At least the bytes `headers` take encoded, found without looking anything up. */
  bound(headers: HeaderMap): number {
    let bound = this.#sizeChanged ? SIZE_UPDATE_BOUND : 0;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      if (typeof value === 'string') bound += FIELD_OVERHEAD_BOUND + name.length + value.length;
      else if (Array.isArray(value)) for (const item of value) bound += FIELD_OVERHEAD_BOUND + name.length + item.length;
      // A number's string has at most 24 characters.
      else bound += FIELD_OVERHEAD_BOUND + name.length + 24;
    }
    return bound;
  }

  /**
   * Writes `headers` as one header block into `out` at `offset` (room for bound() bytes); returns the
   * offset after it. The block must go on the wire, in the order blocks are encoded: the peer's table
   * follows this one. Pseudo-header fields go first (RFC 9113 §8.3): the map is looked over first, since
   * a block half written cannot be started again once fields have entered the table; in one pass when
   * it has them first, as maps decoded from a peer do, in two when one was added after a regular field.
   */
  encode(headers: HeaderMap, out: Buffer, offset: number): number {
    if (this.#sizeChanged) {
      this.#sizeChanged = false;
      offset = writeInteger(this.#maxSize, 5, 0x20, out, offset);
    }
    const neverIndexed = headers[NEVER_INDEXED_FIELDS];
    let regularSeen = false;
    for (const name in headers) {
      if (headers[name] === undefined) continue;
      if (name.charCodeAt(0) === COLON) {
        if (regularSeen) return this.#encodeInOrder(headers, out, offset, neverIndexed);
      } else {
        regularSeen = true;
      }
    }
    for (const name in headers) {
      const value = headers[name];
      if (value !== undefined) offset = this.#encodeValue(name, value, out, offset, neverIndexed);
    }
    return offset;
  }

  #encodeInOrder(headers: HeaderMap, out: Buffer, offset: number, neverIndexed: readonly string[] | undefined): number {
    for (const name in headers) {
      const value = headers[name];
      if (value !== undefined && name.charCodeAt(0) === COLON) offset = this.#encodeValue(name, value, out, offset, neverIndexed);
    }
    for (const name in headers) {
      const value = headers[name];
      if (value !== undefined && name.charCodeAt(0) !== COLON) offset = this.#encodeValue(name, value, out, offset, neverIndexed);
    }
    return offset;
  }

  #encodeValue(name: string, value: string | string[] | number, out: Buffer, offset: number, neverIndexed: readonly string[] | undefined): number {
    if (typeof value === 'string') return this.#encodeField(name, value, out, offset, neverIndexed);
    if (Array.isArray(value)) {
      for (const item of value) offset = this.#encodeField(name, item, out, offset, neverIndexed);
      return offset;
    }
    return this.#encodeField(name, String(value), out, offset, neverIndexed);
  }

  #encodeField(name: string, value: string, out: Buffer, offset: number, peerNeverIndexed: readonly string[] | undefined): number {
    const info = NAME_INFO.get(name);
    const exact = info?.pairs?.get(value);
    if (exact !== undefined) return writeInteger(exact, 7, 0x80, out, offset);
    const neverIndexed = (info === undefined ? NEVER_INDEXED.has(name) : info.neverIndexed) || peerNeverIndexed?.includes(name) === true;
    if (!neverIndexed) {
      const entry = this.#entries.get(name)?.get(value);
      if (entry !== undefined && entry >= this.#oldest) return writeInteger(STATIC_TABLE_LENGTH + this.#inserted - entry, 7, 0x80, out, offset);
      if (!VOLATILE.has(name) && name.length + value.length <= MAX_INDEXED_FIELD && this.#maxSize > 0) {
        // A literal with incremental indexing (§6.2.1): the peer's decoder adds it to its table as this one does.
        offset = writeInteger(info?.index ?? 0, 6, 0x40, out, offset);
        if (info === undefined) offset = writeString(name, out, offset);
        offset = writeString(value, out, offset);
        this.#insert(name, value);
        return offset;
      }
    }
    // A literal without indexing (0000) or never indexed (0001, §6.2.3), its name indexed when the static table has it.
    offset = writeInteger(info?.index ?? 0, 4, neverIndexed ? 0x10 : 0x00, out, offset);
    if (info === undefined) offset = writeString(name, out, offset);
    return writeString(value, out, offset);
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4), in the peer's decoder as here.
    this.#evict(size);
    if (size > this.#maxSize) return;
    const slot = this.#inserted % this.#names.length;
    this.#names[slot] = name;
    this.#values[slot] = value;
    let byValue = this.#entries.get(name);
    if (byValue === undefined) this.#entries.set(name, (byValue = new Map()));
    byValue.set(value, this.#inserted);
    this.#inserted++;
    this.#size += size;
  }

  /** Evicts the oldest entries until `room` more bytes fit (or the table is empty), as §4.4 has the decoder do. */
  #evict(room: number): void {
    while (this.#oldest < this.#inserted && this.#size + room > this.#maxSize) {
      const slot = this.#oldest % this.#names.length;
      const name = this.#names[slot]!;
      const value = this.#values[slot]!;
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
      const byValue = this.#entries.get(name)!;
      // A later insertion of the same field is a newer entry: only this one's number goes.
      if (byValue.get(value) === this.#oldest) {
        byValue.delete(value);
        if (byValue.size === 0) this.#entries.delete(name);
      }
      this.#names[slot] = '';
      this.#values[slot] = '';
      this.#oldest++;
    }
  }
}

const COLON = 0x3a;

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
