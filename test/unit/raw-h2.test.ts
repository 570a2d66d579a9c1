import { it } from 'node:test';
import assert from 'node:assert/strict';
import { headerBlock } from '../helpers/raw-h2.ts';

it('raw-h2 encodes HPACK literals with multi-byte lengths (RFC 7541 §5.1)', () => {
  const block = headerBlock([['x', 'a'.repeat(200)]]);
  // 0x00, name length 1, 'x', value length 200 = 127 + 73 → 0x7f 0x49
  assert.deepEqual([...block.subarray(0, 5)], [0x00, 0x01, 0x78, 0x7f, 73]);
  assert.equal(block.length, 5 + 200);
});
