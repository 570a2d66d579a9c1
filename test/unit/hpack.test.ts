/**
 * HPACK (RFC 7541): the Appendix C examples as vectors, Huffman coding, the
 * dynamic table, the malformed blocks a decoder must refuse, and the encoder
 * (its dynamic table kept in step with a decoder's).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderList, HpackDecoder, type DecodeResult } from '../../src/http2/hpack/decoder.ts';
import fc from 'fast-check';
import { HpackEncoder } from '../../src/http2/hpack/encoder.ts';
import { requestHeaders } from '../../src/http2/header-rules.ts';
import type { HeaderMap } from '../../src/grpc/streams.ts';
import { FUZZ_SEED, fuzzRuns } from '../helpers/fuzz.ts';
import { CODES, LENGTHS, huffmanDecode, huffmanEncode, huffmanLength } from '../../src/http2/hpack/huffman.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function decode(decoder: HpackDecoder, block: Buffer, maxListSize = 1 << 20, maxFields = 1000): { result: DecodeResult; fields: [string, string][] } {
  const list = new HeaderList();
  const result = decoder.decode(block, 0, block.length, list, maxListSize, maxFields);
  return { result, fields: list.names.slice(0, list.count).map((name, i) => [name, list.values[i]!]) };
}

/** One header block from `encoder`. */
function encode(encoder: HpackEncoder, headers: HeaderMap): Buffer {
  const out = Buffer.alloc(encoder.bound(headers));
  return out.subarray(0, encoder.encode(headers, out, 0));
}

const C3_FIELDS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const C3_TABLE_SIZES = [57, 110, 164];

const C5_FIELDS: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']],
];
const C5_TABLE_SIZES = [222, 222, 215];

describe('HPACK: RFC 7541 Appendix C', () => {
  it('C.2: literals with and without indexing, never indexed, and an indexed field', () => {
    const cases: [string, [string, string], number][] = [
      ['400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', ['custom-key', 'custom-header'], 55],
      ['040c 2f73 616d 706c 652f 7061 7468', [':path', '/sample/path'], 0],
      ['1008 7061 7373 776f 7264 0673 6563 7265 74', ['password', 'secret'], 0],
      ['82', [':method', 'GET'], 0],
    ];
    for (const [block, field, tableSize] of cases) {
      const decoder = new HpackDecoder();
      assert.deepEqual(decode(decoder, hex(block)), { result: 'ok', fields: [field] });
      assert.equal(decoder.tableSize, tableSize);
    }
  });

  it('C.3: requests without Huffman, one decoder across them', () => {
    const decoder = new HpackDecoder();
    const blocks = [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ];
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(decoder, hex(block)), { result: 'ok', fields: C3_FIELDS[i] });
      assert.equal(decoder.tableSize, C3_TABLE_SIZES[i]);
    });
  });

  it('C.4: the same requests with Huffman', () => {
    const decoder = new HpackDecoder();
    const blocks = [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ];
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(decoder, hex(block)), { result: 'ok', fields: C3_FIELDS[i] });
      assert.equal(decoder.tableSize, C3_TABLE_SIZES[i]);
    });
  });

  it('C.5: responses without Huffman, a 256-byte table that evicts', () => {
    const decoder = new HpackDecoder(256);
    const blocks = [
      '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '4803 3330 37c1 c0bf',
      '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    ];
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(decoder, hex(block)), { result: 'ok', fields: C5_FIELDS[i] });
      assert.equal(decoder.tableSize, C5_TABLE_SIZES[i]);
    });
  });

  it('C.6: the same responses with Huffman', () => {
    const decoder = new HpackDecoder(256);
    const blocks = [
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      '4883 640e ffc1 c0bf',
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ];
    blocks.forEach((block, i) => {
      assert.deepEqual(decode(decoder, hex(block)), { result: 'ok', fields: C5_FIELDS[i] });
      assert.equal(decoder.tableSize, C5_TABLE_SIZES[i]);
    });
  });
});

describe('HPACK: Huffman coding (§5.2, Appendix B)', () => {
  it('the canonical code matches Appendix B at its ends and in the middle', () => {
    assert.deepEqual([CODES[0], LENGTHS[0]], [0x1ff8, 13]);
    assert.deepEqual([CODES[0x61], LENGTHS[0x61]], [0x3, 5]);
    assert.deepEqual([CODES[0x20], LENGTHS[0x20]], [0x14, 6]);
    assert.deepEqual([CODES[0xff], LENGTHS[0xff]], [0x3ffffee, 26]);
    assert.deepEqual([CODES[256], LENGTHS[256]], [0x3fffffff, 30]);
  });

  it('every byte string round-trips, and is as long as huffmanLength says', () => {
    const scratch = Buffer.alloc(64);
    for (let seed = 1; seed < 300; seed++) {
      let text = '';
      for (let i = 0; i < (seed % 40) + 1; i++) text += String.fromCharCode((seed * 7919 + i * 104729) % 256);
      const out = Buffer.alloc(huffmanLength(text) + 8);
      const end = huffmanEncode(text, out, 0);
      assert.equal(end, huffmanLength(text));
      assert.equal(huffmanDecode(out, 0, end, scratch), text);
    }
  });

  it('refuses EOS inside a string, padding of 8 bits or more, and padding that is not all ones', () => {
    const scratch = Buffer.alloc(64);
    // EOS (30 ones) followed by padding.
    assert.equal(huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, scratch), undefined);
    // 'a' (00011) padded with 11 ones: 8 bits of padding or more is refused.
    assert.equal(huffmanDecode(Buffer.from([0x1f, 0xff]), 0, 2, scratch), undefined);
    // 'a' padded with zeros.
    assert.equal(huffmanDecode(Buffer.from([0x18]), 0, 1, scratch), undefined);
    assert.equal(huffmanDecode(Buffer.from([0x1f]), 0, 1, scratch), 'a');
  });
});

describe('HPACK: the decoder refuses what is malformed (COMPRESSION_ERROR)', () => {
  const refused: [string, string][] = [
    ['index 0', '80'],
    ['an index past both tables', 'ff00'],
    ['an integer past 2^31', '7fffffffff7f'],
    ['a string longer than the block', '000a61'],
    ['a truncated integer', '7f'],
    ['a size update above the allowed size (4097)', '3fe21f'],
    ['a size update after a field', '823f01'],
  ];
  for (const [what, block] of refused) {
    it(what, () => {
      assert.equal(decode(new HpackDecoder(), hex(block)).result, 'error');
    });
  }

  it('an integer with more than five continuation bytes (a run of zeros: 2 ** shift overflows to Infinity)', () => {
    const decoder = new HpackDecoder();
    const sizeUpdate = Buffer.concat([Buffer.from([0x3f]), Buffer.alloc(160, 0x80), Buffer.from([0x00])]);
    const entries = Buffer.concat(Array.from({ length: 200 }, (_, i) => hex(`40 02 782d 20 ${Buffer.from(`value-${i}`.padEnd(32, '.')).toString('hex')}`)));
    const { result } = decode(decoder, Buffer.concat([sizeUpdate, entries]));
    assert.ok(decoder.tableSize <= 4096, `the table holds ${decoder.tableSize} bytes`);
    assert.equal(result, 'error');
  });

  it('a size update at the start of a block is applied, and evicts', () => {
    const decoder = new HpackDecoder();
    decode(decoder, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.equal(decoder.tableSize, 55);
    assert.equal(decode(decoder, hex('20 82')).result, 'ok');
    assert.equal(decoder.tableSize, 0);
    assert.equal(decode(decoder, hex('be')).result, 'error', 'the evicted entry is gone');
  });
});

describe('HPACK: header list limits', () => {
  it('past the size limit the block is still read, the table still updated, and no field kept', () => {
    const decoder = new HpackDecoder();
    // custom-key: custom-header (incremental indexing), then :method GET.
    const block = hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572 82');
    const { result, fields } = decode(decoder, block, 50);
    assert.equal(result, 'too_large');
    assert.deepEqual(fields, []);
    assert.equal(decoder.tableSize, 55, 'the literal with indexing still reached the table');
    assert.deepEqual(decode(decoder, hex('be')).fields, [['custom-key', 'custom-header']]);
  });

  it('past the field count limit likewise', () => {
    assert.equal(decode(new HpackDecoder(), hex('82 86 84'), 1 << 20, 2).result, 'too_large');
  });

  it('one entry referenced many times costs what it decodes to, not what it takes on the wire', () => {
    const decoder = new HpackDecoder();
    const store = Buffer.concat([Buffer.from([0x40, 0x06]), Buffer.from('x-bomb'), Buffer.from([0x7f, 0xa1, 0x1e]), Buffer.alloc(4_000, 0x62)]);
    assert.equal(decode(decoder, store).result, 'ok');
    const references = Buffer.alloc(120, 0xbe);
    assert.equal(decode(decoder, references, 16 << 10).result, 'too_large');
  });
});

describe('HPACK: the encoder', () => {
  it('C.3: writes the three requests byte for byte as the RFC does (literals with incremental indexing, then indexes)', () => {
    const encoder = new HpackEncoder();
    const expected = [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ];
    C3_FIELDS.forEach((fields, i) => assert.equal(encode(encoder, Object.fromEntries(fields)).toString('hex'), hex(expected[i]!).toString('hex')));
  });

  it('what it writes, a decoder reads back, in order; the second time, every repeated field takes one byte', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const headers = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0', 'x-many': ['a', 'b'], 'x-long': 'v'.repeat(300) };
    const fields = [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0'], ['x-many', 'a'], ['x-many', 'b'], ['x-long', 'v'.repeat(300)]];
    const first = encode(encoder, headers);
    assert.equal(first[0], 0x88, ':status 200 is static index 8');
    assert.deepEqual(decode(decoder, first).fields, fields);
    const second = encode(encoder, headers);
    // Four indexed fields, then the 300-byte value again as a literal: too long to index.
    assert.deepEqual([...second.subarray(0, 5)].map((byte) => byte & 0x80), [0x80, 0x80, 0x80, 0x80, 0x80]);
    assert.equal(second.length, 5 + (1 + 1 + 'x-long'.length) + (3 + 300));
    assert.deepEqual(decode(decoder, second).fields, fields);
  });

  it('fields whose values change per request and credentials are not indexed; credentials go as never-indexed literals', () => {
    const encoder = new HpackEncoder();
    for (const name of ['grpc-timeout', 'x-request-id', 'traceparent', 'grpc-message', 'content-length']) {
      assert.equal(encode(encoder, { [name]: '1' })[0]! & 0xc0, 0x00, `${name}: a literal without indexing`);
    }
    assert.equal(encode(encoder, { authorization: 'Bearer x' })[0]! & 0xf0, 0x10);
    assert.equal(encode(encoder, { authorization: 'Bearer x' })[0]! & 0xf0, 0x10, 'and never indexed the second time either');
  });

  it('a field the peer sent never-indexed is forwarded never-indexed, whatever its name (RFC 7541 §7.1.3); so are known credential fields', () => {
    const request = [[':method', 'POST'], [':scheme', 'http'], [':path', '/a.B/C'], [':authority', 'x']];
    // x-secret as a never-indexed literal with a new name (0001 0000), x-plain as a literal without indexing.
    const block = Buffer.concat([
      ...request.map(([name, value]) => Buffer.concat([Buffer.from([0x00, name!.length]), Buffer.from(name!), Buffer.from([value!.length]), Buffer.from(value!)])),
      Buffer.from([0x10, 8]), Buffer.from('x-secret'), Buffer.from([2]), Buffer.from('s1'),
      Buffer.from([0x00, 7]), Buffer.from('x-plain'), Buffer.from([2]), Buffer.from('p1'),
    ]);
    const list = new HeaderList();
    assert.equal(new HpackDecoder().decode(block, 0, block.length, list, 1 << 16, 100), 'ok');
    const headers = requestHeaders(list, false) as HeaderMap;
    const encoder = new HpackEncoder();
    for (let round = 0; round < 2; round++) {
      const out = encode(encoder, { ...headers, ...(round === 1 && { 'x-api-key': 'k' }) });
      const secret = out.indexOf('x-secret') - 2;
      assert.equal(out[secret]! & 0xf0, 0x10, 'x-secret never indexed');
      if (round === 1) {
        assert.equal(out.indexOf('x-plain'), -1, 'x-plain indexed the first time, an index the second');
        assert.equal(out[out.indexOf('x-api-key') - 2]! & 0xf0, 0x10, 'x-api-key never indexed');
      }
    }
  });

  it('strings on either side of the length where it stops writing byte by byte, and latin1 bytes, read back the same', () => {
    const headers = { 'x-63': 'w'.repeat(63), 'x-64': 'w'.repeat(64), 'x-latin1': 'caf\u00e9', 'user-agent': 'u'.repeat(65) };
    assert.deepEqual(decode(new HpackDecoder(), encode(new HpackEncoder(), headers)).fields, Object.entries(headers));
  });

  it('a lower SETTINGS_HEADER_TABLE_SIZE from the peer starts the next block with a size update, and the tables stay in step', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const headers = { 'x-a': 'a'.repeat(40), 'x-b': 'b'.repeat(40) };
    decode(decoder, encode(encoder, headers));
    encoder.setPeerTableSize(100);
    const block = encode(encoder, headers);
    assert.equal(block[0]! & 0xe0, 0x20, 'a dynamic table size update');
    assert.deepEqual(decode(decoder, block).fields, Object.entries(headers));
    assert.ok(decoder.tableSize <= 100);
    encoder.setPeerTableSize(0);
    const none = encode(encoder, headers);
    assert.deepEqual(decode(decoder, none).fields, Object.entries(headers));
    assert.equal(decoder.tableSize, 0);
  });

  it('over any sequence of blocks and table sizes, one decoder reads back exactly what was encoded (fast-check)', () => {
    const name = fc.constantFrom('x-a', 'x-b', 'user-agent', 'grpc-timeout', ':path', 'authorization', 'x-' + 'n'.repeat(100));
    const value = fc.oneof(fc.constantFrom('1', 'two', 'v'.repeat(120), 'w'.repeat(300)), fc.string({ maxLength: 12 }).map((text) => text.replace(/[^ -~]/g, 'x')));
    const block = fc.array(fc.tuple(name, value), { minLength: 1, maxLength: 8 });
    const step = fc.oneof(block.map((fields) => ({ fields })), fc.integer({ min: 0, max: 4096 }).map((size) => ({ size })));
    fc.assert(fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const encoder = new HpackEncoder();
      const decoder = new HpackDecoder();
      for (const current of steps) {
        if ('size' in current) {
          encoder.setPeerTableSize(current.size);
          continue;
        }
        // Repeated names go as a list, in the map's order.
        const headers: Record<string, string | string[]> = {};
        for (const [field, text] of current.fields) {
          const previous = headers[field];
          headers[field] = previous === undefined ? text : [previous, text].flat();
        }
        const expected = Object.entries(headers).flatMap(([field, values]) => [values].flat().map((text) => [field, text]));
        expected.sort((a, b) => Number(b[0]!.startsWith(':')) - Number(a[0]!.startsWith(':')));
        assert.deepEqual(decode(decoder, encode(encoder, headers)), { result: 'ok', fields: expected });
      }
    }), { seed: FUZZ_SEED, numRuns: fuzzRuns(300) });
  });
});
