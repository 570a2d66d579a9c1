/**
 * The frame scanner passes every byte on unchanged, however reads split the
 * frames, and refuses a frame that breaks a rule at its header, before any
 * byte of it has been passed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameScanner, type FrameRules, type FrameSink } from '../../src/websocket/frame-scanner.ts';
import { mulberry32 as seededRandom } from '../helpers/seeded-random.ts';

const CLIENT: FrameRules = { masked: true, reservedBitsAllowed: false, maxFrameBytes: 1 << 20, maxMessageBytes: 4 << 20, maxFragments: 8 };
const SERVER: FrameRules = { ...CLIENT, masked: false };

/** A frame: masked with a fixed key when `masked`. */
function frame(opcode: number, payload: Buffer | string, options: { masked?: boolean; fin?: boolean; rsv1?: boolean; length?: number } = {}): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const masked = options.masked ?? true;
  const length = options.length ?? body.length;
  const first = ((options.fin ?? true) ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | opcode;
  let header: Buffer;
  if (length < 126) header = Buffer.from([first, (masked ? 0x80 : 0) | length]);
  else if (length < 65536) header = Buffer.from([first, (masked ? 0x80 : 0) | 126, length >> 8, length & 0xff]);
  else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  if (!masked) return Buffer.concat([header, body]);
  const key = Buffer.from([0x0f, 0xf0, 0x55, 0xaa]);
  const out = Buffer.from(body);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! ^ key[i & 3]!;
  return Buffer.concat([header, key, out]);
}

function close(code: number, masked = true): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return frame(0x8, Buffer.concat([payload, Buffer.from('bye')]), { masked });
}

/** Feeds `pieces` and records what the scanner did. */
function scan(rules: FrameRules, pieces: readonly Buffer[], wantsBoundary = false) {
  const passed: Buffer[] = [];
  const boundaries: { opcode: number; closeCode: number | undefined; at: number }[] = [];
  const violations: { code: number; reason: string; at: number }[] = [];
  let passedBytes = 0;
  const sink: FrameSink = {
    pass: (bytes) => {
      passed.push(Buffer.from(bytes));
      passedBytes += bytes.length;
    },
    boundary: (opcode, closeCode) => boundaries.push({ opcode, closeCode, at: passedBytes }),
    violation: (code, reason) => violations.push({ code, reason, at: passedBytes }),
    get wantsBoundary() {
      return wantsBoundary;
    },
  };
  const scanner = new FrameScanner(rules, sink);
  for (const piece of pieces) scanner.feed(piece);
  return { passed: Buffer.concat(passed), boundaries, violations, scanner };
}

/** `bytes` cut at random places (including 1-byte pieces inside headers). */
function randomPieces(bytes: Buffer, random: () => number): Buffer[] {
  const pieces: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = 1 + Math.floor(random() * (random() < 0.5 ? 4 : 300));
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

describe('frame scanner: what passes', () => {
  const stream = Buffer.concat([
    frame(0x1, 'hello'),
    frame(0x2, Buffer.alloc(300, 7)),
    frame(0x2, Buffer.alloc(70_000, 9), { fin: false }),
    frame(0x9, 'ping'),
    frame(0x0, Buffer.alloc(10, 1)),
    frame(0xa, 'pong'),
    frame(0x1, ''),
    close(1000),
  ]);

  it('passes every byte unchanged and in order, however the reads split it', () => {
    const random = seededRandom(15);
    for (let run = 0; run < 200; run++) {
      const { passed, violations, boundaries } = scan(CLIENT, randomPieces(stream, random));
      assert.deepEqual(violations, []);
      assert.ok(passed.equals(stream), `run ${run}: the bytes passed differ from the bytes fed`);
      assert.deepEqual(boundaries.map((b) => [b.opcode, b.closeCode]), [[0x9, undefined], [0xa, undefined], [0x8, 1000]]);
    }
  });

  it('reads a masked close code whose two bytes arrive in different reads', () => {
    const bytes = close(4001);
    // header (2) + key (4) + first byte of the code | the rest
    const { boundaries } = scan(CLIENT, [bytes.subarray(0, 7), bytes.subarray(7)]);
    assert.deepEqual(boundaries.map((b) => b.closeCode), [4001]);
  });

  it('reports a frame end where every byte before it has been passed, when the owner asks', () => {
    const two = Buffer.concat([frame(0x1, 'a'), frame(0x1, 'bb')]);
    const { boundaries } = scan(CLIENT, [two], true);
    assert.deepEqual(boundaries.map((b) => b.at), [frame(0x1, 'a').length, two.length]);
  });

  it('counts frames other than pongs as activity', () => {
    const { scanner } = scan(CLIENT, [Buffer.concat([frame(0xa, ''), frame(0xa, 'x')])]);
    assert.equal(scanner.takeActivity(), false);
    scan(CLIENT, []);
    const busy = scan(CLIENT, [frame(0x1, 'x')]).scanner;
    assert.equal(busy.takeActivity(), true);
    assert.equal(busy.takeActivity(), false, 'nothing new since');
  });
});

describe('frame scanner: what it refuses, before passing any of the frame', () => {
  const cases: { name: string; rules?: FrameRules; bytes: Buffer; code: number; reason: RegExp }[] = [
    { name: 'an unmasked frame from a client', bytes: frame(0x1, 'x', { masked: false }), code: 1002, reason: /unmasked/ },
    { name: 'a masked frame from a server', rules: SERVER, bytes: frame(0x1, 'x'), code: 1002, reason: /masked frame from the server/ },
    { name: 'a frame over max_frame_bytes, by its 64-bit length', bytes: frame(0x2, Buffer.alloc(0), { length: 2 ** 40 }).subarray(0, 14), code: 1009, reason: /max_frame_bytes/ },
    { name: 'a 64-bit length with its top bit set', bytes: Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), code: 1002, reason: /top bit/ },
    { name: 'a message over max_message_bytes across its fragments', bytes: Buffer.concat([frame(0x2, Buffer.alloc(1 << 20), { fin: false }), frame(0x0, Buffer.alloc(1 << 20), { fin: false }), frame(0x0, Buffer.alloc(1 << 20), { fin: false }), frame(0x0, Buffer.alloc(1 << 20), { fin: false }), frame(0x0, Buffer.alloc(1))]), code: 1009, reason: /max_message_bytes/ },
    { name: 'more fragments than max_fragments', bytes: Buffer.concat([frame(0x1, 'a', { fin: false }), ...Array.from({ length: 8 }, () => frame(0x0, 'a', { fin: false }))]), code: 1008, reason: /fragments/ },
    { name: 'a continuation outside a message', bytes: frame(0x0, 'x'), code: 1002, reason: /continuation/ },
    { name: 'a new message inside a fragmented one', bytes: Buffer.concat([frame(0x1, 'a', { fin: false }), frame(0x1, 'b')]), code: 1002, reason: /new message/ },
    { name: 'a control frame over 125 bytes', bytes: frame(0x9, Buffer.alloc(126)), code: 1002, reason: /125/ },
    { name: 'a fragmented control frame', bytes: frame(0x9, 'x', { fin: false }), code: 1002, reason: /fragmented control/ },
    { name: 'a reserved opcode', bytes: frame(0x3, 'x'), code: 1002, reason: /reserved opcode 3/ },
    { name: 'RSV1 without an extension', bytes: frame(0x1, 'x', { rsv1: true }), code: 1002, reason: /reserved bits/ },
    { name: 'a close frame of one byte', bytes: frame(0x8, Buffer.from([3])), code: 1002, reason: /1-byte/ },
  ];
  for (const { name, rules, bytes, code, reason } of cases) {
    it(name, () => {
      const random = seededRandom(name.length);
      for (const pieces of [[bytes], randomPieces(bytes, random)]) {
        const { violations, passed } = scan(rules ?? CLIENT, pieces);
        assert.equal(violations.length, 1, `one violation for ${name}`);
        assert.equal(violations[0]!.code, code);
        assert.match(violations[0]!.reason, reason);
        // Everything before the offending frame passed, nothing of it did.
        assert.ok(bytes.subarray(0, passed.length).equals(passed));
        assert.equal(violations[0]!.at, passed.length);
      }
    });
  }

  it('refuses an oversized frame on its header alone: the payload never has to arrive', () => {
    const header = frame(0x2, Buffer.alloc(0), { length: 2 ** 33 }).subarray(0, 14);
    const { violations, passed } = scan(CLIENT, [header]);
    assert.equal(violations[0]?.code, 1009);
    assert.equal(passed.length, 0);
  });

  it('allows RSV1 on a message\'s first frame when an extension was negotiated, never on a control frame', () => {
    const rules = { ...CLIENT, reservedBitsAllowed: true };
    assert.deepEqual(scan(rules, [frame(0x1, 'x', { rsv1: true })]).violations, []);
    assert.equal(scan(rules, [frame(0x9, 'x', { rsv1: true })]).violations[0]?.code, 1002);
  });

  it('takes a frame of exactly max_frame_bytes, and refuses one byte more', () => {
    const limit = CLIENT.maxFrameBytes;
    assert.deepEqual(scan(CLIENT, [frame(0x2, Buffer.alloc(limit))]).violations, []);
    assert.equal(scan(CLIENT, [frame(0x2, Buffer.alloc(0), { length: limit + 1 }).subarray(0, 14)]).violations[0]?.code, 1009);
  });

  it('passes nothing after a violation', () => {
    const { passed, scanner } = scan(CLIENT, [frame(0x1, 'ok'), frame(0x1, 'x', { masked: false }), frame(0x1, 'later')]);
    assert.ok(passed.equals(frame(0x1, 'ok')));
    assert.equal(scanner.stopped, true);
    assert.equal(scanner.atBoundary, true);
  });
});
