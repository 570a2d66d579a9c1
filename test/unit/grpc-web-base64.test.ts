/** gRPC-Web text mode's base64, a chunk at a time (src/web/base64-stream.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Base64Decoder, encodeBase64Chunk } from '../../src/web/base64-stream.ts';

/** Decodes `text` fed in pieces cut at `cuts`; a string when the decoder refused it. */
function decodeInPieces(text: string, cuts: readonly number[]): Buffer | string {
  const decoder = new Base64Decoder();
  const out: Buffer[] = [];
  let start = 0;
  for (const end of [...cuts, text.length]) {
    const decoded = decoder.decode(Buffer.from(text.slice(start, end), 'latin1'));
    if (typeof decoded === 'string') return decoded;
    out.push(decoded);
    start = end;
  }
  return decoder.finish() ?? Buffer.concat(out);
}

describe('gRPC-Web text mode: base64 a chunk at a time', () => {
  const bytes = Buffer.from(Array.from({ length: 40 }, (_, i) => (i * 37) % 256));

  it('decodes padded segments anywhere, however the text is cut into chunks', () => {
    // Three segments flushed separately, two of them padded: `xx==` and `xxx=` inside the body.
    const text = [bytes.subarray(0, 7), bytes.subarray(7, 18), bytes.subarray(18)].map((part) => part.toString('base64')).join('');
    assert.match(text, /==[A-Za-z0-9+/]/);
    for (let first = 0; first <= text.length; first++) {
      for (const second of [first, first + 1, first + 5]) {
        const cuts = second <= text.length ? [first, second] : [first];
        assert.deepEqual(decodeInPieces(text, cuts), bytes, `cut at ${cuts.join(', ')}`);
      }
    }
  });

  it('refuses characters outside the alphabet, padding inside a quantum, and a body that ends mid-quantum', () => {
    assert.match(String(decodeInPieces('AAAA!AAA', [])), /not base64: character 0x21/);
    assert.match(String(decodeInPieces('A=AA', [])), /not base64/);
    assert.match(String(decodeInPieces('AAAAAA', [3])), /ends inside a quantum \(2 of 4/);
    assert.match(String(decodeInPieces('AAAA-_AA', [])), /not base64/, 'the URL-safe alphabet is not gRPC-Web\'s');
  });

  it('encodes each chunk on its own, padded, so what is written can be flushed at once', () => {
    const chunks = [bytes.subarray(0, 1), bytes.subarray(1, 5), bytes.subarray(5)];
    const text = chunks.map((chunk) => encodeBase64Chunk(chunk).toString('latin1')).join('');
    assert.match(text, /^[A-Za-z0-9+/]{2}==/);
    assert.deepEqual(decodeInPieces(text, []), bytes);
  });
});
