/**
 * /metrics after a known set of RPCs: exact counts per method, status and
 * endpoint, failures that arrive in trailers, and label values that stay
 * bounded whatever method names clients send.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { expectStatus, startEchoSetup, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { samplesOf, scrape, valueOf, type Sample } from '../helpers/admin.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

const SERVICE = 'switchyard.demo.v1.Echo';
const UNARY = `/${SERVICE}/Unary`;

function serverStream(client: EchoClient, request: Record<string, unknown>): Promise<{ messages: number; error: grpc.ServiceError | undefined }> {
  return new Promise((resolve) => {
    let messages = 0;
    const call = client.ServerStream(request);
    call.on('data', () => messages++);
    call.on('error', (error: grpc.ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages, error: undefined }));
  });
}

async function scrapeWhen(proxy: RunningProxy, ready: (samples: Sample[]) => boolean, what: string): Promise<Sample[]> {
  let samples: Sample[] = [];
  // The client sees its answer a moment before the proxy's downstream stream closes and the RPC is counted.
  await waitFor(async () => ready((samples = await scrape(proxy.proxy))), what);
  return samples;
}

describe('metrics after a known set of RPCs', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    setup = await startEchoSetup(3, {
      admin: { port: 0 },
      metrics: { methods: [`/${SERVICE}/ServerStream`] },
      routes: [
        { name: 'unary', match: { method: UNARY }, cluster: 'echo' },
        { name: 'echo', match: { service: SERVICE }, cluster: 'echo' },
      ],
    });
    ({ backends, proxy, client } = setup);
  });

  after(() => setup.close());

  test('counts per method, status code and endpoint are exact', async () => {
    for (let i = 0; i < 30; i++) await unary(client, { payload: Buffer.from('ok') });
    for (let i = 0; i < 6; i++) {
      const error = await expectStatus(unary(client, { fail_code: grpc.status.NOT_FOUND, fail_message: 'no such thing' }));
      assert.equal(error.code, grpc.status.NOT_FOUND);
    }
    // Three messages, then ABORTED in the trailers: the client saw ABORTED, so that is what is counted.
    for (let i = 0; i < 4; i++) {
      const { messages, error } = await serverStream(client, { count: 3, fail_code: grpc.status.ABORTED });
      assert.equal(messages, 3);
      assert.equal(error?.code, grpc.status.ABORTED);
    }
    const samples = await scrapeWhen(proxy, (s) => valueOf(s, 'grpc_server_handled_total') === 40, '40 handled RPCs');

    const unaryLabels = { route: 'unary', grpc_service: SERVICE, grpc_method: 'Unary' };
    const streamLabels = { route: 'echo', grpc_service: SERVICE, grpc_method: 'ServerStream' };
    assert.equal(valueOf(samples, 'grpc_server_started_total', { grpc_service: SERVICE, grpc_method: 'Unary' }), 36);
    assert.equal(valueOf(samples, 'grpc_server_handled_total', { ...unaryLabels, grpc_code: 'OK' }), 30);
    assert.equal(valueOf(samples, 'grpc_server_handled_total', { ...unaryLabels, grpc_code: 'NOT_FOUND' }), 6);
    assert.equal(valueOf(samples, 'grpc_server_handled_total', { ...streamLabels, grpc_code: 'ABORTED' }), 4);
    assert.equal(valueOf(samples, 'grpc_server_handled_total', { ...streamLabels, grpc_code: 'OK' }), 0);
    assert.equal(valueOf(samples, 'grpc_server_handling_seconds_count', unaryLabels), 36);
    assert.equal(valueOf(samples, 'grpc_server_msg_sent_total', streamLabels), 12);
    assert.equal(valueOf(samples, 'grpc_server_msg_received_total', unaryLabels), 36);

    // Every attempt is counted on the endpoint that took it: the same number each backend counted itself.
    for (const backend of backends) {
      const served = [...backend.calls.values()].reduce((sum, n) => sum + n, 0);
      assert.ok(served >= 13, `round robin gave ${backend.name} ${served} of 40`);
      assert.equal(valueOf(samples, 'switchyard_upstream_rpcs_total', { cluster: 'echo', endpoint: `127.0.0.1:${backend.port}` }), served);
    }
    assert.equal(valueOf(samples, 'switchyard_upstream_rpcs_total', { cluster: 'echo', grpc_code: 'OK' }), 30);
    assert.equal(valueOf(samples, 'switchyard_upstream_rpcs_total', { cluster: 'echo', grpc_code: 'NOT_FOUND' }), 6);
    assert.equal(valueOf(samples, 'switchyard_upstream_rpcs_total', { cluster: 'echo', grpc_code: 'ABORTED' }), 4);
    assert.equal(valueOf(samples, 'switchyard_upstream_rpc_duration_seconds_count', { cluster: 'echo' }), 40);
    for (const endpoint of backends.map((b) => `127.0.0.1:${b.port}`)) {
      assert.equal(valueOf(samples, 'switchyard_upstream_connections', { cluster: 'echo', endpoint }), 1);
      assert.equal(valueOf(samples, 'switchyard_upstream_endpoint_available', { cluster: 'echo', endpoint }), 1);
      assert.equal(valueOf(samples, 'switchyard_upstream_endpoint_health', { cluster: 'echo', endpoint, state: 'unchecked' }), 1);
    }
    assert.equal(valueOf(samples, 'switchyard_listener_connections', { listener: 'main' }), 1);
    assert.equal(valueOf(samples, 'switchyard_cluster_circuit_breaker_limit', { cluster: 'echo', limit: 'max_requests' }), 10_000);
    assert.equal(valueOf(samples, 'switchyard_ready'), 1);
    assert.ok(valueOf(samples, 'process_resident_memory_bytes') > 0, 'process metrics are exported');
  });
});

describe('method labels stay bounded', () => {
  let setup: EchoSetup;
  let proxy: RunningProxy;
  // Any method path, whatever the Echo service has: the client's untyped calls.
  let client: grpc.Client;

  before(async () => {
    setup = await startEchoSetup(2, {
      admin: { port: 0 },
      metrics: { max_methods: 2 },
      routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'echo' }],
    });
    ({ proxy, client } = setup);
  });

  after(() => setup.close());

  const call = (path: string) => new Promise<number>((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (error) => resolve(error?.code ?? grpc.status.OK));
  });

  test('10,000 random method names add a bounded number of series', async () => {
    // Unary is not named in the config: its first RPC is counted as unknown, and teaches the proxy it exists.
    assert.equal(await call(UNARY), grpc.status.OK);
    assert.equal(await call(UNARY), grpc.status.OK);
    const before = await scrapeWhen(proxy, (s) => valueOf(s, 'grpc_server_handled_total') === 2, 'the first RPCs');
    assert.equal(valueOf(before, 'grpc_server_handled_total', { grpc_method: 'Unary' }), 1);
    const seriesBefore = before.filter((s) => s.name.startsWith('grpc_server_')).length;

    const total = 10_000;
    let next = 0;
    const codes = new Map<number, number>();
    await Promise.all(Array.from({ length: 100 }, async () => {
      while (next < total) {
        const i = next++;
        const code = await call(`/attacker.Svc${i % 97}/Random${i}x${Math.random().toString(36).slice(2)}`);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }));
    assert.deepEqual([...codes], [[grpc.status.UNIMPLEMENTED, total]]);
    const afterAttack = await scrapeWhen(proxy, (s) => valueOf(s, 'grpc_server_handled_total') === total + 2, 'every random RPC counted');

    const methods = new Set(samplesOf(afterAttack, 'grpc_server_handled_total').map((s) => s.labels.grpc_method));
    assert.deepEqual([...methods].sort(), ['Unary', 'unknown']);
    assert.equal(valueOf(afterAttack, 'grpc_server_handled_total', { grpc_service: 'unknown', grpc_method: 'unknown', grpc_code: 'UNIMPLEMENTED' }), total);
    const seriesAfter = afterAttack.filter((s) => s.name.startsWith('grpc_server_')).length;
    // One new method label ("unknown"): a handful of counters plus one histogram's buckets.
    assert.ok(seriesAfter - seriesBefore <= 30, `${seriesAfter - seriesBefore} new series`);
  });

  test('methods are learned up to max_methods; the rest stay unknown', async () => {
    // max_methods is 2: Unary (above) and ClientStream are learned; ServerStream is not.
    const clientStream = `/${SERVICE}/ClientStream`;
    const serverStream = `/${SERVICE}/ServerStream`;
    for (const path of [clientStream, clientStream, serverStream, serverStream]) await call(path);
    const samples = await scrapeWhen(proxy, (s) => valueOf(s, 'grpc_server_handled_total') === 10_006, 'four more RPCs');
    assert.equal(valueOf(samples, 'grpc_server_started_total', { grpc_method: 'ClientStream' }), 1);
    assert.equal(valueOf(samples, 'grpc_server_started_total', { grpc_method: 'ServerStream' }), 0);
    assert.equal(proxy.proxy.telemetry?.metrics.methods.learnedCount, 2);
  });
});
