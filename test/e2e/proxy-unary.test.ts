import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { expectStatus, startEchoSetup, staticCluster, unary, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

describe('unary RPCs through the proxy', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let client: EchoClient;
  let dns: TestDnsServer;

  before(async () => {
    // A headless Service with no ready pods: its name resolves to nothing.
    dns = await startDnsServer();
    setup = await startEchoSetup(2, (echo) => ({
      // Above the 4 MiB default, for the large-message test.
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { max_request_message_bytes: 8 << 20, max_response_message_bytes: 8 << 20 } }],
      clusters: [
        staticCluster('echo', echo),
        { name: 'nobody', dns: { name: 'nobody.test', port: 50051, families: ['ipv4'], servers: [dns.address] } },
      ],
      routes: [
        { match: { method: '/switchyard.demo.v1.Echo/Bidi' }, direct_response: { code: 'PERMISSION_DENIED', message: 'Bidi is not allowed here' } },
        { match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'echo' },
        { match: { service: 'switchyard.demo.v1.Empty' }, cluster: 'nobody' },
        { match: { service: 'switchyard.demo.v1.Denied' }, direct_response: { code: 'PERMISSION_DENIED', message: 'denied by default' } },
      ],
    }));
    ({ backends, proxy, client } = setup);
  });

  after(async () => {
    await setup.close();
    await dns.close();
  });

  it('forwards an empty request and response', async () => {
    const { response } = await unary(client, {});
    assert.equal(response.payload.length, 0);
    assert.match(response.backend, /^backend-\d$/);
  });

  it('forwards large (5 MiB) messages both ways, under a raised max_*_message_bytes', async () => {
    const payload = Buffer.alloc(5 << 20);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
    const { response } = await unary(client, { payload });
    assert.equal(response.payload.length, payload.length);
    assert.ok(response.payload.equals(payload), 'payload came back unchanged');
  });

  it('passes custom and binary metadata both ways', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-request-tag', 'tag-1');
    metadata.set('x-trace-bin', Buffer.from([0, 1, 2, 250, 255]));
    const { response, headers, trailers } = await unary(client, {}, metadata);
    assert.ok(response.metadata.includes('x-request-tag=tag-1'), response.metadata.join('\n'));
    assert.ok(response.metadata.includes(`x-trace-bin=bin:${Buffer.from([0, 1, 2, 250, 255]).toString('base64')}`), response.metadata.join('\n'));
    assert.match(String(headers.get('x-backend')[0]), /^backend-\d$/);
    assert.match(String(trailers.get('x-backend')[0]), /^backend-\d$/);
  });

  it('preserves a trailers-only error: status, message and metadata', async () => {
    const error = await expectStatus(unary(client, { fail_code: grpc.status.FAILED_PRECONDITION, fail_message: 'précondition: 100% failed' }));
    assert.equal(error.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(error.details, 'précondition: 100% failed');
    assert.equal(error.metadata.get('x-failure-detail')[0], 'requested');
  });

  it('answers a denied method with PERMISSION_DENIED and never contacts a backend', async () => {
    const before = backends.reduce((sum, b) => sum + (b.calls.get('Bidi') ?? 0), 0);
    const call = client.Bidi();
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('status', resolve);
      call.on('error', () => {});
      call.write({});
      call.end();
    });
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, 'Bidi is not allowed here');
    assert.equal(backends.reduce((sum, b) => sum + (b.calls.get('Bidi') ?? 0), 0), before);
  });

  it('answers an unknown service with UNIMPLEMENTED naming the path', async () => {
    const unknown = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    const error = await expectStatus(new Promise((resolve, reject) => {
      unknown.makeUnaryRequest('/no.such.Service/Call', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err, value) => (err ? reject(err) : resolve(value)));
    }));
    unknown.close();
    assert.equal(error.code, grpc.status.UNIMPLEMENTED);
    assert.match(error.details, /no route for \/no\.such\.Service\/Call/);
  });

  it('answers an empty cluster with UNAVAILABLE naming the cluster', async () => {
    const other = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    const error = await expectStatus(new Promise((resolve, reject) => {
      other.makeUnaryRequest('/switchyard.demo.v1.Empty/Call', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err, value) => (err ? reject(err) : resolve(value)));
    }));
    other.close();
    assert.equal(error.code, grpc.status.UNAVAILABLE);
    assert.match(error.details, /cluster "nobody" has no endpoints/);
  });

  async function httpStatusFor(headers: http2.OutgoingHttpHeaders): Promise<number> {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    const stream = session.request(headers);
    const status = new Promise<number>((resolve) => stream.on('response', (h) => resolve(Number(h[':status']))));
    const closed = new Promise((resolve) => stream.on('close', resolve));
    stream.resume();
    stream.end();
    await closed;
    session.close();
    return status;
  }

  it('answers a non-gRPC request with HTTP 415 instead of hanging', async () => {
    assert.equal(await httpStatusFor({ ':method': 'GET', ':path': '/' }), 415);
  });

  it('takes application/grpc, +proto and parameters as gRPC, and grpc-web content types as not gRPC', async () => {
    const post = (contentType: string) => ({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': contentType, te: 'trailers' });
    for (const grpcType of ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8']) {
      assert.equal(await httpStatusFor(post(grpcType)), 200, grpcType);
    }
    for (const other of ['application/grpc-web-text', 'application/grpc-web+proto', 'application/grpcx', 'text/plain']) {
      assert.equal(await httpStatusFor(post(other)), 415, other);
    }
  });

  it('writes an RPC record with route, cluster, endpoint and status', async () => {
    await unary(client, { payload: Buffer.from('hello') });
    const record = proxy.records.findLast((r) => r.path === '/switchyard.demo.v1.Echo/Unary' && r.status === 0);
    assert.ok(record);
    assert.equal(record.cluster, 'echo');
    assert.equal(record.route, 'routes[1]');
    assert.match(record.endpoint ?? '', /^127\.0\.0\.1:\d+$/);
    assert.ok(record.bytesIn > 0 && record.bytesOut > 0);
  });
});
