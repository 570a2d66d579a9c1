/**
 * The entry point of every downstream stream: check that it is gRPC, route
 * it, and answer directly or forward it to a cluster.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Cluster } from '../cluster/cluster.ts';
import type { RouteTable } from '../router/route-table.ts';
import { Status } from '../grpc/status.ts';
import { forwardRpc } from './forward-rpc.ts';
import { respondWithStatus } from './respond.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { callerIdentity } from '../security/identity.ts';
import { guardOf, protocolViolation } from '../security/connection-guard.ts';
import { headerListSize } from '../grpc/header-list.ts';
import { isGrpcMethodPath } from '../grpc/method-path.ts';
import { connectionRateLimited } from '../security/rate-limit.ts';
import { endRpcOtelSpan } from '../tracing/otel-span.ts';
import { traceRpc } from '../tracing/rpc-trace.ts';
import type { TracingSettings } from '../tracing/tracing-schema.ts';

export interface RpcHandlerDependencies {
  /** Read on every RPC, so a reload can swap it. */
  routes(): RouteTable;
  cluster(name: string): Cluster | undefined;
  /** Read on every forwarded RPC, so a reload can change it. Unset: no tracing. */
  tracing?(): TracingSettings;
  /** Called once per RPC as soon as its record exists (before any check). */
  onRpcStart?(record: RpcRecord): void;
  /** Called once per RPC when its downstream stream has closed. */
  onRpcEnd(record: RpcRecord): void;
  /**
   * Runs before routing (src/security/rpc-admission.ts): may change `headers`;
   * returns a PERMISSION_DENIED message to refuse the call, undefined to go on.
   */
  admit?(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, listener: string): string | undefined;
}

export function createRpcHandler(deps: RpcHandlerDependencies) {
  return function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, listener: string): void {
    const path = headers[':path'] ?? '';
    const session = stream.session;
    const socket = session?.socket;
    const record: RpcRecord = {
      startedAt: performance.now(),
      time: Date.now(),
      path,
      peer: socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown',
      listener,
      route: undefined,
      cluster: undefined,
      endpoint: undefined,
      status: undefined,
      error: undefined,
      retries: 0,
      bytesIn: 0,
      bytesOut: 0,
      messagesIn: 0,
      messagesOut: 0,
      metricLabels: undefined,
      traceId: undefined,
      spanId: undefined,
      otelSpan: undefined,
      finish: () => {
        if (record.otelSpan !== undefined) endRpcOtelSpan(record.otelSpan, record);
        deps.onRpcEnd(record);
      },
    };
    deps.onRpcStart?.(record);
    stream.on('error', () => {});

    const maxHeaderListSize = guardOf(session)?.config.maxHeaderListSize;
    if (maxHeaderListSize !== undefined) {
      const size = headerListSize(headers);
      if (size > maxHeaderListSize) {
        protocolViolation(session);
        record.error = `request header list of ${size} bytes exceeds max_header_list_size ${maxHeaderListSize}`;
        return answer(stream, record, Status.RESOURCE_EXHAUSTED, record.error);
      }
    }

    if (headers[':method'] !== 'POST' || !isGrpcContentType(headers['content-type'])) {
      // Not gRPC: the spec's answer is HTTP 415, so browsers and curl see a plain error.
      record.status = Status.UNKNOWN;
      record.error = 'not a gRPC request';
      stream.once('close', record.finish);
      if (!stream.destroyed) stream.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: false });
      stream.end('switchyard: expected a gRPC request (POST, content-type application/grpc)\n');
      return;
    }

    if (!isGrpcMethodPath(path)) {
      protocolViolation(session);
      record.error = 'malformed :path: a gRPC method is /package.Service/Method';
      return answer(stream, record, Status.UNIMPLEMENTED, record.error);
    }

    const denied = deps.admit?.(stream, headers, listener);
    if (denied !== undefined) {
      record.error = denied;
      return answer(stream, record, Status.PERMISSION_DENIED, denied);
    }

    const connectionLimited = connectionRateLimited(session);
    if (connectionLimited !== undefined) {
      record.error = connectionLimited;
      return answer(stream, record, Status.RESOURCE_EXHAUSTED, connectionLimited);
    }

    const route = deps.routes().match(path, headers);
    if (!route) {
      return answer(stream, record, Status.UNIMPLEMENTED, `no route for ${path}`);
    }
    record.route = route.name;
    const limited = route.rateLimit?.admit(callerIdentity(session).label);
    if (limited !== undefined) {
      record.error = limited;
      return answer(stream, record, Status.RESOURCE_EXHAUSTED, limited);
    }
    if (route.action.kind === 'direct') {
      return answer(stream, record, route.action.code, route.action.message);
    }
    const cluster = deps.cluster(route.action.cluster);
    record.cluster = route.action.cluster;
    if (!cluster) {
      return answer(stream, record, Status.UNAVAILABLE, `cluster "${route.action.cluster}" does not exist`);
    }
    // Off by default: then this check is all tracing costs an RPC.
    const tracing = deps.tracing?.();
    if (tracing?.enabled) traceRpc(tracing, headers, record);
    forwardRpc(stream, headers, route, cluster, record);
  };
}

/**
 * `application/grpc`, or with a `+format` or parameters (gRPC over HTTP/2 spec);
 * `application/grpc-web…` is another protocol and is not forwarded as gRPC.
 */
function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith('application/grpc')) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

function answer(stream: ServerHttp2Stream, record: RpcRecord, code: number, message: string): void {
  record.status = code;
  stream.once('close', record.finish);
  // The request body is not needed; reading it lets the stream close cleanly.
  stream.resume();
  respondWithStatus(stream, code, message);
}
