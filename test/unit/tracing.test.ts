import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http2';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { RpcRecord } from '../../src/grpc/rpc-record.ts';
import { traceRpc } from '../../src/tracing/rpc-trace.ts';
import { parseTraceparent } from '../../src/tracing/traceparent.ts';
import type { TracingSettings } from '../../src/config/tracing-schema.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';

const FILE = '/etc/switchyard/test.yaml';
const MINIMAL = `
listeners:
  - name: local
    port: 8080
    plaintext: true
`;

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const ENABLED: TracingSettings = { enabled: true, sample_new_traces: false, opentelemetry: false };

/** The fields traceRpc reads and writes; the rest of a record does not concern it. */
function record(): RpcRecord {
  const fields: Partial<RpcRecord> = { startedAt: performance.now(), path: '/pkg.Service/Method', route: 'r', cluster: 'c', traceId: undefined, spanId: undefined, otelSpan: undefined };
  return fields as RpcRecord;
}

describe('tracing config', () => {
  it('is off by default', () => {
    assert.deepEqual(parseConfig(MINIMAL, FILE).tracing, { enabled: false, sample_new_traces: false, opentelemetry: false });
  });

  it('takes each setting', () => {
    const config = parseConfig(`${MINIMAL}tracing: { enabled: true, sample_new_traces: true, opentelemetry: true }\n`, FILE);
    assert.deepEqual(config.tracing, { enabled: true, sample_new_traces: true, opentelemetry: true });
  });

  it('refuses opentelemetry without enabled, and unknown keys', async () => {
    const error = await configError(FILE, () => parseConfig(`${MINIMAL}tracing: { opentelemetry: true, sampler: always }\n`, FILE));
    assertProblem(error, 'tracing.opentelemetry', /needs enabled: true/);
    assertProblem(error, 'tracing', /sampler/);
  });
});

describe('traceRpc', () => {
  it('continues the caller\'s trace under a span of its own, keeping flags and tracestate', () => {
    const headers: IncomingHttpHeaders = { traceparent: `00-${TRACE_ID}-${PARENT_ID}-03`, tracestate: 'vendor=opaque' };
    const rpc = record();
    traceRpc(ENABLED, headers, rpc);
    assert.equal(rpc.traceId, TRACE_ID);
    assert.match(rpc.spanId ?? '', /^[0-9a-f]{16}$/);
    assert.notEqual(rpc.spanId, PARENT_ID);
    assert.equal(headers.traceparent, `00-${TRACE_ID}-${rpc.spanId}-03`);
    assert.equal(headers.tracestate, 'vendor=opaque');
    assert.equal(rpc.otelSpan, undefined);
  });

  it('writes version 00 upstream when a later version came in', () => {
    const headers: IncomingHttpHeaders = { traceparent: `cc-${TRACE_ID}-${PARENT_ID}-01-future` };
    const rpc = record();
    traceRpc(ENABLED, headers, rpc);
    assert.equal(headers.traceparent, `00-${TRACE_ID}-${rpc.spanId}-01`);
  });

  it('starts a trace, unsampled unless asked, when the caller sent no valid traceparent; its tracestate is dropped', () => {
    for (const [settings, flags] of [[ENABLED, 0], [{ ...ENABLED, sample_new_traces: true }, 1]] as const) {
      for (const incoming of [undefined, 'garbage', `00-${'0'.repeat(32)}-${PARENT_ID}-01`]) {
        const headers: IncomingHttpHeaders = { tracestate: 'vendor=opaque', ...(incoming !== undefined && { traceparent: incoming }) };
        const rpc = record();
        traceRpc(settings, headers, rpc);
        const sent = parseTraceparent(headers.traceparent);
        assert.deepEqual(sent, { traceId: rpc.traceId, parentId: rpc.spanId, flags });
        assert.equal(headers.tracestate, undefined);
      }
    }
  });

  it('gives every RPC a new span id', () => {
    const ids = new Set<string | undefined>();
    for (let i = 0; i < 50; i++) {
      const rpc = record();
      traceRpc(ENABLED, { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, rpc);
      ids.add(rpc.spanId);
    }
    assert.equal(ids.size, 50);
  });
});
