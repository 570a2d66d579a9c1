/**
 * The entry point of every downstream stream: check that it is gRPC, route
 * it, and answer directly or forward it to a cluster.
 */
import type { Cluster } from '../cluster/cluster.ts';
import type { RouteTable } from '../router/route-table.ts';
import { forwardRpc } from './forward-rpc.ts';
import { refuseNonGrpc, refuseRpc } from '../grpc/respond.ts';
import type { DownstreamConnection, DownstreamStream, HeaderMap } from '../grpc/streams.ts';
import { newRpcRecord, type RpcRecord } from '../grpc/rpc-record.ts';
import { callerIdentity } from '../security/identity.ts';
import { guardOf, protocolViolation } from '../security/connection-guard.ts';
import { headerListSize } from '../grpc/header-list.ts';
import { isGrpcMethodPath } from '../grpc/method-path.ts';
import { connectionRateLimited } from '../security/rate-limit.ts';
import { endRpcTrace, traceRpc } from '../tracing/rpc-trace.ts';
import type { TracingSettings } from '../config/tracing-schema.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { Authorizer } from '../security/authorization.ts';

/** What serves RPCs at one moment (src/lifecycle/serving.ts builds it); immutable, read once per RPC. */
export interface Serving {
  readonly routes: RouteTable;
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly authorizer: Authorizer;
  readonly tracing: TracingSettings;
  /** Each listener's config by name: admission reads forward_client_cert and trusted_proxy_hops. */
  readonly listeners: ReadonlyMap<string, ListenerConfig>;
}

export interface RpcHandlerDependencies {
  /** The snapshot in force; a reload swaps it, and an RPC keeps the one it started with. */
  serving(): Serving;
  /** Called once per RPC as soon as its record exists (before any check). */
  onRpcStart?(record: RpcRecord): void;
  /** Called once per RPC when its downstream stream has closed. */
  onRpcEnd(record: RpcRecord): void;
  /** True while new RPCs are to be refused for memory (src/resilience/overload.ts). */
  overloaded?(): boolean;
  /**
   * Runs before routing (src/security/rpc-admission.ts): may change `headers`;
   * returns a PERMISSION_DENIED message to refuse the call, undefined to go on.
   */
  admit?(serving: Serving, connection: DownstreamConnection | undefined, headers: HeaderMap, listener: string): string | undefined;
}

export function createRpcHandler(deps: RpcHandlerDependencies) {
  const onFinish = (record: RpcRecord): void => {
    if (record.otelSpan !== undefined) endRpcTrace(record);
    deps.onRpcEnd(record);
  };
  return function handleStream(stream: DownstreamStream, headers: HeaderMap, listener: string): void {
    const serving = deps.serving();
    const pathHeader = headers[':path'];
    const path = typeof pathHeader === 'string' ? pathHeader : '';
    const session = stream.connection;
    const socket = session?.socket;
    const peer = socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown';
    const record = newRpcRecord(path, peer, listener, stream.protocol ?? 'grpc', onFinish);
    deps.onRpcStart?.(record);

    if (deps.overloaded?.()) return refuseRpc(stream, record, 'overloaded');

    const maxHeaderListSize = guardOf(session)?.config.maxHeaderListSize;
    if (maxHeaderListSize !== undefined) {
      const size = stream.headerListSize ?? headerListSize(headers);
      if (size > maxHeaderListSize) {
        protocolViolation(session);
        return refuseRpc(stream, record, 'header_list_too_large', `request header list of ${size} bytes exceeds max_header_list_size ${maxHeaderListSize}`);
      }
    }

    if (headers[':method'] !== 'POST' || !isGrpcContentType(headers['content-type'])) return refuseNonGrpc(stream, record);

    if (!isGrpcMethodPath(path)) {
      protocolViolation(session);
      return refuseRpc(stream, record, 'malformed_path');
    }

    const denied = deps.admit?.(serving, session, headers, listener);
    if (denied !== undefined) return refuseRpc(stream, record, 'denied', denied);

    const connectionLimited = connectionRateLimited(session);
    if (connectionLimited !== undefined) return refuseRpc(stream, record, 'rate_limited', connectionLimited);

    const route = serving.routes.match(path, headers);
    if (!route) return refuseRpc(stream, record, 'no_route', `no route for ${path}`);
    record.route = route.name;
    const limited = route.rateLimit?.admit(callerIdentity(session).label);
    if (limited !== undefined) return refuseRpc(stream, record, 'rate_limited', limited);
    if (route.action.kind === 'direct') {
      return refuseRpc(stream, record, 'direct_response', route.action.message, route.action.code);
    }
    const cluster = serving.clusters.get(route.action.cluster);
    record.cluster = route.action.cluster;
    if (!cluster) return refuseRpc(stream, record, 'no_cluster', `cluster "${route.action.cluster}" does not exist`);
    // Off by default: then this check is all tracing costs an RPC.
    if (serving.tracing.enabled) traceRpc(serving.tracing, headers, record);
    forwardRpc(stream, headers, route, cluster, record);
  };
}

/**
 * `application/grpc`, or with a `+format` or parameters (gRPC over HTTP/2 spec);
 * `application/grpc-web…` is another protocol and is not forwarded as gRPC.
 */
function isGrpcContentType(value: HeaderMap[string]): boolean {
  if (typeof value !== 'string' || !value.startsWith('application/grpc')) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}
