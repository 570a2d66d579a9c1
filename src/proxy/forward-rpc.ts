/**
 * Forwards one RPC: a downstream stream from a client to one upstream stream
 * on the endpoint the cluster picked, in both directions, with HTTP/2 flow
 * control carried end to end (a paused reader pauses the other side, so no
 * stream is ever buffered whole), deadlines enforced, and every way a stream
 * can end turned into a gRPC status for the client. Nothing here throws.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Cluster, ClusterEndpoint } from '../cluster/cluster.ts';
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

  const headers = upstreamRequestHeaders(requestHeaders);
  if (deadlineMs !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(deadlineMs - (performance.now() - startedAt));

  const bridge = new RpcBridge(downstream, cluster, endpoint, record, limitMs, limitMessage);
  endpoint.pool.open(headers, (error, upstream) => {
    if (upstream) bridge.attach(upstream);
    else bridge.failToOpen(error!);
  });
}

/** The two streams of one forwarded RPC and the state that ties them. */
class RpcBridge {
  readonly #downstream: ServerHttp2Stream;
  readonly #endpoint: ClusterEndpoint;
  readonly #record: RpcRecord;
  /** Undefined while the pool is still opening the upstream stream. */
  #upstream: ClientHttp2Stream | undefined;
  #responded = false;
  #statusSent = false;
  #downstreamClosed = false;
  #upstreamEnded = false;
  #upstreamError: Error | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    downstream: ServerHttp2Stream,
    cluster: Cluster,
    endpoint: ClusterEndpoint,
    record: RpcRecord,
    limitMs: number | undefined,
    limitMessage: string,
  ) {
    this.#downstream = downstream;
    this.#endpoint = endpoint;
    this.#record = record;

    if (limitMs !== undefined) {
      this.#timer = setTimeout(() => this.#fail(Status.DEADLINE_EXCEEDED, limitMessage), Math.max(0, limitMs - (performance.now() - record.startedAt)));
    }
    downstream.on('error', () => {});
    downstream.on('wantTrailers', () => {
      downstream.sendTrailers(this.#trailers ?? statusTrailers(Status.INTERNAL, 'upstream ended the stream without trailers'));
    });
    downstream.once('close', () => {
      this.#downstreamClosed = true;
      clearTimeout(this.#timer);
      if (record.status === undefined) {
        record.status = Status.CANCELLED;
        record.error = 'the client reset the stream';
      }
      // Nothing more can reach the client; closing the upstream below must not pick a status.
      this.#statusSent = true;
      // The client went away first: cancel the backend's work too.
      const upstream = this.#upstream;
      if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
      cluster.release(endpoint, performance.now() - record.startedAt);
      record.finish();
    });
  }

  /** The pool could not open a stream: the client gets UNAVAILABLE with the reason. */
  failToOpen(error: Error): void {
    this.#fail(Status.UNAVAILABLE, `upstream ${this.#endpoint.key}: ${error.message}`);
  }

  /** Joins the opened upstream stream to the downstream one, in both directions. */
  attach(upstream: ClientHttp2Stream): void {
    this.#upstream = upstream;
    upstream.on('error', (error: Error) => {
      this.#upstreamError = error;
    });
    if (this.#statusSent) {
      // The client left, or the deadline passed, while the stream was being opened.
      upstream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    const downstream = this.#downstream;
    const record = this.#record;
    downstream.on('data', (chunk: Buffer) => {
      record.bytesIn += chunk.length;
      if (!upstream.write(chunk)) {
        downstream.pause();
        upstream.once('drain', () => downstream.resume());
      }
    });
    downstream.once('end', () => upstream.end());

    upstream.once('response', (responseHeaders) => this.#onResponse(responseHeaders));
    upstream.on('data', (chunk: Buffer) => {
      record.bytesOut += chunk.length;
      if (!downstream.write(chunk)) {
        upstream.pause();
        downstream.once('drain', () => upstream.resume());
      }
    });
    upstream.once('trailers', (trailers) => {
      this.#trailers = downstreamResponseHeaders(trailers);
    });
    upstream.once('end', () => {
      this.#upstreamEnded = true;
      if (!this.#responded || this.#statusSent) return;
      this.#statusSent = true;
      record.status = Number(this.#trailers?.['grpc-status'] ?? Status.INTERNAL);
      downstream.end();
    });
    upstream.once('close', () => {
      if (this.#upstreamEnded && this.#statusSent) return;
      this.#fail(statusFromReset(upstream.rstCode ?? 0, this.#upstreamError), `upstream ${this.#endpoint.key}: ${describeReset(upstream.rstCode ?? 0, this.#upstreamError)}`);
    });
  }

  #onResponse(headers: IncomingHttpHeaders): void {
    const downstream = this.#downstream;
    if (downstream.destroyed) return;
    const httpStatus = Number(headers[':status']);
    if (httpStatus !== 200) {
      this.#fail(statusFromHttp(httpStatus), `upstream answered HTTP ${httpStatus}`);
      return;
    }
    if (headers['grpc-status'] !== undefined) {
      // Trailers-only: status and message arrive in the one HEADERS frame.
      this.#responded = true;
      this.#statusSent = true;
      this.#record.status = Number(headers['grpc-status']);
      downstream.respond(downstreamResponseHeaders(headers), { endStream: true });
      return;
    }
    this.#responded = true;
    downstream.respond(downstreamResponseHeaders(headers), { waitForTrailers: true });
  }

  /** Ends the RPC with a status of the proxy's own, however far it had got. */
  #fail(code: number, message: string): void {
    if (this.#statusSent) return;
    this.#statusSent = true;
    clearTimeout(this.#timer);
    this.#record.status = code;
    this.#record.error = message;
    const upstream = this.#upstream;
    if (upstream && !upstream.closed) upstream.close(constants.NGHTTP2_CANCEL);
    const downstream = this.#downstream;
    if (this.#downstreamClosed || downstream.destroyed) return;
    if (!this.#responded) {
      this.#responded = true;
      respondWithStatus(downstream, code, message);
      return;
    }
    this.#trailers = statusTrailers(code, message);
    downstream.end();
    // Trailers wait behind unread data; a client that stopped reading is reset instead.
    setTimeout(() => {
      if (!downstream.closed) downstream.close(constants.NGHTTP2_CANCEL);
    }, ERROR_FLUSH_GRACE_MS).unref();
  }
}
