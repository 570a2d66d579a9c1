/**
 * One attempt of a forwarded RPC on one backend, and what happens on its
 * upstream stream: the response headers (held back while a retry is still
 * possible, or sent on), the response data (size-checked, held briefly, then
 * forwarded with back-pressure), the trailers, and every way the stream can
 * break. Decisions that concern the whole RPC (retry or fail, commit to the
 * client) are the bridge's, reached through `AttemptOwner`, so the dependency
 * is one-way (rpc-bridge.ts imports this file, never the reverse).
 */
import type { ClusterEndpoint } from '../cluster/cluster.ts';
import { answered, failed, type Outcome } from '../grpc/outcome.ts';
import type { StreamReceiver } from '../upstream/endpoint-pool.ts';
import { pushback } from '../resilience/retry-rules.ts';
import { Status } from '../grpc/status.ts';
import type { HeaderMap, UpstreamBreak, UpstreamEvents, UpstreamStream } from '../grpc/streams.ts';
import { GrpcFrameMeter } from '../grpc/frame-meter.ts';
import { rstName, statusFromHttp, statusFromReset } from './status-mapping.ts';
import { HoldQueue } from './response-hold.ts';

/** Response bytes held back, with the headers, while a retry is still possible. */
const RESPONSE_HOLD_BYTES = 64 << 10;
const RESPONSE_HOLD_MS = 5;
const RESPONSE_HOLDS = new HoldQueue(RESPONSE_HOLD_MS);

const ABANDONED = failed('abandoned');
const REFUSED = failed('upstream_refused');
const PER_TRY_TIMEOUT = failed('per_try_timeout');

/** What an attempt needs of the RPC it belongs to. RpcBridge implements it. */
export interface AttemptOwner {
  /** The current attempt; events of any other are stale and ignored. */
  readonly attempt: Attempt | undefined;
  readonly maxResponseMessageBytes: number;
  /** The pool's answer for an attempt: its stream, or why there is none. */
  onAttemptStream(attempt: Attempt, error: Error | undefined, upstream: UpstreamStream | undefined): void;
  /** True while holding the response headers back could still let a retry happen. */
  mayStillRetry(): boolean;
  /**
   * The attempt failed (`outcome.failure` is set): retries it if allowed, else ends the RPC with it.
   * `detail` is for the access log; `message`, the client's, names no endpoint (default: the catalogue's).
   */
  attemptFailed(attempt: Attempt, outcome: Outcome, detail: string, message?: string): void;
  /** The backend answered a status the route may retry: retries and returns true if allowed; false to pass it on. */
  retryAnswer(attempt: Attempt, pushbackMs: number | 'stop' | undefined): boolean;
  /** Sends response headers to the client; from here on the RPC is bound to this attempt. */
  commit(attempt: Attempt, headers: HeaderMap, endStream: boolean): void;
  /** The backend's trailers-only answer, with status `code`, goes to the client as it is. */
  answerTrailersOnly(attempt: Attempt, headers: HeaderMap, code: number): void;
  /** Response bytes for the client (the bridge handles back-pressure). */
  sendResponseData(attempt: Attempt, chunk: Buffer): void;
  /** The response ended with `trailers`. */
  finish(trailers: HeaderMap): void;
  /** Ends the RPC with a status of the proxy's own; `message` is the client's (no internal address). */
  fail(outcome: Outcome, detail: string, message?: string): void;
  /** The attempt's upstream has room again for request data. */
  requestDrained(attempt: Attempt): void;
}

/** One try of the RPC on one endpoint: what the pool hands its stream to, and what that stream reports to. */
export class Attempt implements StreamReceiver, UpstreamEvents {
  readonly bridge: AttemptOwner;
  readonly endpoint: ClusterEndpoint;
  readonly startedAt = performance.now();
  /** Holds a slot of the cluster's retry budget until it ends. */
  readonly holdsRetrySlot: boolean;
  upstream: UpstreamStream | undefined;
  /** How the attempt ended, as the cluster hears it; `abandoned` until something else is known. */
  outcome: Outcome = ABANDONED;
  ended = false;
  /** Response headers kept back while the attempt might still be retried. */
  heldHeaders: HeaderMap | undefined;
  /** The first response bytes, kept back with the headers until the trailers show the attempt succeeded. */
  heldData: Buffer[] = [];
  heldBytes = 0;
  /** Waiting in RESPONSE_HOLDS for its trailers. */
  holding = false;
  trailers: HeaderMap | undefined;
  /** The per-try timer, armed by the bridge. */
  timer: NodeJS.Timeout | undefined;
  /** Checks the response's message sizes; per attempt, since a retry starts a new response. */
  responseMeter: GrpcFrameMeter | undefined;

  constructor(bridge: AttemptOwner, endpoint: ClusterEndpoint, holdsRetrySlot: boolean) {
    this.bridge = bridge;
    this.endpoint = endpoint;
    this.holdsRetrySlot = holdsRetrySlot;
  }

  get #current(): boolean {
    return this.bridge.attempt === this;
  }

  onStream(error: Error | undefined, stream: UpstreamStream | undefined): void {
    this.bridge.onAttemptStream(this, error, stream);
  }

  /** The per-try timeout passed. A backend that does not answer in time is failing, as outlier detection sees it. */
  onPerTryTimeout(): void {
    if (this.#current) this.bridge.attemptFailed(this, PER_TRY_TIMEOUT, `upstream ${this.endpoint.key}: per-try timeout`);
  }

  onResponse(headers: HeaderMap, endStream: boolean): void {
    if (!this.#current) return;
    const bridge = this.bridge;
    const httpStatus = Number(headers[':status']);
    if (httpStatus !== 200) {
      const message = `upstream answered HTTP ${httpStatus}`;
      return bridge.attemptFailed(this, failed('upstream_protocol_error', statusFromHttp(httpStatus)), `${message} (${this.endpoint.key})`, message);
    }
    const grpcStatus = headers['grpc-status'];
    if (grpcStatus !== undefined || endStream) {
      // Trailers-only: status and message arrive in the one HEADERS frame, which is also the trailers.
      const code = grpcStatus === undefined ? Status.UNKNOWN : Number(grpcStatus);
      this.outcome = answered(code);
      this.trailers = headers;
      if (code !== Status.OK && bridge.mayStillRetry() && bridge.retryAnswer(this, pushback(headers['grpc-retry-pushback-ms'] as string | undefined))) return;
      bridge.answerTrailersOnly(this, headers, code);
      return;
    }
    // A failure can still arrive as headers then trailers with no message between: wait for the first message.
    if (bridge.mayStillRetry()) this.heldHeaders = headers;
    else bridge.commit(this, headers, false);
  }

  onResponseData(chunk: Buffer): void {
    if (!this.#current) return;
    const bridge = this.bridge;
    const declared = (this.responseMeter ??= new GrpcFrameMeter(bridge.maxResponseMessageBytes)).feed(chunk);
    if (declared >= 0) {
      // fail() cancels the upstream stream: the backend stops sending.
      const message = `response message of ${declared} bytes exceeds max_response_message_bytes ${bridge.maxResponseMessageBytes}`;
      return bridge.fail(failed('response_too_large'), `${message} (from ${this.endpoint.key})`, message);
    }
    if (this.heldHeaders) {
      // A unary answer is one message then trailers: holding it briefly lets a backend that dies
      // before its trailers be retried. A stream's first message is delayed by RESPONSE_HOLD_MS at most.
      if (this.heldBytes + chunk.length <= RESPONSE_HOLD_BYTES) {
        this.heldData.push(chunk);
        this.heldBytes += chunk.length;
        if (!this.holding) RESPONSE_HOLDS.add(this);
        return;
      }
      this.releaseHeld();
    }
    bridge.sendResponseData(this, chunk);
  }

  /** Sends the held headers and data on: from here the RPC is bound to this attempt. */
  releaseHeld(): void {
    this.holding = false;
    const headers = this.heldHeaders;
    if (!headers || !this.#current) return;
    this.heldHeaders = undefined;
    this.bridge.commit(this, headers, false);
    const held = this.heldData;
    this.heldData = [];
    this.heldBytes = 0;
    for (const chunk of held) this.bridge.sendResponseData(this, chunk);
  }

  onTrailers(trailers: HeaderMap): void {
    this.trailers = trailers;
  }

  onResponseEnd(): void {
    if (!this.#current) return;
    const bridge = this.bridge;
    const trailers = this.trailers;
    if (trailers?.['grpc-status'] === undefined) {
      // A stream that ends without a status broke: a reset, not an answer. When the connection went with it
      // (a backend killed mid-RPC), clients should see UNAVAILABLE, which they retry; otherwise the backend
      // broke the protocol, and INTERNAL says so.
      const connectionLost = this.upstream?.connectionLost ?? true;
      const message = connectionLost ? 'upstream lost its connection before a gRPC status' : 'upstream ended the stream without a gRPC status';
      return bridge.attemptFailed(this, failed(connectionLost ? 'upstream_reset' : 'upstream_protocol_error'), `${message} (${this.endpoint.key})`, message);
    }
    const code = Number(trailers['grpc-status']);
    this.outcome = answered(code);
    if (this.heldHeaders) {
      if (code !== Status.OK && bridge.mayStillRetry() && bridge.retryAnswer(this, pushback(trailers['grpc-retry-pushback-ms'] as string | undefined))) return;
      this.releaseHeld();
    }
    bridge.finish(trailers);
  }

  onRequestDrain(): void {
    this.bridge.requestDrained(this);
  }

  onUpstreamClose(broken: UpstreamBreak | undefined): void {
    if (!broken || !this.#current) return;
    const what = broken.connectionError === undefined
      ? `stream reset with code ${broken.rstCode} (${rstName(broken.rstCode)})`
      : `connection failed: ${broken.connectionError}`;
    const detail = `upstream ${this.endpoint.key}: ${what}`;
    // REFUSED_STREAM, a stream above a GOAWAY's last stream id, or one refused after a GOAWAY: never processed.
    if (broken.refused) return this.bridge.attemptFailed(this, REFUSED, detail);
    const message = broken.connectionError === undefined ? `upstream reset the stream (${rstName(broken.rstCode)})` : 'upstream lost its connection before a gRPC status';
    this.bridge.attemptFailed(this, failed('upstream_reset', statusFromReset(broken.rstCode, broken.connectionError !== undefined)), detail, message);
  }
}


