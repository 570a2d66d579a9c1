/**
 * The Huffman code of HPACK string literals (RFC 7541 §5.2, Appendix B). The
 * code is canonical: codes of one length are consecutive and ordered by
 * symbol, so the lengths alone define it (below, from Appendix B), and the
 * codes are assigned from them at load.
 *
 * Decoding walks a 4-bit state machine built from the code tree (each step
 * reads a nibble and emits at most one symbol, since no code is shorter than
 * 5 bits); a string must end on a symbol boundary or in at most 7 bits of the
 * EOS code's prefix (all ones), and must not contain EOS itself (§5.2).
 */

/** Code length in bits of each symbol 0..255, then EOS (256), RFC 7541 Appendix B. */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //         0x20  !"#$%&'()*+,-./
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //             0x30 0-9:;<=>?
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //               0x40 @A-O
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //            0x50 P-Z[\]^_
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //               0x60 `a-o
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //           0x70 p-z{|}~DEL
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
  30, //                                                             EOS
];

const EOS = 256;

/** Code of each symbol, right-aligned, and its length. */
export const CODES = new Uint32Array(257);
export const LENGTHS = Uint8Array.from(CODE_LENGTHS);

{
  const order = [...CODE_LENGTHS.keys()].sort((a, b) => CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b);
  let code = 0;
  let length = CODE_LENGTHS[order[0]!]!;
  for (const symbol of order) {
    code <<= CODE_LENGTHS[symbol]! - length;
    length = CODE_LENGTHS[symbol]!;
    CODES[symbol] = code >>> 0;
    code++;
  }
}

/** Bytes `value` takes Huffman-coded (whole bytes, padding included). */
export function huffmanLength(value: string): number {
  let bits = 0;
  for (let i = 0; i < value.length; i++) bits += LENGTHS[value.charCodeAt(i) & 0xff]!;
  return (bits + 7) >> 3;
}

/** Writes `value` (latin1) Huffman-coded into `out` at `offset`; returns the offset after it. */
export function huffmanEncode(value: string, out: Buffer, offset: number): number {
  let pending = 0;
  let pendingBits = 0;
  for (let i = 0; i < value.length; i++) {
    const symbol = value.charCodeAt(i) & 0xff;
    let length = LENGTHS[symbol]!;
    const code = CODES[symbol]!;
    // Feed the code in pieces that keep `pending` within 32 bits.
    while (length > 0) {
      const take = Math.min(length, 24 - pendingBits);
      pending = (pending << take) | ((code >>> (length - take)) & ((1 << take) - 1));
      pendingBits += take;
      length -= take;
      while (pendingBits >= 8) {
        pendingBits -= 8;
        out[offset++] = (pending >>> pendingBits) & 0xff;
      }
      pending &= (1 << pendingBits) - 1;
    }
  }
  // Padding: the most significant bits of EOS, all ones.
  if (pendingBits > 0) out[offset++] = ((pending << (8 - pendingBits)) | (0xff >> pendingBits)) & 0xff;
  return offset;
}

/**
 * The decoding machine. States are the code tree's internal nodes (root 0).
 * For state s and nibble n, TRANSITIONS[s * 16 + n] packs: next state (bits 0-8),
 * an emitted symbol (bits 9-16) with EMITS set, or FAILS when the nibble completes EOS.
 */
const EMITS = 1 << 17;
const FAILS = 1 << 18;
const TRANSITIONS = new Int32Array(256 * 16);
/** For each state: true when it lies on EOS's path at depth ≤ 7, so ending there is valid padding. */
const ACCEPTS = new Uint8Array(256);

{
  // Build the tree: children[2 * node + bit]; leaves are stored as -(symbol + 1).
  const children = new Int32Array(512).fill(0);
  let nodes = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    let node = 0;
    for (let bit = LENGTHS[symbol]! - 1; bit >= 0; bit--) {
      const branch = (CODES[symbol]! >>> bit) & 1;
      const slot = 2 * node + branch;
      if (bit === 0) {
        children[slot] = -(symbol + 1);
      } else {
        if (children[slot] === 0) children[slot] = nodes++;
        node = children[slot]!;
      }
    }
  }
  // Which states are prefixes of EOS (all ones) within 7 bits: padding may end there.
  ACCEPTS[0] = 1;
  for (let node = 0, depth = 0; depth < 7; depth++) {
    node = children[2 * node + 1]!;
    if (node <= 0) break;
    ACCEPTS[node] = 1;
  }
  for (let state = 0; state < nodes; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = children[2 * node + ((nibble >>> bit) & 1)]!;
        if (next < 0) {
          const symbol = -next - 1;
          if (symbol === EOS) {
            entry |= FAILS;
            break;
          }
          entry |= EMITS | (symbol << 9);
          node = 0;
        } else {
          node = next;
        }
      }
      TRANSITIONS[state * 16 + nibble] = entry | node;
    }
  }
}

/**
 * Decodes `length` Huffman-coded bytes of `input` from `offset` into latin1 text; undefined when they
 * are not a valid encoding (EOS inside, or padding longer than 7 bits or not all ones).
 */
export function huffmanDecode(input: Buffer, offset: number, length: number, scratch: Buffer): string | undefined {
  // Every symbol takes at least 5 bits, so `length` bytes decode to at most length * 8 / 5 symbols.
  const out = scratch.length >= (length * 8) / 5 + 1 ? scratch : Buffer.allocUnsafe(Math.ceil((length * 8) / 5) + 1);
  let written = 0;
  let state = 0;
  const end = offset + length;
  for (let i = offset; i < end; i++) {
    const byte = input[i]!;
    let entry = TRANSITIONS[state * 16 + (byte >>> 4)]!;
    if (entry & FAILS) return undefined;
    if (entry & EMITS) out[written++] = (entry >>> 9) & 0xff;
    state = entry & 0x1ff;
    entry = TRANSITIONS[state * 16 + (byte & 0xf)]!;
    if (entry & FAILS) return undefined;
    if (entry & EMITS) out[written++] = (entry >>> 9) & 0xff;
    state = entry & 0x1ff;
  }
  if (!ACCEPTS[state]) return undefined;
  return out.toString('latin1', 0, written);
}
