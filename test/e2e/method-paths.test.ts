/**
 * Only canonical gRPC paths (`/package.Service/Method`) pass the proxy, before
 * authorization and routing: a backend that normalises paths must never serve
 * a method the proxy's rules saw under another name (issue 12: a caller denied
 * /shop.v1.Admin/Purge reached the backend with /shop.v1.Admin/Purge/, …).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startProxy, type RunningProxy } from '../helpers/harness.ts';

/** A backend that answers OK to anything and remembers each :path it saw, as a normalising server would. */
async function startRecordingBackend(): Promise<{ port: number; paths: string[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
    paths.push(String(headers[':path']));
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, paths, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Sends one gRPC-shaped request with exactly this :path; resolves with grpc-status and grpc-message. */
function call(port: number, path: string): Promise<{ status: string | undefined; message: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    let message: string | undefined;
    const take = (headers: http2.IncomingHttpHeaders) => {
      status ??= headers['grpc-status'] as string | undefined;
      message ??= headers['grpc-message'] as string | undefined;
    };
    // A path HTTP/2 itself forbids (no leading slash) is reset by nghttp2: no status, never forwarded.
    stream.on('error', () => {});
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('close', () => {
      session.close();
      resolve({ status, message: message === undefined ? undefined : decodeURIComponent(message) });
    });
    stream.resume();
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

const DENIED = '/shop.v1.Admin/Purge';
const VARIANTS = [
  '/shop.v1.Admin/Purge/',
  '/shop.v1.Admin/%50urge',
  '//shop.v1.Admin/Purge',
  '/shop.v1.Admin/../Admin/Purge',
  '/shop.v1.Other/../Admin/Purge',
  '/shop.v1.Admin/./Purge',
  '/shop.v1.Admin/Purge?x=1',
  '/shop.v1.Admin/Purge#x',
  '/shop.v1.Admin/Purge;x',
  '/shop.v1.Admin/Purge%00',
  '/shop.v1.Admin%2FPurge',
  '/shop.v1.Admin',
  '/shop..v1.Admin/Purge',
  'shop.v1.Admin/Purge',
];

describe('method paths', () => {
  let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
  let proxy: RunningProxy;

  before(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy({
      clusters: [{ name: 'shop', endpoints: [{ address: '127.0.0.1', port: backend.port }] }],
      routes: [
        { match: { service: 'test.Limited' }, cluster: 'shop', rate_limit: { requests_per_second: 0.001, burst: 1 } },
        { match: { prefix: '/' }, cluster: 'shop' },
      ],
      authorization: {
        rules: [
          { name: 'no-purge', principals: ['*'], methods: [DENIED], action: 'deny' },
          { name: 'everything-else', principals: ['*'], methods: ['*'] },
        ],
      },
    });
  });

  after(async () => {
    await proxy.close();
    await backend.close();
  });

  it('the denied method itself is denied, and a canonical other method goes through', async () => {
    assert.equal((await call(proxy.port, DENIED)).status, '7');
    assert.equal((await call(proxy.port, '/shop.v1.Admin/List')).status, '0');
    assert.deepEqual(backend.paths, ['/shop.v1.Admin/List']);
  });

  for (const path of VARIANTS) {
    it(`${JSON.stringify(path)} never reaches the backend`, async () => {
      const before = backend.paths.length;
      const answer = await call(proxy.port, path);
      assert.notEqual(answer.status, '0', `answered ${answer.status}`);
      assert.deepEqual(backend.paths.slice(before), []);
    });
  }

  it('a malformed path is UNIMPLEMENTED with a message that says why', async () => {
    const answer = await call(proxy.port, '/shop.v1.Admin/Purge/');
    assert.equal(answer.status, '12');
    assert.match(answer.message ?? '', /malformed :path/);
  });

  it('a deny rule also matches the method in another case; an allow rule matches only the exact name', async () => {
    const before = backend.paths.length;
    assert.equal((await call(proxy.port, '/shop.v1.Admin/purge')).status, '7');
    assert.equal((await call(proxy.port, '/SHOP.V1.ADMIN/PURGE')).status, '7');
    assert.deepEqual(backend.paths.slice(before), []);
  });

  it('a route\'s rate limit cannot be escaped with a doubled slash', async () => {
    assert.equal((await call(proxy.port, '/test.Limited/Get')).status, '0');
    assert.equal((await call(proxy.port, '/test.Limited/Get')).status, '8');
    const before = backend.paths.length;
    assert.notEqual((await call(proxy.port, '//test.Limited/Get')).status, '0');
    assert.deepEqual(backend.paths.slice(before), []);
  });
});
