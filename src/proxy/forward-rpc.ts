/**
 * Forwards one RPC to a cluster: works out its deadline, admits it past the
 * cluster's circuit breakers, and hands it to an RpcBridge, which runs its
 * attempts. Nothing here throws: every way out is a gRPC status.
 */
import type { DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { guardOf } from '../security/connection-guard.ts';
import type { Cluster } from '../cluster/cluster.ts';
import type { Route } from '../router/route-table.ts';
import { parseGrpcTimeout } from '../grpc/timeout.ts';
import { upstreamRequestHeaders } from './headers.ts';
import { applyHeaderEdit } from '../router/header-edit.ts';
import { refuseRpc } from '../grpc/respond.ts';
import { RpcBridge, overflowReason, type BridgeLimits, type LimitReason } from './rpc-bridge.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';

export function forwardRpc(
  downstream: DownstreamStream,
  requestHeaders: HeaderMap,
  route: Route,
  cluster: Cluster,
  record: RpcRecord,
  limits: BridgeLimits | undefined = guardOf(downstream.connection)?.config,
): void {
  let deadlineMs = route.timeoutMs;
  const timeoutHeader = requestHeaders['grpc-timeout'];
  if (typeof timeoutHeader === 'string') {
    const clientTimeout = parseGrpcTimeout(timeoutHeader);
    if (clientTimeout === undefined) return refuseRpc(downstream, record, 'bad_grpc_timeout', `malformed grpc-timeout "${timeoutHeader}"`);
    deadlineMs = deadlineMs === undefined ? clientTimeout : Math.min(deadlineMs, clientTimeout);
  }
  let limitMs = deadlineMs;
  let limit: LimitReason = 'deadline_exceeded';
  if (route.maxStreamDurationMs !== undefined && (limitMs === undefined || route.maxStreamDurationMs < limitMs)) {
    limitMs = route.maxStreamDurationMs;
    limit = 'max_stream_duration';
  } else if (route.timeoutMs !== undefined && deadlineMs === route.timeoutMs) {
    limit = 'route_timeout';
  }

  const overflow = cluster.limits.startRequest();
  if (overflow) return refuseRpc(downstream, record, overflowReason(overflow), overflow.message);

  if (route.requestHeaders !== undefined) applyHeaderEdit(requestHeaders, route.requestHeaders);
  const hashHeader = cluster.hashHeader;
  const hashValue = hashHeader === undefined ? undefined : requestHeaders[hashHeader];
  const hashKey = hashValue === undefined ? undefined : Array.isArray(hashValue) ? hashValue.join(',') : String(hashValue);
  // The incoming header object is ours to reuse: copying it per RPC costs more than it protects.
  new RpcBridge({
    downstream,
    headers: upstreamRequestHeaders(requestHeaders),
    cluster,
    route,
    record,
    hashKey,
    deadlineAt: deadlineMs === undefined ? undefined : record.startedAt + deadlineMs,
    limitAt: limitMs === undefined ? undefined : record.startedAt + limitMs,
    limit,
    limits,
  }).start();
}
