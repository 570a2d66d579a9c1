/**
 * One forwarded RPC: the client's stream, and one or more attempts on
 * backends. HTTP/2 flow control is carried end to end (a paused reader pauses
 * the other side, so no stream is buffered whole); the request is kept for
 * replay up to the route's limit; an attempt that fails before anything
 * reached the client may be retried on another endpoint; every way the RPC
 * can end becomes a gRPC status.
 *
 * Event handlers are shared functions that find their state on the stream,
 * rather than closures made per RPC: this path runs for every call.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { RpcOutcome } from '../cluster/rpc-outcome.ts';
import type { Route } from '../router/route-table.ts';
import type { StreamReceiver } from '../upstream/endpoint-pool.ts';
import { LimitExceededError } from '../resilience/cluster-limits.ts';
import { TRANSPARENT_RETRIES, backoffMs, finalStatus, isTransparent, policyRetries, pushback, type AttemptFailure, type RetryRules } from '../resilience/retry-rules.ts';
import { Status } from './grpc-status.ts';
import { formatGrpcTimeout } from './grpc-timeout.ts';
import { exposeUpstream } from './headers.ts';
import { respondWithStatus, statusTrailers } from './respond.ts';
import type { RpcRecord } from './rpc-record.ts';
import { guardOf } from '../security/connection-guard.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, GrpcFrameMeter } from '../security/grpc-frame-meter.ts';
import { describeReset, statusFromHttp, statusFromReset } from './status-mapping.ts';

/** Response bytes held back, with the headers, while a retry is still possible. */
const RESPONSE_HOLD_BYTES = 64 << 10;
const RESPONSE_HOLD_MS = 5;

/** After the proxy ends a stream with an error, a client that does not read is reset after this long. */
const ERROR_FLUSH_GRACE_MS = 1_000;

const ABANDONED: RpcOutcome = { kind: 'abandoned' };
const CONNECT_FAILURE: RpcOutcome = { kind: 'connect_failure' };
const RESET: RpcOutcome = { kind: 'reset' };

export interface RpcBridgeOptions {
  readonly downstream: ServerHttp2Stream;
  /** Request headers for the backend, without grpc-timeout (each attempt sets its own). */
  readonly headers: OutgoingHttpHeaders;
  readonly cluster: Cluster;
  readonly route: Route;
  readonly record: RpcRecord;
  readonly hashKey: string | undefined;
  /** performance.now() time by which the RPC must end, as forwarded upstream; undefined: none. */
  readonly deadlineAt: number | undefined;
  /** When the proxy ends it (the deadline, or max_stream_duration if sooner). */
  readonly limitAt: number | undefined;
  readonly limitMessage: string;
}

/** One try of the RPC on one endpoint. */
class Attempt implements StreamReceiver {
  readonly bridge: RpcBridge;
  readonly endpoint: ClusterEndpoint;
  readonly startedAt = performance.now();
  /** Holds a slot of the cluster's retry budget until it ends. */
  readonly holdsRetrySlot: boolean;
  upstream: ClientHttp2Stream | undefined;
  outcome: RpcOutcome = ABANDONED;
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

  constructor(bridge: RpcBridge, endpoint: ClusterEndpoint, holdsRetrySlot: boolean) {
    this.bridge = bridge;
    this.endpoint = endpoint;
    this.holdsRetrySlot = holdsRetrySlot;
  }

  onStream(error: Error | undefined, stream: ClientHttp2Stream | undefined): void {
    this.bridge.onAttemptStream(this, error, stream);
  }
}

export class RpcBridge {
  readonly downstream: ServerHttp2Stream;
  readonly record: RpcRecord;
  readonly #options: RpcBridgeOptions;
  readonly #cluster: Cluster;
  readonly #rules: RetryRules;
  readonly #tried = new Set<ClusterEndpoint>();
  attempt: Attempt | undefined;
  /** Every request chunk so far, for replay; undefined once over the route's limit or committed. */
  #replay: Buffer[] | undefined = [];
  #replayBytes = 0;
  /** Chunks that arrived while no attempt had a stream (replay may have overflowed meanwhile). */
  #backlog: Buffer[] = [];
  #downstreamEnded = false;
  downstreamClosed = false;
  /** Response headers (or a trailers-only response) went to the client: no more retries. */
  #committed = false;
  /** The final status is decided. */
  statusSent = false;
  trailersToSend: OutgoingHttpHeaders | IncomingHttpHeaders | undefined;
  #policyRetries = 0;
  #transparentRetries = 0;
  #retrySlotPending = false;
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Checks the request's message sizes as chunks pass (the listener's max_request_message_bytes). */
  #requestMeter: GrpcFrameMeter | undefined;
  maxResponseMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  /** The listener's expose_upstream: name the serving endpoint in the response headers. */
  #exposeUpstream = false;

  constructor(options: RpcBridgeOptions) {
    this.#options = options;
    this.downstream = options.downstream;
    this.record = options.record;
    this.#cluster = options.cluster;
    this.#rules = options.route.retry;
  }

  get limitMessage(): string {
    return this.#options.limitMessage;
  }

  /** The backoff before a retry has passed. */
  retryAfterBackoff(): void {
    this.#startAttempt();
  }

  start(): void {
    const { downstream, limitAt } = this.#options;
    if (limitAt !== undefined) this.#timer = setTimeout(onLimit, Math.max(0, limitAt - performance.now()), this);
    (downstream as Bridged)[BRIDGE] = this;
    const limits = guardOf(downstream.session)?.config;
    this.#requestMeter = new GrpcFrameMeter(limits?.maxRequestMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
    if (limits) {
      this.maxResponseMessageBytes = limits.maxResponseMessageBytes;
      this.#exposeUpstream = limits.exposeUpstream;
    }
    downstream.on('wantTrailers', onDownstreamWantTrailers);
    downstream.on('close', onDownstreamClose);
    downstream.on('data', onDownstreamData);
    downstream.on('end', onDownstreamEnd);
    // Request data flows only while an attempt has a stream to take it.
    downstream.pause();
    this.#startAttempt();
  }

  #startAttempt(): void {
    if (this.statusSent) return;
    const endpoint = this.#cluster.pick(this.#options.hashKey, this.#tried.size > 0 ? this.#tried : undefined);
    if (!endpoint) return this.fail(Status.UNAVAILABLE, this.#cluster.describeUnavailable());
    this.#tried.add(endpoint);
    const attempt = new Attempt(this, endpoint, this.#retrySlotPending);
    this.#retrySlotPending = false;
    this.attempt = attempt;
    this.record.endpoint = endpoint.key;

    const headers = this.#tried.size === 1 ? this.#options.headers : { ...this.#options.headers };
    const now = performance.now();
    const perTry = this.#rules.perTryTimeoutMs;
    let timeout = this.#options.deadlineAt === undefined ? undefined : this.#options.deadlineAt - now;
    if (perTry !== undefined && (timeout === undefined || perTry < timeout)) timeout = perTry;
    if (timeout !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(timeout);
    if (perTry !== undefined) attempt.timer = setTimeout(onPerTryTimeout, perTry, attempt);
    endpoint.pool.open(headers, attempt);
  }

  /** The pool's answer for an attempt: its stream, or why there is none. */
  onAttemptStream(attempt: Attempt, error: Error | undefined, upstream: ClientHttp2Stream | undefined): void {
    if (attempt !== this.attempt || this.statusSent) {
      if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
      this.#endAttempt(attempt);
      return;
    }
    if (!upstream) {
      if (error instanceof LimitExceededError) return this.fail(Status.UNAVAILABLE, error.message);
      return this.attemptFailed(attempt, { kind: 'connect_failure' }, CONNECT_FAILURE, `upstream ${attempt.endpoint.key}: ${error?.message ?? 'no stream'}`);
    }
    attempt.upstream = upstream;
    (upstream as Tried)[ATTEMPT] = attempt;
    upstream.on('error', onUpstreamError);
    upstream.on('response', onUpstreamResponse);
    upstream.on('data', onUpstreamData);
    upstream.on('trailers', onUpstreamTrailers);
    upstream.on('end', onUpstreamEnd);
    upstream.on('close', onUpstreamClose);
    for (const chunk of this.#replay ?? this.#backlog) upstream.write(chunk);
    this.#backlog = [];
    if (this.#downstreamEnded) upstream.end();
    else this.downstream.resume();
  }

  /** A request chunk from the client: keep it for replay while allowed, and send it on. */
  onRequestData(chunk: Buffer): void {
    this.record.bytesIn += chunk.length;
    const declared = this.#requestMeter!.feed(chunk);
    this.record.messagesIn = this.#requestMeter!.messages;
    if (declared >= 0) {
      // Nothing of the oversized message is forwarded or kept; the rest of the request is read and dropped.
      this.downstream.off('data', onDownstreamData);
      this.downstream.resume();
      return this.fail(Status.RESOURCE_EXHAUSTED, `request message of ${declared} bytes exceeds max_request_message_bytes ${this.#requestMeter!.maxMessageBytes}`);
    }
    if (this.#replay) {
      this.#replayBytes += chunk.length;
      if (this.#replayBytes > this.#rules.maxBufferedBytes) this.#replay = undefined;
      else this.#replay.push(chunk);
    }
    const upstream = this.attempt?.upstream;
    if (!upstream) {
      this.#backlog.push(chunk);
      this.downstream.pause();
      return;
    }
    if (!upstream.write(chunk)) {
      this.downstream.pause();
      upstream.once('drain', resumeDownstream);
    }
  }

  onRequestEnd(): void {
    this.#downstreamEnded = true;
    this.attempt?.upstream?.end();
  }

  /** True while holding the response headers back could still let a retry happen. */
  mayStillRetry(): boolean {
    return !this.#committed && this.#replay !== undefined && this.#policyRetries < this.#rules.numRetries;
  }

  /** Retries the attempt's failure if the rules, the budget and the deadline allow; else ends the RPC with it. */
  attemptFailed(attempt: Attempt, failure: AttemptFailure, outcome: RpcOutcome, message: string, code?: number, pushbackMs?: number | 'stop'): void {
    attempt.outcome = outcome;
    const transparent = isTransparent(failure) && this.#transparentRetries < TRANSPARENT_RETRIES;
    const byPolicy = policyRetries(this.#rules, failure) && this.#policyRetries < this.#rules.numRetries;
    const deadlineAt = this.#options.deadlineAt;
    const canRetry = !this.#committed && !this.statusSent && !this.downstreamClosed && this.#replay !== undefined
      && pushbackMs !== 'stop' && (transparent || byPolicy) && (deadlineAt === undefined || performance.now() < deadlineAt);
    if (!canRetry) return this.fail(code ?? finalStatus(failure), message);
    if (transparent) {
      this.#transparentRetries++;
    } else {
      const overflow = this.#cluster.limits.startRetry();
      if (overflow) return this.fail(code ?? finalStatus(failure), `${message}; not retried: ${overflow.message}`);
      this.#policyRetries++;
      this.#retrySlotPending = true;
    }
    this.record.retries++;
    this.#endAttempt(attempt);
    this.attempt = undefined;
    this.downstream.pause();
    const delay = transparent ? 0 : typeof pushbackMs === 'number' ? pushbackMs : backoffMs(this.#rules, this.#policyRetries - 1, Math.random);
    if (delay > 0) this.#retryTimer = setTimeout(startRetry, delay, this);
    else this.#startAttempt();
  }

  /** Sends response headers to the client; from here on the RPC is bound to this attempt. */
  commit(attempt: Attempt, headers: IncomingHttpHeaders, endStream: boolean): void {
    this.#committed = true;
    this.#replay = undefined;
    clearTimeout(attempt.timer);
    if (this.downstreamClosed || this.downstream.destroyed) return;
    if (this.#exposeUpstream) exposeUpstream(headers, attempt.endpoint.key);
    this.downstream.respond(headers, endStream ? END_STREAM : WAIT_FOR_TRAILERS);
  }

  /** Ends the RPC with a status of the proxy's own, however far it had got. */
  fail(code: number, message: string): void {
    if (this.statusSent) return;
    this.statusSent = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    this.record.status = code;
    this.record.error = message;
    if (this.attempt) this.#endAttempt(this.attempt);
    const downstream = this.downstream;
    if (this.downstreamClosed || downstream.destroyed) return;
    if (!this.#committed) {
      this.#committed = true;
      // The rest of the request is not needed, but must be read: a paused stream never closes, and holds its connection open.
      downstream.off('data', onDownstreamData);
      downstream.resume();
      respondWithStatus(downstream, code, message);
      return;
    }
    this.trailersToSend = statusTrailers(code, message);
    downstream.end();
    // Trailers wait behind unread data; a client that stopped reading is reset instead.
    setTimeout(resetIfOpen, ERROR_FLUSH_GRACE_MS, downstream).unref();
  }

  /** The client's stream closed: the RPC is over, whatever state it was in. */
  onDownstreamClosed(): void {
    this.downstreamClosed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    const record = this.record;
    if (record.status === undefined) {
      record.status = Status.CANCELLED;
      record.error = 'the client reset the stream';
    }
    // Nothing more can reach the client; closing the upstream below must not pick a status.
    this.statusSent = true;
    if (this.attempt) this.#endAttempt(this.attempt);
    if (this.#retrySlotPending) this.#cluster.limits.endRetry();
    this.#cluster.limits.endRequest();
    record.finish();
  }

  /** Releases the attempt's endpoint (with its outcome) and cancels its stream if still open. Idempotent. */
  #endAttempt(attempt: Attempt): void {
    if (attempt.ended) return;
    attempt.ended = true;
    clearTimeout(attempt.timer);
    clearTimeout(attempt.holdTimer);
    const upstream = attempt.upstream;
    if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
    this.#cluster.release(attempt.endpoint, performance.now() - attempt.startedAt, attempt.outcome);
    if (attempt.holdsRetrySlot) this.#cluster.limits.endRetry();
  }
}

const END_STREAM = { endStream: true } as const;
const WAIT_FOR_TRAILERS = { waitForTrailers: true } as const;

const BRIDGE = Symbol('switchyard.rpcBridge');
const ATTEMPT = Symbol('switchyard.attempt');
type Bridged = ServerHttp2Stream & { [BRIDGE]: RpcBridge };
type Tried = ClientHttp2Stream & { [ATTEMPT]: Attempt };
const bridgeOf = (stream: ServerHttp2Stream): RpcBridge => (stream as Bridged)[BRIDGE];

/** The attempt this upstream stream belongs to, if it is still the bridge's current one. */
function currentAttempt(stream: ClientHttp2Stream): Attempt | undefined {
  const attempt = (stream as Tried)[ATTEMPT];
  return attempt.bridge.attempt === attempt ? attempt : undefined;
}

function onLimit(bridge: RpcBridge): void {
  bridge.fail(Status.DEADLINE_EXCEEDED, bridge.limitMessage);
}

function onPerTryTimeout(attempt: Attempt): void {
  if (attempt.bridge.attempt !== attempt) return;
  // A backend that does not answer in time is failing, as far as outlier detection is concerned.
  attempt.bridge.attemptFailed(attempt, { kind: 'per_try_timeout' }, RESET, `upstream ${attempt.endpoint.key}: per-try timeout`);
}

function startRetry(bridge: RpcBridge): void {
  bridge.retryAfterBackoff();
}

function resetIfOpen(stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
}

function resumeDownstream(this: ClientHttp2Stream): void {
  const attempt = (this as Tried)[ATTEMPT];
  if (attempt.bridge.attempt === attempt) attempt.bridge.downstream.resume();
}

function resumeUpstream(this: ServerHttp2Stream): void {
  bridgeOf(this).attempt?.upstream?.resume();
}

function onDownstreamData(this: ServerHttp2Stream, chunk: Buffer): void {
  bridgeOf(this).onRequestData(chunk);
}

function onDownstreamEnd(this: ServerHttp2Stream): void {
  bridgeOf(this).onRequestEnd();
}

function onDownstreamWantTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(bridgeOf(this).trailersToSend ?? statusTrailers(Status.INTERNAL, 'upstream ended the stream without trailers'));
}

function onDownstreamClose(this: ServerHttp2Stream): void {
  bridgeOf(this).onDownstreamClosed();
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
    const code = statusFromHttp(httpStatus);
    return bridge.attemptFailed(attempt, { kind: 'status', code }, { kind: 'status', code }, `upstream ${attempt.endpoint.key} answered HTTP ${httpStatus}`, code);
  }
  const grpcStatus = headers['grpc-status'];
  if (grpcStatus !== undefined) {
    // Trailers-only: status and message arrive in the one HEADERS frame.
    const code = Number(grpcStatus);
    attempt.outcome = { kind: 'status', code };
    if (code !== Status.OK && bridge.mayStillRetry()) {
      return bridge.attemptFailed(attempt, { kind: 'status', code }, attempt.outcome, String(headers['grpc-message'] ?? ''), code, pushback(headers['grpc-retry-pushback-ms']));
    }
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
    return bridge.fail(Status.RESOURCE_EXHAUSTED, `response message of ${declared} bytes from ${attempt.endpoint.key} exceeds max_response_message_bytes ${bridge.maxResponseMessageBytes}`);
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
  if (!downstream.write(chunk) && !upstream.isPaused()) {
    upstream.pause();
    downstream.once('drain', resumeUpstream);
  }
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
    const why = connectionLost ? 'lost its connection before a gRPC status' : 'ended the stream without a gRPC status';
    return bridge.attemptFailed(attempt, { kind: 'reset' }, RESET, `upstream ${attempt.endpoint.key} ${why}`, connectionLost ? Status.UNAVAILABLE : Status.INTERNAL);
  }
  const code = Number(trailers['grpc-status']);
  attempt.outcome = { kind: 'status', code };
  if (attempt.heldHeaders) {
    if (code !== Status.OK && bridge.mayStillRetry()) {
      return bridge.attemptFailed(attempt, { kind: 'status', code }, attempt.outcome, String(trailers?.['grpc-message'] ?? ''), code, pushback(trailers?.['grpc-retry-pushback-ms']));
    }
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
  const refused = rstCode === constants.NGHTTP2_REFUSED_STREAM;
  attempt.bridge.attemptFailed(
    attempt,
    refused ? { kind: 'refused_stream' } : { kind: 'reset' },
    // A refused stream was never processed: it says nothing bad about the endpoint.
    refused ? ABANDONED : RESET,
    `upstream ${attempt.endpoint.key}: ${describeReset(rstCode, attempt.error)}`,
    statusFromReset(rstCode, attempt.error),
  );
}
