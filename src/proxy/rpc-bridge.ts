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
import type { Route } from '../router/route-table.ts';
import { LimitExceededError } from '../resilience/cluster-limits.ts';
import { TRANSPARENT_RETRIES, backoffMs, isTransparent, policyRetries, type RetryRules } from '../resilience/retry-rules.ts';
import { FAILURES, type FailureCode } from '../grpc/failures.ts';
import { failed, type Outcome } from '../grpc/outcome.ts';
import { formatGrpcTimeout } from '../grpc/timeout.ts';
import { exposeUpstream } from './headers.ts';
import { respondWithStatus, statusTrailers } from '../grpc/respond.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { guardOf } from '../security/connection-guard.ts';
import { STREAM_CUT } from '../listener/listener.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, GrpcFrameMeter } from '../security/grpc-frame-meter.ts';
import { isLocalGoAwayRefusal } from './status-mapping.ts';
import { Attempt, attachUpstream, onPerTryTimeout, resumeDownstream, type AttemptOwner } from './upstream-attempt.ts';

/** After the proxy ends a stream with an error, a client that does not read is reset after this long. */
const ERROR_FLUSH_GRACE_MS = 1_000;

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
  /** Which limit limitAt is. */
  readonly limit: LimitReason;
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
  /** Why the last wanted retry was refused by the cluster's retry limits. */
  #budgetMessage = '';
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Checks the request's message sizes as chunks pass (the listener's max_request_message_bytes). */
  #requestMeter: GrpcFrameMeter | undefined;
  maxResponseMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  /** The listener's expose_upstream: name the serving endpoint in the response headers. */
  #exposeUpstream = false;
  #stalledStreamTimeoutMs: number | undefined;
  /** Armed while one side waits for the other to drain (see stalled()). */
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(options: RpcBridgeOptions) {
    this.#options = options;
    this.downstream = options.downstream;
    this.record = options.record;
    this.#cluster = options.cluster;
    this.#rules = options.route.retry;
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
      this.#stalledStreamTimeoutMs = limits.stalledStreamTimeoutMs;
    }
    downstream.on('wantTrailers', onDownstreamWantTrailers);
    downstream.on('close', onDownstreamClose);
    downstream.on('data', onDownstreamData);
    downstream.on('end', onDownstreamEnd);
    downstream.on(STREAM_CUT, onDownstreamCut);
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
    if (!endpoint) {
      const why = this.#cluster.describeUnavailable();
      return this.fail(failed('no_healthy_endpoint'), why, why);
    }
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
      if (upstream) attempt.endpoint.pool.cancel(upstream);
      this.#endAttempt(attempt);
      return;
    }
    if (!upstream) {
      if (error instanceof LimitExceededError) return this.fail(failed(overflowReason(error)), error.message, error.message);
      const detail = `upstream ${attempt.endpoint.key}: ${error?.message ?? 'no stream'}`;
      return this.attemptFailed(attempt, isLocalGoAwayRefusal(error) ? REFUSED : CONNECT_FAILURE, detail);
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
      const message = `request message of ${declared} bytes exceeds max_request_message_bytes ${this.#requestMeter!.maxMessageBytes}`;
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
      upstream.once('drain', resumeDownstream);
      this.stalled();
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
    this.downstream.pause();
    const delay = isTransparent(outcome) ? 0 : typeof pushbackMs === 'number' ? pushbackMs : backoffMs(this.#rules, this.#policyRetries - 1, Math.random);
    if (delay > 0) this.#retryTimer = setTimeout(startRetry, delay, this);
    else this.#startAttempt();
  }

  /** The client is not reading the response: pause the upstream until the client's stream drains. */
  pauseUpstreamUntilDrain(upstream: ClientHttp2Stream): void {
    upstream.pause();
    this.downstream.once('drain', resumeUpstream);
    this.stalled();
  }

  /**
   * One side waits for the other to take data (its reader grants no window). A stream may hold up
   * to a window of data meanwhile, but not for ever: past stalled_stream_timeout it is reset.
   */
  stalled(): void {
    if (this.#stalledStreamTimeoutMs === undefined || this.#stallTimer !== undefined) return;
    this.#stallTimer = setTimeout(onStalled, this.#stalledStreamTimeoutMs, this);
  }

  /** Data moves again. */
  unstalled(): void {
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
      this.record.error = `no data could move for stalled_stream_timeout (${this.#stalledStreamTimeoutMs} ms)`;
      if (this.attempt) this.#endAttempt(this.attempt);
    }
    resetIfOpen(this.downstream);
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

  /**
   * Ends the RPC with a status of the proxy's own, however far it had got. The client is told
   * `message` (by default the catalogue's, which names no internal address); the access log gets `detail`.
   */
  fail(outcome: Outcome, detail: string, message: string = FAILURES[outcome.failure ?? 'abandoned'].message): void {
    if (this.statusSent) return;
    this.statusSent = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    const code = outcome.status;
    this.record.status = code;
    this.record.reason = outcome.failure;
    this.record.error = detail;
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
    clearTimeout(this.#stallTimer);
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

  /** Releases the attempt's endpoint (with its outcome) and cancels its stream if still open. Idempotent. */
  #endAttempt(attempt: Attempt): void {
    if (attempt.ended) return;
    attempt.ended = true;
    clearTimeout(attempt.timer);
    clearTimeout(attempt.holdTimer);
    const upstream = attempt.upstream;
    if (upstream) attempt.endpoint.pool.cancel(upstream);
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
  bridge.onLimit();
}

function startRetry(bridge: RpcBridge): void {
  bridge.retryAfterBackoff();
}

function resetIfOpen(stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
}

function resumeUpstream(this: ServerHttp2Stream): void {
  const bridge = bridgeOf(this);
  bridge.unstalled();
  bridge.attempt?.upstream?.resume();
}

function onStalled(bridge: RpcBridge): void {
  bridge.onStallTimeout();
}

function onDownstreamData(this: ServerHttp2Stream, chunk: Buffer): void {
  bridgeOf(this).onRequestData(chunk);
}

function onDownstreamEnd(this: ServerHttp2Stream): void {
  bridgeOf(this).onRequestEnd();
}

function onDownstreamWantTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(bridgeOf(this).trailersToSend ?? statusTrailers(FAILURES.upstream_protocol_error.status, FAILURES.upstream_protocol_error.message));
}

/** The listener is about to destroy the client's connection (drain timeout, end of max connection age). */
function onDownstreamCut(this: ServerHttp2Stream, why: string): void {
  bridgeOf(this).fail(failed('draining'), `the proxy closed the client connection: ${why}`, `${FAILURES.draining.message} (${why})`);
}

function onDownstreamClose(this: ServerHttp2Stream): void {
  bridgeOf(this).onDownstreamClosed();
}
