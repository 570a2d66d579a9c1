/**
 * One forwarded RPC: the client's stream, and one or more attempts on
 * backends. HTTP/2 flow control is carried end to end (a reader that stops
 * pauses the other side, so no stream is buffered whole); the request is kept
 * for replay up to the route's limit; an attempt that fails before anything
 * reached the client may be retried on another endpoint; every way the RPC
 * can end becomes a gRPC status, with a reason from the failure catalogue.
 *
 * This file holds the RPC as a whole (the client's stream, picking endpoints,
 * retries, the replay buffer, limits, committing and failing); one attempt and
 * its upstream stream's events are in upstream-attempt.ts, which calls back
 * through the small `AttemptOwner` interface and never imports this file.
 * Both sides are streams of the contract in src/grpc/streams.ts, whatever
 * HTTP/2 implementation is underneath; test/unit/rpc-bridge.test.ts drives
 * the bridge with fakes of it.
 */
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { Route } from '../router/route-table.ts';
import { LimitExceededError } from '../resilience/cluster-limits.ts';
import { TRANSPARENT_RETRIES, backoffMs, isTransparent, policyRetries, type RetryRules } from '../resilience/retry-rules.ts';
import { FAILURES, type FailureCode } from '../grpc/failures.ts';
import { failed, type Outcome } from '../grpc/outcome.ts';
import { statusTrailers, trailersOnly } from '../grpc/respond.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { formatGrpcTimeout } from '../grpc/timeout.ts';
import type { DownstreamEvents, DownstreamStream, HeaderMap, UpstreamStream } from '../grpc/streams.ts';
import { exposeUpstream } from './headers.ts';
import { applyHeaderEdit } from '../router/header-edit.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, GrpcFrameMeter } from '../grpc/frame-meter.ts';
import { Attempt, type AttemptOwner } from './upstream-attempt.ts';

/** After the proxy ends a stream with an error, a client that does not read is reset after this long. */
const ERROR_FLUSH_GRACE_MS = 1_000;
/** setTimeout fires at once, with only a warning, for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const CANCEL = 0x8;

const CONNECT_FAILURE = failed('upstream_connect_failure');
const REFUSED = failed('upstream_refused');
const CLIENT_CANCELLED = failed('client_cancelled');

/** The time limits the proxy enforces on a whole RPC; which one is the soonest says which failure it is. */
export type LimitReason = 'deadline_exceeded' | 'route_timeout' | 'max_stream_duration';

/** The catalogue code for a circuit breaker that refused something. */
export function overflowReason(error: LimitExceededError): FailureCode {
  switch (error.limit) {
    case 'max_requests': return 'overflow_requests';
    case 'max_pending_requests': return 'overflow_pending';
    case 'max_connections': return 'overflow_connections';
    case 'max_retries':
    case 'retry_budget': return 'retry_budget_exhausted';
  }
}

/** Per-connection limits the bridge applies (the listener's, via the connection guard). */
export interface BridgeLimits {
  readonly maxRequestMessageBytes: number;
  readonly maxResponseMessageBytes: number;
  /** Name the serving endpoint in the response headers (the listener's expose_upstream). */
  readonly exposeUpstream: boolean;
  /** Reset a stream whose data cannot move for this long; undefined: never. */
  readonly stalledStreamTimeoutMs: number | undefined;
}

const DEFAULT_LIMITS: BridgeLimits = {
  maxRequestMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxResponseMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  exposeUpstream: false,
  stalledStreamTimeoutMs: undefined,
};

export interface RpcBridgeOptions {
  readonly downstream: DownstreamStream;
  /** Request headers for the backend, without grpc-timeout (each attempt sets its own). */
  readonly headers: HeaderMap;
  readonly cluster: Cluster;
  readonly route: Route;
  readonly record: RpcRecord;
  readonly hashKey: string | undefined;
  /** performance.now() time by which the RPC must end, as forwarded upstream; undefined: none. */
  readonly deadlineAt: number | undefined;
  /** When the proxy ends it (the deadline, or max_stream_duration if sooner). */
  readonly limitAt: number | undefined;
  /** Which limit limitAt is. */
  readonly limit: LimitReason;
  readonly limits?: BridgeLimits | undefined;
}

export class RpcBridge implements AttemptOwner, DownstreamEvents {
  readonly downstream: DownstreamStream;
  readonly record: RpcRecord;
  readonly #options: RpcBridgeOptions;
  readonly #cluster: Cluster;
  readonly #rules: RetryRules;
  readonly #limits: BridgeLimits;
  /** Endpoints tried so far; made at the first retry (most RPCs have one attempt). */
  #tried: Set<ClusterEndpoint> | undefined;
  #firstEndpoint: ClusterEndpoint | undefined;
  attempt: Attempt | undefined;
  /** Every request chunk so far, for replay; undefined once over the route's limit or committed. */
  #replay: Buffer[] | undefined = [];
  #replayBytes = 0;
  /** Chunks that arrived while no attempt had a stream (replay may have overflowed meanwhile). */
  #backlog: Buffer[] = [];
  #downstreamEnded = false;
  downstreamClosed = false;
  /** The request body is no longer wanted (the RPC has failed): it is read and dropped. */
  #discardRequest = false;
  /** Response headers (or a trailers-only response) went to the client: no more retries. */
  #committed = false;
  /** The final status is decided. */
  statusSent = false;
  #policyRetries = 0;
  #transparentRetries = 0;
  #retrySlotPending = false;
  /** Why the last wanted retry was refused by the cluster's retry limits. */
  #budgetMessage = '';
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Checks the request's message sizes as chunks pass (the listener's max_request_message_bytes). */
  readonly #requestMeter: GrpcFrameMeter;
  /** The upstream is paused until the client's stream drains. */
  #awaitingResponseDrain = false;
  /** The client's stream is paused until the upstream drains. */
  #awaitingRequestDrain = false;
  /** Armed while one side waits for the other to drain (see #stalled). */
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(options: RpcBridgeOptions) {
    this.#options = options;
    this.downstream = options.downstream;
    this.record = options.record;
    this.#cluster = options.cluster;
    this.#rules = options.route.retry;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
    this.#requestMeter = new GrpcFrameMeter(this.#limits.maxRequestMessageBytes);
  }

  get maxResponseMessageBytes(): number {
    return this.#limits.maxResponseMessageBytes;
  }

  start(): void {
    const { downstream, limitAt } = this.#options;
    // A deadline past the longest timer (2^31-1 ms, 24.8 days; grpc-timeout allows years) is forwarded, not enforced here.
    const limitIn = limitAt === undefined ? undefined : Math.max(0, limitAt - performance.now());
    if (limitIn !== undefined && limitIn <= MAX_TIMER_MS) this.#timer = setTimeout(onLimit, limitIn, this);
    // Request data flows only while an attempt has a stream to take it.
    downstream.pause();
    downstream.attach(this);
    this.#startAttempt();
  }

  /** The time limit passed: DEADLINE_EXCEEDED, saying which limit it was. */
  onLimit(): void {
    const { limit, route } = this.#options;
    const message = limit === 'route_timeout' ? `deadline exceeded (route ${route.name} timeout ${route.timeoutMs} ms)`
      : limit === 'max_stream_duration' ? `stream exceeded max_stream_duration of route ${route.name}`
      : FAILURES.deadline_exceeded.message;
    this.fail(failed(limit), message, message);
  }

  /** The backoff before a retry has passed. */
  retryAfterBackoff(): void {
    this.#startAttempt();
  }

  #startAttempt(): void {
    if (this.statusSent) return;
    const first = this.#firstEndpoint;
    if (first !== undefined) this.#tried ??= new Set([first]);
    const endpoint = this.#cluster.pick(this.#options.hashKey, this.#tried);
    if (!endpoint) {
      const why = this.#cluster.describeUnavailable();
      return this.fail(failed('no_healthy_endpoint'), why, why);
    }
    if (first === undefined) this.#firstEndpoint = endpoint;
    else this.#tried!.add(endpoint);
    const attempt = new Attempt(this, endpoint, this.#retrySlotPending);
    this.#retrySlotPending = false;
    this.attempt = attempt;
    this.record.endpoint = endpoint.key;

    const headers = first === undefined ? this.#options.headers : { ...this.#options.headers };
    const now = performance.now();
    const perTry = this.#rules.perTryTimeoutMs;
    let timeout = this.#options.deadlineAt === undefined ? undefined : this.#options.deadlineAt - now;
    if (perTry !== undefined && (timeout === undefined || perTry < timeout)) timeout = perTry;
    if (timeout !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(timeout);
    if (perTry !== undefined) attempt.timer = setTimeout(onPerTryTimeout, perTry, attempt);
    endpoint.pool.open(headers as never, attempt);
  }

  /** The pool's answer for an attempt: its stream, or why there is none. */
  onAttemptStream(attempt: Attempt, error: (Error & { refused?: boolean }) | undefined, upstream: UpstreamStream | undefined): void {
    if (attempt !== this.attempt || this.statusSent) {
      upstream?.cancel();
      this.#endAttempt(attempt);
      return;
    }
    if (!upstream) {
      if (error instanceof LimitExceededError) return this.fail(failed(overflowReason(error)), error.message, error.message);
      const detail = `upstream ${attempt.endpoint.key}: ${error?.message ?? 'no stream'}`;
      // A stream the connection would not open (it had just received a GOAWAY) was never sent: refused.
      return this.attemptFailed(attempt, error?.refused === true ? REFUSED : CONNECT_FAILURE, detail);
    }
    attempt.upstream = upstream;
    upstream.attach(attempt);
    for (const chunk of this.#replay ?? this.#backlog) upstream.write(chunk);
    this.#backlog = [];
    if (this.#downstreamEnded) upstream.end();
    else this.downstream.resume();
  }

  /** A request chunk from the client: keep it for replay while allowed, and send it on. */
  onRequestData(chunk: Buffer): void {
    if (this.#discardRequest) return;
    this.record.bytesIn += chunk.length;
    const declared = this.#requestMeter.feed(chunk);
    this.record.messagesIn = this.#requestMeter.messages;
    if (declared >= 0) {
      // Nothing of the oversized message is forwarded or kept; the rest of the request is read and dropped.
      const message = `request message of ${declared} bytes exceeds max_request_message_bytes ${this.#requestMeter.maxMessageBytes}`;
      return this.fail(failed('request_too_large'), message, message);
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
      this.#awaitingRequestDrain = true;
      this.#stalled();
    }
  }

  onRequestEnd(): void {
    this.#downstreamEnded = true;
    if (!this.#discardRequest) this.attempt?.upstream?.end();
  }

  /** The attempt's upstream took the request data it had refused. */
  requestDrained(attempt: Attempt): void {
    if (attempt !== this.attempt || !this.#awaitingRequestDrain) return;
    this.#awaitingRequestDrain = false;
    this.#unstalled();
    this.downstream.resume();
  }

  /** The client's stream has room again. */
  onResponseDrain(): void {
    if (!this.#awaitingResponseDrain) return;
    this.#awaitingResponseDrain = false;
    this.#unstalled();
    this.attempt?.upstream?.resume();
  }

  /** True while holding the response headers back could still let a retry happen. */
  mayStillRetry(): boolean {
    return !this.#committed && this.#replay !== undefined && this.#policyRetries < this.#rules.numRetries;
  }

  /** The attempt failed: retries it if the rules, the budget and the deadline allow; else ends the RPC with it. */
  attemptFailed(attempt: Attempt, outcome: Outcome, detail: string, message?: string): void {
    attempt.outcome = outcome;
    const decision = this.#mayRetry(outcome, undefined);
    if (decision === 'retry') return this.#retry(attempt, outcome, undefined);
    if (decision === 'budget') {
      return this.fail(failed('retry_budget_exhausted', outcome.status), `${detail}; not retried: ${this.#budgetMessage}`, `${message ?? FAILURES[outcome.failure!].message}; not retried: retry budget exhausted`);
    }
    this.fail(outcome, detail, message);
  }

  /** A backend's answer with a status the route may retry: retried if allowed (true), else the caller passes it on. */
  retryAnswer(attempt: Attempt, pushbackMs: number | 'stop' | undefined): boolean {
    const decision = this.#mayRetry(attempt.outcome, pushbackMs);
    if (decision === 'retry') {
      this.#retry(attempt, attempt.outcome, pushbackMs);
      return true;
    }
    if (decision === 'budget') {
      this.record.reason = 'retry_budget_exhausted';
      this.record.error = `not retried: ${this.#budgetMessage}`;
    }
    return false;
  }

  /** Whether `outcome` may be retried now; 'budget' when only the cluster's retry limits stand in the way. */
  #mayRetry(outcome: Outcome, pushbackMs: number | 'stop' | undefined): 'retry' | 'budget' | 'no' {
    const transparent = isTransparent(outcome) && this.#transparentRetries < TRANSPARENT_RETRIES;
    const byPolicy = policyRetries(this.#rules, outcome) && this.#policyRetries < this.#rules.numRetries;
    const deadlineAt = this.#options.deadlineAt;
    const canRetry = !this.#committed && !this.statusSent && !this.downstreamClosed && this.#replay !== undefined
      && pushbackMs !== 'stop' && (transparent || byPolicy) && (deadlineAt === undefined || performance.now() < deadlineAt);
    if (!canRetry) return 'no';
    if (transparent) {
      this.#transparentRetries++;
      return 'retry';
    }
    const overflow = this.#cluster.limits.startRetry();
    if (overflow) {
      this.#budgetMessage = overflow.message;
      return 'budget';
    }
    this.#policyRetries++;
    this.#retrySlotPending = true;
    return 'retry';
  }

  #retry(attempt: Attempt, outcome: Outcome, pushbackMs: number | 'stop' | undefined): void {
    attempt.outcome = outcome;
    this.record.retries++;
    this.#endAttempt(attempt);
    this.attempt = undefined;
    this.#awaitingRequestDrain = false;
    this.#awaitingResponseDrain = false;
    this.#unstalled();
    this.downstream.pause();
    const delay = isTransparent(outcome) ? 0 : typeof pushbackMs === 'number' ? pushbackMs : backoffMs(this.#rules, this.#policyRetries - 1, Math.random);
    if (delay > 0) this.#retryTimer = setTimeout(startRetry, delay, this);
    else this.#startAttempt();
  }

  /** Response bytes of the current attempt, for the client: paused at the source while the client does not read. */
  sendResponseData(attempt: Attempt, chunk: Buffer): void {
    this.record.bytesOut += chunk.length;
    this.record.messagesOut = attempt.responseMeter?.messages ?? 0;
    if (this.downstreamClosed || this.downstream.closed) return;
    if (this.downstream.write(chunk) || this.#awaitingResponseDrain) return;
    this.#awaitingResponseDrain = true;
    attempt.upstream?.pause();
    this.#stalled();
  }

  /** Sends response headers to the client; from here on the RPC is bound to this attempt. */
  commit(attempt: Attempt, headers: HeaderMap, endStream: boolean): void {
    this.#committed = true;
    this.#replay = undefined;
    clearTimeout(attempt.timer);
    if (this.downstreamClosed || this.downstream.closed) return;
    if (this.#limits.exposeUpstream) exposeUpstream(headers, attempt.endpoint.key);
    if (this.#options.route.responseHeaders !== undefined) applyHeaderEdit(headers, this.#options.route.responseHeaders);
    this.downstream.respond(headers, endStream);
  }

  answerTrailersOnly(attempt: Attempt, headers: HeaderMap, code: number): void {
    if (this.statusSent) return;
    this.statusSent = true;
    this.record.status = code;
    this.commit(attempt, headers, true);
  }

  /** The backend's response ended with `trailers`: they end the client's response too. */
  finish(trailers: HeaderMap): void {
    if (this.statusSent) return;
    this.statusSent = true;
    this.record.status = Number(trailers['grpc-status']);
    if (!this.downstreamClosed) this.downstream.end(trailers);
  }

  /**
   * Ends the RPC with a status of the proxy's own, however far it had got. The client is told
   * `message` (by default the catalogue's, which names no internal address); the access log gets `detail`.
   */
  fail(outcome: Outcome, detail: string, message: string = FAILURES[outcome.failure ?? 'abandoned'].message): void {
    if (this.statusSent) return;
    this.statusSent = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    this.#unstalled();
    this.record.status = outcome.status;
    this.record.reason = outcome.failure;
    this.record.error = detail;
    if (this.attempt) this.#endAttempt(this.attempt);
    const downstream = this.downstream;
    if (this.downstreamClosed || downstream.closed) return;
    // The rest of the request is not needed, but must be read: a paused stream never closes, and holds its connection open.
    this.#discardRequest = true;
    downstream.resume();
    if (!this.#committed) {
      this.#committed = true;
      downstream.respond(trailersOnly(outcome.status, message), true);
      return;
    }
    downstream.end(statusTrailers(outcome.status, message));
    // Trailers wait behind unread data; a client that stopped reading is reset instead.
    setTimeout(resetIfOpen, ERROR_FLUSH_GRACE_MS, downstream).unref();
  }

  /** The listener is about to destroy the client's connection (drain timeout, end of max connection age). */
  onCut(reason: string): void {
    this.fail(failed('draining'), `the proxy closed the client connection: ${reason}`, `${FAILURES.draining.message} (${reason})`);
  }

  /** A translating stream (src/web/) could not make gRPC of the request body: the request is not forwarded further. */
  onMalformedRequest(message: string): void {
    this.fail(failed('malformed_request'), message, message);
  }

  /** The client's stream closed: the RPC is over, whatever state it was in. */
  onDownstreamClose(): void {
    this.downstreamClosed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    this.#unstalled();
    const record = this.record;
    if (record.status === undefined) {
      record.status = CLIENT_CANCELLED.status;
      record.reason = 'client_cancelled';
      record.error = FAILURES.client_cancelled.message;
    }
    // Nothing more can reach the client; closing the upstream below must not pick a status.
    this.statusSent = true;
    if (this.attempt) this.#endAttempt(this.attempt);
    if (this.#retrySlotPending) this.#cluster.limits.endRetry();
    this.#cluster.limits.endRequest();
    record.finish();
  }

  /**
   * One side waits for the other to take data (its reader grants no window). A stream may hold up
   * to a window of data meanwhile, but not for ever: past stalled_stream_timeout it is reset.
   */
  #stalled(): void {
    const timeoutMs = this.#limits.stalledStreamTimeoutMs;
    if (timeoutMs === undefined || this.#stallTimer !== undefined) return;
    this.#stallTimer = setTimeout(onStalled, timeoutMs, this);
  }

  #unstalled(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
  }

  /** The stall outlasted the timeout: reset both sides, so neither holds its buffered window any longer. */
  onStallTimeout(): void {
    this.#stallTimer = undefined;
    if (this.downstreamClosed) return;
    if (!this.statusSent) {
      this.statusSent = true;
      clearTimeout(this.#timer);
      clearTimeout(this.#retryTimer);
      this.record.status = FAILURES.stalled_stream.status;
      this.record.reason = 'stalled_stream';
      this.record.error = `no data could move for stalled_stream_timeout (${this.#limits.stalledStreamTimeoutMs} ms)`;
      if (this.attempt) this.#endAttempt(this.attempt);
    }
    this.downstream.reset(CANCEL);
  }

  /** Releases the attempt's endpoint (with its outcome) and cancels its stream if still open. Idempotent. */
  #endAttempt(attempt: Attempt): void {
    if (attempt.ended) return;
    attempt.ended = true;
    clearTimeout(attempt.timer);
    attempt.holding = false;
    attempt.upstream?.cancel();
    this.#cluster.release(attempt.endpoint, performance.now() - attempt.startedAt, attempt.outcome);
    if (attempt.holdsRetrySlot) this.#cluster.limits.endRetry();
  }
}

function onLimit(bridge: RpcBridge): void {
  bridge.onLimit();
}

function startRetry(bridge: RpcBridge): void {
  bridge.retryAfterBackoff();
}

function onStalled(bridge: RpcBridge): void {
  bridge.onStallTimeout();
}

function onPerTryTimeout(attempt: Attempt): void {
  attempt.onPerTryTimeout();
}

function resetIfOpen(stream: DownstreamStream): void {
  if (!stream.closed) stream.reset(CANCEL);
}
