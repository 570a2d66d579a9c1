import type { Span } from '@opentelemetry/api';
import type { FailureCode } from './failures.ts';
import type { MethodLabels } from './method-labels.ts';
import type { RpcProtocol } from './streams.ts';

/** What the proxy knows about one RPC; filled as it proceeds and handed to the access log when it ends. */
export interface RpcRecord {
  /** performance.now() when the request headers arrived. */
  readonly startedAt: number;
  /** Wall-clock start, ms since the epoch. */
  readonly time: number;
  readonly path: string;
  readonly peer: string;
  readonly listener: string;
  /** What the client spoke (metrics label it, the access log names it). */
  readonly protocol: RpcProtocol;
  route: string | undefined;
  cluster: string | undefined;
  endpoint: string | undefined;
  status: number | undefined;
  /** Why the proxy ended the RPC itself (src/grpc/failures.ts); undefined when a backend's answer is the status. */
  reason: FailureCode | undefined;
  /** The details of `reason` for the access log: endpoints, limits, the backend's error. Never sent to the client. */
  error: string | undefined;
  /** Attempts after the first. */
  retries: number;
  bytesIn: number;
  bytesOut: number;
  /** With tracing on (src/tracing/): the W3C trace id, and the id of the proxy's span, sent upstream as parent-id. */
  traceId: string | undefined;
  spanId: string | undefined;
  /** The OpenTelemetry span of the RPC (tracing.opentelemetry), ended with the record. */
  otelSpan: Span | undefined;
  /** gRPC messages (length-prefixed frames) received from the client and sent to it. */
  messagesIn: number;
  messagesOut: number;
  /** Set when the RPC starts if metrics are on: the bounded method labels it is counted under. */
  metricLabels: MethodLabels | undefined;
  /** Called exactly once, when the downstream stream has closed. */
  finish(): void;
}

/** A new RPC's record, every field present from the start (one object shape for every RPC). */
export function newRpcRecord(path: string, peer: string, listener: string, protocol: RpcProtocol, onFinish: (record: RpcRecord) => void): RpcRecord {
  const record: RpcRecord = {
    startedAt: performance.now(),
    time: Date.now(),
    path,
    peer,
    listener,
    protocol,
    route: undefined,
    cluster: undefined,
    endpoint: undefined,
    status: undefined,
    reason: undefined,
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
    finish: () => onFinish(record),
  };
  return record;
}
