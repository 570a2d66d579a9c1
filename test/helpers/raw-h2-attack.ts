/**
 * What the HTTP/2 attack tests need beyond test/helpers/raw-h2.ts: the frames
 * raw-h2 has no builder for (PRIORITY, WINDOW_UPDATE, DATA, SETTINGS with
 * given entries, an HPACK table size update), a gRPC Echo request encoded by
 * hand, a connection that waits for the server's SETTINGS before the attack
 * starts (so our SETTINGS ACK cannot land inside an attacking header block),
 * and a log of what the server answered: RST_STREAM codes per stream, the
 * GOAWAY with its last stream id and debug text, and the streams that ended.
 */
import type { Socket } from 'node:net';
import { Flag, FrameType, frame, rawConnect, type RawConnection, type RawConnectOptions } from './raw-h2.ts';

/** RFC 9113 §7. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

/** Frame types raw-h2 does not name. */
export const PRIORITY = 0x2;
export const PUSH_PROMISE = 0x5;

/** Flags raw-h2 does not name. */
export const PADDED = 0x8;
export const PRIORITY_FLAG = 0x20;

/** Settings identifiers (RFC 9113 §6.5.2). */
export const Setting = { HEADER_TABLE_SIZE: 0x1, MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4, MAX_FRAME_SIZE: 0x5 } as const;

export function priority(streamId: number, dependsOn = 0, weight = 16): Buffer {
  const payload = Buffer.alloc(5);
  payload.writeUInt32BE(dependsOn & 0x7fffffff, 0);
  payload.writeUInt8(weight - 1, 4);
  return frame(PRIORITY, 0, streamId, payload);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment >>> 0, 0);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function data(streamId: number, payload: Buffer = Buffer.alloc(0), flags = 0): Buffer {
  return frame(FrameType.DATA, flags, streamId, payload);
}

export function settingsWith(entries: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value >>> 0, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

/** An HPACK dynamic table size update (RFC 7541 §6.3): 001 and a 5-bit prefix integer. */
export function tableSizeUpdate(size: number): Buffer {
  const bytes = [0x20 | Math.min(size, 31)];
  if (size >= 31) {
    let rest = size - 31;
    while (rest >= 128) {
      bytes.push((rest % 128) + 128);
      rest = Math.floor(rest / 128);
    }
    bytes.push(rest);
  }
  return Buffer.from(bytes);
}

/** HEADERS, then CONTINUATION frames of at most `maxFrame` bytes, for a header block of any size. */
export function headerFrames(streamId: number, block: Buffer, endStream: boolean, maxFrame = 16_384): Buffer {
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length || offset === 0; offset += maxFrame) {
    const last = offset + maxFrame >= block.length;
    const first = offset === 0;
    const flags = (last ? Flag.END_HEADERS : 0) | (first && endStream ? Flag.END_STREAM : 0);
    frames.push(frame(first ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId, block.subarray(offset, offset + maxFrame)));
  }
  return Buffer.concat(frames);
}

export interface EchoRequestFields {
  readonly payload?: Buffer;
  readonly delayMs?: number;
  readonly count?: number;
  readonly responseBytes?: number;
}

/** An Echo request (src/demo/echo.proto) as a gRPC message: the 5-byte prefix and the protobuf, encoded by hand. */
export function echoRequestMessage(fields: EchoRequestFields = {}): Buffer {
  const parts: Buffer[] = [];
  if (fields.payload) parts.push(Buffer.from([0x0a, ...varint(fields.payload.length)]), fields.payload);
  if (fields.delayMs) parts.push(Buffer.from([0x10, ...varint(fields.delayMs)]));
  if (fields.count) parts.push(Buffer.from([0x28, ...varint(fields.count)]));
  if (fields.responseBytes) parts.push(Buffer.from([0x30, ...varint(fields.responseBytes)]));
  const message = Buffer.concat(parts);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

export interface GoAwayReceived {
  readonly lastStreamId: number;
  readonly code: number;
  readonly debug: string;
}

/** What the server said, beyond the frame types raw-h2 records. */
export interface ServerAnswers {
  /** RST_STREAM code per stream (the last one). */
  readonly resets: Map<number, number>;
  /** Streams that got a frame with END_STREAM from the server. */
  readonly ended: Set<number>;
  /** Streams that got a HEADERS frame from the server. */
  readonly answered: Set<number>;
  /** DATA bytes received per stream. */
  readonly dataBytes: Map<number, number>;
  /** The first GOAWAY. */
  goAway: GoAwayReceived | undefined;
  /** SETTINGS frames (not ACKs) received. */
  settingsReceived: number;
}

export type AttackConnection = RawConnection & { readonly answers: ServerAnswers };

/** Parses the server's frames on `socket` (again, for a RawConnection), keeping the payload fields raw-h2 drops. */
export function watchAnswers(socket: Socket): ServerAnswers {
  const answers: ServerAnswers = { resets: new Map(), ended: new Set(), answered: new Set(), dataBytes: new Map(), goAway: undefined, settingsReceived: 0 };
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3]!;
      const flags = pending[4]!;
      const streamId = pending.readUInt32BE(5) & 0x7fffffff;
      const payload = pending.subarray(9, 9 + length);
      if (type === FrameType.RST_STREAM && length === 4) answers.resets.set(streamId, payload.readUInt32BE(0));
      if (type === FrameType.GOAWAY && length >= 8) {
        answers.goAway ??= { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4), debug: payload.subarray(8).toString() };
      }
      if (type === FrameType.SETTINGS && (flags & Flag.ACK) === 0) answers.settingsReceived++;
      if (type === FrameType.HEADERS) answers.answered.add(streamId);
      if (type === FrameType.DATA) answers.dataBytes.set(streamId, (answers.dataBytes.get(streamId) ?? 0) + length);
      if ((type === FrameType.HEADERS || type === FrameType.DATA) && (flags & Flag.END_STREAM) !== 0) answers.ended.add(streamId);
      pending = pending.subarray(9 + length);
    }
  });
  return answers;
}

/**
 * rawConnect, then waits until the server's SETTINGS arrived (and were ACKed, unless
 * `ackSettings: false`), so that what the test sends next is not interleaved with that ACK.
 */
export async function connectReady(port: number, options: RawConnectOptions = {}): Promise<AttackConnection> {
  const connection = await rawConnect(port, options);
  const answers = watchAnswers(connection.socket);
  const deadline = Date.now() + 5_000;
  while (answers.settingsReceived === 0) {
    if (connection.socket.destroyed) throw new Error('the server closed the connection before its SETTINGS');
    if (Date.now() > deadline) throw new Error('no SETTINGS from the server within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return Object.assign(connection, { answers });
}

/**
 * Writes `batch(i)` for i = 0, 1, … until the server closes the connection or `maxBatches` went
 * out; honours back-pressure, and yields between batches so that the bystander client in this same
 * process is not starved by the attacker. Returns how many batches went out.
 */
export async function flood(connection: RawConnection, batch: (i: number) => Buffer, maxBatches: number): Promise<number> {
  let sent = 0;
  for (; sent < maxBatches && !connection.socket.destroyed; sent++) {
    if (!connection.send(batch(sent))) {
      await Promise.race([new Promise((resolve) => connection.socket.once('drain', resolve)), connection.closed]);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return sent;
}

/** Resolves when the connection has closed; rejects after `withinMs`. */
export async function closedWithin(connection: RawConnection, withinMs: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connection.closed,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: the connection is still open after ${withinMs} ms`)), withinMs); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
