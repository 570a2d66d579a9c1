/**
 * Forwarding headers from an untrusted client never reach a backend as if the
 * proxy vouched for them; with trusted_proxy_hops, a trusted hop's are kept and
 * the peer is appended (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startProxy, type RunningProxy } from '../helpers/harness.ts';

/** Answers OK and keeps the request headers of each call. */
async function startRecordingBackend(): Promise<{ port: number; seen: http2.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
    seen.push(headers);
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** One call through `port` with these extra request headers; resolves with what the backend saw. */
async function callWith(port: number, backend: { seen: http2.IncomingHttpHeaders[] }, extra: http2.OutgoingHttpHeaders): Promise<http2.IncomingHttpHeaders> {
  const before = backend.seen.length;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/shop.v1.Orders/Get', 'content-type': 'application/grpc', te: 'trailers', ...extra });
    stream.resume();
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    await new Promise((resolve) => stream.on('close', resolve));
  } finally {
    session.close();
  }
  assert.equal(backend.seen.length, before + 1, 'the call reached the backend');
  return backend.seen.at(-1)!;
}

const FORGED = {
  ':scheme': 'https',
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'admin.internal',
  forwarded: 'for=203.0.113.7;proto=https',
  'x-real-ip': '203.0.113.7',
  'x-envoy-original-path': '/shop.v1.Admin/Purge',
  'x-envoy-internal': 'true',
  'x-spiffe-id': 'spiffe://shop/ns/admin/sa/root',
};

describe('forwarding headers', () => {
  let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
  let proxy: RunningProxy;

  before(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy({
      listeners: [
        { name: 'edge', port: 0, plaintext: true },
        { name: 'behind-lb', port: 0, plaintext: true, trusted_proxy_hops: 1 },
      ],
      clusters: [{ name: 'shop', endpoints: [{ address: '127.0.0.1', port: backend.port }] }],
      routes: [{ match: { prefix: '/' }, cluster: 'shop' }],
    });
  });

  after(async () => {
    await proxy.close();
    await backend.close();
  });

  it('from an untrusted client: replaced by the truth (peer address, http over h2c), x-envoy-* and x-spiffe-id removed', async () => {
    const seen = await callWith(proxy.proxy.listener('edge').address.port, backend, FORGED);
    assert.equal(seen[':scheme'], 'http');
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    for (const name of ['x-forwarded-host', 'forwarded', 'x-real-ip', 'x-envoy-original-path', 'x-envoy-internal', 'x-spiffe-id']) {
      assert.equal(seen[name], undefined, `${name} removed`);
    }
  });

  it('behind one trusted hop: its headers pass and the peer is appended to x-forwarded-for; identity headers still go', async () => {
    const seen = await callWith(proxy.proxy.listener('behind-lb').address.port, backend, FORGED);
    assert.equal(seen[':scheme'], 'http', ':scheme always describes the upstream connection');
    assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-real-ip'], '203.0.113.7');
    assert.equal(seen['x-spiffe-id'], undefined);
  });
});
