/**
 * One HTTP/2 connection (RFC 9113), whichever side: reading frames from the
 * socket and checking them against §4–6, settings, PING, GOAWAY, both levels
 * of flow control, header blocks (HEADERS + CONTINUATION, decoded with HPACK),
 * and the streams' life. server-connection.ts and client-connection.ts add
 * what differs: who opens streams and what they mean.
 *
 * Frames are parsed from each read in place: a DATA payload is a slice of the
 * read, handed on without a copy. Everything written while a read is handled
 * leaves in one writev (frame-writer.ts).
 */
import type { Socket } from 'node:net';
import type { HeaderMap } from '../grpc/streams.ts';
import {
  DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, ErrorCode, Flag, FRAME_HEADER_LENGTH, FrameType, Http2Error,
  MAX_FRAME_SIZE_LIMIT, MAX_WINDOW, Setting,
} from './constants.ts';
import { FrameWriter } from './frame-writer.ts';
import { HeaderList, HpackDecoder } from './hpack/decoder.ts';
import type { StreamCore, StreamHost } from './stream.ts';
import { StreamTable } from './stream-table.ts';

/** What this side announces, and enforces whether or not the peer has acknowledged it. */
export interface LocalSettings {
  readonly maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window. */
  readonly streamWindow: number;
  /** The connection's receive window, raised from 65,535 with a WINDOW_UPDATE at the start. */
  readonly connectionWindow: number;
  readonly maxHeaderListSize: number;
  /** Header fields per block. */
  readonly maxHeaderFields: number;
  /** SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441). */
  readonly enableConnectProtocol?: boolean;
}

const EMPTY = Buffer.alloc(0);

/** A header block may be split over this many CONTINUATION frames at most. */
const MAX_CONTINUATIONS = 32;
/**
 * Recently closed streams remembered, to tell a late frame from a protocol error (§5.1): a
 * direct-mapped table by stream id (a power of two), so closing a stream writes two numbers.
 */
const RECENTLY_CLOSED = 1024;
/**
 * Entries per SETTINGS frame (nghttp2's default too). There are seven settings; each
 * INITIAL_WINDOW_SIZE entry moves the window of every open stream, so a 16 KB frame of them
 * would cost a pass over the streams for each of its 2,730 entries.
 */
const MAX_SETTINGS_ENTRIES = 32;
/** PINGs of ours awaiting their ACK. */
const MAX_OUTSTANDING_PINGS = 10;
/**
 * Bytes written that the peer has not read (beyond what the kernel took) past which no stream sends DATA,
 * and the peer's socket is not read, until the socket drains. Flow-control windows bound what a peer may be sent, but a peer that opens them
 * wide and does not read would otherwise have everything its streams are sent buffered here. The kernel's
 * own buffer keeps the path busy meanwhile.
 */
const MAX_WRITE_BACKLOG = 1 << 20;

const CONNECTION = Symbol('switchyard.http2Connection');
type OwnedSocket = Socket & { [CONNECTION]: Http2Connection };

function onSocketData(this: OwnedSocket, chunk: Buffer): void {
  this[CONNECTION].receive(chunk);
}

function onSocketError(this: OwnedSocket, error: Error): void {
  this[CONNECTION].destroy(error);
}

function onSocketClose(this: OwnedSocket): void {
  this[CONNECTION].destroy(new Error('the connection closed'));
}

function onSocketEnd(this: OwnedSocket): void {
  this[CONNECTION].destroy(new Error('the peer ended the connection'));
}

function onSocketDrain(this: OwnedSocket): void {
  this[CONNECTION].drained();
}

/** The length field of the frame header at `offset`; one past SETTINGS_MAX_FRAME_SIZE is a connection error (§4.2). */
function frameLength(data: Buffer, offset: number): number {
  const length = (data[offset]! << 16) | (data[offset + 1]! << 8) | data[offset + 2]!;
  if (length > DEFAULT_MAX_FRAME_SIZE) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds SETTINGS_MAX_FRAME_SIZE ${DEFAULT_MAX_FRAME_SIZE}`);
  return length;
}

/** Why a recently closed stream closed: what a frame arriving on it now means (§5.1 "closed"). */
const ClosedHow = { Unknown: 0, ResetByUs: 1, ResetByPeer: 2, Ended: 3 } as const;
type ClosedHow = (typeof ClosedHow)[keyof typeof ClosedHow];

export abstract class Http2Connection implements StreamHost {
  readonly socket: Socket;
  protected readonly writer: FrameWriter;
  protected readonly local: LocalSettings;
  readonly #decoder = new HpackDecoder();
  protected readonly headerList = new HeaderList();
  readonly streams = new StreamTable<StreamCore>();
  /**
   * Streams with outbound data waiting for window, in the order they will be served; a stream's
   * `queuedForWindow` says it is here. An array, not a Set, for the reason in stream-table.ts.
   */
  readonly #blocked: StreamCore[] = [];
  #flushingBlocked = false;
  /** Allocated with the first closed stream: an idle connection keeps no table. */
  #closedIds: Uint32Array | undefined;
  #closedHow: Uint8Array | undefined;
  // The peer's settings.
  peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  peerInitialWindow = DEFAULT_WINDOW;
  peerMaxConcurrentStreams = Number.POSITIVE_INFINITY;
  peerEnableConnectProtocol = false;
  peerSettingsReceived = false;
  connectionSendWindow = DEFAULT_WINDOW;
  /** DATA frames sent so far: what the peer's WINDOW_UPDATEs answer (a server's flood limit). */
  dataFramesSent = 0;
  #connectionRecvWindow = DEFAULT_WINDOW;
  #connectionConsumed = 0;
  // Reading: a frame split across reads, and how much of it has arrived.
  #partial: Buffer | undefined;
  #partialFilled = 0;
  /** The socket is not read while the peer does not read what was written to it. */
  #readingPaused = false;
  /** Bytes of the client preface still expected (a server's first read). */
  protected prefaceRemaining = 0;
  #firstFrame = true;
  // A header block being assembled: its stream, flags of the HEADERS frame, the fragments.
  #blockStream = 0;
  #blockFlags = 0;
  #blockFirst: Buffer = EMPTY;
  /** CONTINUATION fragments, when there are any (an array per header block would be garbage per RPC). */
  #blockRest: Buffer[] | undefined;
  #blockBytes = 0;
  #continuations = 0;
  /** The HEADERS frame made its stream depend on itself: a stream error once the block is decoded. */
  #blockSelfDependent = false;
  /** Highest stream id the peer opened (server) or we opened (client). */
  lastPeerStreamId = 0;
  lastLocalStreamId = 0;
  goAwaySent = false;
  /** The last stream id of the GOAWAY received, if any. */
  goAwayReceived: number | undefined;
  closed = false;
  /** PINGs of ours awaiting their ACK, by payload; made with the first. */
  #pings: Map<bigint, (error: Error | undefined) => void> | undefined;

  constructor(socket: Socket, local: LocalSettings) {
    this.socket = socket;
    this.local = local;
    this.writer = new FrameWriter(socket);
    socket.setNoDelay(true);
    // Listeners shared by every connection, which find theirs on the socket: no closures per connection.
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('end', onSocketEnd);
    socket.on('drain', onSocketDrain);
  }

  /** Our SETTINGS, and the connection window raised. Subclasses call it to open the connection. */
  protected sendInitialSettings(extra: readonly (readonly [number, number])[] = []): void {
    const local = this.local;
    this.writer.settings([
      [Setting.MAX_CONCURRENT_STREAMS, local.maxConcurrentStreams],
      [Setting.INITIAL_WINDOW_SIZE, local.streamWindow],
      [Setting.MAX_HEADER_LIST_SIZE, local.maxHeaderListSize],
      ...(local.enableConnectProtocol ? [[Setting.ENABLE_CONNECT_PROTOCOL, 1] as const] : []),
      ...extra,
    ]);
    if (local.connectionWindow > DEFAULT_WINDOW) {
      this.writer.windowUpdate(0, local.connectionWindow - DEFAULT_WINDOW);
      this.#connectionRecvWindow = local.connectionWindow;
    }
  }

  get localStreamWindow(): number {
    return this.local.streamWindow;
  }

  get writeBacklogged(): boolean {
    return this.writer.backlog >= MAX_WRITE_BACKLOG;
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  // What subclasses define.

  /** A complete header block on stream `streamId` (flags of its HEADERS frame); `result` says how decoding went. */
  protected abstract onHeaderBlock(streamId: number, flags: number, result: 'ok' | 'too_large'): void;
  /** The peer reset `stream`. */
  protected abstract onPeerReset(stream: StreamCore, code: number): void;
  /** The peer's GOAWAY. */
  protected abstract onGoAway(lastStreamId: number, code: number): void;
  /** The peer's SETTINGS were applied (and ACKed). */
  protected onSettings(): void {}
  /** A stream of ours is gone. */
  protected onStreamClosed(_stream: StreamCore): void {}
  /** Whether `id` is a stream the peer may open (server: odd; client: none, pushes being disabled). */
  protected abstract peerOpens(id: number): boolean;
  /** A frame of `type` arrived (for flood limits); throws an Http2Error to close the connection. */
  protected frameReceived(_type: number, _flags: number, _streamId: number, _length: number): void {}
  /** We are about to reset a stream because of what the peer sent (MadeYouReset counts these). */
  protected resettingForPeer(_code: number): void {}
  /**
   * A frame ignored on a closed stream where a correct peer sends few: RST_STREAM again on a stream it
   * reset already, HEADERS after our reset (§5.4.2 asks us to ignore them; a stream of them burns CPU).
   */
  protected ignoredOnClosedStream(_kind: string): void {}
  /**
   * A frame on a stream id below the last the peer opened that is not among the streams remembered as
   * closed: never opened, or closed long ago. Ignored unless a subclass decides otherwise.
   */
  protected frameOnUnknownStream(_streamId: number, _kind: string): void {}
  /** The connection is gone; every stream has been closed. */
  protected onClosed(_error: Error | undefined): void {}

  // Reading.

  /** Bytes read from the socket (its 'data' listener). */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    try {
      let data: Buffer | undefined = chunk;
      if (this.prefaceRemaining > 0) {
        data = this.readPreface(data);
        if (this.closed || data.length === 0) return;
      }
      if (this.#partial !== undefined) {
        data = this.#completePartial(data);
        if (data === undefined) return;
      }
      let offset = 0;
      const end = data.length;
      while (end - offset >= FRAME_HEADER_LENGTH) {
        const length = frameLength(data, offset);
        if (end - offset < FRAME_HEADER_LENGTH + length) break;
        const type = data[offset + 3]!;
        const flags = data[offset + 4]!;
        const streamId = data.readUInt32BE(offset + 5) & 0x7fffffff;
        const payload = data.subarray(offset + FRAME_HEADER_LENGTH, offset + FRAME_HEADER_LENGTH + length);
        offset += FRAME_HEADER_LENGTH + length;
        this.#frame(type, flags, streamId, payload);
        if (this.closed) return;
      }
      if (offset < end) this.#startPartial(data, offset);
      this.afterRead();
      // Requests answered without DATA (trailers only) are not held back by windows: a peer that sends
      // them and does not read is not read either until it does.
      if (this.writeBacklogged && !this.#readingPaused) {
        this.#readingPaused = true;
        this.socket.pause();
      }
    } catch (error) {
      if (error instanceof Http2Error) this.connectionError(error.code, error.message);
      else this.destroy(error as Error);
    }
  }

  /**
   * A frame that a read ends in the middle of is assembled in a buffer of its own size, so the next
   * read is not copied whole to join it (a long DATA stream ends most reads mid-frame).
   */
  #startPartial(data: Buffer, offset: number): void {
    const rest = data.length - offset;
    const size = rest >= FRAME_HEADER_LENGTH ? FRAME_HEADER_LENGTH + frameLength(data, offset) : FRAME_HEADER_LENGTH;
    this.#partial = Buffer.allocUnsafe(size);
    data.copy(this.#partial, 0, offset);
    this.#partialFilled = rest;
  }

  /** Completes the partial frame from `data` and handles it; returns the rest of `data`, or undefined while it is still incomplete. */
  #completePartial(data: Buffer): Buffer | undefined {
    let frame = this.#partial!;
    let filled = this.#partialFilled;
    let at = 0;
    if (filled < FRAME_HEADER_LENGTH) {
      at = Math.min(FRAME_HEADER_LENGTH - filled, data.length);
      data.copy(frame, filled, 0, at);
      filled += at;
      if (filled < FRAME_HEADER_LENGTH) {
        this.#partialFilled = filled;
        return undefined;
      }
      const length = frameLength(frame, 0);
      if (length > 0) {
        const whole = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
        frame.copy(whole, 0, 0, FRAME_HEADER_LENGTH);
        frame = whole;
        this.#partial = whole;
      }
    }
    const take = Math.min(frame.length - filled, data.length - at);
    data.copy(frame, filled, at, at + take);
    filled += take;
    at += take;
    if (filled < frame.length) {
      this.#partialFilled = filled;
      return undefined;
    }
    this.#partial = undefined;
    this.#frame(frame[3]!, frame[4]!, frame.readUInt32BE(5) & 0x7fffffff, frame.subarray(FRAME_HEADER_LENGTH));
    return this.closed ? undefined : data.subarray(at);
  }

  /** Server side: checks the client preface (§3.4); returns what follows it. */
  protected readPreface(data: Buffer): Buffer {
    return data;
  }

  /** After every frame of a read was handled (a server dispatches the streams that arrived in it). */
  protected afterRead(): void {}

  #frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.#blockStream !== 0 && type !== FrameType.CONTINUATION) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame (§6.10)');
    }
    if (this.#firstFrame) {
      this.#firstFrame = false;
      if (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'the connection must begin with SETTINGS (§3.4)');
    }
    this.frameReceived(type, flags, streamId, payload.length);
    switch (type) {
      case FrameType.DATA: return this.#data(flags, streamId, payload);
      case FrameType.HEADERS: return this.#headers(flags, streamId, payload);
      case FrameType.PRIORITY: return this.#priority(streamId, payload);
      case FrameType.RST_STREAM: return this.#rstStream(streamId, payload);
      case FrameType.SETTINGS: return this.#settings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE: throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE is not allowed (SETTINGS_ENABLE_PUSH is 0)');
      case FrameType.PING: return this.#ping(flags, streamId, payload);
      case FrameType.GOAWAY: return this.#goAway(streamId, payload);
      case FrameType.WINDOW_UPDATE: return this.#windowUpdate(streamId, payload);
      case FrameType.CONTINUATION: return this.#continuation(flags, streamId, payload);
      default: return; // Unknown frame types are ignored (§4.1, §5.5).
    }
  }

  #data(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0 (§6.1)');
    const frameLength = payload.length;
    const body = this.#unpad(flags, payload, 'DATA');
    // The connection window counts every DATA frame, whatever becomes of it (§6.9).
    this.#connectionRecvWindow -= frameLength;
    if (this.#connectionRecvWindow < 0) throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window (§6.9.1)');
    this.#creditConnection(frameLength);
    const stream = this.streams.get(streamId);
    if (!stream) return this.#frameOnClosedStream(streamId, 'DATA');
    if (stream.remoteEnded) {
      this.resettingForPeer(ErrorCode.STREAM_CLOSED);
      return stream.reset(ErrorCode.STREAM_CLOSED);
    }
    if (frameLength > stream.recvWindow) {
      this.resettingForPeer(ErrorCode.FLOW_CONTROL_ERROR);
      return stream.reset(ErrorCode.FLOW_CONTROL_ERROR);
    }
    this.dataReceived(stream, body.length, (flags & Flag.END_STREAM) !== 0);
    // The hook may have reset the stream (a body past its content-length, DATA before a response): nothing is delivered.
    if (stream.closed) return;
    stream.receiveData(body, frameLength, (flags & Flag.END_STREAM) !== 0);
  }

  /** Hook for checks on a stream's body (content-length: server-stream.ts). */
  protected dataReceived(_stream: StreamCore, _bytes: number, _endStream: boolean): void {}

  #headers(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0 (§6.2)');
    let fragment = this.#unpad(flags, payload, 'HEADERS');
    if (flags & Flag.PRIORITY) {
      if (fragment.length < 5) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority fields (§6.2)');
      const dependency = fragment.readUInt32BE(0) & 0x7fffffff;
      fragment = fragment.subarray(5);
      // A stream cannot depend on itself (§5.3.1): a stream error, after the block is decoded.
      this.#startBlock(streamId, flags, fragment, dependency === streamId);
      return;
    }
    this.#startBlock(streamId, flags, fragment, false);
  }

  #startBlock(streamId: number, flags: number, fragment: Buffer, selfDependent: boolean): void {
    this.#blockSelfDependent = selfDependent;
    this.#blockStream = streamId;
    this.#blockFlags = flags;
    this.#blockFirst = fragment;
    this.#blockRest = undefined;
    this.#blockBytes = fragment.length;
    this.#continuations = 0;
    if (flags & Flag.END_HEADERS) this.#endBlock();
  }

  #continuation(flags: number, streamId: number, payload: Buffer): void {
    if (this.#blockStream === 0 || streamId !== this.#blockStream) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block to continue (§6.10)');
    if (++this.#continuations > MAX_CONTINUATIONS || this.#blockBytes + payload.length > this.#maxBlockBytes()) {
      throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, 'header block too long (CONTINUATION flood)');
    }
    (this.#blockRest ??= []).push(payload);
    this.#blockBytes += payload.length;
    if (flags & Flag.END_HEADERS) this.#endBlock();
  }

  /** Encoded header blocks beyond this are a flood, whatever they decode to. */
  #maxBlockBytes(): number {
    return Math.max(2 * this.local.maxHeaderListSize, 64 << 10);
  }

  #endBlock(): void {
    const streamId = this.#blockStream;
    const flags = this.#blockFlags;
    const block = this.#blockRest === undefined ? this.#blockFirst : Buffer.concat([this.#blockFirst, ...this.#blockRest]);
    this.#blockStream = 0;
    this.#blockFirst = EMPTY;
    this.#blockRest = undefined;
    const result = this.#decoder.decode(block, 0, block.length, this.headerList, this.local.maxHeaderListSize, this.local.maxHeaderFields);
    if (result === 'error') throw new Http2Error(ErrorCode.COMPRESSION_ERROR, 'the header block does not decode (HPACK)');
    if (this.#blockSelfDependent) {
      this.resettingForPeer(ErrorCode.PROTOCOL_ERROR);
      if (this.peerOpens(streamId) && streamId > this.lastPeerStreamId) this.lastPeerStreamId = streamId;
      return this.#resetById(streamId, ErrorCode.PROTOCOL_ERROR);
    }
    this.onHeaderBlock(streamId, flags, result);
  }

  #unpad(flags: number, payload: Buffer, frame: string): Buffer {
    if ((flags & Flag.PADDED) === 0) return payload;
    if (payload.length < 1) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, `${frame} too short for its pad length (§6.1)`);
    const padLength = payload[0]!;
    if (padLength >= payload.length) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `${frame} padding as long as the frame (§6.1)`);
    return payload.subarray(1, payload.length - padLength);
  }

  #priority(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0 (§6.3)');
    if (payload.length !== 5) {
      this.resettingForPeer(ErrorCode.FRAME_SIZE_ERROR);
      return this.#resetById(streamId, ErrorCode.FRAME_SIZE_ERROR);
    }
    // Accepted and ignored (RFC 9113 deprecates the priority scheme), but never on itself.
    if ((payload.readUInt32BE(0) & 0x7fffffff) === streamId) {
      this.resettingForPeer(ErrorCode.PROTOCOL_ERROR);
      this.#resetById(streamId, ErrorCode.PROTOCOL_ERROR);
    }
  }

  #rstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0 (§6.4)');
    if (payload.length !== 4) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong length (§6.4)');
    if (this.#isIdle(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream (§6.4)');
    const stream = this.streams.get(streamId);
    if (!stream) {
      // A client that gives up on a call may reset a stream that has just ended (grpc-js does, for a call
      // that failed): once per stream is ordinary, and after it the stream counts as reset by the peer.
      // A stream forgotten already (many streams closed since) may have been closed a moment ago: ignored.
      const how = this.#howClosed(streamId);
      if (how === ClosedHow.Ended || how === ClosedHow.ResetByUs) return this.#rememberClosed(streamId, ClosedHow.ResetByPeer);
      if (how === ClosedHow.ResetByPeer) this.ignoredOnClosedStream('RST_STREAM');
      return;
    }
    this.#rememberClosed(streamId, ClosedHow.ResetByPeer);
    this.onPeerReset(stream, payload.readUInt32BE(0));
  }

  #settings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream (§6.5)');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload (§6.5)');
      return;
    }
    if (payload.length % 6 !== 0) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length not a multiple of 6 (§6.5)');
    if (payload.length > 6 * MAX_SETTINGS_ENTRIES) throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, `SETTINGS with more than ${MAX_SETTINGS_ENTRIES} entries`);
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      switch (id) {
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1 (§6.5.2)');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 (§6.5.2)');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window above 2^31-1 after SETTINGS_INITIAL_WINDOW_SIZE (§6.9.2)');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range (§6.5.2)');
          this.peerMaxFrameSize = value;
          break;
        case Setting.ENABLE_CONNECT_PROTOCOL:
          if (value > 1) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_CONNECT_PROTOCOL must be 0 or 1 (RFC 8441)');
          this.peerEnableConnectProtocol = value === 1;
          break;
        case Setting.HEADER_TABLE_SIZE:
          this.writer.setPeerHeaderTableSize(value);
          break;
        default:
          // MAX_HEADER_LIST_SIZE is advisory. Unknown ids are ignored.
          break;
      }
    }
    this.writer.settingsAck();
    this.peerSettingsReceived = true;
    this.#flushBlocked();
    this.onSettings();
  }

  #ping(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'PING on a stream (§6.7)');
    if (payload.length !== 8) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'PING of the wrong length (§6.7)');
    if (flags & Flag.ACK) {
      const key = payload.readBigUInt64BE(0);
      const callback = this.#pings?.get(key);
      this.#pings?.delete(key);
      callback?.(undefined);
      return;
    }
    this.writer.ping(Buffer.from(payload), true);
  }

  #goAway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream (§6.8)');
    if (payload.length < 8) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY too short (§6.8)');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.goAwayReceived = Math.min(this.goAwayReceived ?? lastStreamId, lastStreamId);
    this.onGoAway(lastStreamId, code);
  }

  #windowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong length (§6.9)');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection (§6.9)');
      this.connectionSendWindow += increment;
      if (this.connectionSendWindow > MAX_WINDOW) throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1 (§6.9.1)');
      this.#flushBlocked();
      return;
    }
    if (this.#isIdle(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream (§5.1)');
    const stream = this.streams.get(streamId);
    if (!stream) return;
    if (increment === 0) {
      this.resettingForPeer(ErrorCode.PROTOCOL_ERROR);
      return stream.reset(ErrorCode.PROTOCOL_ERROR);
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.resettingForPeer(ErrorCode.FLOW_CONTROL_ERROR);
      return stream.reset(ErrorCode.FLOW_CONTROL_ERROR);
    }
    stream.flushOutbound();
    if (!stream.hasQueuedOutbound) this.#unblock(stream);
  }

  /** A frame of `kind` on a stream that is not open: idle, recently closed, or long gone (§5.1). */
  #frameOnClosedStream(streamId: number, kind: string): void {
    if (this.#isIdle(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `${kind} on an idle stream (§5.1)`);
    const how = this.#howClosed(streamId);
    // A stream id below one the peer opened, never used itself: an unexpected stream id (§5.1.1).
    if (how === ClosedHow.Unknown && this.#neverOpened(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `${kind} on stream ${streamId}, which was never opened, below one that was (§5.1.1)`);
    // After we reset a stream, what was already on its way is ignored (§5.4.2); after the peer reset it, or
    // ended it and we did too, more frames are an error.
    if (how === ClosedHow.ResetByPeer) {
      this.resettingForPeer(ErrorCode.STREAM_CLOSED);
      this.writer.rstStream(streamId, ErrorCode.STREAM_CLOSED);
    } else if (how === ClosedHow.Ended) {
      throw new Http2Error(ErrorCode.STREAM_CLOSED, `${kind} on a closed stream (§5.1)`);
    } else if (how === ClosedHow.ResetByUs) {
      // Trailers may have been on their way; DATA too, up to a window of it, so DATA is not counted.
      if (kind === 'HEADERS') this.ignoredOnClosedStream(kind);
    } else {
      this.frameOnUnknownStream(streamId, kind);
    }
  }

  /** RST_STREAM for a stream that was never opened (refused, malformed): frames already on their way are ignored. */
  protected resetUnopened(streamId: number, code: number): void {
    this.writer.rstStream(streamId, code);
    this.#rememberClosed(streamId, ClosedHow.ResetByUs);
  }

  /** A stream the peer opened that is not processed (past our GOAWAY): its frames are ignored (§6.8). */
  protected ignoreUnopened(streamId: number): void {
    this.#rememberClosed(streamId, ClosedHow.ResetByUs);
  }

  #rememberClosed(streamId: number, how: ClosedHow): void {
    const slot = (streamId >>> 1) & (RECENTLY_CLOSED - 1);
    const ids = (this.#closedIds ??= new Uint32Array(RECENTLY_CLOSED));
    // Streams close out of order: a long one closing after a higher id of its slot is forgotten rather
    // than let the higher id look never opened (#neverOpened relies on a slot only ever growing).
    if (ids[slot]! > streamId) return;
    ids[slot] = streamId;
    (this.#closedHow ??= new Uint8Array(RECENTLY_CLOSED))[slot] = how;
  }

  /** How stream `streamId` closed, if it is among the last RECENTLY_CLOSED of its side. */
  #howClosed(streamId: number): ClosedHow {
    const slot = (streamId >>> 1) & (RECENTLY_CLOSED - 1);
    return this.#closedIds?.[slot] === streamId ? (this.#closedHow![slot] as ClosedHow) : ClosedHow.Unknown;
  }

  /**
   * A stream id that is neither open nor idle was never opened when its slot holds a lower id: every stream
   * that closes, or that we refuse or ignore before it opened (resetUnopened, ignoreUnopened), is written there, and only a higher id of the same
   * slot overwrites it.
   */
  #neverOpened(streamId: number): boolean {
    return (this.#closedIds?.[(streamId >>> 1) & (RECENTLY_CLOSED - 1)] ?? 0) < streamId;
  }

  /** A stream id that was never opened: above the last one either side opened. */
  #isIdle(streamId: number): boolean {
    return this.peerOpens(streamId) ? streamId > this.lastPeerStreamId : streamId > this.lastLocalStreamId;
  }

  /** Header blocks on streams that are not open are decoded (to keep HPACK state) and then judged here. */
  protected headersOnClosedStream(streamId: number): void {
    this.#frameOnClosedStream(streamId, 'HEADERS');
  }

  #resetById(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream) stream.reset(code);
    else this.resetUnopened(streamId, code);
  }

  #creditConnection(bytes: number): void {
    this.#connectionConsumed += bytes;
    if (this.#connectionConsumed < this.local.connectionWindow / 2) return;
    this.#connectionRecvWindow += this.#connectionConsumed;
    this.writer.windowUpdate(0, this.#connectionConsumed);
    this.#connectionConsumed = 0;
  }

  /** The peer read what was written: streams waiting for it send, and its socket is read again. */
  drained(): void {
    this.#flushBlocked();
    if (this.#readingPaused && !this.writeBacklogged && !this.closed) {
      this.#readingPaused = false;
      this.socket.resume();
    }
  }

  #flushBlocked(): void {
    const blocked = this.#blocked;
    this.#flushingBlocked = true;
    let kept = 0;
    let next = 0;
    try {
      // A stream closed meanwhile (by its own flush or another's) has left the queue: its flag is down.
      for (; next < blocked.length; next++) {
        if (this.connectionSendWindow <= 0 || this.writeBacklogged) break;
        const stream = blocked[next]!;
        if (!stream.queuedForWindow) continue;
        stream.flushOutbound();
        if (stream.queuedForWindow && stream.hasQueuedOutbound) blocked[kept++] = stream;
        else stream.queuedForWindow = false;
      }
    } finally {
      for (; next < blocked.length; next++) if (blocked[next]!.queuedForWindow) blocked[kept++] = blocked[next]!;
      blocked.length = kept;
      this.#flushingBlocked = false;
    }
  }

  #unblock(stream: StreamCore): void {
    if (!stream.queuedForWindow) return;
    stream.queuedForWindow = false;
    if (this.#flushingBlocked) return;
    const at = this.#blocked.indexOf(stream);
    if (at >= 0) this.#blocked.splice(at, 1);
  }

  // StreamHost: what streams send.

  sendData(stream: StreamCore, payload: Buffer, endStream: boolean): void {
    stream.quietSweeps = 0;
    this.dataFramesSent++;
    this.connectionSendWindow -= payload.length;
    this.writer.data(stream.id, payload, endStream);
  }

  sendHeaders(stream: StreamCore, headers: HeaderMap, endStream: boolean): void {
    stream.quietSweeps = 0;
    this.writer.headers(stream.id, headers, endStream, this.peerMaxFrameSize);
  }

  sendWindowUpdate(streamId: number, increment: number): void {
    this.writer.windowUpdate(streamId, increment);
  }

  sendReset(stream: StreamCore, code: number): void {
    this.writer.rstStream(stream.id, code);
    this.#rememberClosed(stream.id, ClosedHow.ResetByUs);
  }

  /** A stream whose outbound data is waiting for window. */
  blocked(stream: StreamCore): void {
    if (stream.queuedForWindow) return;
    stream.queuedForWindow = true;
    this.#blocked.push(stream);
  }

  streamClosed(stream: StreamCore): void {
    this.streams.delete(stream.id);
    this.#unblock(stream);
    if (this.#howClosed(stream.id) === ClosedHow.Unknown) this.#rememberClosed(stream.id, ClosedHow.Ended);
    this.onStreamClosed(stream);
  }

  // The connection as a whole.

  /**
   * PING the peer; `callback` hears the ACK (undefined) or why it will not come. False when too many
   * PINGs are outstanding already.
   */
  ping(callback: (error: Error | undefined) => void): boolean {
    const pings = (this.#pings ??= new Map());
    if (this.closed || pings.size >= MAX_OUTSTANDING_PINGS) return false;
    const payload = Buffer.allocUnsafe(8);
    const key = BigInt(Date.now()) * 1000n + BigInt(pings.size);
    payload.writeBigUInt64BE(key, 0);
    pings.set(key, callback);
    this.writer.ping(payload, false);
    return true;
  }

  /** Sends GOAWAY; streams up to `lastStreamId` go on (the default: every stream the peer opened so far). */
  goAway(code: number = ErrorCode.NO_ERROR, lastStreamId: number = this.lastPeerStreamId, debug?: string): void {
    if (this.closed) return;
    this.goAwaySent = true;
    this.writer.goAway(lastStreamId, code, debug);
  }

  /** A connection error: GOAWAY with `code`, then the connection is closed (§5.4.1). */
  connectionError(code: number, message: string): void {
    if (this.closed) return;
    this.writer.goAway(this.lastPeerStreamId, code, message);
    this.writer.flush();
    this.closeSocket(new Http2Error(code, message));
  }

  /** Ends the socket once what is written has gone; then the connection closes. */
  protected closeSocket(error: Error | undefined): void {
    // What is still batched goes before the FIN: written after end(), it would be lost.
    this.writer.flush();
    this.socket.end();
    // A peer that does not read must not hold the socket open.
    setTimeout(() => this.destroy(error), 1_000).unref();
    this.destroy(error, false);
  }

  /**
   * Closes the connection at once: every open stream closes (as broken), and the socket is destroyed
   * (`destroySocket` false: it is already ending). Idempotent.
   */
  destroy(error?: Error, destroySocket = true): void {
    if (this.closed) {
      if (destroySocket && !this.socket.destroyed) this.socket.destroy();
      return;
    }
    this.closed = true;
    this.writer.flush();
    this.writer.close();
    if (destroySocket) this.socket.destroy();
    if (this.#pings) {
      for (const [, callback] of this.#pings) callback(error ?? new Error('the connection closed'));
      this.#pings.clear();
    }
    const cause = error ?? new Error('the connection closed');
    for (const stream of this.streams.values()) this.connectionLostFor(stream, cause);
    this.onClosed(error);
  }

  /** The connection went under `stream`. */
  protected abstract connectionLostFor(stream: StreamCore, error: Error): void;
}
