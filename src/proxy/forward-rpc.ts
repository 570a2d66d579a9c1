/**
 * Forwards one RPC: a downstream stream from a client to one upstream stream
 * on the endpoint the cluster picked, in both directions, with HTTP/2 flow
 * control carried end to end (a paused reader pauses the other side, so no
 * stream is ever buffered whole), deadlines enforced, and every way a stream
 * can end turned into a gRPC status for the client. Nothing here throws.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
import type { RpcOutcome } from '../cluster/rpc-outcome.ts';
import type { Route } from '../router/route-table.ts';
import { Status } from './grpc-status.ts';
import { formatGrpcTimeout, parseGrpcTimeout } from './grpc-timeout.ts';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { respondWithStatus, statusTrailers } from './respond.ts';
import { describeReset, statusFromHttp, statusFromReset } from './status-mapping.ts';
import type { RpcRecord } from './rpc-record.ts';

/** After the proxy ends a stream with an error, a client that does not read is reset after this long. */
const ERROR_FLUSH_GRACE_MS = 1_000;

export function forwardRpc(
  downstream: ServerHttp2Stream,
  requestHeaders: IncomingHttpHeaders,
  route: Route,
  cluster: Cluster,
  record: RpcRecord,
): void {
  const startedAt = record.startedAt;

  let deadlineMs = route.timeoutMs;
  const timeoutHeader = requestHeaders['grpc-timeout'];
  if (typeof timeoutHeader === 'string') {
    const clientTimeout = parseGrpcTimeout(timeoutHeader);
    if (clientTimeout === undefined) {
      record.status = Status.INVALID_ARGUMENT;
      return respondWithStatus(downstream, Status.INVALID_ARGUMENT, `malformed grpc-timeout "${timeoutHeader}"`);
    }
    deadlineMs = deadlineMs === undefined ? clientTimeout : Math.min(deadlineMs, clientTimeout);
  }
  let limitMs = deadlineMs;
  let limitMessage = 'deadline exceeded';
  if (route.maxStreamDurationMs !== undefined && (limitMs === undefined || route.maxStreamDurationMs < limitMs)) {
    limitMs = route.maxStreamDurationMs;
    limitMessage = `stream exceeded max_stream_duration of route ${route.name}`;
  } else if (route.timeoutMs !== undefined && deadlineMs === route.timeoutMs) {
    limitMessage = `deadline exceeded (route ${route.name} timeout ${route.timeoutMs} ms)`;
  }

  const hashHeader = cluster.hashHeader;
  const hashValue = hashHeader === undefined ? undefined : requestHeaders[hashHeader];
  const endpoint = cluster.pick(Array.isArray(hashValue) ? hashValue.join(',') : hashValue);
  if (!endpoint) {
    record.status = Status.UNAVAILABLE;
    return respondWithStatus(downstream, Status.UNAVAILABLE, cluster.describeUnavailable());
  }
  record.endpoint = endpoint.key;

  // The incoming header object is ours to reuse: copying it per RPC costs more than it protects.
  const headers = upstreamRequestHeaders(requestHeaders);
  if (deadlineMs !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(deadlineMs - (performance.now() - startedAt));

  const bridge = new RpcBridge(downstream, cluster, endpoint, record, limitMs, limitMessage);
  endpoint.pool.open(headers, bridge);
}

/**
 * The two streams of one forwarded RPC and the state that ties them.
 * Event handlers are shared functions that find their bridge on the stream,
 * rather than closures made per RPC: this path runs for every call.
 */
class RpcBridge {
  readonly downstream: ServerHttp2Stream;
  readonly cluster: Cluster;
  readonly endpoint: ClusterEndpoint;
  readonly record: RpcRecord;
  /** Undefined while the pool is still opening the upstream stream. */
  upstream: ClientHttp2Stream | undefined;
  responded = false;
  statusSent = false;
  downstreamClosed = false;
  upstreamEnded = false;
  upstreamError: Error | undefined;
  trailers: OutgoingHttpHeaders | undefined;
  timer: NodeJS.Timeout | undefined;
  limitMessage: string;
  /** What the endpoint did, for outlier detection; 'abandoned' until it says something. */
  outcome: RpcOutcome = ABANDONED;

  constructor(downstream: ServerHttp2Stream, cluster: Cluster, endpoint: ClusterEndpoint, record: RpcRecord, limitMs: number | undefined, limitMessage: string) {
    this.downstream = downstream;
    this.cluster = cluster;
    this.endpoint = endpoint;
    this.record = record;
    this.limitMessage = limitMessage;
    if (limitMs !== undefined) {
      this.timer = setTimeout(onDeadline, Math.max(0, limitMs - (performance.now() - record.startedAt)), this);
    }
    (downstream as BridgedStream)[BRIDGE] = this;
    downstream.on('wantTrailers', onDownstreamWantTrailers);
    downstream.on('close', onDownstreamClose);
  }

  /** Called by the pool with the opened upstream stream, or the reason it could not open one. */
  onStream(error: Error | undefined, upstream: ClientHttp2Stream | undefined): void {
    if (!upstream) {
      this.outcome = CONNECT_FAILURE;
      this.fail(Status.UNAVAILABLE, `upstream ${this.endpoint.key}: ${error?.message ?? 'no stream'}`);
      return;
    }
    this.upstream = upstream;
    (upstream as BridgedStream)[BRIDGE] = this;
    upstream.on('error', onUpstreamError);
    if (this.statusSent) {
      // The client left, or the deadline passed, while the stream was being opened.
      upstream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    const downstream = this.downstream;
    downstream.on('data', onDownstreamData);
    downstream.on('end', onDownstreamEnd);
    upstream.on('response', onUpstreamResponse);
    upstream.on('data', onUpstreamData);
    upstream.on('trailers', onUpstreamTrailers);
    upstream.on('end', onUpstreamEnd);
    upstream.on('close', onUpstreamClose);
  }

  /** Ends the RPC with a status of the proxy's own, however far it had got. */
  fail(code: number, message: string): void {
    if (this.statusSent) return;
    this.statusSent = true;
    clearTimeout(this.timer);
    this.record.status = code;
    this.record.error = message;
    const upstream = this.upstream;
    if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
    const downstream = this.downstream;
    if (this.downstreamClosed || downstream.destroyed) return;
    if (!this.responded) {
      this.responded = true;
      respondWithStatus(downstream, code, message);
      return;
    }
    this.trailers = statusTrailers(code, message);
    downstream.end();
    // Trailers wait behind unread data; a client that stopped reading is reset instead.
    setTimeout(resetIfOpen, ERROR_FLUSH_GRACE_MS, downstream).unref();
  }
}

const ABANDONED: RpcOutcome = { kind: 'abandoned' };
const CONNECT_FAILURE: RpcOutcome = { kind: 'connect_failure' };
const RESET: RpcOutcome = { kind: 'reset' };

const BRIDGE = Symbol('switchyard.rpcBridge');
type BridgedStream = (ServerHttp2Stream | ClientHttp2Stream) & { [BRIDGE]: RpcBridge };
const bridgeOf = (stream: unknown): RpcBridge => (stream as BridgedStream)[BRIDGE];

function onDeadline(bridge: RpcBridge): void {
  bridge.fail(Status.DEADLINE_EXCEEDED, bridge.limitMessage);
}

function resetIfOpen(stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
}

function onDownstreamData(this: ServerHttp2Stream, chunk: Buffer): void {
  const bridge = bridgeOf(this);
  bridge.record.bytesIn += chunk.length;
  const upstream = bridge.upstream!;
  if (!upstream.write(chunk)) {
    this.pause();
    upstream.once('drain', resumeOther);
  }
}

/** Resumes the stream on the other side of the bridge once this one has drained. */
function resumeOther(this: ServerHttp2Stream | ClientHttp2Stream): void {
  const bridge = bridgeOf(this);
  if (this === bridge.upstream) bridge.downstream.resume();
  else bridge.upstream?.resume();
}

function onDownstreamEnd(this: ServerHttp2Stream): void {
  bridgeOf(this).upstream!.end();
}

function onDownstreamWantTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(bridgeOf(this).trailers ?? statusTrailers(Status.INTERNAL, 'upstream ended the stream without trailers'));
}

function onDownstreamClose(this: ServerHttp2Stream): void {
  const bridge = bridgeOf(this);
  const record = bridge.record;
  bridge.downstreamClosed = true;
  clearTimeout(bridge.timer);
  if (record.status === undefined) {
    record.status = Status.CANCELLED;
    record.error = 'the client reset the stream';
  }
  // Nothing more can reach the client; closing the upstream below must not pick a status.
  bridge.statusSent = true;
  // The client went away first: cancel the backend's work too.
  const upstream = bridge.upstream;
  if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
  bridge.cluster.release(bridge.endpoint, performance.now() - record.startedAt, bridge.outcome);
  record.finish();
}

function onUpstreamError(this: ClientHttp2Stream, error: Error): void {
  bridgeOf(this).upstreamError = error;
}

function onUpstreamResponse(this: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
  const bridge = bridgeOf(this);
  const downstream = bridge.downstream;
  if (bridge.downstreamClosed || downstream.destroyed) return;
  // Node gives ':status' as a number, whatever the type declarations say.
  const httpStatus = headers[':status'] as unknown as number;
  if (httpStatus !== 200) {
    bridge.outcome = { kind: 'status', code: statusFromHttp(Number(httpStatus)) };
    bridge.fail(statusFromHttp(Number(httpStatus)), `upstream answered HTTP ${httpStatus}`);
    return;
  }
  const grpcStatus = headers['grpc-status'];
  bridge.responded = true;
  if (grpcStatus !== undefined) {
    // Trailers-only: status and message arrive in the one HEADERS frame.
    bridge.statusSent = true;
    bridge.record.status = Number(grpcStatus);
    bridge.outcome = { kind: 'status', code: bridge.record.status };
    downstream.respond(downstreamResponseHeaders(headers), { endStream: true });
    return;
  }
  downstream.respond(downstreamResponseHeaders(headers), { waitForTrailers: true });
}

function onUpstreamData(this: ClientHttp2Stream, chunk: Buffer): void {
  const bridge = bridgeOf(this);
  bridge.record.bytesOut += chunk.length;
  const downstream = bridge.downstream;
  if (!downstream.write(chunk)) {
    this.pause();
    downstream.once('drain', resumeOther);
  }
}

function onUpstreamTrailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
  bridgeOf(this).trailers = downstreamResponseHeaders(trailers);
}

function onUpstreamEnd(this: ClientHttp2Stream): void {
  const bridge = bridgeOf(this);
  bridge.upstreamEnded = true;
  if (!bridge.responded || bridge.statusSent) return;
  bridge.statusSent = true;
  bridge.record.status = Number(bridge.trailers?.['grpc-status'] ?? Status.INTERNAL);
  bridge.outcome = { kind: 'status', code: bridge.record.status };
  bridge.downstream.end();
}

function onUpstreamClose(this: ClientHttp2Stream): void {
  const bridge = bridgeOf(this);
  if (bridge.upstreamEnded && bridge.statusSent) return;
  const rstCode = this.rstCode ?? 0;
  if (!bridge.statusSent) bridge.outcome = RESET;
  bridge.fail(statusFromReset(rstCode, bridge.upstreamError), `upstream ${bridge.endpoint.key}: ${describeReset(rstCode, bridge.upstreamError)}`);
}
