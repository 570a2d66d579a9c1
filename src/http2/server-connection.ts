/**
 * The server side of an HTTP/2 connection: a client's requests become
 * ServerStreams, handed to the listener's handler once the whole read they
 * arrived in has been parsed. So a stream the client reset in that same read
 * (rapid reset, CVE-2023-44487) is never handed on: it costs a map entry.
 *
 * What a client may not do without being cut off, each a budget that refills
 * (HAProxy's "glitch" counters, nghttp2's reset limits):
 * - control frames (SETTINGS, PING, PRIORITY) past control_frame_burst/rate;
 * - streams reset, by the client or by us because of what it sent
 *   (MadeYouReset, CVE-2025-8671), past stream_reset_burst/rate;
 * - other glitches (empty DATA frames, WINDOW_UPDATEs beyond the DATA sent,
 *   streams refused over the concurrency limit, malformed requests) past
 *   GLITCH_BURST/rate;
 * and the preface and SETTINGS must come within the handshake timeout.
 * A client over a budget gets GOAWAY ENHANCE_YOUR_CALM and is disconnected.
 */
import type { Socket } from 'node:net';
import type { HeaderMap } from '../grpc/streams.ts';
import { TokenBucket } from '../security/token-bucket.ts';
import { ErrorCode, Flag, FrameType, Http2Error, PREFACE } from './constants.ts';
import { Http2Connection, type LocalSettings } from './connection.ts';
import { emptyHeaderMap, Malformed, requestHeaders, trailerHeaders } from './header-rules.ts';
import { ServerStream } from './server-stream.ts';
import { HIGH_WATER, type StreamCore } from './stream.ts';

/** Other glitches a connection may commit at once, and per second after that. */
const GLITCH_BURST = 200;
const GLITCHES_PER_SECOND = 20;
/**
 * A client's WINDOW_UPDATEs answer the DATA we send: one for the stream and one for the connection per
 * DATA frame at most (clients batch them, so far fewer), plus a few to open windows up front. Beyond that
 * they move nothing and each is a glitch (Envoy limits them the same way).
 */
const WINDOW_UPDATES_UP_FRONT = 100;
const WINDOW_UPDATES_PER_DATA_FRAME = 2;

/** Which budget a client went past. */
export type AbuseKind = 'control_frame_flood' | 'stream_reset_flood' | 'protocol_violations' | 'handshake_timeout';

export interface ServerLimits {
  readonly controlFrameBurst: number;
  readonly controlFramesPerSecond: number;
  readonly streamResetBurst: number;
  readonly streamResetRate: number;
  /** The preface and first SETTINGS must arrive within this, ms. */
  readonly handshakeTimeoutMs: number;
  /** Bytes the connection's streams may hold buffered (both ways) before new streams are refused. */
  readonly maxBufferedBytes: number;
}

/**
 * What a connection runs with and whom it tells. One object may serve every connection of a listener
 * (each callback is told which connection it is about), so a connection costs no closures.
 */
export interface ServerConnectionOptions {
  readonly local: LocalSettings;
  readonly limits: ServerLimits;
  /** A new request, with its headers (empty when its header list was too large: see stream.headerListSize). */
  onStream(stream: ServerStream, headers: HeaderMap, connection: ServerConnection): void;
  /** The client went past a budget; the connection is being closed. Called once. */
  onAbusive?(kind: AbuseKind, connection: ServerConnection): void;
  /** Streams opened, and closed (the listener's idle timer). */
  onStreamCount?(open: number, connection: ServerConnection): void;
  onClosed?(error: Error | undefined, connection: ServerConnection): void;
}

export class ServerConnection extends Http2Connection {
  readonly #options: ServerConnectionOptions;
  readonly #control: TokenBucket;
  readonly #resets: TokenBucket;
  /** Made with the first glitch: most connections never commit one. */
  #glitches: TokenBucket | undefined;
  /** Streams opened in the read being handled, dispatched after it. */
  #arrived: ServerStream[] = [];
  #arrivedHeaders: HeaderMap[] = [];
  #handshakeTimer: NodeJS.Timeout | undefined;
  #abusive = false;
  #windowUpdates = 0;

  constructor(socket: Socket, options: ServerConnectionOptions) {
    super(socket, options.local);
    this.#options = options;
    this.#control = new TokenBucket(options.limits.controlFramesPerSecond, options.limits.controlFrameBurst);
    this.#resets = new TokenBucket(options.limits.streamResetRate, options.limits.streamResetBurst);
    this.prefaceRemaining = PREFACE.length;
    this.sendInitialSettings();
    this.writer.flush();
    this.#handshakeTimer = setTimeout(() => this.#abuse('handshake_timeout', 'no connection preface and SETTINGS in time'), options.limits.handshakeTimeoutMs);
    this.#handshakeTimer.unref();
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.streams.size;
  }

  protected override readPreface(data: Buffer): Buffer {
    const expected = PREFACE.length - this.prefaceRemaining;
    const take = Math.min(this.prefaceRemaining, data.length);
    if (!data.subarray(0, take).equals(PREFACE.subarray(expected, expected + take))) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, 'not an HTTP/2 connection preface');
    }
    this.prefaceRemaining -= take;
    return data.subarray(take);
  }

  protected override onSettings(): void {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
  }

  protected override peerOpens(id: number): boolean {
    return id % 2 === 1;
  }

  protected override frameReceived(type: number, flags: number, _streamId: number, length: number): void {
    if (type === FrameType.PING || type === FrameType.PRIORITY || (type === FrameType.SETTINGS && (flags & Flag.ACK) === 0)) {
      if (!this.#control.tryTake()) this.#abuse('control_frame_flood', 'too many control frames');
    } else if (type === FrameType.DATA && length === 0 && (flags & Flag.END_STREAM) === 0) {
      // An empty DATA frame moves nothing: a stream of them is a way to burn CPU.
      this.#glitch('empty DATA frames');
    } else if (type === FrameType.WINDOW_UPDATE && ++this.#windowUpdates > WINDOW_UPDATES_UP_FRONT + WINDOW_UPDATES_PER_DATA_FRAME * this.dataFramesSent) {
      this.#glitch('WINDOW_UPDATE frames beyond the DATA sent');
    }
    if (this.closed) throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, 'closed for abuse');
  }

  protected override resettingForPeer(): void {
    if (!this.#resets.tryTake()) this.#abuse('stream_reset_flood', 'too many streams reset');
  }

  protected override ignoredOnClosedStream(kind: string): void {
    this.#glitch(`${kind} on closed streams`);
  }

  /**
   * Below the last stream the client opened, an id that was opened and closed long enough ago to be
   * forgotten (with thousands of streams at once, that is soon; skipped ids are told apart and refused
   * earlier). HEADERS on it opens a stream going backwards (§5.1.1: a gRPC client sends no trailers).
   * DATA is ignored, uncounted: it may have been on its way when we reset the stream.
   */
  protected override frameOnUnknownStream(streamId: number, kind: string): void {
    if (kind === 'HEADERS') throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}, below the last stream opened (§5.1.1)`);
  }

  #glitch(what: string): void {
    if (!(this.#glitches ??= new TokenBucket(GLITCHES_PER_SECOND, GLITCH_BURST)).tryTake()) this.#abuse('protocol_violations', `too many protocol violations (${what})`);
  }

  /**
   * Whether the open streams hold the connection's budget of buffered bytes. Each holds at most a window
   * inbound and about four HIGH_WATERs outbound (the bridge stops writing past one, a chunk at most
   * 16 KiB later); below that bound times the streams open, nothing needs counting.
   */
  #overBufferBudget(): boolean {
    const budget = this.#options.limits.maxBufferedBytes;
    if (this.streams.size * (this.local.streamWindow + 4 * HIGH_WATER) < budget) return false;
    let held = 0;
    for (const stream of this.streams.values()) held += stream.bufferedBytes;
    return held >= budget;
  }

  /** Counts one protocol violation the RPC path found on a stream of this connection. */
  protocolViolation(): void {
    this.#glitch('requests the proxy refused as malformed');
  }

  /** GOAWAY ENHANCE_YOUR_CALM (SETTINGS_TIMEOUT for the handshake), tell the listener, close. Nothing more is read. */
  #abuse(kind: AbuseKind, message: string): void {
    if (this.#abusive || this.closed) return;
    this.#abusive = true;
    this.#options.onAbusive?.(kind, this);
    this.connectionError(kind === 'handshake_timeout' ? ErrorCode.SETTINGS_TIMEOUT : ErrorCode.ENHANCE_YOUR_CALM, message);
  }

  /**
   * A connection error of ENHANCE_YOUR_CALM that the frame checks raise (a CONTINUATION flood, a SETTINGS
   * frame of too many entries) is abuse as much as a budget spent, and is reported the same way.
   */
  override connectionError(code: number, message: string): void {
    if (code === ErrorCode.ENHANCE_YOUR_CALM && !this.#abusive && !this.closed) {
      this.#abusive = true;
      this.#options.onAbusive?.('protocol_violations', this);
    }
    super.connectionError(code, message);
  }

  /** Closes the connection for a budget the RPC path keeps (src/security/connection-guard.ts). */
  closeAsAbusive(): void {
    if (this.#abusive || this.closed) return;
    this.#abusive = true;
    this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many protocol violations');
  }

  protected override onHeaderBlock(streamId: number, flags: number, result: 'ok' | 'too_large'): void {
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const existing = this.streams.get(streamId);
    if (existing) return this.#trailers(existing as ServerStream, endStream, result);
    if (!this.peerOpens(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `the client opened stream ${streamId}, an even id (§5.1.1)`);
    if (streamId <= this.lastPeerStreamId) return this.headersOnClosedStream(streamId);
    this.lastPeerStreamId = streamId;
    // After our GOAWAY, streams past its last stream id are not processed; the client knows to retry them.
    if (this.goAwaySent && streamId > this.goAwayLastStreamId) return this.ignoreUnopened(streamId);
    if (this.streams.size >= this.local.maxConcurrentStreams) {
      this.resetUnopened(streamId, ErrorCode.REFUSED_STREAM);
      return this.#glitch('streams over SETTINGS_MAX_CONCURRENT_STREAMS');
    }
    // Refused, not a glitch: the client did nothing wrong, its streams are just not being read fast enough.
    if (this.#overBufferBudget()) return this.resetUnopened(streamId, ErrorCode.REFUSED_STREAM);
    const stream = new ServerStream(streamId, this, this.peerInitialWindow);
    let headers: HeaderMap;
    stream.headerListSize = this.headerList.size;
    if (result === 'too_large') {
      // The decoder stops at the octet limit or at the field limit; the RPC path refuses a list over the octet
      // limit, so one cut for its number of fields must be over it too (else it went on as an empty request).
      stream.headerListSize = Math.max(this.headerList.size, this.local.maxHeaderListSize + 1);
      headers = emptyHeaderMap();
    } else {
      const parsed = requestHeaders(this.headerList, this.local.enableConnectProtocol === true);
      if (parsed instanceof Malformed) return this.#malformed(streamId, parsed);
      headers = parsed;
      const length = headers['content-length'];
      if (length !== undefined) {
        if (typeof length !== 'string' || !/^\d{1,15}$/.test(length)) return this.#malformed(streamId, new Malformed('content-length is not a number'));
        stream.expectedLength = Number(length);
      }
    }
    this.streams.set(streamId, stream);
    this.#options.onStreamCount?.(this.streams.size, this);
    if (endStream) {
      if (stream.expectedLength !== undefined && stream.expectedLength !== 0) return this.#malformedStream(stream, 'content-length with no body');
      stream.receiveEnd();
    }
    this.#arrived.push(stream);
    this.#arrivedHeaders.push(headers);
  }

  /** HEADERS on an open stream: trailers, which end the request (§8.1). */
  #trailers(stream: ServerStream, endStream: boolean, result: 'ok' | 'too_large'): void {
    if (stream.remoteEnded) {
      // Half-closed (remote): a frame other than WINDOW_UPDATE, PRIORITY or RST_STREAM is a stream error STREAM_CLOSED (§5.1).
      this.resettingForPeer();
      return stream.reset(ErrorCode.STREAM_CLOSED);
    }
    if (!endStream) return this.#malformedStream(stream, 'trailers without END_STREAM');
    if (result === 'too_large') return this.#malformedStream(stream, 'trailers over the header list limit');
    const parsed = trailerHeaders(this.headerList);
    if (parsed instanceof Malformed) return this.#malformedStream(stream, parsed.reason);
    this.dataReceived(stream, 0, true);
    if (!stream.closed) stream.receiveEnd();
  }

  protected override dataReceived(stream: StreamCore, bytes: number, endStream: boolean): void {
    const server = stream as ServerStream;
    if (server.expectedLength === undefined) return;
    server.receivedLength += bytes;
    if (server.receivedLength > server.expectedLength || (endStream && server.receivedLength !== server.expectedLength)) {
      this.#malformedStream(server, 'the body does not match content-length');
    }
  }

  #malformed(streamId: number, why: Malformed): void {
    this.resettingForPeer();
    this.resetUnopened(streamId, ErrorCode.PROTOCOL_ERROR);
    void why;
  }

  /** RST_STREAM for a stream that never opened. */
  #malformedStream(stream: ServerStream, _why: string): void {
    this.resettingForPeer();
    stream.reset(ErrorCode.PROTOCOL_ERROR);
  }

  protected override afterRead(): void {
    const arrived = this.#arrived;
    if (arrived.length === 0) return;
    const headers = this.#arrivedHeaders;
    try {
      // No stream arrives while they are handed on: only a read adds to the lists.
      for (let i = 0; i < arrived.length && !this.closed; i++) {
        // Reset in the read that opened it: never routed (its reset was counted when it came).
        if (!arrived[i]!.closed) this.#options.onStream(arrived[i]!, headers[i]!, this);
      }
    } finally {
      arrived.length = 0;
      headers.length = 0;
    }
  }

  protected override onPeerReset(stream: StreamCore): void {
    stream.close();
    if (!this.#resets.tryTake()) this.#abuse('stream_reset_flood', 'too many streams reset');
  }

  protected override onGoAway(): void {
    // The client is leaving: its streams finish; the connection closes with the last of them.
    this.#closeWhenIdle = true;
    if (this.streams.size === 0) this.closeSocket(undefined);
  }

  protected override onStreamClosed(): void {
    this.#options.onStreamCount?.(this.streams.size, this);
    if ((this.goAwaySent || this.goAwayReceived !== undefined) && this.streams.size === 0 && this.#closeWhenIdle) this.closeSocket(undefined);
  }

  #closeWhenIdle = false;
  /** The last stream id of our GOAWAY (streams past it are not processed). */
  goAwayLastStreamId = 2 ** 31 - 1;

  /** GOAWAY with `lastStreamId`; the connection closes when its last stream has. */
  shutdown(lastStreamId: number): void {
    if (this.closed) return;
    this.goAwayLastStreamId = lastStreamId;
    this.goAway(ErrorCode.NO_ERROR, lastStreamId);
    this.writer.flush();
    this.#closeWhenIdle = true;
    if (this.streams.size === 0) this.closeSocket(undefined);
  }

  /** The streams open now (to end them before the connection is destroyed). */
  openStreamList(): ServerStream[] {
    return [...this.streams.values()] as ServerStream[];
  }

  protected override connectionLostFor(stream: StreamCore): void {
    stream.close();
  }

  protected override onClosed(error: Error | undefined): void {
    clearTimeout(this.#handshakeTimer);
    this.#options.onClosed?.(error, this);
  }
}
