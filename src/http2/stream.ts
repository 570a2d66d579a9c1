/**
 * One HTTP/2 stream's flow control and buffering, shared by both sides of the
 * proxy (server streams: server-stream.ts; client streams: client-stream.ts).
 *
 * Outbound, data goes out as far as the stream's and the connection's send
 * windows allow; the rest waits in the stream's queue, and write() says false
 * once HIGH_WATER bytes wait, so the producer pauses (the bridge pauses the
 * other side). Inbound, data is handed to the subscriber unless it paused;
 * while paused it waits here, and the stream grants the peer no more window
 * (WINDOW_UPDATE only for what the subscriber took), so a stalled stream holds
 * at most one window. The connection's own window is granted back as data
 * arrives: one stalled stream never stalls its neighbours.
 */
import { ErrorCode } from './constants.ts';
import type { HeaderMap } from '../grpc/streams.ts';

/** The empty queue every stream starts with: only read, never pushed to (streams make their own first). */
const NONE: Buffer[] = [];

/** Queued outbound bytes past which write() asks the producer to wait… */
export const HIGH_WATER = 16 << 10;
/** …and below which it is told to go on. */
const LOW_WATER = 4 << 10;

/** What a stream needs of its connection. */
export interface StreamHost {
  /** Send window of the connection, shared by its streams. */
  readonly connectionSendWindow: number;
  readonly peerMaxFrameSize: number;
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window. */
  readonly localStreamWindow: number;
  /** The peer is not reading the socket: no more DATA until it does (the stream waits as for window). */
  readonly writeBacklogged: boolean;
  sendData(stream: StreamCore, payload: Buffer, endStream: boolean): void;
  sendHeaders(stream: StreamCore, headers: HeaderMap, endStream: boolean): void;
  sendWindowUpdate(streamId: number, increment: number): void;
  sendReset(stream: StreamCore, code: number): void;
  /** `stream` has outbound data waiting for window: serve it when window comes. */
  blocked(stream: StreamCore): void;
  /** The stream is gone: forget it. */
  streamClosed(stream: StreamCore): void;
}

export abstract class StreamCore {
  readonly id: number;
  readonly host: StreamHost;
  sendWindow: number;
  /** Window the peer still has on this stream (our receive window). */
  recvWindow: number;
  /** Bytes the subscriber took that the peer has not been credited for yet. */
  #consumed = 0;
  /** We sent END_STREAM (or will, after the queue: see #pendingEnd). */
  localEnded = false;
  /** The peer sent END_STREAM. */
  remoteEnded = false;
  closed = false;
  /** Idle sweeps since the last frame either way (the listener's stream_idle_timeout). */
  quietSweeps = 0;
  /** Queued outbound data; NONE (shared, never written) until something waits. */
  #out: Buffer[] = NONE;
  outBytes = 0;
  /** In the connection's queue of streams waiting for window (kept by the connection). */
  queuedForWindow = false;
  /** After the queue: `true` for END_STREAM on the last DATA, or trailers. */
  #pendingEnd: true | HeaderMap | undefined;
  #wantDrain = false;
  #in: Buffer[] = NONE;
  #inBytes = 0;
  /** The peer's END_STREAM, not yet told to the subscriber (data is still waiting before it). */
  #endPending = false;
  /** The subscriber asked for no data now; also true until it attaches. */
  protected inboundHeld = true;
  #paused = false;

  constructor(id: number, host: StreamHost, sendWindow: number) {
    this.id = id;
    this.host = host;
    this.sendWindow = sendWindow;
    this.recvWindow = host.localStreamWindow;
  }

  /** Data for the subscriber. */
  protected abstract deliverData(chunk: Buffer): void;
  /** The peer's END_STREAM, after its data. */
  protected abstract deliverEnd(): void;
  /** Room again after write() said false. */
  protected abstract deliverDrain(): void;

  get paused(): boolean {
    return this.#paused;
  }

  // Outbound.

  /** Sends `chunk` as far as the windows allow and queues the rest; false once the queue is HIGH_WATER or more. */
  write(chunk: Buffer): boolean {
    if (this.closed || this.localEnded || chunk.length === 0) return true;
    if (this.#out.length === 0) {
      const rest = this.#sendAsAllowed(chunk, false);
      if (rest === undefined) return true;
      chunk = rest;
    }
    if (this.#out === NONE) this.#out = [];
    this.#out.push(chunk);
    this.outBytes += chunk.length;
    this.host.blocked(this);
    if (this.outBytes < HIGH_WATER) return true;
    this.#wantDrain = true;
    return false;
  }

  /** END_STREAM after what is queued, with `trailers` if given. */
  endOutbound(trailers?: HeaderMap): void {
    if (this.closed || this.localEnded) return;
    this.localEnded = true;
    this.#pendingEnd = trailers ?? true;
    if (this.#out.length === 0) this.#sendEnd();
  }

  /** Window grew (the stream's or the connection's): send what waits. Returns bytes sent. */
  flushOutbound(): number {
    if (this.closed || this.#out.length === 0) return 0;
    let sent = 0;
    while (this.#out.length > 0) {
      const head = this.#out[0]!;
      const last = this.#out.length === 1 && this.#pendingEnd === true;
      const before = head.length;
      const rest = this.#sendAsAllowed(head, last);
      const wrote = before - (rest?.length ?? 0);
      sent += wrote;
      this.outBytes -= wrote;
      if (rest !== undefined) {
        this.#out[0] = rest;
        break;
      }
      this.#out.shift();
      if (last) {
        this.#pendingEnd = undefined;
        this.#afterLocalEnd();
      }
    }
    if (this.#out.length === 0 && this.#pendingEnd !== undefined) this.#sendEnd();
    if (this.#wantDrain && this.outBytes < LOW_WATER && !this.closed) {
      this.#wantDrain = false;
      this.deliverDrain();
    }
    return sent;
  }

  get hasQueuedOutbound(): boolean {
    return this.#out.length > 0;
  }

  /**
   * Sends as much of `chunk` as the windows and frame size allow, END_STREAM on the last piece when
   * `endStream` and all of it went; returns what is left, or undefined.
   */
  #sendAsAllowed(chunk: Buffer, endStream: boolean): Buffer | undefined {
    const host = this.host;
    while (chunk.length > 0) {
      if (host.writeBacklogged) return chunk;
      const room = Math.min(this.sendWindow, host.connectionSendWindow, host.peerMaxFrameSize);
      if (room <= 0) return chunk;
      const piece = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.sendWindow -= piece.length;
      const done = piece.length === chunk.length;
      host.sendData(this, piece, endStream && done);
      if (done) return undefined;
      chunk = chunk.subarray(room);
    }
    return undefined;
  }

  #sendEnd(): void {
    const end = this.#pendingEnd;
    this.#pendingEnd = undefined;
    if (end === undefined) return;
    if (end === true) this.host.sendData(this, EMPTY, true);
    else this.host.sendHeaders(this, end, true);
    this.#afterLocalEnd();
  }

  /** Headers that also end the stream (a trailers-only response, or a request with no body). */
  endWithHeaders(headers: HeaderMap): void {
    if (this.closed || this.localEnded) return;
    this.localEnded = true;
    this.host.sendHeaders(this, headers, true);
    this.#afterLocalEnd();
  }

  /** END_STREAM went out: the stream closes if the peer's side is done too. */
  #afterLocalEnd(): void {
    if (!this.remoteEnded) this.localEndSent();
    else if (!this.#endPending) this.close();
  }

  /** Our END_STREAM is out while the peer may still send: subclasses decide (a server resets with NO_ERROR). */
  protected localEndSent(): void {}

  // Inbound.

  /** A DATA frame's payload (the connection checked the windows; `frameLength` counts padding). */
  receiveData(payload: Buffer, frameLength: number, endStream: boolean): void {
    this.quietSweeps = 0;
    this.recvWindow -= frameLength;
    // Padding is never handed on: credit it at once.
    const padding = frameLength - payload.length;
    if (padding > 0) this.#credit(padding);
    if (payload.length > 0) {
      if (this.inboundHeld || this.#in.length > 0) {
        if (this.#in === NONE) this.#in = [];
        this.#in.push(payload);
        this.#inBytes += payload.length;
      } else {
        this.deliverData(payload);
        this.#credit(payload.length);
      }
    }
    if (endStream) this.receiveEnd();
  }

  /** The peer's END_STREAM (on DATA or trailers). */
  receiveEnd(): void {
    this.quietSweeps = 0;
    this.remoteEnded = true;
    if (this.inboundHeld || this.#in.length > 0) {
      this.#endPending = true;
      return;
    }
    this.deliverEnd();
    if (this.localEnded && !this.#pendingEnd && this.#out.length === 0) this.close();
  }

  pause(): void {
    this.#paused = true;
    this.inboundHeld = true;
  }

  resume(): void {
    this.#paused = false;
    this.releaseInbound();
  }

  /** Hands what waits to the subscriber, until it pauses again. */
  protected releaseInbound(): void {
    if (this.#paused || this.closed) return;
    this.inboundHeld = false;
    while (this.#in.length > 0 && !this.inboundHeld) {
      const chunk = this.#in.shift()!;
      this.#inBytes -= chunk.length;
      this.deliverData(chunk);
      this.#credit(chunk.length);
    }
    if (this.#in.length === 0 && this.#endPending && !this.inboundHeld) {
      this.#endPending = false;
      this.deliverEnd();
      if (this.localEnded && !this.#pendingEnd && this.#out.length === 0) this.close();
    }
  }

  /** Grants the peer window for bytes taken, in batches of half a window. */
  #credit(bytes: number): void {
    if (this.remoteEnded || this.closed) return;
    this.#consumed += bytes;
    if (this.#consumed < this.host.localStreamWindow / 2) return;
    this.recvWindow += this.#consumed;
    this.host.sendWindowUpdate(this.id, this.#consumed);
    this.#consumed = 0;
  }

  /** Bytes held for the subscriber (inbound) and for the peer (outbound). */
  get bufferedBytes(): number {
    return this.#inBytes + this.outBytes;
  }

  // Closing.

  /** Resets the stream with `code` (RST_STREAM) and closes it. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.host.sendReset(this, code);
    this.close();
  }

  /** Closes the stream: drops what waits, tells the subscriber (closed()), and the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#out = NONE;
    this.#in = NONE;
    this.outBytes = 0;
    this.#inBytes = 0;
    this.host.streamClosed(this);
    tellClosedLater(this);
  }

  /**
   * Called once when the stream has closed, however it closed: after the task that closed it, never
   * inside the call that did (respond() that ends a response closes its stream, and the RPC must finish
   * what it was doing before it hears so).
   */
  protected abstract closedHook(): void;

  /** For the batch below only. */
  static tellClosed(stream: StreamCore): void {
    stream.closedHook();
  }
}

/** Streams closed in this task, told so in one microtask (a tick object per stream was a tenth of what an RPC allocated). */
const closing: StreamCore[] = [];
let closingScheduled = false;

function tellClosedLater(stream: StreamCore): void {
  closing.push(stream);
  if (closingScheduled) return;
  closingScheduled = true;
  queueMicrotask(tellClosedBatch);
}

function tellClosedBatch(): void {
  let told = 0;
  try {
    // Closes caused by these notifications join the batch and are told in turn.
    while (told < closing.length) StreamCore.tellClosed(closing[told++]!);
  } finally {
    // Even if a subscriber threw, the batch is consumed and the rest are told in a new one.
    closing.splice(0, told);
    closingScheduled = closing.length > 0;
    if (closingScheduled) queueMicrotask(tellClosedBatch);
  }
}

const EMPTY = Buffer.alloc(0);
