/**
 * Every code of the failure catalogue (src/grpc/failures.ts), driven through a
 * real proxy: the status the client gets, the access log line's `reason`, and
 * the `reason` label of grpc_server_handled_total (switchyard_upstream_rpcs_total
 * for `abandoned`, which only attempts have).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { FAILURE_CODES, type FailureCode } from '../../src/grpc/failures.ts';
import { Switchyard } from '../../src/switchyard.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, readJsonLines, startBackends, waitFor, type EchoClient } from '../helpers/harness.ts';
import { adminUrl, parseSamples } from '../helpers/admin.ts';
import { closedPort } from '../helpers/ports.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, headerBlock, rawConnect } from '../helpers/raw-h2.ts';

const ECHO = 'switchyard.demo.v1.Echo';

/** A backend that answers every stream the same way, without gRPC. */
async function rawBackend(answer: (stream: http2.ServerHttp2Stream) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    stream.on('error', () => {});
    stream.resume();
    answer(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** One raw HTTP/2 request; resolves with the HTTP status and grpc-status the client got (undefined when reset). */
function rawCall(port: number, headers: http2.OutgoingHttpHeaders, body: Buffer = Buffer.alloc(0)): Promise<{ http: number | undefined; grpc: number | undefined }> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let http: number | undefined;
    let status: number | undefined;
    stream.on('error', () => {});
    stream.on('response', (h) => {
      http = Number(h[':status']);
      if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
    });
    stream.on('trailers', (t) => { status = Number(t['grpc-status']); });
    stream.on('close', () => {
      session.close();
      resolve({ http, grpc: status });
    });
    stream.resume();
    stream.end(body);
  });
}

/** A grpc-js call's status code. */
function statusOf(call: Promise<unknown>): Promise<number> {
  return call.then(() => grpc.status.OK, (error: grpc.ServiceError) => error.code);
}

function unary(client: EchoClient, request: Record<string, unknown>, metadata: Record<string, string> = {}, deadlineMs?: number): Promise<unknown> {
  const meta = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) meta.set(key, value);
  return new Promise((resolve, reject) => client.Unary(request, meta, deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(e) : resolve(r))));
}

describe('the failure catalogue, through a real proxy', () => {
  let dir: string;
  let echo: EchoServerHandle[];
  let failing: EchoServerHandle[];
  let raws: { close(): Promise<void> }[];
  let proxy: Switchyard;
  let overloaded: Switchyard;
  let client: EchoClient;
  let smallClient: EchoClient;
  const port = (listener: string) => proxy.listener(listener).address.port;
  /** What the client got, by catalogue code. */
  const seen = new Map<FailureCode, number>();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-catalogue-'));
    [echo, failing] = await Promise.all([startBackends(2), startBackends(1)]);
    failing[0]!.behaviour.unavailableEvery = 1;
    const [reset, http503, refuse, hang] = await Promise.all([
      rawBackend((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)),
      rawBackend((stream) => stream.respond({ ':status': 503 }, { endStream: true })),
      rawBackend((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)),
      // Never answers, and ignores grpc-timeout (a grpc-js backend would answer DEADLINE_EXCEEDED itself).
      rawBackend(() => {}),
    ]);
    raws = [reset, http503, refuse, hang];
    const at = (...ports: number[]) => ports.map((p) => ({ address: '127.0.0.1', port: p }));
    const byCase = (name: string, rest: Record<string, unknown>) => ({ match: { prefix: '/', headers: [{ name: 'x-case', exact: name }] }, ...rest });
    const config = configSchema.parse({
      admin: { port: 0 },
      access_log: { output: path.join(dir, 'access.log') },
      listeners: [
        { name: 'main', port: 0, plaintext: true, http2: { stalled_stream_timeout: '1s' }, web: { protocols: ['grpc_web'] } },
        { name: 'small', port: 0, plaintext: true, http2: { max_request_message_bytes: 1024, max_response_message_bytes: 1024 } },
        { name: 'aging', port: 0, plaintext: true, max_connection_age: '300ms', max_connection_age_grace: '300ms' },
      ],
      clusters: [
        { name: 'echo', endpoints: at(echo[0]!.port) },
        { name: 'empty', endpoints: [] },
        { name: 'one-at-a-time', endpoints: at(echo[0]!.port), circuit_breakers: { max_requests: 1 } },
        { name: 'no-pending', endpoints: at(echo[1]!.port), circuit_breakers: { max_pending_requests: 0 } },
        { name: 'one-connection', endpoints: at(echo[0]!.port, echo[1]!.port), circuit_breakers: { max_connections: 1 } },
        { name: 'failing', endpoints: at(failing[0]!.port), retry_budget: { budget_percent: 0, min_retry_concurrency: 0 } },
        { name: 'down', endpoints: at(await closedPort()) },
        { name: 'reset', endpoints: at(reset.port) },
        { name: 'http503', endpoints: at(http503.port) },
        { name: 'refuse', endpoints: at(refuse.port) },
        { name: 'hang', endpoints: at(hang.port) },
        { name: 'ghost-to-be', endpoints: [] },
      ],
      routes: [
        byCase('empty', { cluster: 'empty' }),
        byCase('breaker', { cluster: 'one-at-a-time' }),
        byCase('pending', { cluster: 'no-pending' }),
        byCase('connections', { cluster: 'one-connection' }),
        byCase('budget', { cluster: 'failing', retry_policy: { retry_on: ['unavailable'], num_retries: 2 } }),
        byCase('down', { cluster: 'down' }),
        byCase('reset', { cluster: 'reset' }),
        byCase('http503', { cluster: 'http503' }),
        byCase('refuse', { cluster: 'refuse' }),
        byCase('slow', { cluster: 'hang', retry_policy: { retry_on: ['unavailable'], num_retries: 1, per_try_timeout: '100ms' } }),
        byCase('timeout', { cluster: 'echo', timeout: '100ms' }),
        byCase('capped', { cluster: 'echo', max_stream_duration: '100ms' }),
        byCase('direct', { direct_response: { code: 'FAILED_PRECONDITION', message: 'closed for maintenance' } }),
        byCase('limited', { cluster: 'echo', rate_limit: { requests_per_second: 0.001, burst: 1 } }),
        byCase('ghost', { cluster: 'ghost-to-be' }),
        { match: { service: ECHO }, cluster: 'echo' },
      ],
      authorization: { rules: [{ principals: ['*'], methods: ['/catalogue.v1.Admin/Purge'], action: 'deny' }, { principals: ['*'], methods: ['*'] }] },
    });
    // A route to a cluster that does not exist cannot be written in a config file; it happens when an
    // xDS update names a cluster before it arrives.
    config.routes.find((route) => route.cluster === 'ghost-to-be')!.cluster = 'ghost';
    config.clusters.splice(config.clusters.findIndex((c) => c.name === 'ghost-to-be'), 1);
    proxy = await Switchyard.start({ config, logger: pino({ level: 'silent' }) });
    overloaded = await Switchyard.start({
      config: configSchema.parse({ admin: { port: 0 }, overload: { max_memory_mb: 1 }, listeners: [{ name: 'main', port: 0, plaintext: true }], clusters: [{ name: 'echo', endpoints: at(echo[0]!.port) }], routes: [{ match: { prefix: '/' }, cluster: 'echo' }] }),
      logger: pino({ level: 'silent' }),
    });
    client = echoClient(`127.0.0.1:${port('main')}`);
    smallClient = echoClient(`127.0.0.1:${port('small')}`);
  });

  after(async () => {
    client.close();
    smallClient.close();
    await Promise.all([proxy.stop(500), overloaded.stop(500)]);
    await Promise.all([...echo, ...failing].map((b) => b.close()));
    await Promise.all(raws.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });

  const cases: [FailureCode, number, () => Promise<number | undefined>][] = [
    ['not_grpc', grpc.status.UNKNOWN, async () => (await rawCall(port('main'), { ':method': 'GET', ':path': '/' })).http === 415 ? grpc.status.UNKNOWN : undefined],
    ['malformed_path', grpc.status.UNIMPLEMENTED, async () => (await rawCall(port('main'), { ':path': `/${ECHO}/Unary/` })).grpc],
    ['header_list_too_large', grpc.status.RESOURCE_EXHAUSTED, async () => {
      const connection = await rawConnect(port('main'));
      const block = Buffer.concat([grpcRequestHeaders(), headerBlock([['x-large', 'a'.repeat(15_000)], ['x-larger', 'b'.repeat(5_000)]])]);
      connection.send(Buffer.concat([frame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 16_384)), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(16_384))]));
      await waitFor(() => connection.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS), 'the answer');
      connection.close();
      return grpc.status.RESOURCE_EXHAUSTED;
    }],
    ['bad_grpc_timeout', grpc.status.INVALID_ARGUMENT, async () => (await rawCall(port('main'), { ':path': `/${ECHO}/Unary`, 'grpc-timeout': 'soon' })).grpc],
    ['request_too_large', grpc.status.RESOURCE_EXHAUSTED, () => statusOf(unary(smallClient, { payload: Buffer.alloc(2_048) }))],
    ['malformed_request', grpc.status.INVALID_ARGUMENT, async () => {
      // gRPC-Web in text mode whose body is not base64.
      const response = await fetch(`http://127.0.0.1:${port('main')}/${ECHO}/Unary`, { method: 'POST', headers: { 'content-type': 'application/grpc-web-text' }, body: '!!!!' });
      await response.arrayBuffer();
      return response.status === 400 ? Number(response.headers.get('grpc-status')) : undefined;
    }],
    ['response_too_large', grpc.status.RESOURCE_EXHAUSTED, () => statusOf(unary(smallClient, { response_bytes: 2_048 }))],
    ['denied', grpc.status.PERMISSION_DENIED, async () => (await rawCall(port('main'), { ':path': '/catalogue.v1.Admin/Purge' })).grpc],
    ['rate_limited', grpc.status.RESOURCE_EXHAUSTED, async () => {
      await statusOf(unary(client, {}, { 'x-case': 'limited' }));
      return statusOf(unary(client, {}, { 'x-case': 'limited' }));
    }],
    ['no_route', grpc.status.UNIMPLEMENTED, async () => (await rawCall(port('main'), { ':path': '/catalogue.v1.Unknown/Call' })).grpc],
    ['direct_response', grpc.status.FAILED_PRECONDITION, () => statusOf(unary(client, {}, { 'x-case': 'direct' }))],
    ['no_cluster', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'ghost' }))],
    ['overloaded', grpc.status.UNAVAILABLE, async () => {
      const other = echoClient(`127.0.0.1:${overloaded.listeners[0]!.address.port}`);
      try {
        return await statusOf(unary(other, {}));
      } finally {
        other.close();
      }
    }],
    ['no_healthy_endpoint', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'empty' }))],
    ['overflow_requests', grpc.status.UNAVAILABLE, async () => {
      const slow = statusOf(unary(client, { delay_ms: 300 }, { 'x-case': 'breaker' }));
      await waitFor(() => proxy.clusters.get('one-at-a-time')!.limits.activeRequests === 1, 'the first call in flight');
      const refused = await statusOf(unary(client, {}, { 'x-case': 'breaker' }));
      await slow;
      return refused;
    }],
    ['overflow_pending', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'pending' }))],
    ['overflow_connections', grpc.status.UNAVAILABLE, async () => {
      // Round robin: the first call connects to one endpoint, the second needs a connection to the other.
      await statusOf(unary(client, {}, { 'x-case': 'connections' }));
      return statusOf(unary(client, {}, { 'x-case': 'connections' }));
    }],
    ['retry_budget_exhausted', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'budget' }))],
    ['upstream_connect_failure', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'down' }))],
    ['upstream_refused', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'refuse' }))],
    ['upstream_reset', grpc.status.INTERNAL, () => statusOf(unary(client, {}, { 'x-case': 'reset' }))],
    ['upstream_protocol_error', grpc.status.UNAVAILABLE, () => statusOf(unary(client, {}, { 'x-case': 'http503' }))],
    ['per_try_timeout', grpc.status.UNAVAILABLE, () => statusOf(unary(client, { delay_ms: 2_000 }, { 'x-case': 'slow' }))],
    ['deadline_exceeded', grpc.status.DEADLINE_EXCEEDED, () => statusOf(unary(client, { delay_ms: 2_000 }, {}, 150))],
    ['route_timeout', grpc.status.DEADLINE_EXCEEDED, () => statusOf(unary(client, { delay_ms: 2_000 }, { 'x-case': 'timeout' }))],
    ['max_stream_duration', grpc.status.DEADLINE_EXCEEDED, () => new Promise((resolve) => {
      const meta = new grpc.Metadata();
      meta.set('x-case', 'capped');
      const call = client.ServerStream({ count: 100, delay_ms: 50 }, meta);
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', (status: grpc.StatusObject) => resolve(status.code));
    })],
    ['client_cancelled', grpc.status.CANCELLED, () => new Promise((resolve) => {
      const call = client.Unary({ delay_ms: 2_000 }, new grpc.Metadata(), {}, (error) => resolve(error?.code ?? grpc.status.OK));
      setTimeout(() => call.cancel(), 100);
    })],
    ['stalled_stream', grpc.status.CANCELLED, async () => {
      const connection = await rawConnect(port('main'), { initialWindowSize: 0 });
      // ServerStream of 100 messages of 16 KiB: the client reads none of them.
      const request = Buffer.from([0, 0, 0, 0, 6, 0x28, 0x64, 0x30, 0x80, 0x80, 0x01]);
      connection.send(Buffer.concat([frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders(`/${ECHO}/ServerStream`)), frame(FrameType.DATA, Flag.END_STREAM, 1, request)]));
      await waitFor(() => connection.frames.some((f) => f.streamId === 1 && f.type === FrameType.RST_STREAM), 'the stalled stream to be reset', 10_000);
      connection.close();
      return grpc.status.CANCELLED;
    }],
    ['draining', grpc.status.UNAVAILABLE, async () => {
      const aging = echoClient(`127.0.0.1:${port('aging')}`);
      try {
        return await statusOf(unary(aging, { delay_ms: 3_000 }));
      } finally {
        aging.close();
      }
    }],
  ];

  for (const [code, status, run] of cases) {
    it(`${code}: the client gets ${grpc.status[status]}`, async () => {
      const got = await run();
      seen.set(code, got ?? -1);
      assert.equal(got, status);
    });
  }

  it('every code is in the access log with its status, and counted by reason; abandoned attempts are counted too', async () => {
    const codes = cases.map(([code]) => code);
    assert.deepEqual([...codes, 'abandoned'].sort(), [...FAILURE_CODES].sort(), 'every catalogue code has a case');
    const logged = async () => readJsonLines<{ reason?: string; grpc_status?: number }>(path.join(dir, 'access.log'));
    // The overloaded case is in the other proxy's metrics; its access log is off.
    const inThisProxy = codes.filter((code) => code !== 'overloaded');
    const missing = async () => {
      const reasons = new Set((await logged()).map((line) => line.reason));
      return inThisProxy.filter((code) => !reasons.has(code));
    };
    await waitFor(async () => (await missing()).length === 0, 'every reason in the access log', 10_000).catch(async (error: Error) => {
      throw new Error(`${error.message}; missing: ${(await missing()).join(', ')}`);
    });
    for (const [code, status] of cases) {
      if (code === 'overloaded') continue;
      assert.ok((await logged()).some((line) => line.reason === code && line.grpc_status === status), `${code} logged with status ${status}`);
    }
    const handled = async (target: Switchyard) => parseSamples(await (await fetch(adminUrl(target, '/metrics'))).text());
    const samples = await handled(proxy);
    for (const code of inThisProxy) {
      assert.ok(samples.some((s) => s.name === 'grpc_server_handled_total' && s.labels.reason === code && s.value > 0), `grpc_server_handled_total{reason="${code}"}`);
    }
    assert.ok((await handled(overloaded)).some((s) => s.name === 'grpc_server_handled_total' && s.labels.reason === 'overloaded'));
    assert.ok(samples.some((s) => s.name === 'switchyard_upstream_rpcs_total' && s.labels.reason === 'abandoned' && s.value > 0));
  });
});
