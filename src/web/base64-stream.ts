/**
 * Base64 for gRPC-Web's text mode, a chunk at a time. The body is a sequence
 * of base64 quanta (4 characters for 3 bytes); a writer may flush at any
 * quantum boundary with padding (`xx==`, `xxx=`) and go on after it, so a
 * padded quantum may stand anywhere, not only at the end (grpc's
 * PROTOCOL-WEB.md). Chunks need not end on a quantum boundary: the decoder
 * keeps the last 0-3 characters for the next one.
 */

/** A quantum: four characters, the last one or two of which may be padding. */
const QUANTA = /^(?:[A-Za-z0-9+/]{2}(?:[A-Za-z0-9+/]{2}|[A-Za-z0-9+/]=|==))*$/;

export class Base64Decoder {
  /** Characters of an incomplete quantum, carried to the next chunk. */
  #carry = '';

  /** The bytes `chunk` completes; a string (what is wrong) when it is not base64. */
  decode(chunk: Buffer): Buffer | string {
    const text = this.#carry + chunk.toString('latin1');
    const whole = text.length - (text.length % 4);
    this.#carry = text.slice(whole);
    if (whole === 0) return EMPTY;
    const quanta = text.slice(0, whole);
    if (!QUANTA.test(quanta)) return describeInvalid(quanta);
    // Node's decoder stops at the first padding, so each padded stretch is decoded on its own.
    if (!quanta.includes('=')) return Buffer.from(quanta, 'base64');
    const parts: Buffer[] = [];
    let start = 0;
    for (let end = 4; end <= whole; end += 4) {
      if (quanta.charCodeAt(end - 1) === 0x3d /* = */ || end === whole) {
        parts.push(Buffer.from(quanta.slice(start, end), 'base64'));
        start = end;
      }
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** At the end of the body: what is wrong when an incomplete quantum is left over. */
  finish(): string | undefined {
    return this.#carry === '' ? undefined : `the base64 body ends inside a quantum (${this.#carry.length} of 4 characters)`;
  }
}

/** Encodes one chunk on its own, padded, so it can be flushed at once (the client decodes padded quanta anywhere). */
export function encodeBase64Chunk(chunk: Buffer): Buffer {
  return Buffer.from(chunk.toString('base64'), 'latin1');
}

const EMPTY = Buffer.alloc(0);

function describeInvalid(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const inAlphabet = (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === 0x2b || code === 0x2f;
    if (!inAlphabet && code !== 0x3d) return `the body is not base64: character 0x${code.toString(16).padStart(2, '0')} at offset ${i} of a chunk`;
  }
  return 'the body is not base64: padding inside a quantum';
}
