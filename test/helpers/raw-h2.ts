/**
 * A hand-rolled HTTP/2 client for attack tests: it writes frames byte by byte
 * over a net.Socket (or TLS socket), so it can send what no real client
 * would (floods, endless CONTINUATION, rapid resets). Header blocks use HPACK
 * literal fields without indexing and without Huffman (RFC 7541 §6.2.2),
 * which need no encoder state.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); the prefix bits of the first byte start as `first`. */
function hpackInteger(value: number, prefixBits: number, first = 0): number[] {
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

function hpackString(text: string): Buffer {
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
}

/** Connects, sends the preface and an empty SETTINGS, and ACKs the server's SETTINGS (unless `ackSettings: false`). */
export interface RawConnectOptions {
  readonly tls?: { ca: Buffer; servername: string };
  /** ACK the server's SETTINGS (default true). */
  readonly ackSettings?: boolean;
  /** SETTINGS_INITIAL_WINDOW_SIZE to announce in the first SETTINGS (default: none, so 65,535). */
  readonly initialWindowSize?: number;
}

export async function rawConnect(port: number, options: RawConnectOptions = {}): Promise<RawConnection> {
  const socket = options.tls
    ? tls.connect({ port, host: '127.0.0.1', ca: options.tls.ca, servername: options.tls.servername, ALPNProtocols: ['h2'] })
    : net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once(options.tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connection: RawConnection = {
    socket,
    closed,
    received: [],
    frames: [],
    goawayCode: undefined,
    send: (data) => (socket.destroyed ? false : socket.write(data)),
    close: () => socket.destroy(),
  };
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3]!;
      const flags = pending[4]!;
      if (connection.received.length < 100_000) {
        connection.received.push(type);
        connection.frames.push({ type, flags, streamId: pending.readUInt32BE(5) & 0x7fffffff });
      }
      if (type === FrameType.SETTINGS && !(flags & Flag.ACK) && options.ackSettings !== false) connection.send(frame(FrameType.SETTINGS, Flag.ACK, 0));
      if (type === FrameType.GOAWAY) connection.goawayCode ??= pending.readUInt32BE(9 + 4);
      pending = pending.subarray(9 + length);
    }
  });
  const firstSettings = Buffer.alloc(options.initialWindowSize === undefined ? 0 : 6);
  if (options.initialWindowSize !== undefined) {
    firstSettings.writeUInt16BE(0x4, 0);
    firstSettings.writeUInt32BE(options.initialWindowSize, 2);
  }
  socket.write(Buffer.concat([PREFACE, frame(FrameType.SETTINGS, 0, 0, firstSettings)]));
  return connection;
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
