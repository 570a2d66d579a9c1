// tracing.opentelemetry: one CLIENT span per RPC through @opentelemetry/api.
// A small in-test TracerProvider stands in for an SDK and keeps every span.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import {
  SpanKind, SpanStatusCode, TraceFlags, trace,
  type Attributes, type AttributeValue, type Context, type Span, type SpanContext, type SpanOptions, type SpanStatus, type Tracer, type TracerProvider,
} from '@opentelemetry/api';
import { expectStatus, startEchoSetup, unary, waitFor, type EchoSetup } from '../helpers/harness.ts';
import { CLIENT_SPAN_ID, CLIENT_TRACE_ID, CLIENT_TRACEPARENT, CLIENT_TRACESTATE, backendSaw, traceMetadata } from '../helpers/trace-headers.ts';

/** A span as the test provider keeps it. */
class RecordedSpan implements Span {
  readonly name: string;
  readonly tracer: { name: string; version: string | undefined };
  readonly kind: SpanKind | undefined;
  readonly parent: SpanContext | undefined;
  readonly attributes: Attributes;
  readonly context: SpanContext;
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  ended = 0;

  constructor(name: string, tracer: RecordedSpan['tracer'], options: SpanOptions, parent: SpanContext | undefined) {
    this.name = name;
    this.tracer = tracer;
    this.kind = options.kind;
    this.parent = parent;
    this.attributes = { ...options.attributes };
    this.context = {
      traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      // An always-on sampler.
      traceFlags: TraceFlags.SAMPLED,
    };
  }

  spanContext(): SpanContext { return this.context; }
  setAttribute(key: string, value: AttributeValue): this { this.attributes[key] = value; return this; }
  setAttributes(attributes: Attributes): this { Object.assign(this.attributes, attributes); return this; }
  addEvent(): this { return this; }
  addLink(): this { return this; }
  addLinks(): this { return this; }
  setStatus(status: SpanStatus): this { this.status = status; return this; }
  updateName(): this { return this; }
  end(): void { this.ended++; }
  isRecording(): boolean { return this.ended === 0; }
  recordException(): void {}
}

class RecordingProvider implements TracerProvider {
  readonly spans: RecordedSpan[] = [];

  getTracer(name: string, version?: string): Tracer {
    const spans = this.spans;
    return {
      startSpan(spanName: string, options: SpanOptions = {}, context?: Context): Span {
        const parent = context && trace.getSpanContext(context);
        const span = new RecordedSpan(spanName, { name, version }, options, parent);
        spans.push(span);
        return span;
      },
      startActiveSpan(): never {
        throw new Error('not used by Switchyard');
      },
    };
  }
}

const TRACING = { tracing: { enabled: true, opentelemetry: true } };

async function recordOf(setup: EchoSetup, n: number) {
  await waitFor(() => setup.proxy.records.length >= n, `record of RPC ${n}`);
  return setup.proxy.records[n - 1]!;
}

describe('opentelemetry: true without an SDK', () => {
  let setup: EchoSetup;
  before(async () => { setup = await startEchoSetup(1, TRACING); });
  after(() => setup.close());

  it('sends a span id of the proxy\'s own, not the caller\'s', async () => {
    const { response } = await unary(setup.client, {}, traceMetadata(CLIENT_TRACEPARENT, CLIENT_TRACESTATE));
    const record = await recordOf(setup, 1);
    assert.notEqual(record.spanId, CLIENT_SPAN_ID);
    assert.equal(backendSaw(response, 'traceparent'), `00-${CLIENT_TRACE_ID}-${record.spanId}-01`);
    assert.equal(backendSaw(response, 'tracestate'), CLIENT_TRACESTATE);
  });
});

describe('opentelemetry: true with a registered TracerProvider', () => {
  let setup: EchoSetup;
  let provider: RecordingProvider;
  before(async () => {
    provider = new RecordingProvider();
    assert.ok(trace.setGlobalTracerProvider(provider), 'the test provider was registered');
    setup = await startEchoSetup(1, { ...TRACING, routes: [{ name: 'echo-route', match: { prefix: '/' }, cluster: 'echo' }] });
  });
  after(async () => {
    await setup.close();
    trace.disable();
  });

  it('makes one CLIENT span per RPC, child of the caller\'s span, and sends its id upstream', async () => {
    const { response } = await unary(setup.client, {}, traceMetadata(CLIENT_TRACEPARENT, CLIENT_TRACESTATE));
    const record = await recordOf(setup, 1);
    assert.equal(provider.spans.length, 1);
    const span = provider.spans[0]!;
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.deepEqual(span.tracer, { name: 'switchyard', version });
    assert.equal(span.name, 'switchyard.demo.v1.Echo/Unary');
    assert.equal(span.kind, SpanKind.CLIENT);
    assert.deepEqual(span.parent, { traceId: CLIENT_TRACE_ID, spanId: CLIENT_SPAN_ID, traceFlags: 1, isRemote: true });
    assert.equal(span.ended, 1);
    assert.deepEqual(span.status, { code: SpanStatusCode.UNSET });
    assert.deepEqual(span.attributes, {
      'rpc.system': 'grpc',
      'rpc.service': 'switchyard.demo.v1.Echo',
      'rpc.method': 'Unary',
      'rpc.grpc.status_code': 0,
      'server.address': '127.0.0.1',
      'server.port': setup.backends[0]!.port,
      'switchyard.route': 'echo-route',
      'switchyard.cluster': 'echo',
      'switchyard.retries': 0,
    });
    // The span's id is the one the backend sees as its parent, and the one the record keeps.
    assert.equal(record.spanId, span.context.spanId);
    assert.equal(record.traceId, CLIENT_TRACE_ID);
    assert.equal(backendSaw(response, 'traceparent'), `00-${CLIENT_TRACE_ID}-${span.context.spanId}-01`);
    assert.equal(backendSaw(response, 'tracestate'), CLIENT_TRACESTATE);
  });

  it('marks a span ERROR for a non-OK status', async () => {
    const before = setup.proxy.records.length;
    const error = await expectStatus(unary(setup.client, { fail_code: grpc.status.NOT_FOUND, fail_message: 'nope' }, traceMetadata(CLIENT_TRACEPARENT)));
    assert.equal(error.code, grpc.status.NOT_FOUND);
    await recordOf(setup, before + 1);
    const span = provider.spans.at(-1)!;
    assert.equal(span.ended, 1);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['rpc.grpc.status_code'], grpc.status.NOT_FOUND);
  });

  it('starts a root span when the caller sent no traceparent, and sends its trace upstream', async () => {
    const before = setup.proxy.records.length;
    const { response } = await unary(setup.client, {});
    const record = await recordOf(setup, before + 1);
    const span = provider.spans.at(-1)!;
    assert.equal(span.parent, undefined);
    assert.equal(record.traceId, span.context.traceId);
    assert.equal(record.spanId, span.context.spanId);
    // The sampled flag is the SDK's decision (this one samples everything), not sample_new_traces.
    assert.equal(backendSaw(response, 'traceparent'), `00-${span.context.traceId}-${span.context.spanId}-01`);
    assert.equal(provider.spans.length, setup.proxy.records.length);
  });
});
