/**
 * What a connection sends, batched: frames produced in one turn of the event
 * loop leave in one writev. Small frames and frame headers are packed into an
 * arena that every writer of the process shares (each takes the next bytes of
 * it and queues its own slices), so an idle connection holds no buffer; DATA
 * payloads of any size are passed by reference (the slices of what was read
 * from the other side), never copied.
 */
import type { Socket } from 'node:net';
import { FRAME_HEADER_LENGTH, FrameType } from './constants.ts';
import { HpackEncoder } from './hpack/encoder.ts';
import type { HeaderMap } from '../grpc/streams.ts';
import { Flag } from './constants.ts';

/** Arena size for packed frames; a larger header block gets a buffer of its own. */
const ARENA = 64 << 10;

/**
 * The shared arena: bytes before `at` belong to some writer's queued slices and are never written
 * again; a full arena is replaced, and freed once the sockets have written what refers to it.
 */
const arena = { buffer: Buffer.allocUnsafe(ARENA), at: 0 };
/** A turn's queue of several pieces adding up to no more than this is joined into one buffer to write. */
const JOIN_BELOW = 16 << 10;
/** Payloads below this are copied into the packed chunk rather than written by reference. */
const COPY_BELOW = 512;

export class FrameWriter {
  readonly #socket: Socket;
  /** Buffers ready to go, in order. */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /** Where the bytes reserved last go in the arena. */
  #at = 0;
  /** This writer's packed bytes not yet queued: arena[#segmentStart, #segmentEnd) of the arena #segment. */
  #segment: Buffer | undefined;
  #segmentStart = 0;
  #segmentEnd = 0;
  #scheduled = false;
  #closed = false;
  #encoder: HpackEncoder | undefined;
  /** The lowest SETTINGS_HEADER_TABLE_SIZE the peer sent (4096 until it sends one). */
  #peerHeaderTableSize = 4096;

  /** A flush is due at the end of this turn of the event loop. */
  get scheduled(): boolean {
    return this.#scheduled;
  }

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes waiting in the socket's own buffer: the peer is not reading when this grows. */
  get socketBacklog(): number {
    return this.#socket.writableLength;
  }

  /** Bytes written and not yet taken by the kernel: the socket's buffer and what waits for this turn's flush. */
  get backlog(): number {
    const unsealed = this.#segment === undefined ? 0 : this.#segmentEnd - this.#segmentStart;
    return this.#socket.writableLength + this.#queuedBytes + unsealed;
  }

  /** Frame header (9 bytes) into the packed chunk. */
  header(length: number, type: number, flags: number, streamId: number): void {
    writeFrameHeader(this.#room(FRAME_HEADER_LENGTH), this.#at, length, type, flags, streamId);
    this.#at += FRAME_HEADER_LENGTH;
  }

  /** A DATA frame of `payload` (the caller keeps it within the peer's frame size and window). */
  data(streamId: number, payload: Buffer, endStream: boolean): void {
    this.header(payload.length, FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId);
    this.#payload(payload);
  }

  /** HEADERS (+ CONTINUATION) carrying `headers`, split at `maxFrameSize`. */
  headers(streamId: number, headers: HeaderMap, endStream: boolean, maxFrameSize: number): void {
    const encoder = (this.#encoder ??= this.#newEncoder());
    const bound = encoder.bound(headers);
    if (bound <= maxFrameSize) {
      // One pass: the block is encoded after room for its frame header, which is written once its length is known,
      // and the bytes the bound reserved beyond it go back to the arena.
      this.#room(FRAME_HEADER_LENGTH + bound);
      const start = this.#at;
      const end = encoder.encode(headers, arena.buffer, start + FRAME_HEADER_LENGTH);
      arena.at = end;
      this.#segmentEnd = end;
      writeFrameHeader(arena.buffer, start, end - start - FRAME_HEADER_LENGTH, FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId);
      this.#schedule();
      return;
    }
    const scratch = Buffer.allocUnsafe(bound);
    const length = encoder.encode(headers, scratch, 0);
    for (let offset = 0; offset < length; offset += maxFrameSize) {
      const piece = scratch.subarray(offset, Math.min(length, offset + maxFrameSize));
      const last = offset + maxFrameSize >= length;
      const type = offset === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      const flags = (last ? Flag.END_HEADERS : 0) | (offset === 0 && endStream ? Flag.END_STREAM : 0);
      this.header(piece.length, type, flags, streamId);
      this.#payload(piece);
    }
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE, for the HPACK encoder. */
  setPeerHeaderTableSize(size: number): void {
    this.#peerHeaderTableSize = Math.min(this.#peerHeaderTableSize, size);
    this.#encoder?.setPeerTableSize(size);
  }

  /** Made with the first header block: an idle connection keeps no table. */
  #newEncoder(): HpackEncoder {
    const encoder = new HpackEncoder();
    encoder.setPeerTableSize(this.#peerHeaderTableSize);
    return encoder;
  }

  rstStream(streamId: number, code: number): void {
    this.header(4, FrameType.RST_STREAM, 0, streamId);
    this.#uint32(code);
  }

  windowUpdate(streamId: number, increment: number): void {
    this.header(4, FrameType.WINDOW_UPDATE, 0, streamId);
    this.#uint32(increment);
  }

  settings(values: readonly (readonly [number, number])[]): void {
    this.header(values.length * 6, FrameType.SETTINGS, 0, 0);
    for (const [id, value] of values) {
      const out = this.#room(6);
      out.writeUInt16BE(id, this.#at);
      out.writeUInt32BE(value, this.#at + 2);
      this.#at += 6;
    }
    this.#schedule();
  }

  settingsAck(): void {
    this.header(0, FrameType.SETTINGS, Flag.ACK, 0);
    this.#schedule();
  }

  ping(payload: Buffer, ack: boolean): void {
    this.header(8, FrameType.PING, ack ? Flag.ACK : 0, 0);
    this.#payload(payload);
  }

  goAway(lastStreamId: number, code: number, debug?: string): void {
    const debugBytes = debug === undefined ? 0 : Buffer.byteLength(debug);
    this.header(8 + debugBytes, FrameType.GOAWAY, 0, 0);
    this.#uint32(lastStreamId & 0x7fffffff);
    this.#uint32(code);
    if (debug !== undefined) this.#payload(Buffer.from(debug));
  }

  /** Raw bytes, as they are (the connection preface). */
  raw(bytes: Buffer): void {
    this.#payload(bytes);
  }

  /** Sends what is queued now, in one writev. */
  flush(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    this.#seal();
    const queue = this.#queue;
    if (queue.length === 0) return;
    const bytes = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (queue.length === 1) {
      socket.write(queue[0]!);
      return;
    }
    // Small pieces (arena slices between other writers' ones, short payloads) go as one buffer: copying
    // a few KiB costs less than the bookkeeping Node's stream does per chunk of a corked write.
    if (bytes <= JOIN_BELOW) {
      socket.write(Buffer.concat(queue, bytes));
      return;
    }
    socket.cork();
    for (const buffer of queue) socket.write(buffer);
    socket.uncork();
  }

  /** Nothing more is sent (the socket is gone or going). */
  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  #uint32(value: number): void {
    const out = this.#room(4);
    const at = this.#at;
    out[at] = (value >>> 24) & 0xff;
    out[at + 1] = (value >>> 16) & 0xff;
    out[at + 2] = (value >>> 8) & 0xff;
    out[at + 3] = value & 0xff;
    this.#at += 4;
    this.#schedule();
  }

  #payload(payload: Buffer): void {
    if (payload.length < COPY_BELOW) {
      const out = this.#room(payload.length);
      payload.copy(out, this.#at);
      this.#at += payload.length;
    } else {
      this.#seal();
      this.#queue.push(payload);
      this.#queuedBytes += payload.length;
    }
    this.#schedule();
  }

  /**
   * Reserves `bytes` of the arena for this writer (to be written at #at) and returns the arena.
   * Consecutive reservations extend one slice; another writer's in between starts a new one.
   */
  #room(bytes: number): Buffer {
    if (this.#segment !== arena.buffer || this.#segmentEnd !== arena.at) this.#seal();
    if (arena.at + bytes > arena.buffer.length) {
      this.#seal();
      arena.buffer = Buffer.allocUnsafe(Math.max(ARENA, bytes));
      arena.at = 0;
    }
    if (this.#segment === undefined) {
      this.#segment = arena.buffer;
      this.#segmentStart = arena.at;
    }
    this.#at = arena.at;
    arena.at += bytes;
    this.#segmentEnd = arena.at;
    return arena.buffer;
  }

  /** Queues the packed bytes reserved since the last seal. */
  #seal(): void {
    const segment = this.#segment;
    if (segment === undefined) return;
    this.#segment = undefined;
    if (this.#segmentEnd <= this.#segmentStart) return;
    this.#queue.push(segment.subarray(this.#segmentStart, this.#segmentEnd));
    this.#queuedBytes += this.#segmentEnd - this.#segmentStart;
  }

  /**
   * Flushes once the event loop has run every I/O callback of this turn: what all the reads of the
   * turn produced for this socket leaves in one write. A system call per write, not per frame or per
   * read, is most of what a proxy saves (they were a third of its CPU when each read flushed).
   */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(flushWriter, this);
  }
}

function writeFrameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  // Byte by byte: Buffer's writeUInt32BE checks and boxes its arguments, per frame.
  out[at + 5] = (streamId >>> 24) & 0x7f;
  out[at + 6] = (streamId >>> 16) & 0xff;
  out[at + 7] = (streamId >>> 8) & 0xff;
  out[at + 8] = streamId & 0xff;
}

function flushWriter(writer: FrameWriter): void {
  if (writer.scheduled) writer.flush();
}
