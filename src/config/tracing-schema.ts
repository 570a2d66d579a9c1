/**
 * The `tracing` section: W3C trace context propagation and optional
 * OpenTelemetry spans. Everything is off by default; docs/tracing.md
 * explains what each setting changes on the wire.
 */
import { z } from 'zod';

export const tracingSettings = z
  .strictObject({
    /** Give each forwarded RPC a span of the proxy's own and send its id upstream as the traceparent parent-id. */
    enabled: z.boolean().default(false),
    /** When the proxy starts a trace (no valid traceparent came in), mark it sampled (trace-flags 01). */
    sample_new_traces: z.boolean().default(false),
    /** Also create an OpenTelemetry span per RPC through @opentelemetry/api (exported by an SDK the user registers). */
    opentelemetry: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    // Refused rather than implied: a switch that silently turns on another hides what the config does.
    if (value.opentelemetry && !value.enabled) {
      ctx.addIssue({ code: 'custom', path: ['opentelemetry'], message: 'opentelemetry: true needs enabled: true (the OpenTelemetry span is the proxy span that tracing adds)' });
    }
  });

export type TracingSettings = z.output<typeof tracingSettings>;
