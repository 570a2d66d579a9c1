/**
 * gRPC-Web on the wire, with plain fetch (HTTP/1.1): text mode (base64 both
 * ways, padded mid-body), trailers in the body's last frame, trailers-only
 * answers, bad base64, answers that are not gRPC, CORS headers on every
 * response, and a listener that does not take gRPC-Web.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startBackends, startProxy, staticCluster, waitFor, type RunningProxy } from '../helpers/harness.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { decodeEchoResponse, decodeTextBody, echoRequestBytes, frameMessage, parseGrpcWebBody } from '../helpers/web-clients.ts';

const UNARY = '/switchyard.demo.v1.Echo/Unary';
const SERVER_STREAM = '/switchyard.demo.v1.Echo/ServerStream';
const PAGE_ORIGIN = 'http://app.example.test';

describe('gRPC-Web on the wire, with plain fetch', () => {
  let backends: EchoServerHandle[];
  let http503: http2.Http2Server;
  let proxy: RunningProxy;
  let url: (path: string, listener?: number) => string;

  before(async () => {
    backends = await startBackends(1);
    http503 = http2.createServer();
    http503.on('stream', (stream: http2.ServerHttp2Stream) => stream.respond({ ':status': 503 }, { endStream: true }));
    await new Promise<void>((resolve) => http503.listen(0, '127.0.0.1', resolve));
    proxy = await startProxy({
      listeners: [
        { name: 'web', port: 0, plaintext: true, web: { protocols: ['grpc_web'], cors: { allow_origins: [PAGE_ORIGIN] } } },
        { name: 'grpc-only', port: 0, plaintext: true },
      ],
      clusters: [
        staticCluster('echo', backends),
        { name: 'empty', endpoints: [] },
        { name: 'not-grpc', endpoints: [{ address: '127.0.0.1', port: (http503.address() as AddressInfo).port }] },
      ],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-case', exact: 'empty' }] }, cluster: 'empty' },
        { match: { prefix: '/', headers: [{ name: 'x-case', exact: 'not-grpc' }] }, cluster: 'not-grpc' },
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    });
    url = (path, listener = 0) => `http://127.0.0.1:${proxy.proxy.listeners[listener]!.address.port}${path}`;
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((backend) => backend.close()));
    await new Promise((resolve) => http503.close(resolve));
  });

  it('text mode: base64 request padded mid-body, base64 response of messages then trailers', async () => {
    const frame = frameMessage(echoRequestBytes({ count: 3, payload: Buffer.from('text mode') }));
    // Padding inside the body: a writer may flush at any quantum boundary, as the spec allows.
    const body = frame.subarray(0, 7).toString('base64') + frame.subarray(7).toString('base64');
    assert.match(body, /=[A-Za-z0-9+/]/, 'the body has padding before its end');
    const response = await fetch(url(SERVER_STREAM), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web-text', accept: 'application/grpc-web-text', 'x-grpc-web': '1' },
      body,
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/grpc-web-text');
    const text = await response.text();
    assert.match(text, /^[A-Za-z0-9+/=]+$/, 'the response body is base64');
    const { messages, trailers } = parseGrpcWebBody(decodeTextBody(text));
    assert.deepEqual(messages.map((message) => decodeEchoResponse(message).sequence), [0, 1, 2]);
    assert.equal(Buffer.from(decodeEchoResponse(messages[0]!).payload).toString(), 'text mode');
    assert.equal(trailers?.['grpc-status'], '0');
    assert.equal(trailers?.['x-backend'], 'backend-0');
  });

  it('a binary request gets a text response when Accept asks for it', async () => {
    const response = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', accept: 'application/grpc-web-text' },
      body: frameMessage(echoRequestBytes({ payload: Buffer.from('x') })),
    });
    assert.equal(response.headers.get('content-type'), 'application/grpc-web-text+proto');
    const { messages, trailers } = parseGrpcWebBody(decodeTextBody(await response.text()));
    assert.equal(messages.length, 1);
    assert.equal(trailers?.['grpc-status'], '0');
  });

  it('bad base64 in a text-mode body: HTTP 400, and the RPC is recorded as malformed_request', async () => {
    const response = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web-text', 'x-test': 'bad-base64' },
      body: 'AAAA!!!!',
    });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('grpc-status'), '3');
    assert.match(decodeURIComponent(response.headers.get('grpc-message') ?? ''), /not base64/);
    await response.arrayBuffer();
    await waitFor(() => proxy.records.some((record) => record.reason === 'malformed_request'), 'the record');
    const record = proxy.records.find((r) => r.reason === 'malformed_request')!;
    assert.equal(record.protocol, 'grpc-web');
    assert.equal(record.status, 3);
  });

  it('no healthy endpoint: a trailers-only answer, grpc-status 14 with content-length 0', async () => {
    const response = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-case': 'empty' },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('grpc-status'), '14');
    assert.equal(response.headers.get('content-length'), '0');
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  it('a backend that answers HTTP 503 instead of gRPC: grpc-status 14, by grpc\'s HTTP-to-gRPC table', async () => {
    const response = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-case': 'not-grpc' },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(response.headers.get('grpc-status'), '14');
    assert.match(decodeURIComponent(response.headers.get('grpc-message') ?? ''), /HTTP 503/);
  });

  it('CORS: an allowed origin can read grpc-status on an error, and on a success', async () => {
    const failed = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', origin: PAGE_ORIGIN, 'x-case': 'empty' },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(failed.headers.get('access-control-allow-origin'), PAGE_ORIGIN);
    assert.match(failed.headers.get('access-control-expose-headers') ?? '', /\bgrpc-status\b/);
    assert.match(failed.headers.get('access-control-expose-headers') ?? '', /\bgrpc-message\b/);
    const ok = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', origin: PAGE_ORIGIN },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(ok.headers.get('access-control-allow-origin'), PAGE_ORIGIN);
    await ok.arrayBuffer();
    const other = await fetch(url(UNARY), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', origin: 'http://elsewhere.test' },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(other.headers.get('access-control-allow-origin'), null, 'no CORS headers for an origin the policy does not name');
    await other.arrayBuffer();
  });

  it('preflights: answered by the proxy, allowed for the policy\'s origin and headers, refused otherwise', async () => {
    const calls = () => [...backends[0]!.calls.values()].reduce((sum, count) => sum + count, 0);
    const callsBefore = calls();
    const preflight = (origin: string, requestHeaders: string) => fetch(url(UNARY), {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': requestHeaders },
    });
    const allowed = await preflight(PAGE_ORIGIN, 'content-type,x-grpc-web,x-user-agent');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), PAGE_ORIGIN);
    assert.match(allowed.headers.get('access-control-allow-headers') ?? '', /x-grpc-web/);
    assert.match(allowed.headers.get('access-control-allow-methods') ?? '', /POST/);
    const otherOrigin = await preflight('http://elsewhere.test', 'content-type');
    assert.equal(otherOrigin.status, 403);
    assert.equal(otherOrigin.headers.get('access-control-allow-origin'), null);
    const otherHeader = await preflight(PAGE_ORIGIN, 'content-type,x-secret');
    assert.equal(otherHeader.status, 403);
    assert.match(await otherHeader.text(), /x-secret/);
    assert.equal(calls(), callsBefore, 'preflights never reach a backend');
  });

  it('a listener without web settings answers gRPC-Web with HTTP 415, as before', async () => {
    const response = await fetch(url(UNARY, 1), {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto' },
      body: frameMessage(echoRequestBytes({})),
    });
    assert.equal(response.status, 415);
  });
});
