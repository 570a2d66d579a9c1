/**
 * The contract between the RPC path (src/proxy/) and the HTTP/2 layers on
 * either side of it: the client's stream of one RPC (DownstreamStream, made by
 * a listener) and the stream of one attempt on a backend (UpstreamStream, made
 * by an endpoint pool). The proxy sees only these; whichever HTTP/2
 * implementation sits underneath keeps to them, and the proxy's unit tests
 * hold fakes to the same contract (test/helpers/fake-streams.ts).
 *
 * Events go to one subscriber, attached once; they are never lost by
 * attaching late (a request that had already ended is reported at attach).
 * Nothing here throws: calls on a stream that has closed do nothing.
 */
import type { Socket } from 'node:net';

/**
 * Names of fields the peer sent as never-indexed literals (RFC 7541 §7.1.3), kept on the header map
 * under this symbol (for-in does not see it) so that an encoder forwarding them does not index them either.
 */
export const NEVER_INDEXED_FIELDS: unique symbol = Symbol('never-indexed fields');

/** Header fields as decoded: lower-case names, repeated fields as arrays. `:status` may be a number. */
export type HeaderMap = Record<string, string | string[] | number | undefined> & { [NEVER_INDEXED_FIELDS]?: readonly string[] };

/** The client connection a downstream stream arrived on; also the key the security layer keeps per-connection state under. */
export interface DownstreamConnection {
  /** The socket: the peer's address, and over TLS its certificate. */
  readonly socket: Socket | undefined;
}

/** What happens to the client's side of an RPC, reported to the RPC that owns it. */
export interface DownstreamEvents {
  /** A chunk of the request body (gRPC frames, not aligned to messages). */
  onRequestData(chunk: Buffer): void;
  /** The client half-closed: the request is complete. */
  onRequestEnd(): void;
  /** Room again after write() returned false. */
  onResponseDrain(): void;
  /** The stream is gone (answered, reset by the client, or its connection closed). Last event. */
  onDownstreamClose(): void;
  /** The listener is about to close the connection (drain timeout, end of max connection age): end the RPC now. */
  onCut(reason: string): void;
  /**
   * The request body cannot be translated (a browser protocol's base64 or JSON is malformed; src/web/): end
   * the RPC with INVALID_ARGUMENT. No more request data follows.
   */
  onMalformedRequest(message: string): void;
}

/** The protocol a client spoke: gRPC itself, or a browser protocol the proxy translated to it (src/web/). */
export type RpcProtocol = 'grpc' | 'grpc-web' | 'connect';

export interface DownstreamStream {
  readonly connection: DownstreamConnection | undefined;
  /** Set by streams that translate another protocol; undefined: gRPC. */
  readonly protocol?: RpcProtocol | undefined;
  /** Response headers (or a trailers-only response) have been sent. */
  readonly headersSent: boolean;
  /** Closed or reset: nothing more can be sent. */
  readonly closed: boolean;
  /**
   * The request's header list size as decoded (RFC 9113 §6.5.2), when the transport counted it; when it
   * went past the connection's limit the header map is empty and this is the size that was refused.
   */
  readonly headerListSize?: number | undefined;
  /** Subscribes the RPC; called at most once. A request that already ended is reported at once. */
  attach(events: DownstreamEvents): void;
  /** Sends response headers; with `endStream` they are also the trailers (trailers-only). */
  respond(headers: HeaderMap, endStream: boolean): void;
  /** Sends response body bytes; false when the caller should wait for onResponseDrain. */
  write(chunk: Buffer): boolean;
  /** Ends the response with these trailers, after whatever was written. */
  end(trailers: HeaderMap): void;
  /** A plain HTTP answer with a text body and no trailers: for a request that is not gRPC at all. */
  answerHttp(status: number, body: string): void;
  /** RST_STREAM with `code`. */
  reset(code: number): void;
  /** Stops / restarts delivering request data (flow control: a paused stream grants no window). */
  pause(): void;
  resume(): void;
}

/**
 * A client stream that can carry a tunnel (an RFC 8441 extended CONNECT stream, src/websocket/): the
 * HTTP/2 engine's streams can; the translating streams of src/web/ never carry one, so the RPC
 * contract above does not ask for this.
 */
export interface TunnelStream extends DownstreamStream {
  /**
   * Ends the response with END_STREAM and no trailers, after whatever was written: a half-close, as a
   * tunnel's end is (RFC 8441 §4: END_STREAM is the TCP FIN). Unlike end(), the client's side stays open
   * until the client ends it; the stream closes then. Does nothing before respond().
   */
  finish(): void;
}

/** Whether `stream` can carry a tunnel. */
export function carriesTunnels(stream: DownstreamStream): stream is TunnelStream {
  return typeof (stream as Partial<TunnelStream>).finish === 'function';
}

/** What happens to one attempt's stream on a backend. */
export interface UpstreamEvents {
  /** Response headers; with `endStream` a trailers-only response (then no onTrailers). */
  onResponse(headers: HeaderMap, endStream: boolean): void;
  onResponseData(chunk: Buffer): void;
  onTrailers(trailers: HeaderMap): void;
  /** The response ended normally (after its trailers, or a trailers-only response). */
  onResponseEnd(): void;
  /** Room again after write() returned false. */
  onRequestDrain(): void;
  /** The stream is gone. Last event. After onResponseEnd it says nothing new; before it, the stream broke. */
  onUpstreamClose(broken: UpstreamBreak | undefined): void;
}

/** How an upstream stream broke before its response ended. */
export interface UpstreamBreak {
  /** The RST_STREAM code, the backend's or the one the connection's end implied. */
  readonly rstCode: number;
  /** The backend never processed the stream: REFUSED_STREAM, above its GOAWAY, or refused locally after one. */
  readonly refused: boolean;
  /** The connection failed under the stream (no RST_STREAM was received); the error says how. */
  readonly connectionError: string | undefined;
}

export interface UpstreamStream {
  /** Subscribes the attempt; called at most once, right after the stream is handed over. */
  attach(events: UpstreamEvents): void;
  /** Request body bytes; false when the caller should wait for onRequestDrain. */
  write(chunk: Buffer): boolean;
  /** Half-closes the request. */
  end(): void;
  /** Stops / restarts delivering response data (flow control toward the backend). */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** RST_STREAM CANCEL; counted against the connection's reset budget. Nothing after it. */
  cancel(): void;
  /** The connection under the stream has gone (for a stream that ended without a status). */
  readonly connectionLost: boolean;
}
