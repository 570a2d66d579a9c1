/**
 * Does the `ws` library's frame parser fit a proxy that checks frames at
 * their boundaries and passes payloads through? Measured here against
 * Switchyard's scanner (src/websocket/frame-scanner.ts), fed the same bytes:
 *
 * 1. one masked 16 MiB binary frame in 64 KiB reads: what each holds before
 *    it lets anything through, and when it first lets something through;
 * 2. 200,000 masked 100-byte messages: CPU per message.
 *
 *   npx node bench/websocket-parser.ts
 *
 * docs/websocket.md ("Why not ws's parser") quotes its output.
 */
import * as ws from 'ws';
import { FrameScanner, type FrameSink } from '../src/websocket/frame-scanner.ts';

// ws exports its parser (for its own use and tests); @types/ws does not describe it.
const Receiver = (ws as unknown as { Receiver: unknown }).Receiver as new (options: object) => {
  write(chunk: Buffer, encoding: string, callback: () => void): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  _bufferedBytes: number;
};

const READ = 64 << 10;

function maskedFrame(payload: Buffer, opcode = 0x2): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length]) : length < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), bigLength(length)]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const masked = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, key, masked]);
}

function bigLength(length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(length));
  return b;
}

function reads(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += READ) out.push(bytes.subarray(offset, offset + READ));
  return out;
}

function wsLargeFrame(chunks: Buffer[]): { heldMax: number; firstOutputAfterRead: number | undefined } {
  const receiver = new Receiver({ isServer: true, maxPayload: 0, binaryType: 'nodebuffer', extensions: {}, skipUTF8Validation: true, allowSynchronousEvents: true });
  let heldMax = 0;
  let firstOutputAfterRead: number | undefined;
  let index = 0;
  receiver.on('message', () => { firstOutputAfterRead ??= index; });
  for (const chunk of chunks) {
    index++;
    receiver.write(chunk, 'buffer', () => {});
    heldMax = Math.max(heldMax, receiver._bufferedBytes);
  }
  return { heldMax, firstOutputAfterRead };
}

function scannerLargeFrame(chunks: Buffer[]): { heldMax: number; firstOutputAfterRead: number | undefined; passes: number } {
  let passes = 0;
  let passed = 0;
  let fed = 0;
  let heldMax = 0;
  let firstOutputAfterRead: number | undefined;
  let index = 0;
  const sink: FrameSink = {
    pass: (bytes) => {
      passes++;
      passed += bytes.length;
      firstOutputAfterRead ??= index;
    },
    boundary: () => {},
    violation: () => {},
    wantsBoundary: false,
  };
  const scanner = new FrameScanner({ masked: true, reservedBitsAllowed: false, maxFrameBytes: 1 << 30, maxMessageBytes: 1 << 30, maxFragments: 1024 }, sink);
  for (const chunk of chunks) {
    index++;
    fed += chunk.length;
    scanner.feed(chunk);
    heldMax = Math.max(heldMax, fed - passed);
  }
  return { heldMax, firstOutputAfterRead, passes };
}

function cpuPerMessage(run: () => void, messages: number): number {
  const start = process.cpuUsage();
  run();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / messages;
}

const large = reads(maskedFrame(Buffer.alloc(16 << 20, 7)));
const held = wsLargeFrame(large);
const scanner = scannerLargeFrame(large);
process.stdout.write(`one 16 MiB masked frame in ${large.length} reads of 64 KiB:\n`);
process.stdout.write(`  ws Receiver: held up to ${(held.heldMax / 2 ** 20).toFixed(1)} MiB; first output after read ${held.firstOutputAfterRead} of ${large.length} (the whole frame, unmasked in place)\n`);
process.stdout.write(`  FrameScanner: held at most ${scanner.heldMax} bytes between reads; first output after read ${scanner.firstOutputAfterRead}; ${scanner.passes} slices passed on, none copied\n`);

const MESSAGES = 200_000;
const small = Buffer.concat(Array.from({ length: MESSAGES }, () => maskedFrame(Buffer.alloc(100, 1))));
const smallReads = reads(small);
const wsNs = cpuPerMessage(() => {
  const receiver = new Receiver({ isServer: true, maxPayload: 0, binaryType: 'nodebuffer', extensions: {}, skipUTF8Validation: true, allowSynchronousEvents: true });
  receiver.on('message', () => {});
  for (const chunk of smallReads) receiver.write(chunk, 'buffer', () => {});
}, MESSAGES);
const scanNs = cpuPerMessage(() => {
  const sink: FrameSink = { pass: () => {}, boundary: () => {}, violation: () => {}, wantsBoundary: false };
  const s = new FrameScanner({ masked: true, reservedBitsAllowed: false, maxFrameBytes: 1 << 20, maxMessageBytes: 1 << 20, maxFragments: 1024 }, sink);
  for (const chunk of smallReads) s.feed(chunk);
}, MESSAGES);
process.stdout.write(`${MESSAGES.toLocaleString('en-US')} masked 100-byte messages, CPU per message: ws Receiver ${wsNs.toFixed(0)} ns, FrameScanner ${scanNs.toFixed(0)} ns\n`);
