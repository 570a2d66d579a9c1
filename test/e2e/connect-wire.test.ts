/**
 * The Connect protocol on the wire, with plain fetch: unary POST and GET in
 * JSON (transcoded with a descriptor set) and protobuf, errors as JSON with
 * their HTTP status and details, trailing metadata as `trailer-` headers,
 * streams ending with the end-of-stream message, a timeout, and the bodies
 * the proxy refuses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBackends, staticCluster, waitFor } from '../helpers/harness.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { decodeEchoResponse, echoRequestBytes, frameMessage, writeEchoDescriptorSet } from '../helpers/web-clients.ts';

const UNARY = '/switchyard.demo.v1.Echo/Unary';
const SERVER_STREAM = '/switchyard.demo.v1.Echo/ServerStream';

/** A google.rpc.Status with one detail (a google.rpc.BadRequest of one byte string), in the wire format. */
function statusWithDetail(): { base64: string; detailValue: Buffer } {
  const detailValue = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x78]);
  const typeUrl = Buffer.from('type.googleapis.com/google.rpc.BadRequest');
  const any = Buffer.concat([Buffer.from([0x0a, typeUrl.length]), typeUrl, Buffer.from([0x12, detailValue.length]), detailValue]);
  const status = Buffer.concat([Buffer.from([0x08, 0x03, 0x1a, any.length]), any]);
  return { base64: status.toString('base64'), detailValue };
}

/** Splits a Connect stream body into its messages and its end-of-stream JSON. */
function parseConnectStream(body: Buffer): { messages: Buffer[]; end: Record<string, unknown> | undefined } {
  const messages: Buffer[] = [];
  let end: Record<string, unknown> | undefined;
  for (let offset = 0; offset < body.length;) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if (flags & 0x02) end = JSON.parse(payload.toString()) as Record<string, unknown>;
    else messages.push(payload);
  }
  return { messages, end };
}

describe('Connect on the wire, with plain fetch', () => {
  let dir: string;
  let backends: EchoServerHandle[];
  let raw: http2.Http2Server;
  const rawSeen: http2.IncomingHttpHeaders[] = [];
  let proxy: SecureProxy;
  let url: (pathAndQuery: string) => string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-connect-'));
    backends = await startBackends(1);
    const detail = statusWithDetail();
    raw = http2.createServer();
    raw.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      rawSeen.push(headers);
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3', 'grpc-message': 'bad%20input', 'grpc-status-details-bin': detail.base64 }, { endStream: true });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    proxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true, web: { protocols: ['connect'] }, http2: { max_request_message_bytes: 1024 } }],
      clusters: [staticCluster('echo', backends), { name: 'raw', endpoints: [{ address: '127.0.0.1', port: (raw.address() as AddressInfo).port }] }],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-case', exact: 'raw' }] }, cluster: 'raw' },
        { match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'echo' },
        { match: { prefix: '/' }, cluster: 'raw' },
      ],
      web: { descriptor_sets: [await writeEchoDescriptorSet(dir)] },
    });
    url = (pathAndQuery) => `http://127.0.0.1:${proxy.port}${pathAndQuery}`;
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((backend) => backend.close()));
    await new Promise((resolve) => raw.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const postJson = (body: string, headers: Record<string, string> = {}) => fetch(url(UNARY), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', ...headers },
    body,
  });

  it('unary JSON: transcoded both ways, leading metadata as headers and trailing as trailer- headers', async () => {
    const response = await postJson(JSON.stringify({ payload: Buffer.from('hi').toString('base64') }), { 'x-request-meta': 'yes' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('x-backend'), 'backend-0');
    assert.equal(response.headers.get('trailer-x-backend'), 'backend-0');
    const body = await response.json() as { payload: string; backend: string; metadata: string[] };
    assert.equal(Buffer.from(body.payload, 'base64').toString(), 'hi');
    assert.equal(body.backend, 'backend-0');
    assert.ok(body.metadata.includes('x-request-meta=yes'));
  });

  it('unary GET with JSON in the query, and with base64 protobuf', async () => {
    const json = await fetch(url(`${UNARY}?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ payload: 'Z2V0' }))}`));
    assert.equal(json.status, 200);
    assert.equal((await json.json() as { payload: string }).payload, 'Z2V0');
    const message = Buffer.from(echoRequestBytes({ payload: Buffer.from('proto get') })).toString('base64url');
    const proto = await fetch(url(`${UNARY}?connect=v1&encoding=proto&base64=1&message=${message}`));
    assert.equal(proto.status, 200);
    assert.equal(proto.headers.get('content-type'), 'application/proto');
    assert.equal(Buffer.from(decodeEchoResponse(new Uint8Array(await proto.arrayBuffer())).payload).toString(), 'proto get');
  });

  it('GET only for methods the descriptor sets mark NO_SIDE_EFFECTS: another is refused (405) and never forwarded', async () => {
    const forwarded = () => rawSeen.filter((headers) => headers[':path'] === '/other.v1.Service/Call').length;
    const before = forwarded();
    const response = await fetch(url(`/other.v1.Service/Call?connect=v1&encoding=json&message=${encodeURIComponent('{}')}`));
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'POST');
    const body = await response.json() as { code: string; message: string };
    assert.equal(body.code, 'unimplemented');
    assert.match(body.message, /NO_SIDE_EFFECTS/);
    assert.equal(forwarded(), before);
  });

  it('an error: the HTTP status of its code, a JSON body with code and message, metadata as headers', async () => {
    const response = await postJson(JSON.stringify({ failCode: 5, failMessage: 'no such thing' }));
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('trailer-x-failure-detail'), 'requested');
    assert.deepEqual(await response.json(), { code: 'not_found', message: 'no such thing' });
  });

  it('error details from grpc-status-details-bin, as {type, value}', async () => {
    const response = await postJson('{}', { 'x-case': 'raw' });
    assert.equal(response.status, 400);
    const body = await response.json() as { code: string; message: string; details: { type: string; value: string }[] };
    assert.equal(body.code, 'invalid_argument');
    assert.equal(body.message, 'bad input');
    assert.deepEqual(body.details, [{ type: 'google.rpc.BadRequest', value: statusWithDetail().detailValue.toString('base64').replace(/=+$/, '') }]);
  });

  it('JSON that is not the request message: 400 invalid_argument, recorded as malformed_request', async () => {
    const response = await postJson(JSON.stringify({ noSuchField: 1 }));
    assert.equal(response.status, 400);
    const body = await response.json() as { code: string; message: string };
    assert.equal(body.code, 'invalid_argument');
    assert.match(body.message, /EchoRequest/);
    await waitFor(() => proxy.records.some((record) => record.reason === 'malformed_request' && record.protocol === 'connect'), 'the record');
  });

  it('a body over max_request_message_bytes: 429 resource_exhausted (request_too_large)', async () => {
    const response = await postJson(JSON.stringify({ payload: Buffer.alloc(2_000).toString('base64') }));
    assert.equal(response.status, 429);
    assert.equal((await response.json() as { code: string }).code, 'resource_exhausted');
    await waitFor(() => proxy.records.some((record) => record.reason === 'request_too_large' && record.protocol === 'connect'), 'the record');
  });

  it('connect-timeout-ms reaches the backend as its deadline', async () => {
    const response = await postJson('{}', { 'connect-timeout-ms': '4000' });
    const body = await response.json() as { metadata: string[] };
    const remaining = Number(body.metadata.find((line) => line.startsWith('deadline-remaining-ms='))?.split('=')[1]);
    assert.ok(remaining > 2_000 && remaining <= 4_000, `the backend had ${remaining} ms`);
  });

  it('a server stream in JSON: each message enveloped, then the end-of-stream message with the trailers', async () => {
    const response = await fetch(url(SERVER_STREAM), {
      method: 'POST',
      headers: { 'content-type': 'application/connect+json' },
      body: frameMessage(Buffer.from(JSON.stringify({ count: 3, payload: 'c3RyZWFt' }))),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/connect+json');
    const { messages, end } = parseConnectStream(Buffer.from(await response.arrayBuffer()));
    assert.deepEqual(messages.map((message) => (JSON.parse(message.toString()) as { sequence?: number }).sequence ?? 0), [0, 1, 2]);
    assert.deepEqual(end, { metadata: { 'x-backend': ['backend-0'] } });
  });

  it('a server stream in protobuf that fails: HTTP 200, the error in the end-of-stream message', async () => {
    const response = await fetch(url(SERVER_STREAM), {
      method: 'POST',
      headers: { 'content-type': 'application/connect+proto' },
      body: frameMessage(echoRequestBytes({ count: 1, failCode: 9, failMessage: 'not now' })),
    });
    assert.equal(response.status, 200);
    const { messages, end } = parseConnectStream(Buffer.from(await response.arrayBuffer()));
    assert.equal(messages.length, 1);
    assert.deepEqual(end?.error, { code: 'failed_precondition', message: 'not now' });
  });

  it('a codec the proxy does not take: HTTP 415', async () => {
    const response = await fetch(url(SERVER_STREAM), { method: 'POST', headers: { 'content-type': 'application/connect+thrift' }, body: frameMessage(Buffer.alloc(0)) });
    assert.equal(response.status, 415);
  });

  it('JSON for a method no descriptor set describes goes to the backend as application/grpc+json', async () => {
    const response = await fetch(url('/other.v1.Service/Call'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(response.status, 400);
    await response.arrayBuffer();
    const seen = rawSeen.find((headers) => headers[':path'] === '/other.v1.Service/Call');
    assert.equal(seen?.['content-type'], 'application/grpc+json');
    assert.equal(seen?.te, 'trailers');
    assert.equal(seen?.['content-length'], undefined);
  });
});
