import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { expectStatus, startEchoSetup, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import type { EchoResponse, EchoServerHandle } from '../../src/demo/echo-service.ts';

const deadlineIn = (ms: number) => new Date(Date.now() + ms);

describe('deadlines, timeouts and cancellation through the proxy', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    setup = await startEchoSetup(1, {
      routes: [
        { name: 'timed', match: { method: '/switchyard.demo.v1.Echo/Unary', headers: [{ name: 'x-timed', present: true }] }, cluster: 'echo', timeout: '300ms' },
        { name: 'capped', match: { method: '/switchyard.demo.v1.Echo/Bidi' }, cluster: 'echo', max_stream_duration: '400ms' },
        { name: 'default', match: { prefix: '/' }, cluster: 'echo' },
      ],
    });
    ({ backends, proxy, client } = setup);
  });

  after(() => setup.close());

  const backend = () => backends[0]!;

  it("forwards the client's deadline, reduced by the time already spent", async () => {
    const { response } = await unary(client, {}, new grpc.Metadata(), { deadline: deadlineIn(5_000) });
    const line = response.metadata.find((l) => l.startsWith('deadline-remaining-ms='));
    assert.ok(line, `backend saw no deadline: ${response.metadata.join(', ')}`);
    const remaining = Number(line.split('=')[1]);
    assert.ok(remaining > 3_000 && remaining <= 5_000, `backend saw ${remaining} ms left`);
  });

  it('takes a deadline beyond the longest timer (8760H, a year) as long, not as expired', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '8760H' });
      const status = new Promise<string | undefined>((resolve) => {
        stream.on('trailers', (trailers) => resolve(trailers['grpc-status'] as string | undefined));
        stream.on('response', (headers) => headers['grpc-status'] !== undefined && resolve(headers['grpc-status'] as string));
      });
      stream.resume();
      // An empty EchoRequest message.
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      assert.equal(await status, '0');
    } finally {
      session.close();
    }
  });

  it('ends a call that outlives the client deadline with DEADLINE_EXCEEDED and cancels the backend', async () => {
    const error = await expectStatus(unary(client, { delay_ms: 5_000 }, new grpc.Metadata(), { deadline: deadlineIn(200) }));
    assert.equal(error.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => backend().active === 0, 'the backend call to be cancelled');
  });

  it('enforces the route timeout when the client sets no deadline', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-timed', '1');
    const started = Date.now();
    const error = await expectStatus(unary(client, { delay_ms: 5_000 }, metadata));
    assert.equal(error.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(error.details, /route timed timeout 300 ms/);
    assert.ok(Date.now() - started < 4_000);
  });

  it('the route timeout caps the deadline forwarded upstream', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-timed', '1');
    const { response } = await unary(client, {}, metadata, { deadline: deadlineIn(60_000) });
    const remaining = Number(response.metadata.find((l) => l.startsWith('deadline-remaining-ms='))?.split('=')[1]);
    assert.ok(remaining <= 300, `backend saw ${remaining} ms left`);
  });

  it('ends a stream at max_stream_duration even after messages flowed', async () => {
    const call = client.Bidi();
    let messages = 0;
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('data', () => messages++);
      call.on('error', () => {});
      call.on('status', resolve);
      call.write({ payload: Buffer.from('x') });
    });
    assert.equal(messages, 1);
    assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(status.details, /max_stream_duration/);
  });

  it('no default timeout cuts a long stream short', async () => {
    const call = client.ServerStream({ count: 8, delay_ms: 150 });
    let messages = 0;
    for await (const _ of call as AsyncIterable<EchoResponse>) messages++;
    assert.equal(messages, 8);
  });

  it('client cancellation resets the upstream stream', async () => {
    const call = client.ServerStream({ count: 1_000, delay_ms: 20 });
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    assert.ok(backend().active >= 1);
    call.on('error', () => {});
    call.cancel();
    await waitFor(() => backend().active === 0, 'the backend stream to see the cancellation');
    const record = await waitForRecord(proxy, '/switchyard.demo.v1.Echo/ServerStream', grpc.status.CANCELLED);
    assert.equal(record.status, grpc.status.CANCELLED);
  });

  it('an upstream that dies mid-stream gives the client a gRPC status, and the proxy lives on', async () => {
    const local = await startEchoSetup(1);
    const [doomed] = local.backends;
    const localClient = local.client;
    try {
      const call = localClient.ServerStream({ count: 1_000, delay_ms: 20 });
      await new Promise<void>((resolve) => call.once('data', () => resolve()));
      const status = new Promise<grpc.StatusObject>((resolve) => {
        call.on('error', () => {});
        call.on('status', resolve);
      });
      doomed!.server.forceShutdown();
      const { code, details } = await status;
      assert.ok(code === grpc.status.UNAVAILABLE || code === grpc.status.INTERNAL || code === grpc.status.CANCELLED, `got ${code}: ${details}`);
      // The client is told what happened, never the backend's address (the access log has it).
      assert.doesNotMatch(details, /127\.0\.0\.1/);
      assert.match(details, /^upstream /);
      // The proxy still answers.
      const error = await expectStatus(unary(localClient, {}));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
    } finally {
      await local.close();
    }
  });
});

async function waitForRecord(proxy: RunningProxy, path: string, status: number) {
  await waitFor(() => proxy.records.some((r) => r.path === path && r.status === status), `an RPC record for ${path} with status ${status}`);
  return proxy.records.find((r) => r.path === path && r.status === status)!;
}
