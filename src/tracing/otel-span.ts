/**
 * The optional OpenTelemetry span of a traced RPC, made through
 * @opentelemetry/api alone. Switchyard registers no SDK: without one (see
 * docs/tracing.md, `node --import ./otel-setup.mjs`) the API returns
 * non-recording spans and nothing is exported.
 *
 * The span is of kind CLIENT: it stands for the call the proxy makes on the
 * caller's behalf, the backend's SERVER span is its child, and its
 * server.address is the backend. Under OpenTelemetry's gRPC conventions a
 * client span is in error for every status but OK, which is what the proxy
 * reports too.
 */
import { VERSION } from '../version.ts';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { Status } from '../grpc/status.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import type { TraceParent } from './traceparent.ts';

let tracerProvider: TracerProvider | undefined;
let tracer: Tracer | undefined;

/** Starts the span of an RPC at the time its request headers arrived, as a child of the caller's span if any. */
export function startRpcOtelSpan(record: RpcRecord, caller: TraceParent | undefined): Span {
  const path = record.path;
  const slash = path.indexOf('/', 1);
  const wellFormed = path.startsWith('/') && slash > 0;
  const parent = caller === undefined
    ? ROOT_CONTEXT
    : trace.setSpanContext(ROOT_CONTEXT, { traceId: caller.traceId, spanId: caller.parentId, traceFlags: caller.flags, isRemote: true });
  const attributes: Attributes = { 'rpc.system': 'grpc' };
  if (wellFormed) {
    attributes['rpc.service'] = path.slice(1, slash);
    attributes['rpc.method'] = path.slice(slash + 1);
  }
  if (record.route !== undefined) attributes['switchyard.route'] = record.route;
  if (record.cluster !== undefined) attributes['switchyard.cluster'] = record.cluster;
  return currentTracer().startSpan(
    // The conventions' span name: package.Service/Method.
    wellFormed ? path.slice(1) : path,
    // startTime in epoch milliseconds, fractional: the SDK keeps the sub-millisecond part.
    { kind: SpanKind.CLIENT, startTime: performance.timeOrigin + record.startedAt, attributes },
    parent,
  );
}

/** Ends the span with what the record says of the RPC's outcome. */
export function endRpcOtelSpan(span: Span, record: RpcRecord): void {
  if (span.isRecording()) {
    const code = record.status ?? Status.UNKNOWN;
    span.setAttribute('rpc.grpc.status_code', code);
    span.setAttribute('switchyard.retries', record.retries);
    const endpoint = record.endpoint;
    if (endpoint !== undefined) {
      // The endpoint key is host:port, with an IPv6 host in brackets.
      const colon = endpoint.lastIndexOf(':');
      const host = endpoint.slice(0, colon);
      span.setAttribute('server.address', host.startsWith('[') ? host.slice(1, -1) : host);
      span.setAttribute('server.port', Number(endpoint.slice(colon + 1)));
    }
    if (code !== Status.OK) span.setStatus(record.error === undefined ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message: record.error });
  }
  span.end();
}

/**
 * The tracer of the provider registered now. Kept while the provider stays
 * the same; trace.disable() swaps the API's provider object, so a later
 * registration is picked up.
 */
function currentTracer(): Tracer {
  const provider = trace.getTracerProvider();
  if (provider !== tracerProvider || tracer === undefined) {
    tracerProvider = provider;
    tracer = provider.getTracer('switchyard', VERSION);
  }
  return tracer;
}
