// W3C trace context through the proxy: untouched when tracing is off; with it
// on, the backend is sent the caller's trace under the proxy's own span.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseTraceparent } from '../../src/tracing/traceparent.ts';
import { tracingSettings } from '../../src/config/tracing-schema.ts';
import * as grpc from '@grpc/grpc-js';
import { loadEchoPackage } from '../../src/demo/echo-service.ts';
import { startBackends, startEchoSetup, startProxy, echoClient, unary, waitFor, type EchoSetup } from '../helpers/harness.ts';
import { CLIENT_SPAN_ID, CLIENT_TRACE_ID, CLIENT_TRACEPARENT, CLIENT_TRACESTATE, backendSaw, traceMetadata } from '../helpers/trace-headers.ts';

async function withSetup(config: Record<string, unknown>, run: (setup: EchoSetup) => Promise<void>): Promise<void> {
  const setup = await startEchoSetup(1, config);
  try {
    await run(setup);
  } finally {
    await setup.close();
  }
}

/** The record of the `n`-th RPC (1-based), once the proxy has finished it. */
async function recordOf(setup: EchoSetup, n: number) {
  await waitFor(() => setup.proxy.records.length >= n, `record of RPC ${n}`);
  return setup.proxy.records[n - 1]!;
}

describe('tracing off (the default)', () => {
  it('passes traceparent and tracestate through byte for byte, valid or not', () => withSetup({}, async (setup) => {
    const sent = [
      [CLIENT_TRACEPARENT, CLIENT_TRACESTATE],
      ['cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future', 'a=1'],
      ['not a traceparent', 'not=a,valid tracestate either'],
    ] as const;
    for (const [i, [traceparent, tracestate]] of sent.entries()) {
      const { response } = await unary(setup.client, {}, traceMetadata(traceparent, tracestate));
      assert.equal(backendSaw(response, 'traceparent'), traceparent);
      assert.equal(backendSaw(response, 'tracestate'), tracestate);
      const record = await recordOf(setup, i + 1);
      assert.equal(record.traceId, undefined);
      assert.equal(record.spanId, undefined);
    }
    // Nothing is added either.
    const { response } = await unary(setup.client, {});
    assert.equal(backendSaw(response, 'traceparent'), undefined);
  }));
});

describe('tracing on', () => {
  const TRACING = { tracing: { enabled: true } };

  it('sends the caller\'s trace id with the proxy\'s span id as parent, keeping flags and tracestate', () => withSetup(TRACING, async (setup) => {
    for (const [n, flags] of [[1, '01'], [2, '00']] as const) {
      const traceparent = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-${flags}`;
      const { response } = await unary(setup.client, {}, traceMetadata(traceparent, CLIENT_TRACESTATE));
      const upstream = parseTraceparent(backendSaw(response, 'traceparent'));
      const record = await recordOf(setup, n);
      assert.ok(upstream, 'the backend got a valid traceparent');
      assert.equal(upstream.traceId, CLIENT_TRACE_ID);
      assert.notEqual(upstream.parentId, CLIENT_SPAN_ID);
      assert.equal(upstream.parentId, record.spanId);
      assert.equal(record.traceId, CLIENT_TRACE_ID);
      assert.equal(backendSaw(response, 'traceparent'), `00-${CLIENT_TRACE_ID}-${record.spanId}-${flags}`);
      assert.equal(backendSaw(response, 'tracestate'), CLIENT_TRACESTATE);
    }
  }));

  it('starts a new trace when the caller sent none, or an invalid one (whose tracestate is dropped)', () => withSetup(TRACING, async (setup) => {
    const sent = [undefined, 'garbage', `00-${'0'.repeat(32)}-${CLIENT_SPAN_ID}-01`, CLIENT_TRACEPARENT.toUpperCase()];
    for (const [i, traceparent] of sent.entries()) {
      const { response } = await unary(setup.client, {}, traceMetadata(traceparent, traceparent && CLIENT_TRACESTATE));
      const record = await recordOf(setup, i + 1);
      const upstream = parseTraceparent(backendSaw(response, 'traceparent'));
      assert.deepEqual(upstream, { traceId: record.traceId, parentId: record.spanId, flags: 0 }, String(traceparent));
      assert.notEqual(record.traceId, CLIENT_TRACE_ID);
      assert.equal(backendSaw(response, 'tracestate'), undefined);
    }
  }));

  it('follows reloads: sample_new_traces, then off again', () => withSetup(TRACING, async (setup) => {
    const proxy = setup.proxy.proxy;
    // The running config with another tracing section (re-parsing it would not work: durations are numbers by now).
    await proxy.reload({ config: { ...proxy.config, tracing: { enabled: true, sample_new_traces: true, opentelemetry: false } } });
    const sampled = await unary(setup.client, {});
    assert.equal(parseTraceparent(backendSaw(sampled.response, 'traceparent'))?.flags, 1);

    await proxy.reload({ config: { ...proxy.config, tracing: tracingSettings.parse({}) } });
    const { response } = await unary(setup.client, {}, traceMetadata(CLIENT_TRACEPARENT));
    assert.equal(backendSaw(response, 'traceparent'), CLIENT_TRACEPARENT);
  }));

  it('sends every attempt of a retried RPC the same traceparent: one proxy span per RPC', async () => {
    // A backend that fails every call with UNAVAILABLE, noting the traceparent it was sent.
    const failedWith: string[] = [];
    const failing = new grpc.Server();
    failing.addService(loadEchoPackage().Echo.service, {
      Unary: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        failedWith.push(String(call.metadata.get('traceparent')[0]));
        callback({ code: grpc.status.UNAVAILABLE, details: 'always failing' });
      },
    });
    const failingPort = await new Promise<number>((resolve, reject) => {
      failing.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
    });
    const [good] = await startBackends(1);
    const proxy = await startProxy({
      ...TRACING,
      clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: failingPort }, { address: '127.0.0.1', port: good!.port }], outlier_detection: { consecutive_gateway_errors: 0 } }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: { retry_on: ['unavailable'], num_retries: 1 } }],
    });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      // Round robin: some of these meet the failing backend first and are retried on the good one.
      for (let i = 0; i < 4; i++) {
        const { response } = await unary(client, {}, traceMetadata(CLIENT_TRACEPARENT));
        await waitFor(() => proxy.records.length > i, `record of RPC ${i + 1}`);
        const record = proxy.records[i]!;
        const upstream = `00-${CLIENT_TRACE_ID}-${record.spanId}-01`;
        assert.equal(backendSaw(response, 'traceparent'), upstream);
        if (record.retries > 0) assert.equal(failedWith.at(-1), upstream);
      }
      assert.ok(failedWith.length > 0, 'no RPC met the failing backend');
    } finally {
      client.close();
      await proxy.close();
      await good!.close();
      failing.forceShutdown();
    }
  });

  it('writes trace_id and span_id to the access log', async () => {
    const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'switchyard-trace-log-')), 'access.log');
    let spanId: string | undefined;
    await withSetup({ ...TRACING, access_log: { output: file } }, async (setup) => {
      await unary(setup.client, {}, traceMetadata(CLIENT_TRACEPARENT));
      spanId = (await recordOf(setup, 1)).spanId;
    });
    const [line] = (await readFile(file, 'utf8')).trim().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
    assert.equal(line?.trace_id, CLIENT_TRACE_ID);
    assert.equal(line?.span_id, spanId);
    assert.match(String(spanId), /^[0-9a-f]{16}$/);
  });
});
