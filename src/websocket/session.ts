/**
 * One open WebSocket session: the client's end and the backend's, bytes
 * passed both ways through a frame scanner each (frame-scanner.ts), with
 * back-pressure (a side that cannot take more pauses the other). The proxy
 * writes frames of its own only at frame boundaries: a close (drain, idle,
 * age, a broken rule) or a keepalive ping toward a quiet client.
 *
 * Closing, as RFC 6455 §7 has it, with the proxy as the client's server and
 * the backend's client: a close frame passes through like any other; once
 * the client has both sent and received one, its connection is ended (the
 * server closes first); the backend closes its own after the handshake. When
 * the proxy closes a session it sends a close each way (masked toward the
 * backend), passes nothing more, and waits close_timeout for the replies
 * before closing the connections anyway. A side that goes away without a
 * close frame leaves the other a close 1001 (when at a frame boundary).
 */
import { CloseCode, FrameScanner, Opcode, type FrameRules, type FrameSink } from './frame-scanner.ts';
import { closeFrame, pingFrame } from './frames.ts';
import type { ClosedBy, ProxyCloseReason, WebSocketRecord } from './session-record.ts';
import type { RegisteredSession } from './sessions.ts';
import type { TunnelEnd } from './tunnel-ends.ts';

export interface SessionTimeouts {
  readonly idleMs: number;
  /** Undefined: no keepalive pings. */
  readonly pingIntervalMs: number | undefined;
  readonly pingTimeoutMs: number;
  readonly closeTimeoutMs: number;
  /** Undefined: no age limit. */
  readonly maxAgeMs: number | undefined;
}

export interface SessionOptions {
  readonly client: TunnelEnd;
  readonly backend: TunnelEnd;
  readonly timeouts: SessionTimeouts;
  /** Rules for what the client sends (masked) and for what the backend sends (unmasked). */
  readonly clientRules: FrameRules;
  readonly backendRules: FrameRules;
  /** The record to complete; the session fills in how it closed and the bytes. */
  readonly record: WebSocketRecord;
  /** Called once, when both ends have closed. */
  onEnded(record: WebSocketRecord): void;
}

const PING_PAYLOAD = Buffer.from('switchyard');
const PROXY_REASON_CODE: Partial<Record<ProxyCloseReason, string>> = {
  drain: 'the proxy is shutting down',
  idle_timeout: 'idle timeout',
  max_connection_age: 'maximum connection age',
  ping_timeout: 'the client stopped answering pings',
  backend_gone: 'the backend closed the connection',
  client_gone: 'the client closed the connection',
};

/** One direction of the tunnel: what `from` sends, read and passed to `to`. */
class Direction implements FrameSink {
  readonly scanner: FrameScanner;
  readonly #session: TunnelSession;
  readonly from: TunnelEnd;
  readonly to: TunnelEnd;
  /** Frames the proxy writes at the next boundary, and whether each is a close. */
  #inserts: { frame: Buffer; close: boolean }[] = [];
  /** The proxy has written its own close toward `to`: nothing more passes. */
  dropping = false;
  /** A close frame from `from` has been read (passed or not). */
  closeRead = false;
  /** A close frame has gone to `to` (passed through, or the proxy's own). */
  closeWritten = false;
  /** `from` is paused until `to` drains. */
  #waiting = false;

  constructor(session: TunnelSession, from: TunnelEnd, to: TunnelEnd, rules: FrameRules) {
    this.#session = session;
    this.from = from;
    this.to = to;
    this.scanner = new FrameScanner(rules, this);
  }

  get wantsBoundary(): boolean {
    return this.#inserts.length > 0;
  }

  pass(bytes: Buffer): void {
    if (this.dropping) return;
    if (!this.to.write(bytes) && !this.#waiting) {
      this.#waiting = true;
      this.from.pause();
    }
  }

  /** `to` can take more. */
  drained(): void {
    if (!this.#waiting) return;
    this.#waiting = false;
    this.from.resume();
  }

  boundary(opcode: number, closeCode: number | undefined): void {
    if (opcode === Opcode.CLOSE && !this.closeRead) {
      this.closeRead = true;
      if (!this.dropping) {
        // Passed through: `to` has its close from the peer, as in any handshake, and must get no frame after it.
        this.closeWritten = true;
        this.#inserts = [];
      }
      this.#session.closeRead(this, closeCode!);
    }
    this.#flushInserts();
  }

  violation(code: number, reason: string): void {
    this.#session.violation(this, code, reason);
  }

  /** Writes `frame` toward `to` now if between frames, else at the next boundary. */
  insert(frame: Buffer, close: boolean): void {
    if (this.dropping || this.closeWritten || this.to.closed) return;
    this.#inserts.push({ frame, close });
    if (this.scanner.atBoundary || this.scanner.stopped) this.#flushInserts();
  }

  #flushInserts(): void {
    while (this.#inserts.length > 0 && !this.dropping) {
      const { frame, close } = this.#inserts.shift()!;
      this.to.write(frame);
      if (close) {
        this.dropping = true;
        this.closeWritten = true;
        this.#inserts = [];
        this.#session.closeInserted(this);
      }
    }
  }
}

export class TunnelSession implements RegisteredSession {
  readonly #options: SessionOptions;
  readonly #timeouts: SessionTimeouts;
  readonly #client: TunnelEnd;
  readonly #backend: TunnelEnd;
  /** Client → backend and backend → client. */
  readonly #up: Direction;
  readonly #down: Direction;
  readonly #record: WebSocketRecord;
  readonly #startedAt = performance.now();
  #lastActive = this.#startedAt;
  #lastFromClient = this.#startedAt;
  #pingSentAt: number | undefined;
  #closeDeadline: number | undefined;
  #maxAgeAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closedBy: ClosedBy = 'none';
  #ended = false;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.#timeouts = options.timeouts;
    this.#client = options.client;
    this.#backend = options.backend;
    this.#record = options.record;
    this.#up = new Direction(this, options.client, options.backend, options.clientRules);
    this.#down = new Direction(this, options.backend, options.client, options.backendRules);
    const maxAge = options.timeouts.maxAgeMs;
    // ±10%, so sessions opened together (after a rollout) do not all reconnect together.
    if (maxAge !== undefined) this.#maxAgeAt = this.#startedAt + maxAge * (0.9 + 0.2 * Math.random());
  }

  /** Starts moving bytes. */
  start(): void {
    this.#client.start({
      data: (chunk) => this.#read(this.#up, chunk),
      end: () => this.#peerEnded(this.#up),
      drain: () => this.#down.drained(),
      closed: () => this.#sideClosed(this.#up),
    });
    this.#backend.start({
      data: (chunk) => this.#read(this.#down, chunk),
      end: () => this.#peerEnded(this.#down),
      drain: () => this.#up.drained(),
      closed: () => this.#sideClosed(this.#down),
    });
    this.#arm();
  }

  get route(): string {
    return this.#record.route ?? '';
  }

  get bytesFromClient(): number {
    return this.#up.scanner.bytes;
  }

  get bytesFromBackend(): number {
    return this.#down.scanner.bytes;
  }

  /** Drain: close 1001 both ways, at frame boundaries. */
  goAway(): void {
    this.#closeBoth('drain', CloseCode.GOING_AWAY);
  }

  #read(direction: Direction, chunk: Buffer): void {
    const now = performance.now();
    if (direction === this.#up) this.#lastFromClient = now;
    direction.scanner.feed(chunk);
    if (direction.scanner.takeActivity()) this.#lastActive = now;
  }

  // Called by the directions.

  /** A close frame was read from `direction.from`. */
  closeRead(direction: Direction, code: number): void {
    if (this.#closedBy === 'none') {
      this.#closedBy = direction === this.#up ? 'client' : 'backend';
      this.#record.closeCode = code;
    }
    this.#startCloseDeadline();
    this.#endClientIfDone();
  }

  /** The proxy's own close has gone toward `direction.to`. */
  closeInserted(direction: Direction): void {
    // A side whose frames are no longer read (it broke a rule) cannot be heard answering: its connection ends now.
    if (direction === this.#down && this.#up.scanner.stopped) this.#client.end();
    if (direction === this.#up && this.#down.scanner.stopped) this.#backend.end();
    this.#endClientIfDone();
  }

  /** What `direction.from` sent broke a rule: `code` to it, 1001 to the other side, both at boundaries. */
  violation(direction: Direction, code: number, reason: string): void {
    this.#record.error = `${direction === this.#up ? 'client' : 'backend'} sent ${reason}`;
    const proxyReason: ProxyCloseReason = code === CloseCode.MESSAGE_TOO_BIG ? 'message_too_big' : code === CloseCode.POLICY_VIOLATION ? 'policy_violation' : 'protocol_error';
    const back = this.#other(direction);
    this.#proxyCloses(proxyReason);
    // To the offender: its code. To the other side: going away.
    back.insert(closeFrame(code, reason, back === this.#up), true);
    direction.insert(closeFrame(CloseCode.GOING_AWAY, 'the peer broke the protocol', direction === this.#up), true);
  }

  // The ends.

  /** `direction.from` will send nothing more (FIN, END_STREAM). */
  #peerEnded(direction: Direction): void {
    if (this.#ended) return;
    if (!direction.closeRead) {
      // Gone without a close frame: the other side hears 1001 from the proxy.
      if (this.#closedBy === 'none') this.#proxyCloses(direction === this.#up ? 'client_gone' : 'backend_gone');
      direction.insert(closeFrame(CloseCode.GOING_AWAY, PROXY_REASON_CODE[direction === this.#up ? 'client_gone' : 'backend_gone']!, direction === this.#up), true);
    }
    if (direction === this.#down) {
      // The backend has closed: after its close (ours or its own), the client's connection ends too.
      if (direction.closeWritten || !direction.scanner.atBoundary) this.#client.end();
    } else {
      this.#client.end();
    }
    this.#startCloseDeadline();
  }

  #sideClosed(direction: Direction): void {
    const other = this.#other(direction);
    if (!other.from.closed) {
      this.#peerEnded(direction);
      return;
    }
    this.#finish();
  }

  #other(direction: Direction): Direction {
    return direction === this.#up ? this.#down : this.#up;
  }

  /** The client has sent a close and been sent one: its side of the handshake is done, and the server (the proxy) ends it. */
  #endClientIfDone(): void {
    if (this.#up.closeRead && this.#down.closeWritten) this.#client.end();
  }

  #closeBoth(reason: ProxyCloseReason, code: number): void {
    if (this.#ended) return;
    this.#proxyCloses(reason);
    const text = PROXY_REASON_CODE[reason] ?? reason;
    if (!this.#down.closeWritten) this.#down.insert(closeFrame(code, text, false), true);
    if (!this.#up.closeWritten) this.#up.insert(closeFrame(code, text, true), true);
    this.#endClientIfDone();
  }

  #proxyCloses(reason: ProxyCloseReason): void {
    if (this.#record.proxyReason === undefined) this.#record.proxyReason = reason;
    if (this.#closedBy === 'none') {
      this.#closedBy = 'proxy';
      this.#record.closeCode = reason === 'message_too_big' ? CloseCode.MESSAGE_TOO_BIG : reason === 'protocol_error' ? CloseCode.PROTOCOL_ERROR : reason === 'policy_violation' ? CloseCode.POLICY_VIOLATION : CloseCode.GOING_AWAY;
    }
    this.#startCloseDeadline();
  }

  #startCloseDeadline(): void {
    if (this.#closeDeadline !== undefined) return;
    this.#closeDeadline = performance.now() + this.#timeouts.closeTimeoutMs;
    this.#arm();
  }

  // Time: one timer per session, armed for the nearest deadline; activity only moves timestamps.

  #arm(): void {
    clearTimeout(this.#timer);
    if (this.#ended) return;
    const next = this.#nextDeadline();
    this.#timer = setTimeout(() => this.#check(), Math.max(1, Math.ceil(next - performance.now())));
    this.#timer.unref();
  }

  #nextDeadline(): number {
    const t = this.#timeouts;
    let next = this.#closeDeadline ?? Infinity;
    if (this.#closeDeadline !== undefined) return next;
    next = Math.min(next, this.#lastActive + t.idleMs, this.#maxAgeAt ?? Infinity);
    if (t.pingIntervalMs !== undefined) {
      next = Math.min(next, this.#pingSentAt === undefined ? this.#lastFromClient + t.pingIntervalMs : this.#pingSentAt + t.pingTimeoutMs);
    }
    return next;
  }

  #check(): void {
    if (this.#ended) return;
    const now = performance.now();
    const t = this.#timeouts;
    if (this.#closeDeadline !== undefined) {
      if (now >= this.#closeDeadline) {
        this.#record.proxyReason ??= 'close_timeout';
        this.#client.destroy();
        this.#backend.destroy();
        return;
      }
    } else if (this.#maxAgeAt !== undefined && now >= this.#maxAgeAt) {
      this.#closeBoth('max_connection_age', CloseCode.GOING_AWAY);
    } else if (now - this.#lastActive >= t.idleMs) {
      this.#closeBoth('idle_timeout', CloseCode.GOING_AWAY);
    } else if (t.pingIntervalMs !== undefined) {
      if (this.#pingSentAt !== undefined && this.#lastFromClient > this.#pingSentAt) this.#pingSentAt = undefined;
      if (this.#pingSentAt === undefined && now - this.#lastFromClient >= t.pingIntervalMs) {
        this.#pingSentAt = now;
        this.#down.insert(pingFrame(PING_PAYLOAD), false);
      } else if (this.#pingSentAt !== undefined && now - this.#pingSentAt >= t.pingTimeoutMs) {
        // The client is gone: the backend hears so, and the client's connection is dropped.
        this.#proxyCloses('ping_timeout');
        this.#up.insert(closeFrame(CloseCode.GOING_AWAY, PROXY_REASON_CODE.ping_timeout!, true), true);
        this.#client.destroy();
      }
    }
    this.#arm();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    const record = this.#record;
    record.closedBy = this.#closedBy;
    record.bytesFromClient = this.#up.scanner.bytes;
    record.bytesFromBackend = this.#down.scanner.bytes;
    this.#options.onEnded(record);
  }
}
