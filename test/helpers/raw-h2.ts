/**
 * A hand-rolled HTTP/2 client for attack tests: it writes frames byte by byte
 * over a net.Socket (or TLS socket), so it can send what no real client
 * would (floods, endless CONTINUATION, rapid resets). Header blocks use HPACK
 * literal fields without indexing and without Huffman (RFC 7541 §6.2.2),
 * which need no encoder state.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

export const FrameType = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** RFC 9113 §7, written out here so tests state the code they expect without importing the engine. */
export const ErrorCode = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4, STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9, CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb,
} as const;
/** RFC 9113 §6.5.2. */
export const Setting = { HEADER_TABLE_SIZE: 0x1, ENABLE_PUSH: 0x2, MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4, MAX_FRAME_SIZE: 0x5, MAX_HEADER_LIST_SIZE: 0x6 } as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); the prefix bits of the first byte start as `first`. */
export function hpackInteger(value: number, prefixBits: number, first = 0): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const bytes = [first | max];
  value -= max;
  while (value >= 128) {
    bytes.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

/** An HPACK string literal, not Huffman-coded (RFC 7541 §5.2). */
export function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7)), bytes]);
}

/** A literal field with incremental indexing and a new name (RFC 7541 §6.2.1): the decoder adds it to its dynamic table. */
export function indexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** An indexed field (RFC 7541 §6.1): one byte for indexes below 127; dynamic entries start at 62. */
export function indexedField(index: number): Buffer {
  return Buffer.from(hpackInteger(index, 7, 0x80));
}

/** A header block of literal fields without indexing, new names. */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

export function grpcRequestHeaders(path = '/switchyard.demo.v1.Echo/Unary', extra: readonly (readonly [string, string])[] = []): Buffer {
  return headerBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'switchyard'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...extra,
  ]);
}

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  /** The payload's length. */
  readonly length: number;
  /** The error code of a RST_STREAM or GOAWAY. */
  readonly code?: number;
  /** The payload, kept only with `keepPayloads`. */
  readonly payload?: Buffer;
}

export interface RawConnection {
  readonly socket: net.Socket;
  /** Resolves when the socket has closed (whoever closed it). */
  readonly closed: Promise<void>;
  /** Types of the frames received so far, in order (frames parsed from the byte stream). */
  readonly received: number[];
  /** The same frames with their flags and stream ids (payloads are not kept). */
  readonly frames: ReceivedFrame[];
  /** Error code of the first GOAWAY received, if any. */
  goawayCode: number | undefined;
  /** Writes, ignoring errors from a socket the server has already closed. */
  send(data: Buffer): boolean;
  close(): void;
  /**
   * The first frame, received so far or later, that `match` accepts. Rejects when `timeoutMs` passes
   * or the socket closes first, naming `what` and the frames that did arrive.
   */
  waitForFrame(match: (frame: ReceivedFrame) => boolean, what: string, timeoutMs?: number): Promise<ReceivedFrame>;
}

/** Connects, sends the preface and an empty SETTINGS, and ACKs the server's SETTINGS (unless `ackSettings: false`). */
export interface RawConnectOptions {
  readonly tls?: { ca: Buffer; servername: string };
  /** ACK the server's SETTINGS (default true). */
  readonly ackSettings?: boolean;
  /** SETTINGS_INITIAL_WINDOW_SIZE to announce in the first SETTINGS (default: none, so 65,535). */
  readonly initialWindowSize?: number;
  /** More entries of the first SETTINGS, after initialWindowSize. */
  readonly settings?: readonly (readonly [number, number])[];
  /** Send the preface and the first SETTINGS (default true); false: connect only, the test writes every byte (no SETTINGS ACK either). */
  readonly preface?: boolean;
  /** Keep each frame's payload in `frames` (default false: flood tests receive many). */
  readonly keepPayloads?: boolean;
}

export async function rawConnect(port: number, options: RawConnectOptions = {}): Promise<RawConnection> {
  const socket = options.tls
    ? tls.connect({ port, host: '127.0.0.1', ca: options.tls.ca, servername: options.tls.servername, ALPNProtocols: ['h2'] })
    : net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once(options.tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  const connection = readFrames(socket, { ...options, ackSettings: options.ackSettings !== false && options.preface !== false });
  if (options.preface === false) return connection;
  const entries = [...(options.initialWindowSize === undefined ? [] : [[Setting.INITIAL_WINDOW_SIZE, options.initialWindowSize] as const]), ...(options.settings ?? [])];
  socket.write(Buffer.concat([PREFACE, settingsFrame(entries)]));
  return connection;
}

export interface ReadFramesOptions {
  /** ACK every SETTINGS (without ACK) that arrives. */
  readonly ackSettings: boolean;
  readonly keepPayloads?: boolean | undefined;
  /** The peer is a client: its first 24 bytes are the connection preface, not a frame. */
  readonly afterPreface?: boolean | undefined;
  /** Told of each frame after it was recorded. */
  readonly onFrame?: ((frame: ReceivedFrame) => void) | undefined;
}

/** Parses the frames `socket` receives into a RawConnection (either side of a connection). */
export function readFrames(socket: net.Socket, options: ReadFramesOptions): RawConnection {
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  /** Waiters of waitForFrame: each returns true once it is done. */
  let waiters: ((frame: ReceivedFrame | undefined) => boolean)[] = [];
  const connection: RawConnection = {
    socket,
    closed,
    received: [],
    frames: [],
    goawayCode: undefined,
    send: (data) => (socket.destroyed ? false : socket.write(data)),
    close: () => socket.destroy(),
    waitForFrame: (match, what, timeoutMs = 5_000) => {
      const seen = connection.frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${describeFrames(connection.frames)}`));
        }, timeoutMs);
        const waiter = (frame: ReceivedFrame | undefined) => {
          if (frame === undefined) {
            clearTimeout(timer);
            reject(new Error(`the connection closed before ${what}; received: ${describeFrames(connection.frames)}`));
            return true;
          }
          if (!match(frame)) return false;
          clearTimeout(timer);
          resolve(frame);
          return true;
        };
        waiters.push(waiter);
      });
    },
  };
  socket.once('close', () => {
    const pending = waiters;
    waiters = [];
    for (const waiter of pending) waiter(undefined);
  });
  let prefaceLeft = options.afterPreface ? PREFACE.length : 0;
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    if (prefaceLeft > 0) {
      const skipped = Math.min(prefaceLeft, pending.length);
      prefaceLeft -= skipped;
      pending = pending.subarray(skipped);
    }
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3]!;
      const flags = pending[4]!;
      if (connection.received.length < 100_000) {
        const code = (type === FrameType.RST_STREAM && length >= 4) ? pending.readUInt32BE(9) : (type === FrameType.GOAWAY && length >= 8) ? pending.readUInt32BE(13) : undefined;
        const received: ReceivedFrame = {
          type,
          flags,
          streamId: pending.readUInt32BE(5) & 0x7fffffff,
          length,
          ...(code !== undefined && { code }),
          ...(options.keepPayloads && { payload: Buffer.from(pending.subarray(9, 9 + length)) }),
        };
        connection.received.push(type);
        connection.frames.push(received);
        if (waiters.length > 0) waiters = waiters.filter((waiter) => !waiter(received));
        options.onFrame?.(received);
      }
      if (type === FrameType.SETTINGS && !(flags & Flag.ACK) && options.ackSettings) connection.send(frame(FrameType.SETTINGS, Flag.ACK, 0));
      if (type === FrameType.GOAWAY) connection.goawayCode ??= pending.readUInt32BE(9 + 4);
      pending = pending.subarray(9 + length);
    }
  });
  return connection;
}

const FRAME_NAMES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'];

/** Frames as a short list for failure messages: "SETTINGS(0) HEADERS(1, END_STREAM) RST_STREAM(1, code 1)". */
export function describeFrames(frames: readonly ReceivedFrame[]): string {
  if (frames.length === 0) return 'nothing';
  const shown = frames.slice(-20).map((f) => {
    const parts = [String(f.streamId)];
    if (f.type === FrameType.SETTINGS || f.type === FrameType.PING) {
      if (f.flags & Flag.ACK) parts.push('ACK');
    } else if (f.flags & Flag.END_STREAM) {
      parts.push('END_STREAM');
    }
    if (f.code !== undefined) parts.push(`code ${f.code}`);
    if (f.type === FrameType.GOAWAY && f.payload && f.payload.length > 8) parts.push(JSON.stringify(f.payload.toString('latin1', 8, 200)));
    return `${FRAME_NAMES[f.type] ?? `type ${f.type}`}(${parts.join(', ')})`;
  });
  return (frames.length > 20 ? `… ${frames.length - 20} more, ` : '') + shown.join(' ');
}

/** A SETTINGS frame with these entries (or an ACK, empty). */
export function settingsFrame(entries: readonly (readonly [number, number])[], ack = false): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value >>> 0, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, payload);
}

/** A WINDOW_UPDATE frame (the reserved bit is left clear). */
export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment >>> 0);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

/** A PRIORITY frame: `dependency` (exclusive or not) and a weight. */
export function priorityFrame(streamId: number, dependency: number, weight = 15, exclusive = false): Buffer {
  const payload = Buffer.alloc(5);
  payload.writeUInt32BE(((exclusive ? 0x80000000 : 0) | dependency) >>> 0);
  payload[4] = weight;
  return frame(FrameType.PRIORITY, 0, streamId, payload);
}

/** A GOAWAY frame. */
export function goAwayFrame(lastStreamId: number, code: number, streamId = 0): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, streamId, payload);
}

/** A PING frame with this 8-byte payload. */
export function pingFrame(opaque: Buffer, ack = false): Buffer {
  return frame(FrameType.PING, ack ? Flag.ACK : 0, 0, opaque);
}

export function rstStream(streamId: number, code = 0x8 /* CANCEL */): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function ping(opaque = 0): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(opaque >>> 0, 4);
  return frame(FrameType.PING, 0, 0, payload);
}

/** A SETTINGS frame with one entry (SETTINGS_INITIAL_WINDOW_SIZE = 65535: harmless, but each must be ACKed). */
export function settings(): Buffer {
  const payload = Buffer.alloc(6);
  payload.writeUInt16BE(0x4, 0);
  payload.writeUInt32BE(65_535, 2);
  return frame(FrameType.SETTINGS, 0, 0, payload);
}
