/**
 * The HPACK decoder under fast-check: valid blocks of every representation
 * (against a model of the dynamic table, so they must decode to exactly what
 * was encoded), arbitrary bytes, and valid blocks mutated. Whatever the input,
 * decode() returns one of its documented results ('ok', 'too_large', 'error')
 * and never throws, the list it fills stays within its limits, and the
 * dynamic table never holds more than its maximum size.
 *
 * Runs are bounded and the seed is fixed (FUZZ_SEED overrides it), so the
 * suite is quick and repeatable; fast-check prints the seed and the shrunk
 * counterexample of a failure.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HeaderList, HpackDecoder, type DecodeResult } from '../../src/http2/hpack/decoder.ts';
import { huffmanEncode, huffmanLength } from '../../src/http2/hpack/huffman.ts';
import { STATIC_TABLE } from '../../src/http2/hpack/static-table.ts';
import { FUZZ_SEED, fuzzRuns, mutate, mutation } from '../helpers/fuzz.ts';
import { hpackInteger } from '../helpers/raw-h2.ts';

const SEED = FUZZ_SEED;
const RUNS = 300;
const TABLE_SIZE = 4096;
const RESULTS: readonly DecodeResult[] = ['ok', 'too_large', 'error'];

/** Latin-1 text: the decoder's strings are bytes. */
const text = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength });

type NameRef = { readonly static: number } | { readonly dynamic: number } | { readonly literal: string };

type Representation =
  | { readonly kind: 'indexed'; readonly static: number }
  | { readonly kind: 'indexed-dynamic'; readonly age: number }
  | { readonly kind: 'literal'; readonly indexing: 0x40 | 0x00 | 0x10; readonly name: NameRef; readonly value: string; readonly huffmanName: boolean; readonly huffmanValue: boolean };

interface BlockSpec {
  readonly sizeUpdates: readonly number[];
  readonly fields: readonly Representation[];
}

const representation: fc.Arbitrary<Representation> = fc.oneof(
  fc.record({ kind: fc.constant('indexed' as const), static: fc.integer({ min: 1, max: 61 }) }),
  fc.record({ kind: fc.constant('indexed-dynamic' as const), age: fc.nat(20) }),
  fc.record({
    kind: fc.constant('literal' as const),
    indexing: fc.constantFrom(0x40 as const, 0x00 as const, 0x10 as const),
    name: fc.oneof(
      fc.record({ static: fc.integer({ min: 1, max: 61 }) }),
      fc.record({ dynamic: fc.nat(20) }),
      fc.record({ literal: text(40) }),
    ),
    value: text(300),
    huffmanName: fc.boolean(),
    huffmanValue: fc.boolean(),
  }),
);

const blockSpec: fc.Arbitrary<BlockSpec> = fc.record({
  sizeUpdates: fc.array(fc.integer({ min: 0, max: TABLE_SIZE }), { maxLength: 2 }),
  fields: fc.array(representation, { maxLength: 12 }),
});

/** The dynamic table as RFC 7541 §4 keeps it, newest first: the model the decoder must agree with. */
class TableModel {
  entries: [string, string][] = [];
  size = 0;
  maxSize = TABLE_SIZE;

  resize(size: number): void {
    this.maxSize = size;
    this.evict(0);
  }

  add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    if (size > this.maxSize) return;
    this.entries.unshift([name, value]);
    this.size += size;
  }

  evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.maxSize) {
      const [name, value] = this.entries.pop()!;
      this.size -= name.length + value.length + 32;
    }
  }
}

function stringLiteral(value: string, huffman: boolean): Buffer {
  if (!huffman) return Buffer.concat([Buffer.from(hpackInteger(value.length, 7)), Buffer.from(value, 'latin1')]);
  const coded = Buffer.alloc(huffmanLength(value));
  huffmanEncode(value, coded, 0);
  return Buffer.concat([Buffer.from(hpackInteger(coded.length, 7, 0x80)), coded]);
}

/**
 * Encodes `spec` against `model` (updating it as the decoder will), returning the block and the fields
 * it must decode to. References to dynamic entries that do not exist fall back to static ones, so every
 * block is valid.
 */
function encode(spec: BlockSpec, model: TableModel): { block: Buffer; fields: [string, string][] } {
  const parts: Buffer[] = [];
  const fields: [string, string][] = [];
  for (const size of spec.sizeUpdates) {
    parts.push(Buffer.from(hpackInteger(size, 5, 0x20)));
    model.resize(size);
  }
  for (const rep of spec.fields) {
    if (rep.kind === 'indexed' || (rep.kind === 'indexed-dynamic' && model.entries.length === 0)) {
      const index = rep.kind === 'indexed' ? rep.static : 2;
      parts.push(Buffer.from(hpackInteger(index, 7, 0x80)));
      fields.push([...STATIC_TABLE[index]!]);
    } else if (rep.kind === 'indexed-dynamic') {
      const age = rep.age % model.entries.length;
      parts.push(Buffer.from(hpackInteger(62 + age, 7, 0x80)));
      fields.push([...model.entries[age]!]);
    } else {
      const prefix = rep.indexing === 0x40 ? 6 : 4;
      let name: string;
      if ('literal' in rep.name) {
        name = rep.name.literal;
        parts.push(Buffer.from([rep.indexing]), stringLiteral(name, rep.huffmanName));
      } else if ('dynamic' in rep.name && model.entries.length > 0) {
        const age = rep.name.dynamic % model.entries.length;
        name = model.entries[age]![0];
        parts.push(Buffer.from(hpackInteger(62 + age, prefix, rep.indexing)));
      } else {
        const index = 'static' in rep.name ? rep.name.static : 1;
        name = STATIC_TABLE[index]![0];
        parts.push(Buffer.from(hpackInteger(index, prefix, rep.indexing)));
      }
      parts.push(stringLiteral(rep.value, rep.huffmanValue));
      fields.push([name, rep.value]);
      if (rep.indexing === 0x40) model.add(name, rep.value);
    }
  }
  return { block: Buffer.concat(parts), fields };
}

/** Decodes and checks what holds for any input; returns the result and the fields. */
function decodeChecked(decoder: HpackDecoder, block: Buffer, maxListSize: number, maxFields: number): { result: DecodeResult; fields: [string, string][] } {
  const list = new HeaderList();
  const result = decoder.decode(block, 0, block.length, list, maxListSize, maxFields);
  assert.ok(RESULTS.includes(result), `an undocumented result: ${String(result)}`);
  assert.ok(decoder.tableSize >= 0 && decoder.tableSize <= TABLE_SIZE, `the dynamic table holds ${decoder.tableSize} bytes`);
  assert.ok(list.count <= maxFields, `${list.count} fields kept, the limit is ${maxFields}`);
  if (result === 'ok') assert.ok(list.size <= maxListSize, `a list of ${list.size} bytes kept, the limit is ${maxListSize}`);
  const fields = list.names.slice(0, list.count).map((name, i): [string, string] => [name, list.values[i]!]);
  for (const [name, value] of fields) assert.ok(typeof name === 'string' && typeof value === 'string');
  return { result, fields };
}

describe('HPACK decoder under fast-check', () => {
  it('valid blocks of every representation decode to exactly what was encoded, the table in step with the model', () => {
    fc.assert(
      fc.property(fc.array(blockSpec, { minLength: 1, maxLength: 6 }), (specs) => {
        const decoder = new HpackDecoder();
        const model = new TableModel();
        for (const spec of specs) {
          const { block, fields } = encode(spec, model);
          const decoded = decodeChecked(decoder, block, 1 << 20, 1000);
          assert.deepEqual(decoded, { result: 'ok', fields });
          assert.equal(decoder.tableSize, model.size);
        }
      }),
      { seed: SEED, numRuns: fuzzRuns(RUNS) },
    );
  });

  it('arbitrary bytes, block after block on one decoder, give a documented result and keep every limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 400 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 32, max: 8192 }),
        fc.integer({ min: 1, max: 64 }),
        (blocks, maxListSize, maxFields) => {
          const decoder = new HpackDecoder();
          for (const block of blocks) decodeChecked(decoder, Buffer.from(block), maxListSize, maxFields);
        },
      ),
      { seed: SEED, numRuns: fuzzRuns(RUNS * 3) },
    );
  });

  it('valid blocks, mutated, give a documented result and keep every limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(blockSpec, mutation()), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 64, max: 8192 }),
        fc.integer({ min: 1, max: 64 }),
        (steps, maxListSize, maxFields) => {
          const decoder = new HpackDecoder();
          const model = new TableModel();
          for (const [spec, change] of steps) {
            const { block } = encode(spec, model);
            decodeChecked(decoder, mutate(block, change), maxListSize, maxFields);
          }
        },
      ),
      { seed: SEED, numRuns: fuzzRuns(RUNS * 2) },
    );
  });

  it('integers that continue past their prefix, with runs of zero continuation bytes of any length, give a documented result; the table keeps its limit', () => {
    // Entries enough to fill the table twice over: a size limit that stopped holding would show.
    const filler = Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.concat([Buffer.from([0x40]), stringLiteral(`x-fill-${i}`, false), stringLiteral('v'.repeat(400), false)])));
    fc.assert(
      fc.property(
        // The first byte of each representation with its prefix all ones: the integer goes on in the next bytes.
        fc.constantFrom(0x3f, 0x7f, 0xff, 0x0f, 0x1f),
        fc.nat(300),
        fc.array(fc.integer({ min: 0x80, max: 0xff }), { maxLength: 4 }),
        fc.integer({ min: 0, max: 0x7f }),
        (first, zeros, more, last) => {
          const integer = Buffer.from([first, ...new Array<number>(zeros).fill(0x80), ...more, last]);
          decodeChecked(new HpackDecoder(), Buffer.concat([integer, filler]), 1 << 16, 100);
        },
      ),
      { seed: SEED, numRuns: fuzzRuns(RUNS) },
    );
  });
});
