/**
 * The two ends of a tunnel as a session drives them: a socket (an upgraded
 * HTTP/1.1 client, or the connection to the backend) or an HTTP/2 stream (a
 * client's extended CONNECT, through the TunnelStream contract). Both
 * give bytes, back-pressure, a half-close and an abrupt close, and report
 * each once.
 */
import type { Duplex } from 'node:stream';
import type { TunnelStream } from '../grpc/streams.ts';

export interface EndEvents {
  data(chunk: Buffer): void;
  /** The peer will send nothing more (FIN, END_STREAM). */
  end(): void;
  /** Room again after write() said false. */
  drain(): void;
  /** Gone, however it went. Last event. */
  closed(): void;
}

export interface TunnelEnd {
  /** Subscribes; data starts flowing. Called once. */
  start(events: EndEvents): void;
  /** False: wait for drain() before writing more. */
  write(bytes: Buffer): boolean;
  /** Sends our end (FIN, END_STREAM) after what was written. */
  end(): void;
  /** Closes now, dropping what waits (RST, a destroyed socket). */
  destroy(): void;
  pause(): void;
  resume(): void;
  readonly closed: boolean;
}

/** A socket: an upgraded client connection, or the connection to a backend. */
export class SocketEnd implements TunnelEnd {
  readonly #socket: Duplex;
  /** Bytes read with the handshake that belong to the tunnel. */
  readonly #head: Buffer | undefined;
  #closed = false;

  constructor(socket: Duplex, head: Buffer | undefined) {
    this.#socket = socket;
    this.#head = head !== undefined && head.length > 0 ? head : undefined;
  }

  start(events: EndEvents): void {
    const socket = this.#socket;
    socket.on('data', events.data);
    socket.on('end', events.end);
    socket.on('drain', events.drain);
    // An error is followed by 'close', which is what the session hears of it.
    socket.on('error', ignore);
    socket.once('close', () => {
      this.#closed = true;
      events.closed();
    });
    if (this.#head) events.data(this.#head);
    if (socket.destroyed) {
      this.#closed = true;
      queueMicrotask(events.closed);
      return;
    }
    socket.resume();
  }

  write(bytes: Buffer): boolean {
    if (this.#closed || !this.#socket.writable) return true;
    return this.#socket.write(bytes);
  }

  end(): void {
    if (!this.#closed && this.#socket.writable) this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** The client's extended CONNECT stream (RFC 8441), already answered 200. */
export class StreamEnd implements TunnelEnd {
  readonly #stream: TunnelStream;
  #closed = false;
  /** The listener is cutting the connection (drain timeout): what it says, for the record. */
  cutReason: string | undefined;

  constructor(stream: TunnelStream) {
    this.#stream = stream;
  }

  start(events: EndEvents): void {
    this.#stream.attach({
      onRequestData: events.data,
      onRequestEnd: events.end,
      onResponseDrain: events.drain,
      onDownstreamClose: () => {
        this.#closed = true;
        events.closed();
      },
      onCut: (reason) => {
        this.cutReason = reason;
        this.#stream.reset(CANCEL);
      },
      // Only src/web/'s translating streams report a body they cannot translate; a tunnel's bytes pass as they are.
      onMalformedRequest: ignore,
    });
  }

  write(bytes: Buffer): boolean {
    return this.#stream.write(bytes);
  }

  end(): void {
    this.#stream.finish();
  }

  destroy(): void {
    this.#stream.reset(CANCEL);
  }

  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    this.#stream.resume();
  }

  get closed(): boolean {
    return this.#closed || this.#stream.closed;
  }
}

/** RST_STREAM CANCEL (RFC 9113 §7): the tunnel is dropped, as a TCP reset would drop it. */
const CANCEL = 0x8;

function ignore(): void {}
