/**
 * What the HTTP/2 conformance tests (test/e2e/http2-conformance-*.test.ts) share:
 * a connection that has done the SETTINGS handshake, the reactions RFC 9113
 * asks for stated as assertions (a connection error is GOAWAY with a code and
 * then the socket closing; a stream error is RST_STREAM with a code while the
 * connection keeps answering PINGs), requests to the Echo service written as
 * raw frames, and a reader for the proxy's answers.
 *
 * The reader decodes only what Switchyard's encoder sends (static and dynamic
 * table indexes, plain literals, table size updates, no Huffman: src/http2/
 * hpack/encoder.ts), and throws on anything else, so a change there shows up
 * here. It is written apart from the engine's decoder, for the same reason.
 */
import { randomBytes } from 'node:crypto';
import { STATIC_TABLE } from '../../src/http2/hpack/static-table.ts';
import {
  describeFrames, Flag, frame, FrameType, grpcRequestHeaders, pingFrame, rawConnect, type RawConnectOptions, type RawConnection, type ReceivedFrame,
} from './raw-h2.ts';

/** Long enough for a loaded 2-core machine; a correct reaction takes milliseconds. */
const REACTION_MS = 5_000;

/**
 * Connects, sends the preface and SETTINGS, and waits for the server's SETTINGS and its ACK of ours
 * (h2spec's handshake). Payloads are kept.
 */
export async function handshake(port: number, options: RawConnectOptions = {}): Promise<RawConnection> {
  const connection = await rawConnect(port, { keepPayloads: true, ...options });
  await connection.waitForFrame((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0, "the server's SETTINGS");
  await connection.waitForFrame((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, 'the ACK of our SETTINGS');
  return connection;
}

/** The value of `id` in the server's first SETTINGS, if it sent one. */
export function serverSetting(connection: RawConnection, id: number): number | undefined {
  const settings = connection.frames.find((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
  const payload = settings?.payload;
  if (!payload) return undefined;
  for (let at = 0; at + 6 <= payload.length; at += 6) if (payload.readUInt16BE(at) === id) return payload.readUInt32BE(at + 2);
  return undefined;
}

/** A connection error (§5.4.1): GOAWAY with `code`, and then the server closes the connection. */
export async function expectConnectionError(connection: RawConnection, code: number): Promise<void> {
  const goAway = await connection.waitForFrame((f) => f.type === FrameType.GOAWAY, `GOAWAY with code ${code}`, REACTION_MS);
  if (goAway.code !== code) throw new Error(`expected GOAWAY with code ${code}, got code ${goAway.code}; received: ${describeFrames(connection.frames)}`);
  await expectClosed(connection);
}

/** The server closes the connection within the reaction time. */
export async function expectClosed(connection: RawConnection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the connection is still open after ${REACTION_MS} ms; received: ${describeFrames(connection.frames)}`)), REACTION_MS);
  });
  try {
    await Promise.race([connection.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A stream error (§5.4.2): RST_STREAM with `code` on `streamId`, and the connection goes on (it answers a PING). */
export async function expectStreamError(connection: RawConnection, streamId: number, code: number): Promise<void> {
  const reset = await connection.waitForFrame((f) => f.type === FrameType.RST_STREAM && f.streamId === streamId, `RST_STREAM with code ${code} on stream ${streamId}`, REACTION_MS);
  if (reset.code !== code) throw new Error(`expected RST_STREAM with code ${code} on stream ${streamId}, got code ${reset.code}; received: ${describeFrames(connection.frames)}`);
  await expectAlive(connection);
}

/**
 * The connection is open and working: a PING is answered with an ACK carrying the same payload, and no
 * GOAWAY came before it.
 */
export async function expectAlive(connection: RawConnection): Promise<void> {
  const opaque = randomBytes(8);
  connection.send(pingFrame(opaque));
  await connection.waitForFrame((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload!.equals(opaque), 'the ACK of our PING', REACTION_MS);
  const goAway = connection.frames.find((f) => f.type === FrameType.GOAWAY);
  if (goAway) throw new Error(`the server sent GOAWAY (code ${goAway.code}) on a connection that should have been left alone; received: ${describeFrames(connection.frames)}`);
}

/** No frame arrives on `streamId` for `ms` from now: used where the RFC says the server sends nothing more. */
export async function expectNothingMoreOn(connection: RawConnection, streamId: number, ms = 100): Promise<void> {
  const from = connection.frames.length;
  await new Promise((resolve) => setTimeout(resolve, ms));
  const later = connection.frames.slice(from).filter((f) => f.streamId === streamId);
  if (later.length > 0) throw new Error(`expected nothing more on stream ${streamId}; received: ${describeFrames(connection.frames)}`);
}

// Requests to the Echo service.

const ECHO = '/switchyard.demo.v1.Echo';

/** An EchoRequest (src/demo/echo.proto) in protobuf: payload (field 1), delay_ms (field 2), response_bytes (field 6). */
export function echoRequest(options: { payload?: Buffer; delayMs?: number; responseBytes?: number } = {}): Buffer {
  const parts: Buffer[] = [];
  if (options.payload && options.payload.length > 0) parts.push(Buffer.from([0x0a]), varint(options.payload.length), options.payload);
  if (options.delayMs) parts.push(Buffer.from([0x10]), varint(options.delayMs));
  if (options.responseBytes) parts.push(Buffer.from([0x30]), varint(options.responseBytes));
  return Buffer.concat(parts);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** A gRPC length-prefixed message. */
export function grpcMessage(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** The header block of a request for an Echo method (literals, no indexing). */
export function echoHeaders(method: 'Unary' | 'ClientStream' | 'ServerStream' | 'Bidi' = 'Unary', extra: readonly (readonly [string, string])[] = []): Buffer {
  return grpcRequestHeaders(`${ECHO}/${method}`, extra);
}

/** HEADERS frame options: flags and the optional padding and priority fields (§6.2). */
export interface HeadersOptions {
  readonly endStream?: boolean;
  /** Default true. */
  readonly endHeaders?: boolean;
  /** Pad length: PADDED is set and this many zero bytes follow the block. */
  readonly padLength?: number;
  /** PRIORITY is set with this stream dependency (weight 15). */
  readonly dependsOn?: number;
}

export function headersFrame(streamId: number, block: Buffer, options: HeadersOptions = {}): Buffer {
  let flags = (options.endStream ? Flag.END_STREAM : 0) | (options.endHeaders === false ? 0 : Flag.END_HEADERS);
  const parts: Buffer[] = [];
  if (options.padLength !== undefined) {
    flags |= Flag.PADDED;
    parts.push(Buffer.from([options.padLength]));
  }
  if (options.dependsOn !== undefined) {
    flags |= Flag.PRIORITY;
    const priority = Buffer.alloc(5);
    priority.writeUInt32BE(options.dependsOn);
    priority[4] = 15;
    parts.push(priority);
  }
  parts.push(block);
  if (options.padLength !== undefined) parts.push(Buffer.alloc(options.padLength));
  return frame(FrameType.HEADERS, flags, streamId, Buffer.concat(parts));
}

export function dataFrame(streamId: number, payload: Buffer, endStream = false, padLength?: number): Buffer {
  if (padLength === undefined) return frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, payload);
  return frame(FrameType.DATA, Flag.PADDED | (endStream ? Flag.END_STREAM : 0), streamId, Buffer.concat([Buffer.from([padLength]), payload, Buffer.alloc(padLength)]));
}

export function continuationFrame(streamId: number, fragment: Buffer, endHeaders = true): Buffer {
  return frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, fragment);
}

/** A whole unary call on `streamId`: HEADERS, then one message in DATA with END_STREAM. */
export function unaryCall(streamId: number, request: Buffer = echoRequest(), extra: readonly (readonly [string, string])[] = []): Buffer {
  return Buffer.concat([headersFrame(streamId, echoHeaders('Unary', extra)), dataFrame(streamId, grpcMessage(request), true)]);
}

// Reading answers.

export interface Answer {
  readonly headers: Map<string, string>;
  /** Trailers; for a trailers-only answer, the same map as `headers`. */
  readonly trailers: Map<string, string>;
  /** The DATA payloads, concatenated. */
  readonly body: Buffer;
}

/** Waits for the answer on `streamId` to end (END_STREAM) and decodes it. Fails on a RST_STREAM or GOAWAY first. */
export async function readAnswer(connection: RawConnection, streamId: number): Promise<Answer> {
  const last = await connection.waitForFrame(
    (f) => (f.streamId === streamId && ((f.flags & Flag.END_STREAM) !== 0 && (f.type === FrameType.HEADERS || f.type === FrameType.DATA) || f.type === FrameType.RST_STREAM)) || f.type === FrameType.GOAWAY,
    `the answer on stream ${streamId}`,
    REACTION_MS,
  );
  if (last.type === FrameType.RST_STREAM || last.type === FrameType.GOAWAY) throw new Error(`stream ${streamId} was not answered; received: ${describeFrames(connection.frames)}`);
  const decoded = blocksOf(connection);
  const blocks = connection.frames.filter((f) => f.streamId === streamId && f.type === FrameType.HEADERS).map((f) => decoded.get(f)!);
  const body = Buffer.concat(connection.frames.filter((f) => f.streamId === streamId && f.type === FrameType.DATA).map((f) => f.payload!));
  return { headers: blocks[0]!, trailers: blocks.at(-1)!, body };
}

/** The gRPC status of an answer, as a number. */
export function grpcStatus(answer: Answer): number {
  return Number(answer.trailers.get('grpc-status'));
}

/** The header block fragment of a HEADERS frame the proxy sent (it sends no padding or priority, but allow for them). */
function headerFragment(f: ReceivedFrame): Buffer {
  let payload = f.payload!;
  if (f.flags & Flag.PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
  if (f.flags & Flag.PRIORITY) payload = payload.subarray(5);
  if ((f.flags & Flag.END_HEADERS) === 0) throw new Error('the proxy split a header block over CONTINUATION frames; readAnswer does not join them');
  return payload;
}

/**
 * Reads the header blocks one connection carries from the proxy, in the order they were sent (the
 * dynamic table makes each depend on those before it): indexes into the static and dynamic tables,
 * literals with, without and never indexed, and table size updates (RFC 7541 §4, §6). Strings must
 * be plain: the proxy's encoder never uses Huffman coding. A repeated field keeps its last value.
 */
export class HpackReader {
  /** Newest first, as indexes count them. */
  readonly #table: [string, string][] = [];
  #size = 0;
  #maxSize = 4096;

  read(block: Buffer): Map<string, string> {
    const fields = new Map<string, string>();
    let at = 0;
    const integer = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let value = block[at++]! & max;
      if (value < max) return value;
      let shift = 0;
      for (;;) {
        const byte = block[at++]!;
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (block[at]! & 0x80) throw new Error('unexpected Huffman-coded string from the proxy');
      const length = integer(7);
      const text = block.toString('latin1', at, at + length);
      at += length;
      return text;
    };
    const entry = (index: number): readonly [string, string] => {
      const found = index === 0 ? undefined : index < STATIC_TABLE.length ? STATIC_TABLE[index] : this.#table[index - STATIC_TABLE.length];
      if (!found) throw new Error(`index ${index} is in neither table`);
      return found;
    };
    while (at < block.length) {
      const first = block[at]!;
      if (first & 0x80) {
        const [name, value] = entry(integer(7));
        fields.set(name, value);
      } else if ((first & 0xe0) === 0x20) {
        this.#maxSize = integer(5);
        this.#evict(0);
      } else {
        const indexing = (first & 0xc0) === 0x40;
        const index = integer(indexing ? 6 : 4);
        const name = index === 0 ? string() : entry(index)[0];
        const value = string();
        fields.set(name, value);
        if (indexing) this.#insert(name, value);
      }
    }
    return fields;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.#evict(size);
    if (size > this.#maxSize) return;
    this.#table.unshift([name, value]);
    this.#size += size;
  }

  #evict(room: number): void {
    while (this.#table.length > 0 && this.#size + room > this.#maxSize) {
      const [name, value] = this.#table.pop()!;
      this.#size -= name.length + value.length + 32;
    }
  }
}

/** Each connection's reader, and the header blocks it has read so far, by frame. */
const readers = new WeakMap<RawConnection, { reader: HpackReader; next: number; blocks: Map<ReceivedFrame, Map<string, string>> }>();

/** The decoded header block of each HEADERS frame the proxy sent on `connection`, read in order up to now. */
function blocksOf(connection: RawConnection): Map<ReceivedFrame, Map<string, string>> {
  let state = readers.get(connection);
  if (!state) readers.set(connection, (state = { reader: new HpackReader(), next: 0, blocks: new Map() }));
  for (; state.next < connection.frames.length; state.next++) {
    const f = connection.frames[state.next]!;
    if (f.type === FrameType.HEADERS) state.blocks.set(f, state.reader.read(headerFragment(f)));
  }
  return state.blocks;
}
