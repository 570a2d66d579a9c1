/**
 * gRPC message sizes, checked on the 5-byte length prefix as bytes pass
 * (max_request_message_bytes, max_response_message_bytes), and other bad
 * input on the RPC path: each ends as a gRPC status, never a crash.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Status } from '../../src/grpc/status.ts';
import { expectStatus, startEchoSetup, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';

const LIMIT = 64 << 10;

describe('gRPC message size limits and malformed input', () => {
  let proxy: RunningProxy;
  let client: EchoClient;

  let setup: EchoSetup;

  before(async () => {
    setup = await startEchoSetup(1, {
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { max_request_message_bytes: LIMIT, max_response_message_bytes: LIMIT } }],
    });
    ({ proxy, client } = setup);
  });

  after(() => setup.close());

  it('a request message over the limit is answered RESOURCE_EXHAUSTED naming the limit; one within it passes', async () => {
    // The echoed response carries the payload plus the metadata the backend saw: well within the limit too.
    const ok = await unary(client, { payload: Buffer.alloc(LIMIT - 1_000) });
    assert.equal(ok.response.payload.length, LIMIT - 1_000);
    const error = await expectStatus(unary(client, { payload: Buffer.alloc(LIMIT + 1) }));
    assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(error.details, /request message of \d+ bytes exceeds max_request_message_bytes 65536/);
  });

  it('a response message over the limit reaches the client as RESOURCE_EXHAUSTED, and the backend stream is cancelled', async () => {
    const call = client.ServerStream({ count: 3, response_bytes: LIMIT * 2 });
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', () => {});
      call.on('error', resolve);
    });
    assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
    // The client is not told which endpoint sent it; the access log is.
    assert.match(error.details, /^response message of \d+ bytes exceeds max_response_message_bytes 65536$/);
    await waitFor(() => proxy.records.some((r) => r.reason === 'response_too_large'), 'the access log record');
    assert.match(proxy.records.find((r) => r.reason === 'response_too_large')!.error!, /\(from 127\.0\.0\.1:\d+\)/);
    await waitFor(() => [...proxy.proxy.clusters.get('echo')!.endpoints.values()].every((e) => e.activeRequests === 0), 'the upstream stream to be released');
  });

  it('many messages on one stream are each measured: their sum may exceed the limit', async () => {
    const call = client.Bidi();
    const replies: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: { payload: Buffer }) => replies.push(m.payload.length));
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (let i = 0; i < 8; i++) call.write({ payload: Buffer.alloc(LIMIT / 2) });
    call.end();
    await done;
    assert.equal(replies.length, 8);
  });

  it('a length prefix claiming 2 GiB is refused after 5 bytes, without buffering what follows', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    session.on('error', () => {});
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => {});
      const prefix = Buffer.from([0, 0x80, 0, 0, 0]);
      const heapBefore = process.memoryUsage().heapUsed;
      stream.write(prefix);
      // Keep sending: the proxy must read and drop it, not hold it.
      const junk = Buffer.alloc(1 << 20);
      let sent = 0;
      const headers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
      const pump = async () => {
        while (sent < 32 && !stream.destroyed && !stream.writableEnded) {
          sent++;
          if (!stream.write(junk)) await new Promise((resolve) => stream.once('drain', resolve));
        }
      };
      void pump();
      const response = await headers;
      assert.equal(response['grpc-status'], String(Status.RESOURCE_EXHAUSTED));
      assert.match(decodeURIComponent(String(response['grpc-message'])), /request message of 2147483648 bytes exceeds max_request_message_bytes/);
      assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 << 20, 'nothing like 2 GiB was buffered');
      stream.close();
    } finally {
      session.destroy();
    }
    // Still serving.
    assert.equal((await unary(client, { payload: Buffer.from('after') })).response.payload.toString(), 'after');
  });

  it('a bogus grpc-timeout is INVALID_ARGUMENT, and a truncated frame ends as a status, never a crash', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    session.on('error', () => {});
    try {
      const bogus = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '99999999999999S' });
      bogus.on('error', () => {});
      bogus.end();
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => bogus.once('response', resolve));
      assert.equal(headers['grpc-status'], String(Status.INVALID_ARGUMENT));

      const truncated = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      truncated.on('error', () => {});
      truncated.on('response', () => {});
      truncated.end(Buffer.from([0, 0, 0, 0, 10, 1, 2]));
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
        truncated.once('trailers', resolve);
        truncated.once('response', (h) => { if (h['grpc-status'] !== undefined) resolve(h); });
      });
      assert.notEqual(trailers['grpc-status'], String(Status.OK));
    } finally {
      session.destroy();
    }
    assert.equal((await unary(client, {})).response.backend, 'backend-0');
  });
});
