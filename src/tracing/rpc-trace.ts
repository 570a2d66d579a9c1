/**
 * Tracing of one forwarded RPC. The proxy gets a span of its own: a new span
 * id, under the caller's trace id, sent upstream as the traceparent parent-id
 * so the backend's span is the proxy's child. Without a valid traceparent the
 * proxy starts a new trace. Every attempt of the RPC (retries included) is
 * sent the same traceparent: one proxy span per RPC.
 *
 * Only called when `tracing.enabled` is set; otherwise traceparent and
 * tracestate cross the proxy untouched, like any other header.
 *
 * @opentelemetry/api is loaded only once a config turns `opentelemetry` on
 * (prepareTracing, before the config serves): it is about 50 modules and
 * 5 MiB of resident memory that a proxy without it should not carry.
 */
import type { HeaderMap } from '../grpc/streams.ts';
import type { RpcRecord } from '../grpc/rpc-record.ts';
import { SAMPLED, formatTraceparent, newSpanId, newTraceId, parseTraceparent } from './traceparent.ts';
import type { TracingSettings } from '../config/tracing-schema.ts';

/**
 * Gives the RPC its span: fills record.traceId, spanId (and otelSpan when
 * exporting) and rewrites `headers`, which go upstream as they are.
 */
type OtelSpans = typeof import('./otel-span.ts');
let otel: OtelSpans | undefined;

/** Loads what `settings` needs before a config using them serves its first RPC. */
export async function prepareTracing(settings: TracingSettings | undefined): Promise<void> {
  if (settings?.opentelemetry && otel === undefined) otel = await import('./otel-span.ts');
}

/** Ends the RPC's OpenTelemetry span, if it has one. */
export function endRpcTrace(record: RpcRecord): void {
  if (record.otelSpan !== undefined) otel!.endRpcOtelSpan(record.otelSpan, record);
}

export function traceRpc(settings: TracingSettings, headers: HeaderMap, record: RpcRecord): void {
  const traceparent = headers.traceparent;
  const caller = parseTraceparent(typeof traceparent === 'number' ? undefined : traceparent);
  let traceId: string;
  let flags: number;
  if (caller) {
    traceId = caller.traceId;
    flags = caller.flags;
  } else {
    traceId = newTraceId();
    flags = settings.sample_new_traces ? SAMPLED : 0;
    // A tracestate belongs to the traceparent it came with; without a valid one it is dropped (W3C Trace Context §3.3.1).
    if (headers.tracestate !== undefined) headers.tracestate = undefined;
  }
  let spanId: string | undefined;
  if (settings.opentelemetry) {
    if (otel === undefined) throw new Error('tracing.opentelemetry is on but prepareTracing was not awaited');
    const span = otel.startRpcOtelSpan(record, caller);
    record.otelSpan = span;
    // Without an SDK the API's span merely echoes the caller's context, which must not be sent as the proxy's.
    if (span.isRecording()) {
      const context = span.spanContext();
      traceId = context.traceId;
      spanId = context.spanId;
      // The SDK's sampler decides the sampled bit; other flag bits are the caller's.
      flags = (flags & ~SAMPLED) | (context.traceFlags & SAMPLED);
    }
  }
  spanId ??= newSpanId();
  headers.traceparent = formatTraceparent(traceId, spanId, flags);
  record.traceId = traceId;
  record.spanId = spanId;
}
