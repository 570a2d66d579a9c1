/**
 * Browsers' protocols through a real proxy to a real grpc-js backend, spoken
 * by @connectrpc/connect-node's clients: gRPC-Web over HTTP/1.1 and HTTP/2,
 * Connect with JSON (transcoded with a descriptor set) and with protobuf.
 * Each gets unary calls with metadata both ways, server streaming delivered
 * message by message, a NOT_FOUND with its message, a trailers-only answer,
 * and a deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { startWebBackend, type WebBackend } from '../helpers/web-backend.ts';
import { echoSchema, writeEchoDescriptorSet } from '../helpers/web-clients.ts';
import { readJsonLines, waitFor } from '../helpers/harness.ts';
import { scrape } from '../helpers/admin.ts';

interface EchoReply {
  payload: Uint8Array;
  backend: string;
  sequence: number;
  metadata: string[];
}

/** The Echo client as these tests call it (the service descriptor is built at run time, so its methods are untyped). */
interface WebEchoClient {
  unary(request: Record<string, unknown>, options?: Record<string, unknown>): Promise<EchoReply>;
  serverStream(request: Record<string, unknown>, options?: Record<string, unknown>): AsyncIterable<EchoReply>;
}

describe('browser protocols through Switchyard, with @connectrpc/connect-node clients', () => {
  let dir: string;
  let backend: WebBackend;
  let proxy: SecureProxy;
  let baseUrl: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-web-'));
    backend = await startWebBackend();
    proxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true, web: { protocols: ['grpc_web', 'connect'] } }],
      clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: backend.port }] }],
      routes: [{ name: 'echo', match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'echo' }],
      web: { descriptor_sets: [await writeEchoDescriptorSet(dir)] },
      admin: { port: 0 },
      access_log: { output: path.join(dir, 'access.log') },
    });
    baseUrl = `http://127.0.0.1:${proxy.port}`;
  });

  after(async () => {
    await proxy.close();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  const transports: [string, () => Transport][] = [
    ['gRPC-Web over HTTP/1.1', () => createGrpcWebTransport({ baseUrl, httpVersion: '1.1' })],
    ['gRPC-Web over HTTP/2', () => createGrpcWebTransport({ baseUrl, httpVersion: '2' })],
    ['Connect with JSON over HTTP/1.1', () => createConnectTransport({ baseUrl, httpVersion: '1.1' })],
    ['Connect with protobuf over HTTP/2', () => createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true })],
  ];

  for (const [name, transport] of transports) {
    describe(name, () => {
      const client = () => createClient(echoSchema().service, transport()) as unknown as WebEchoClient;

      it('unary: the answer, request metadata to the backend, response headers and trailers back', async () => {
        let headers: Headers | undefined;
        let trailers: Headers | undefined;
        const reply = await client().unary({ payload: Buffer.from('hello') }, {
          headers: { 'x-request-meta': 'from-client' },
          onHeader: (h: Headers) => { headers = h; },
          onTrailer: (t: Headers) => { trailers = t; },
        });
        assert.equal(Buffer.from(reply.payload).toString(), 'hello');
        assert.equal(reply.backend, 'web-backend');
        assert.ok(reply.metadata.includes('x-request-meta=from-client'), reply.metadata.join(', '));
        assert.equal(headers?.get('x-reply-header'), 'from-backend');
        assert.equal(trailers?.get('x-reply-trailer'), 'done');
      });

      it('server streaming: each message reaches the client before the backend sends the next', async () => {
        const sequences: number[] = [];
        for await (const reply of client().serverStream({ count: 4, payload: Buffer.from('s') }, { headers: { 'x-gated': 'yes' } })) {
          sequences.push(reply.sequence);
          backend.delivered(reply.sequence);
        }
        assert.deepEqual(sequences, [0, 1, 2, 3]);
      });

      it('NOT_FOUND after the headers: the code, the message and the trailers', async () => {
        const error = await client().unary({ failCode: Code.NotFound, failMessage: 'no such echo: ünïcode' }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        assert.ok(error);
        assert.equal(error.code, Code.NotFound);
        assert.equal(error.rawMessage, 'no such echo: ünïcode');
        assert.equal(error.metadata.get('x-failure-detail'), 'requested');
      });

      it('a trailers-only answer: the code, the message and its metadata', async () => {
        const error = await client().unary({ failCode: Code.PermissionDenied, failMessage: 'not you' }, { headers: { 'x-trailers-only': 'yes' } }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        assert.ok(error);
        assert.equal(error.code, Code.PermissionDenied);
        assert.equal(error.rawMessage, 'not you');
        assert.equal(error.metadata.get('x-failure-detail'), 'requested');
      });

      it('a deadline: forwarded to the backend, and DEADLINE_EXCEEDED when it passes', async () => {
        const reply = await client().unary({}, { timeoutMs: 5_000 });
        const remaining = Number(reply.metadata.find((line) => line.startsWith('deadline-remaining-ms='))?.split('=')[1]);
        assert.ok(remaining > 3_000 && remaining <= 5_000, `the backend had ${remaining} ms left`);
        const error = await client().unary({ delayMs: 5_000 }, { timeoutMs: 200 }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        assert.equal(error?.code, Code.DeadlineExceeded);
      });
    });
  }

  it('the RPC records name the protocol', async () => {
    await waitFor(() => proxy.records.filter((r) => r.protocol === 'grpc-web').length >= 10 && proxy.records.filter((r) => r.protocol === 'connect').length >= 10, 'records of both protocols');
    // The proxy ends a call that ran out of time on its own timer, which may fire after the client gave up.
    const deadlineRecord = () => proxy.records.find((r) => r.protocol === 'connect' && r.reason === 'deadline_exceeded');
    await waitFor(() => deadlineRecord() !== undefined, 'the record of the Connect call that ran out of time');
    const deadline = deadlineRecord();
    assert.ok(deadline, 'a Connect call that ran out of time is recorded as deadline_exceeded');
    assert.equal(deadline.route, 'echo');
  });

  it('metrics label each call with its protocol, and the access log names it', async () => {
    const handled = (protocol: string) => async () => (await scrape(proxy.proxy)).some((sample) =>
      sample.name === 'grpc_server_handled_total' && sample.labels.protocol === protocol && sample.labels.grpc_method === 'Unary' && sample.labels.grpc_code === 'NOT_FOUND' && sample.value >= 2);
    await waitFor(handled('grpc-web'), 'grpc-web NOT_FOUND counted');
    await waitFor(handled('connect'), 'connect NOT_FOUND counted');
    // Six calls per transport, two transports per protocol (a method's first call is counted as unknown, so summed over methods).
    const started = new Map<string, number>();
    for (const sample of await scrape(proxy.proxy)) {
      if (sample.name === 'grpc_server_started_total') started.set(sample.labels.protocol!, (started.get(sample.labels.protocol!) ?? 0) + sample.value);
    }
    assert.deepEqual([...started].sort(), [['connect', 12], ['grpc-web', 12]]);
    // The access log is written asynchronously: read until the lines are there.
    const protocolsLogged = async () => new Set((await readJsonLines<{ protocol?: string }>(path.join(dir, 'access.log'))).map((line) => line.protocol));
    await waitFor(async () => (await protocolsLogged()).size === 2, 'access log lines of both protocols');
    assert.deepEqual([...await protocolsLogged()].sort(), ['connect', 'grpc-web']);
  });
});
