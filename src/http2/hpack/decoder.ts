/**
 * The HPACK decoder of one HTTP/2 connection (RFC 7541 §2–6): indexed fields,
 * literals with or without indexing, dynamic table size updates, integers and
 * Huffman strings, with the dynamic table kept as the peer's encoder keeps it.
 *
 * A header list over the caller's limit is not a decoding error: the rest of
 * the block is still read (literals with indexing must reach the table, or
 * every later block would decode wrongly) but no field is kept, and the
 * result says `too_large`, which the connection answers on that stream only.
 * Anything malformed is `error`: a COMPRESSION_ERROR for the connection.
 */
import { checkField, FieldChecked } from '../field-syntax.ts';
import { huffmanDecode } from './huffman.ts';
import { STATIC_TABLE, STATIC_TABLE_LENGTH } from './static-table.ts';

/** Per entry, on top of name and value (RFC 7541 §4.1). */
export const ENTRY_OVERHEAD = 32;

/** The fields of one decoded block, reused from block to block. */
export class HeaderList {
  names: string[] = [];
  values: string[] = [];
  /** What is known valid of each field (FieldChecked bits): what came from a table was checked there. */
  checked: number[] = [];
  count = 0;
  /** Names of the fields sent as never-indexed literals (RFC 7541 §6.2.3), if any. */
  neverIndexed: string[] | undefined;
  /** Name + value + 32 per field (RFC 9113 §6.5.2), of the fields kept. */
  size = 0;

  clear(): void {
    this.count = 0;
    this.size = 0;
    this.neverIndexed = undefined;
  }

  push(name: string, value: string, checked: number): void {
    this.names[this.count] = name;
    this.values[this.count] = value;
    this.checked[this.count] = checked;
    this.count++;
  }
}

export type DecodeResult = 'ok' | 'too_large' | 'error';

/** Integers past this are nonsense for any HTTP/2 field (lengths, indexes, table sizes). */
const MAX_INTEGER = 2 ** 31 - 1;

/**
 * Where Huffman-coded strings are decoded before they become JS strings: one for the process, since
 * decoding is synchronous and its result is copied out at once (an idle connection then costs no buffer).
 */
const HUFFMAN_SCRATCH = Buffer.allocUnsafe(4096);

export class HpackDecoder {
  /** The most the peer may make the table hold: our SETTINGS_HEADER_TABLE_SIZE. */
  #maxAllowed: number;
  /** The size the peer's encoder chose (≤ #maxAllowed), from size updates. */
  #maxSize: number;
  #size = 0;
  /** The dynamic table as a ring, newest at #head - 1. */
  #names: string[] = [];
  #values: string[] = [];
  /** FieldChecked bits of each entry, found as it was inserted. */
  #checked: number[] = [];
  #sizes: number[] = [];
  #head = 0;
  #length = 0;
  #capacity = 0;
  // The cursor of the block being decoded.
  #block: Buffer = EMPTY;
  #at = 0;
  #end = 0;

  constructor(maxTableSize = 4096) {
    this.#maxAllowed = maxTableSize;
    this.#maxSize = maxTableSize;
  }

  /** Bytes the dynamic table holds now (for tests and limits). */
  get tableSize(): number {
    return this.#size;
  }

  /**
   * Decodes one complete header block into `out` (cleared first). `maxListSize` bounds the decoded
   * list; `maxFields` its number of fields.
   */
  decode(block: Buffer, start: number, end: number, out: HeaderList, maxListSize: number, maxFields: number): DecodeResult {
    out.clear();
    this.#block = block;
    this.#at = start;
    this.#end = end;
    let tooLarge = false;
    let sawField = false;
    while (this.#at < end) {
      const first = block[this.#at]!;
      if (first & 0x80) {
        // Indexed field (§6.1).
        const index = this.#integer(7);
        if (index <= 0) return 'error';
        sawField = true;
        if (tooLarge) {
          if (!this.#validIndex(index)) return 'error';
          continue;
        }
        const name = this.#nameAt(index);
        if (name === undefined) return 'error';
        const value = this.#valueAt(index)!;
        out.size += name.length + value.length + ENTRY_OVERHEAD;
        if (out.size > maxListSize || out.count >= maxFields) tooLarge = true;
        else out.push(name, value, this.#checkedAt(index));
      } else if ((first & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only before the first field of a block.
        if (sawField) return 'error';
        const size = this.#integer(5);
        if (size < 0 || size > this.#maxAllowed) return 'error';
        this.#maxSize = size;
        this.#evict(0);
      } else {
        // Literal (§6.2): with incremental indexing (01), without (0000) or never indexed (0001).
        const indexing = (first & 0xc0) === 0x40;
        const index = this.#integer(indexing ? 6 : 4);
        if (index < 0) return 'error';
        sawField = true;
        let name: string | undefined;
        let checked: number = FieldChecked.None;
        if (index === 0) {
          name = this.#string();
          if (name === undefined) return 'error';
        } else {
          name = this.#nameAt(index);
          if (name === undefined) return 'error';
          checked = this.#checkedAt(index) & FieldChecked.Name;
        }
        if (tooLarge && !indexing) {
          // Past the limit, a value nothing will keep is stepped over, not decoded.
          if (!this.#skipString()) return 'error';
          continue;
        }
        const value = this.#string();
        if (value === undefined) return 'error';
        if (indexing) checked = this.#insert(name, value);
        if (tooLarge) continue;
        out.size += name.length + value.length + ENTRY_OVERHEAD;
        if (out.size > maxListSize || out.count >= maxFields) tooLarge = true;
        else {
          out.push(name, value, checked);
          if ((first & 0xf0) === 0x10) (out.neverIndexed ??= []).push(name);
        }
      }
    }
    this.#block = EMPTY;
    return tooLarge ? 'too_large' : 'ok';
  }

  /** Our SETTINGS_HEADER_TABLE_SIZE changed (acknowledged): the peer may use up to it. */
  setMaxAllowed(size: number): void {
    this.#maxAllowed = size;
    if (this.#maxSize > size) {
      this.#maxSize = size;
      this.#evict(0);
    }
  }

  #integer(prefixBits: number): number {
    const block = this.#block;
    const mask = (1 << prefixBits) - 1;
    let value = block[this.#at++]! & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      // Five continuation bytes hold 35 bits, more than any valid value; past them a run of 0x80 bytes would
      // grow the shift until 2 ** shift is Infinity and the value NaN, which no check below rejects.
      if (this.#at >= this.#end || shift > 28) return -1;
      const byte = block[this.#at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) return -1;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
    }
  }

  #string(): string | undefined {
    if (this.#at >= this.#end) return undefined;
    const huffman = (this.#block[this.#at]! & 0x80) !== 0;
    const length = this.#integer(7);
    if (length < 0 || this.#at + length > this.#end) return undefined;
    const start = this.#at;
    this.#at += length;
    return huffman ? huffmanDecode(this.#block, start, length, HUFFMAN_SCRATCH) : this.#block.toString('latin1', start, start + length);
  }

  #skipString(): boolean {
    if (this.#at >= this.#end) return false;
    const length = this.#integer(7);
    if (length < 0 || this.#at + length > this.#end) return false;
    this.#at += length;
    return true;
  }

  #validIndex(index: number): boolean {
    return index <= STATIC_TABLE_LENGTH + this.#length;
  }

  #nameAt(index: number): string | undefined {
    if (index <= STATIC_TABLE_LENGTH) return STATIC_TABLE[index]![0];
    const slot = this.#slot(index);
    return slot < 0 ? undefined : this.#names[slot];
  }

  #valueAt(index: number): string | undefined {
    if (index <= STATIC_TABLE_LENGTH) return STATIC_TABLE[index]![1];
    const slot = this.#slot(index);
    return slot < 0 ? undefined : this.#values[slot];
  }

  /** FieldChecked bits of table entry `index` (valid): the static table's fields are all valid. */
  #checkedAt(index: number): number {
    return index <= STATIC_TABLE_LENGTH ? FieldChecked.Both : this.#checked[this.#slot(index)]!;
  }

  /** The ring slot of dynamic index `index` (62 is the newest), or -1. */
  #slot(index: number): number {
    const age = index - STATIC_TABLE_LENGTH - 1;
    if (age >= this.#length) return -1;
    return (this.#head - 1 - age + this.#capacity) % this.#capacity;
  }

  /** Adds a field to the dynamic table; returns its FieldChecked bits, found once here for every block that refers to it. */
  #insert(name: string, value: string): number {
    const checked = checkField(name, value);
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4).
    this.#evict(size);
    if (size > this.#maxSize) return checked;
    if (this.#length === this.#capacity) this.#grow();
    this.#names[this.#head] = name;
    this.#values[this.#head] = value;
    this.#checked[this.#head] = checked;
    this.#sizes[this.#head] = size;
    this.#head = (this.#head + 1) % this.#capacity;
    this.#length++;
    this.#size += size;
    return checked;
  }

  /** Evicts the oldest entries until `room` more bytes fit (or the table is empty). */
  #evict(room: number): void {
    while (this.#length > 0 && this.#size + room > this.#maxSize) {
      const oldest = (this.#head - this.#length + this.#capacity) % this.#capacity;
      this.#size -= this.#sizes[oldest]!;
      this.#names[oldest] = '';
      this.#values[oldest] = '';
      this.#length--;
    }
  }

  #grow(): void {
    const capacity = Math.max(16, this.#capacity * 2);
    const names = new Array<string>(capacity);
    const values = new Array<string>(capacity);
    const sizes = new Array<number>(capacity);
    const checked = new Array<number>(capacity);
    for (let i = 0; i < this.#length; i++) {
      const from = (this.#head - this.#length + i + this.#capacity) % Math.max(1, this.#capacity);
      names[i] = this.#names[from]!;
      values[i] = this.#values[from]!;
      sizes[i] = this.#sizes[from]!;
      checked[i] = this.#checked[from]!;
    }
    this.#names = names;
    this.#values = values;
    this.#sizes = sizes;
    this.#checked = checked;
    this.#head = this.#length;
    this.#capacity = capacity;
  }
}

const EMPTY = Buffer.alloc(0);
