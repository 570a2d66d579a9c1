import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { echoClient, startEchoSetup, startProxy, unary, type EchoClient } from '../helpers/harness.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

/** Sends `total` unary RPCs, `concurrency` at a time; returns the errors. */
async function load(client: EchoClient, total: number, concurrency: number, options: grpc.CallOptions = {}): Promise<grpc.ServiceError[]> {
  const errors: grpc.ServiceError[] = [];
  let sent = 0;
  const worker = async () => {
    while (sent < total) {
      sent++;
      await unary(client, {}, new grpc.Metadata(), typeof options.deadline === 'number' ? { deadline: Date.now() + options.deadline } : {}).catch((e: grpc.ServiceError) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return errors;
}

const unaryCalls = (backends: readonly EchoServerHandle[]) => backends.reduce((sum, b) => sum + (b.calls.get('Unary') ?? 0), 0);

const RETRY_UNAVAILABLE = { retry_on: ['unavailable', 'reset', 'connect_failure', 'refused_stream'], num_retries: 2 };
/** Failures never eject an endpoint: what the client sees is up to the retry policy alone. */
const NO_EJECTION = { outlier_detection: { consecutive_gateway_errors: 0 } };

describe('retries', () => {
  it('one backend failing 20% of calls with UNAVAILABLE in trailers: zero client failures', async () => {
    const { backends, proxy, client, close } = await startEchoSetup(3, {
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: RETRY_UNAVAILABLE }],
    }, { cluster: NO_EJECTION });
    backends[0]!.behaviour.unavailableEvery = 5;
    try {
      const errors = await load(client, 900, 8);
      assert.deepEqual(errors.map((e) => e.details), []);
      const retried = proxy.records.filter((r) => r.retries > 0).length;
      assert.ok(retried >= 20, `only ${retried} RPCs were retried`);
      // A retry goes to another endpoint: the retried RPCs ended on a healthy backend.
      assert.ok(proxy.records.filter((r) => r.retries > 0).every((r) => r.endpoint !== `127.0.0.1:${backends[0]!.port}`));
    } finally {
      await close();
    }
  });

  it('without a retry policy the same failures reach the client (the test above can fail)', async () => {
    const { backends, client, close } = await startEchoSetup(3, {}, { cluster: NO_EJECTION });
    backends[0]!.behaviour.unavailableEvery = 5;
    try {
      const errors = await load(client, 300, 8);
      assert.ok(errors.length > 0 && errors.every((e) => e.code === grpc.status.UNAVAILABLE));
    } finally {
      await close();
    }
  });

  it('the retry budget caps retries when every backend fails: no retry storm', async () => {
    const { backends, proxy, client, close } = await startEchoSetup(3, {
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: { ...RETRY_UNAVAILABLE, num_retries: 3 } }],
    }, { cluster: { ...NO_EJECTION, retry_budget: { budget_percent: 20, min_retry_concurrency: 2 } } });
    for (const b of backends) b.behaviour.unavailableEvery = 1;
    const before = unaryCalls(backends);
    try {
      const total = 400;
      const errors = await load(client, total, 40);
      assert.equal(errors.length, total);
      const upstream = unaryCalls(backends) - before;
      // Unbudgeted, 3 retries each would make 4 × 400 = 1600 upstream calls.
      assert.ok(upstream < total * 1.5, `${upstream} upstream calls for ${total} RPCs`);
      assert.ok(proxy.proxy.clusters.get('echo')!.limits.overflows.retry_budget > 0);
      // The backend's own answer reaches the client unchanged; the access log and metrics say why it was not retried.
      assert.ok(proxy.records.some((r) => r.reason === 'retry_budget_exhausted' && /retry budget exhausted/.test(r.error ?? '')));
    } finally {
      await close();
    }
  });

  it('a hanging backend: the per-try timeout and a retry keep every call within its deadline', async () => {
    const { backends, proxy, client, close } = await startEchoSetup(3, {
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: { ...RETRY_UNAVAILABLE, per_try_timeout: '150ms' } }],
    }, { cluster: NO_EJECTION });
    backends[1]!.behaviour.extraDelayMs = 60_000;
    try {
      const started = Date.now();
      const errors = await load(client, 60, 6, { deadline: 2_000 });
      assert.deepEqual(errors.map((e) => e.details), []);
      assert.ok(Date.now() - started < 10_000);
      const retried = proxy.records.filter((r) => r.retries > 0);
      assert.ok(retried.length > 0, 'some calls hit the hanging backend and were retried');
    } finally {
      backends[1]!.behaviour.extraDelayMs = 0;
      await close();
    }
  });

  it('a request larger than max_buffered_bytes is not retried', async () => {
    const { backends, client, close } = await startEchoSetup(1, {
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: { ...RETRY_UNAVAILABLE, max_buffered_bytes: 1024 } }],
    });
    backends[0]!.behaviour.unavailableEvery = 1;
    try {
      const before = backends[0]!.calls.get('Unary') ?? 0;
      const error = await unary(client, { payload: Buffer.alloc(4096) }).then(() => undefined, (e: grpc.ServiceError) => e);
      assert.equal(error?.code, grpc.status.UNAVAILABLE);
      assert.equal((backends[0]!.calls.get('Unary') ?? 0) - before, 1);
      const small = await unary(client, { payload: Buffer.alloc(16) }).then(() => undefined, (e: grpc.ServiceError) => e);
      assert.equal(small?.code, grpc.status.UNAVAILABLE);
      assert.equal((backends[0]!.calls.get('Unary') ?? 0) - before, 1 + 3, 'the small request was tried 3 times');
    } finally {
      await close();
    }
  });
});

describe('retry pushback (grpc-retry-pushback-ms)', () => {
  it('a negative pushback stops retries; a positive one delays the retry', async () => {
    let calls = 0;
    const server = http2.createServer();
    server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
      stream.on('error', () => {});
      stream.resume();
      calls++;
      const pushbackMs = headers['x-pushback'] as string;
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'busy', 'grpc-retry-pushback-ms': pushbackMs }, { endStream: true });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const proxy = await startProxy({
      clusters: [{ name: 'busy', endpoints: [{ address: '127.0.0.1', port }] }],
      routes: [{ match: { prefix: '/' }, cluster: 'busy', retry_policy: RETRY_UNAVAILABLE }],
    });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      const stop = new grpc.Metadata();
      stop.set('x-pushback', '-1');
      const error = await unary(client, {}, stop).then(() => undefined, (e: grpc.ServiceError) => e);
      assert.equal(error?.code, grpc.status.UNAVAILABLE);
      assert.equal(calls, 1);

      const wait = new grpc.Metadata();
      wait.set('x-pushback', '200');
      const started = Date.now();
      await unary(client, {}, wait).catch(() => {});
      assert.equal(calls, 1 + 3);
      assert.ok(Date.now() - started >= 380, 'two retries, each 200 ms after the last answer');
    } finally {
      client.close();
      await proxy.close();
      server.close();
    }
  });
});

describe('a backend that dies between its answer and its trailers', () => {
  it('is retried: the client gets one clean answer, not a broken one', async () => {
    let calls = 0;
    const server = http2.createServer();
    server.on('stream', (stream: http2.ServerHttp2Stream) => {
      stream.on('error', () => {});
      stream.resume();
      const call = ++calls;
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        // EchoResponse { backend = "call-N" }, in a gRPC frame.
        const name = Buffer.from(`call-${call}`);
        const message = Buffer.concat([Buffer.from([0, 0, 0, 0, name.length + 2, 0x12, name.length]), name]);
        if (call === 1) {
          stream.write(message, () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
          return;
        }
        stream.end(message);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const proxy = await startProxy({
      clusters: [{ name: 'flaky', endpoints: [{ address: '127.0.0.1', port }] }],
      routes: [{ match: { prefix: '/' }, cluster: 'flaky', retry_policy: RETRY_UNAVAILABLE }],
    });
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    try {
      const { response } = await unary(client, {});
      assert.equal(response.backend, 'call-2');
      assert.equal(calls, 2);
    } finally {
      client.close();
      await proxy.close();
      server.close();
    }
  });
});
