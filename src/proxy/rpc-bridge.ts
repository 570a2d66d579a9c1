/**
 * One forwarded RPC: the client's stream, and one or more attempts on
 * backends. HTTP/2 flow control is carried end to end (a paused reader pauses
 * the other side, so no stream is buffered whole); the request is kept for
 * replay up to the route's limit; an attempt that fails before anything
 * reached the client may be retried on another endpoint; every way the RPC
 * can end becomes a gRPC status.
 *
 * This file holds the RPC as a whole (the client's stream, picking endpoints,
 * retries, the replay buffer, limits, committing and failing); one attempt and
 * the handlers of its upstream stream are in upstream-attempt.ts, which calls
 * back through the `AttemptOwner` interface and never imports this file.
 *
 * Event handlers are shared functions that find their state on the stream,
 * rather than closures made per RPC: this path runs for every call.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { RpcOutcome } from '../cluster/rpc-outcome.ts';
import type { Route } from '../router/route-table.ts';
import { LimitExceededError } from '../resilience/cluster-limits.ts';
import { TRANSPARENT_RETRIES, backoffMs, finalStatus, isTransparent, policyRetries, type AttemptFailure, type RetryRules } from '../resilience/retry-rules.ts';
import { Status } from '../grpc/status.ts';
import { formatGrpcTimeout } from '../grpc/timeout.ts';
import { exposeUpstream } from './headers.ts';
import { respondWithStatus, statusTrailers } from './respond.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { guardOf } from '../security/connection-guard.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, GrpcFrameMeter } from '../security/grpc-frame-meter.ts';
import { Attempt, attachUpstream, onPerTryTimeout, resumeDownstream, type AttemptOwner } from './upstream-attempt.ts';

/** After the proxy ends a stream with an error, a client that does not read is reset after this long. */
const ERROR_FLUSH_GRACE_MS = 1_000;

const CONNECT_FAILURE: RpcOutcome = { kind: 'connect_failure' };

/** setTimeout fires at once, with only a warning, for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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

export class RpcBridge implements AttemptOwner {
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
    // A deadline past the longest timer (2^31-1 ms, 24.8 days; grpc-timeout allows years) is forwarded, not enforced here.
    const limitIn = limitAt === undefined ? undefined : Math.max(0, limitAt - performance.now());
    if (limitIn !== undefined && limitIn <= MAX_TIMER_MS) this.#timer = setTimeout(onLimit, limitIn, this);
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
    // The stream reaches the bridge a tick after it arrived (src/listener/listener.ts), so a request
    // with no message may have ended, 'end' emitted, before anyone listened: its half-close is here.
    if (downstream.readableEnded) this.#downstreamEnded = true;
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
    attachUpstream(attempt, upstream);
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

  /** The client is not reading the response: pause the upstream until the client's stream drains. */
  pauseUpstreamUntilDrain(upstream: ClientHttp2Stream): void {
    upstream.pause();
    this.downstream.once('drain', resumeUpstream);
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
type Bridged = ServerHttp2Stream & { [BRIDGE]: RpcBridge };
const bridgeOf = (stream: ServerHttp2Stream): RpcBridge => (stream as Bridged)[BRIDGE];

function onLimit(bridge: RpcBridge): void {
  bridge.fail(Status.DEADLINE_EXCEEDED, bridge.limitMessage);
}

function startRetry(bridge: RpcBridge): void {
  bridge.retryAfterBackoff();
}

function resetIfOpen(stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
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
