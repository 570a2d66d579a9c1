/**
 * One attempt of a forwarded RPC on one backend, and the handlers for its
 * upstream stream: the response headers (held back while a retry is still
 * possible, or sent on), the response data (size-checked, held briefly, then
 * forwarded with back-pressure), the trailers, and every way the stream can
 * break. Decisions that concern the whole RPC (retry or fail, commit to the
 * client) are the bridge's: the handlers call it through `AttemptOwner`, so
 * the dependency is one-way (rpc-bridge.ts imports this file, never the reverse).
 *
 * The handlers are module-level functions that find their attempt on the
 * stream (`this`), rather than closures made per attempt: this path runs for
 * every call.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ClusterEndpoint } from '../cluster/cluster.ts';
import { answered, failed, type Outcome } from '../grpc/outcome.ts';
import type { StreamReceiver } from '../upstream/endpoint-pool.ts';
import { pushback } from '../resilience/retry-rules.ts';
import { Status } from '../grpc/status.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { GrpcFrameMeter } from '../security/grpc-frame-meter.ts';
import { describeReset, isLocalGoAwayRefusal, isStreamReset, rstName, statusFromHttp, statusFromReset } from './status-mapping.ts';

/** Response bytes held back, with the headers, while a retry is still possible. */
const RESPONSE_HOLD_BYTES = 64 << 10;
const RESPONSE_HOLD_MS = 5;

const ABANDONED = failed('abandoned');
const REFUSED = failed('upstream_refused');
const PER_TRY_TIMEOUT = failed('per_try_timeout');

/** What an attempt needs of the RPC it belongs to. RpcBridge implements it. */
export interface AttemptOwner {
  /** The current attempt; events of any other are stale and ignored. */
  readonly attempt: Attempt | undefined;
  readonly downstream: ServerHttp2Stream;
  readonly downstreamClosed: boolean;
  readonly record: RpcRecord;
  readonly maxResponseMessageBytes: number;
  /** The final status is decided. */
  statusSent: boolean;
  trailersToSend: OutgoingHttpHeaders | IncomingHttpHeaders | undefined;
  /** The pool's answer for an attempt: its stream, or why there is none. */
  onAttemptStream(attempt: Attempt, error: Error | undefined, upstream: ClientHttp2Stream | undefined): void;
  /** True while holding the response headers back could still let a retry happen. */
  mayStillRetry(): boolean;
  /**
   * The attempt failed (`outcome.failure` is set): retries it if allowed, else ends the RPC with it.
   * `detail` is for the access log; `message`, the client's, names no endpoint (default: the catalogue's).
   */
  attemptFailed(attempt: Attempt, outcome: Outcome, detail: string, message?: string): void;
  /**
   * The backend answered a status that the route may retry: retries and returns true if allowed;
   * returns false when the answer should go to the client as it is.
   */
  retryAnswer(attempt: Attempt, pushbackMs: number | 'stop' | undefined): boolean;
  /** Sends response headers to the client; from here on the RPC is bound to this attempt. */
  commit(attempt: Attempt, headers: IncomingHttpHeaders, endStream: boolean): void;
  /** Ends the RPC with a status of the proxy's own; `message` is the client's (no internal address). */
  fail(outcome: Outcome, detail: string, message?: string): void;
  /** The client is not reading: pause this upstream until the client's stream drains. */
  pauseUpstreamUntilDrain(upstream: ClientHttp2Stream): void;
  /** Data moves again after a stall (see RpcBridge.stalled). */
  unstalled(): void;
}

/** One try of the RPC on one endpoint. */
export class Attempt implements StreamReceiver {
  readonly bridge: AttemptOwner;
  readonly endpoint: ClusterEndpoint;
  readonly startedAt = performance.now();
  /** Holds a slot of the cluster's retry budget until it ends. */
  readonly holdsRetrySlot: boolean;
  upstream: ClientHttp2Stream | undefined;
  /** How the attempt ended, as the cluster hears it; `abandoned` until something else is known. */
  outcome: Outcome = ABANDONED;
  ended = false;
  upstreamEnded = false;
  error: Error | undefined;
  /** Response headers kept back while the attempt might still be retried. */
  heldHeaders: IncomingHttpHeaders | undefined;
  /** The first response bytes, kept back with the headers until the trailers show the attempt succeeded. */
  heldData: Buffer[] = [];
  heldBytes = 0;
  holdTimer: NodeJS.Timeout | undefined;
  trailers: IncomingHttpHeaders | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Checks the response's message sizes; per attempt, since a retry starts a new response. */
  responseMeter: GrpcFrameMeter | undefined;

  constructor(bridge: AttemptOwner, endpoint: ClusterEndpoint, holdsRetrySlot: boolean) {
    this.bridge = bridge;
    this.endpoint = endpoint;
    this.holdsRetrySlot = holdsRetrySlot;
  }

  onStream(error: Error | undefined, stream: ClientHttp2Stream | undefined): void {
    this.bridge.onAttemptStream(this, error, stream);
  }
}

const ATTEMPT = Symbol('switchyard.attempt');
type Tried = ClientHttp2Stream & { [ATTEMPT]: Attempt };

/** Binds the attempt to its upstream stream and listens to it. */
export function attachUpstream(attempt: Attempt, upstream: ClientHttp2Stream): void {
  attempt.upstream = upstream;
  (upstream as Tried)[ATTEMPT] = attempt;
  upstream.on('error', onUpstreamError);
  upstream.on('response', onUpstreamResponse);
  upstream.on('data', onUpstreamData);
  upstream.on('trailers', onUpstreamTrailers);
  upstream.on('end', onUpstreamEnd);
  upstream.on('close', onUpstreamClose);
}

/** The attempt this upstream stream belongs to, if it is still the bridge's current one. */
function currentAttempt(stream: ClientHttp2Stream): Attempt | undefined {
  const attempt = (stream as Tried)[ATTEMPT];
  return attempt.bridge.attempt === attempt ? attempt : undefined;
}

/** The per-try timer (setTimeout with the attempt as its argument). */
export function onPerTryTimeout(attempt: Attempt): void {
  if (attempt.bridge.attempt !== attempt) return;
  // A backend that does not answer in time is failing, as far as outlier detection is concerned.
  attempt.bridge.attemptFailed(attempt, PER_TRY_TIMEOUT, `upstream ${attempt.endpoint.key}: per-try timeout`);
}

/** The upstream took the request data it had refused: let the client send again ('drain' on the upstream). */
export function resumeDownstream(this: ClientHttp2Stream): void {
  const attempt = (this as Tried)[ATTEMPT];
  if (attempt.bridge.attempt !== attempt) return;
  attempt.bridge.unstalled();
  attempt.bridge.downstream.resume();
}

function onUpstreamError(this: ClientHttp2Stream, error: Error): void {
  (this as Tried)[ATTEMPT].error = error;
}

function onUpstreamResponse(this: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
  const attempt = currentAttempt(this);
  if (!attempt) return;
  const bridge = attempt.bridge;
  // Node gives ':status' as a number, whatever the type declarations say.
  const httpStatus = headers[':status'] as unknown as number;
  if (httpStatus !== 200) {
    const message = `upstream answered HTTP ${httpStatus}`;
    return bridge.attemptFailed(attempt, failed('upstream_protocol_error', statusFromHttp(httpStatus)), `${message} (${attempt.endpoint.key})`, message);
  }
  const grpcStatus = headers['grpc-status'];
  if (grpcStatus !== undefined) {
    // Trailers-only: status and message arrive in the one HEADERS frame, which is also the
    // trailers when the stream ends next ('end' must not take it for a stream without a status).
    const code = Number(grpcStatus);
    attempt.outcome = answered(code);
    attempt.trailers = headers;
    if (code !== Status.OK && bridge.mayStillRetry() && bridge.retryAnswer(attempt, pushback(headers['grpc-retry-pushback-ms']))) return;
    if (bridge.statusSent) return;
    bridge.statusSent = true;
    bridge.record.status = code;
    bridge.commit(attempt, headers, true);
    return;
  }
  // A failure can still arrive as headers then trailers with no message between: wait for the first message.
  if (bridge.mayStillRetry()) attempt.heldHeaders = headers;
  else bridge.commit(attempt, headers, false);
}

function onUpstreamData(this: ClientHttp2Stream, chunk: Buffer): void {
  const attempt = currentAttempt(this);
  if (!attempt) return;
  const bridge = attempt.bridge;
  const declared = (attempt.responseMeter ??= new GrpcFrameMeter(bridge.maxResponseMessageBytes)).feed(chunk);
  if (declared >= 0) {
    // fail() cancels the upstream stream: the backend stops sending.
    const message = `response message of ${declared} bytes exceeds max_response_message_bytes ${bridge.maxResponseMessageBytes}`;
    return bridge.fail(failed('response_too_large'), `${message} (from ${attempt.endpoint.key})`, message);
  }
  if (attempt.heldHeaders) {
    // A unary answer is one message then trailers: holding it briefly lets a backend that dies
    // before its trailers be retried. A stream's first message is delayed by RESPONSE_HOLD_MS at most.
    if (attempt.heldBytes + chunk.length <= RESPONSE_HOLD_BYTES) {
      attempt.heldData.push(chunk);
      attempt.heldBytes += chunk.length;
      attempt.holdTimer ??= setTimeout(releaseHeld, RESPONSE_HOLD_MS, attempt);
      return;
    }
    releaseHeld(attempt);
  }
  forwardResponseData(attempt, this, chunk);
}

/** Sends the held headers and data on: from here the RPC is bound to this attempt. */
function releaseHeld(attempt: Attempt): void {
  clearTimeout(attempt.holdTimer);
  const headers = attempt.heldHeaders;
  if (!headers || attempt.bridge.attempt !== attempt) return;
  attempt.heldHeaders = undefined;
  attempt.bridge.commit(attempt, headers, false);
  const held = attempt.heldData;
  attempt.heldData = [];
  attempt.heldBytes = 0;
  for (const chunk of held) forwardResponseData(attempt, attempt.upstream!, chunk);
}

function forwardResponseData(attempt: Attempt, upstream: ClientHttp2Stream, chunk: Buffer): void {
  const bridge = attempt.bridge;
  bridge.record.bytesOut += chunk.length;
  bridge.record.messagesOut = attempt.responseMeter?.messages ?? 0;
  const downstream = bridge.downstream;
  if (bridge.downstreamClosed || downstream.destroyed) return;
  if (!downstream.write(chunk) && !upstream.isPaused()) bridge.pauseUpstreamUntilDrain(upstream);
}

function onUpstreamTrailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
  (this as Tried)[ATTEMPT].trailers = trailers;
}

function onUpstreamEnd(this: ClientHttp2Stream): void {
  const attempt = currentAttempt(this);
  if (!attempt) return;
  attempt.upstreamEnded = true;
  const bridge = attempt.bridge;
  const trailers = attempt.trailers;
  if (trailers?.['grpc-status'] === undefined) {
    // A stream that ends without a status broke: a reset, not an answer. When the connection went with it
    // (a backend killed mid-RPC), clients should see UNAVAILABLE, which they retry; otherwise the backend
    // broke the protocol, and INTERNAL says so.
    const connectionLost = this.session === undefined || this.session.destroyed || this.session.closed;
    const message = connectionLost ? 'upstream lost its connection before a gRPC status' : 'upstream ended the stream without a gRPC status';
    return bridge.attemptFailed(attempt, failed(connectionLost ? 'upstream_reset' : 'upstream_protocol_error'), `${message} (${attempt.endpoint.key})`, message);
  }
  const code = Number(trailers['grpc-status']);
  attempt.outcome = answered(code);
  if (attempt.heldHeaders) {
    if (code !== Status.OK && bridge.mayStillRetry() && bridge.retryAnswer(attempt, pushback(trailers['grpc-retry-pushback-ms']))) return;
    releaseHeld(attempt);
  }
  if (bridge.statusSent) return;
  bridge.statusSent = true;
  bridge.record.status = code;
  bridge.trailersToSend = trailers;
  if (!bridge.downstreamClosed && !bridge.downstream.destroyed) bridge.downstream.end();
}

function onUpstreamClose(this: ClientHttp2Stream): void {
  const attempt = currentAttempt(this);
  if (!attempt || attempt.upstreamEnded) return;
  const rstCode = this.rstCode ?? 0;
  const what = describeReset(rstCode, attempt.error);
  const detail = `upstream ${attempt.endpoint.key}: ${what}`;
  // REFUSED_STREAM, a stream above a GOAWAY's last stream id, or one Node refused after a GOAWAY: never processed.
  if (rstCode === constants.NGHTTP2_REFUSED_STREAM || isLocalGoAwayRefusal(attempt.error)) return attempt.bridge.attemptFailed(attempt, REFUSED, detail);
  const message = isStreamReset(attempt.error) ? `upstream reset the stream (${rstName(rstCode)})` : 'upstream lost its connection before a gRPC status';
  attempt.bridge.attemptFailed(attempt, failed('upstream_reset', statusFromReset(rstCode, attempt.error)), detail, message);
}

