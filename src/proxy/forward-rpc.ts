/**
 * Forwards one RPC to a cluster: works out its deadline, admits it past the
 * cluster's circuit breakers, and hands it to an RpcBridge, which runs its
 * attempts. Nothing here throws: every way out is a gRPC status.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Cluster } from '../cluster/cluster.ts';
import type { Route } from '../router/route-table.ts';
import { Status } from '../grpc/status.ts';
import { parseGrpcTimeout } from '../grpc/timeout.ts';
import { upstreamRequestHeaders } from './headers.ts';
import { respondWithStatus } from './respond.ts';
import { RpcBridge } from './rpc-bridge.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';

export function forwardRpc(
  downstream: ServerHttp2Stream,
  requestHeaders: IncomingHttpHeaders,
  route: Route,
  cluster: Cluster,
  record: RpcRecord,
): void {
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

  const overflow = cluster.limits.startRequest();
  if (overflow) {
    record.status = Status.UNAVAILABLE;
    record.error = overflow.message;
    return respondWithStatus(downstream, Status.UNAVAILABLE, overflow.message);
  }

  const hashHeader = cluster.hashHeader;
  const hashValue = hashHeader === undefined ? undefined : requestHeaders[hashHeader];
  // The incoming header object is ours to reuse: copying it per RPC costs more than it protects.
  new RpcBridge({
    downstream,
    headers: upstreamRequestHeaders(requestHeaders),
    cluster,
    route,
    record,
    hashKey: Array.isArray(hashValue) ? hashValue.join(',') : hashValue,
    deadlineAt: deadlineMs === undefined ? undefined : record.startedAt + deadlineMs,
    limitAt: limitMs === undefined ? undefined : record.startedAt + limitMs,
    limitMessage,
  }).start();
}
