import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { echoClient, startEchoSetup, startProxy, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';

/** A gRPC frame: compressed flag, 4-byte length, message. */
function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

const GRPC_HEADERS = {
  ':method': 'POST',
  ':path': '/switchyard.demo.v1.Echo/Bidi',
  'content-type': 'application/grpc',
  te: 'trailers',
};

describe('peers that reset or vanish at any moment', () => {
  let setup: EchoSetup;
  let proxy: RunningProxy;

  before(async () => {
    setup = await startEchoSetup(2);
    ({ proxy } = setup);
  });

  after(() => setup.close());

  it('survives clients that reset streams and drop connections at every stage', async () => {
    const stages = ['before-data', 'half-frame', 'after-frame', 'after-response', 'destroy-session'] as const;
    for (let round = 0; round < 20; round++) {
      for (const stage of stages) {
        const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
        session.on('error', () => {});
        const stream = session.request(GRPC_HEADERS);
        stream.on('error', () => {});
        if (stage === 'before-data') stream.close(http2.constants.NGHTTP2_CANCEL);
        if (stage === 'half-frame') {
          stream.write(grpcFrame(Buffer.alloc(64)).subarray(0, 20));
          stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
        if (stage === 'after-frame') {
          stream.write(grpcFrame(Buffer.alloc(0)));
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
        if (stage === 'after-response') {
          stream.write(grpcFrame(Buffer.alloc(0)));
          await new Promise((resolve) => stream.once('data', resolve));
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
        if (stage === 'destroy-session') {
          stream.write(grpcFrame(Buffer.alloc(0)));
          session.destroy();
        }
        session.close();
      }
    }
    // The proxy is alive and serving, and every cancelled call was released.
    const { response } = await unary(setup.client, { payload: Buffer.from('still here') });
    assert.equal(response.payload.toString(), 'still here');
    await waitFor(() => [...proxy.proxy.clusters.get('echo')!.endpoints.values()].every((e) => e.activeRequests === 0), 'active request counts to return to zero');
  });

  it('a truncated, malformed message from the client ends as a gRPC status at the backend, not a crash', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    const stream = session.request({ ...GRPC_HEADERS, ':path': '/switchyard.demo.v1.Echo/Unary' });
    stream.end(grpcFrame(Buffer.from([0xff, 0xff, 0xff])));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
      stream.on('response', (headers) => { if (headers['grpc-status'] !== undefined) resolve(headers); });
      stream.on('trailers', resolve);
      stream.resume();
    });
    session.close();
    assert.notEqual(trailers['grpc-status'], String(grpc.status.OK));
  });

  it('a backend that answers with a non-gRPC HTTP status maps to a gRPC status', async () => {
    const plain = http2.createServer((_, response) => {
      response.writeHead(503);
      response.end('overloaded');
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const port = (plain.address() as { port: number }).port;
    const local = await startProxy({ clusters: [{ name: 'plain', endpoints: [{ address: '127.0.0.1', port }] }], routes: [{ match: { prefix: '/' }, cluster: 'plain' }] });
    const client = echoClient(`127.0.0.1:${local.port}`);
    try {
      const error = await unary(client, {}).then(() => undefined, (e: grpc.ServiceError) => e);
      assert.equal(error?.code, grpc.status.UNAVAILABLE);
      assert.match(error?.details ?? '', /HTTP 503/);
    } finally {
      client.close();
      await local.close();
      plain.close();
    }
  });

  it('a backend that resets a stream mid-response gives the client a status', async () => {
    const resetting = http2.createServer();
    resetting.on('stream', (stream: http2.ServerHttp2Stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(grpcFrame(Buffer.alloc(3)).subarray(0, 6));
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    const port = (resetting.address() as { port: number }).port;
    const local = await startProxy({ clusters: [{ name: 'bad', endpoints: [{ address: '127.0.0.1', port }] }], routes: [{ match: { prefix: '/' }, cluster: 'bad' }] });
    const client = echoClient(`127.0.0.1:${local.port}`);
    try {
      const error = await unary(client, {}).then(() => undefined, (e: grpc.ServiceError) => e);
      assert.equal(error?.code, grpc.status.INTERNAL);
      assert.equal(error?.details, 'upstream reset the stream (INTERNAL_ERROR)');
      assert.match(local.records.at(-1)?.error ?? '', /^upstream 127\.0\.0\.1:\d+: stream reset with code 2 \(INTERNAL_ERROR\)$/);
    } finally {
      client.close();
      await local.close();
      resetting.close();
    }
  });
});
