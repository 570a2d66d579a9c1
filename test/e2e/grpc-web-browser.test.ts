/**
 * A real browser as a gRPC client: Debian's headless Chromium (playwright-core)
 * loads a page from a server of the test's own, on another origin than the
 * proxy's. Its script, test/web/echo-page.ts bundled with esbuild, calls the
 * Echo service through Switchyard with @connectrpc/connect-web, over gRPC-Web
 * and Connect. The proxy's CORS policy lets that origin in on one listener and
 * keeps it out on another; on an error the page reads grpc-status.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/dashboard-page.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBackends, staticCluster, waitFor } from '../helpers/harness.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { echoDescriptorSet, writeEchoDescriptorSet } from '../helpers/web-clients.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { DEFAULT_CORS_ALLOW_HEADERS } from '../../src/config/web-schema.ts';
import type { EchoPageApi, PageProtocol, PageResult } from '../web/echo-page.ts';

const PAGE_SCRIPT = fileURLToPath(new URL('../web/echo-page.ts', import.meta.url));
const ECHO = 'switchyard.demo.v1.Echo';

declare const echoPage: EchoPageApi;

/** Serves the page, its bundled script and the Echo descriptor set. */
async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const bundle = await build({ entryPoints: [PAGE_SCRIPT], bundle: true, format: 'esm', platform: 'browser', target: 'chrome120', write: false, logLevel: 'silent' });
  const script = bundle.outputFiles[0]!.contents;
  const descriptors = echoDescriptorSet();
  const server = createServer((request, response) => {
    if (request.url === '/app.js') return void response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    if (request.url === '/echo.binpb') return void response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(descriptors);
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>echo</title><script type="module" src="/app.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('a browser calls gRPC services through Switchyard (headless Chromium, connect-web)', () => {
  let backends: EchoServerHandle[];
  let dir: string;
  let proxy: SecureProxy;
  let pageServer: Server;
  let browser: Browser;
  let page: Page;
  /** The proxy's listener that lets the page's origin in, and the one that does not; another origin than the page's (localhost). */
  let open: string;
  let closed: string;
  /** A TLS listener: there a browser speaks HTTP/2 (ALPN h2), as it does with any HTTPS API. */
  let secure: string;
  let pki: TestPki;
  /** Every response Chromium received, with the HTTP version it used (from the DevTools protocol); a method's URL repeats. */
  const responses: { readonly url: string; readonly protocol: string }[] = [];
  const failures: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-browser-'));
    pki = await makeTestPki(path.join(dir, 'pki'));
    backends = await startBackends(2);
    const pages = await startPageServer();
    pageServer = pages.server;
    proxy = await startSecureProxy({
      listeners: [
        {
          name: 'open', port: 0, plaintext: true,
          // x-case is the tests' own metadata: a page may send a header only if the policy lists it.
          web: { protocols: ['grpc_web', 'connect'], cors: { allow_origins: [pages.origin], allow_headers: [...DEFAULT_CORS_ALLOW_HEADERS, 'x-case'] } },
        },
        { name: 'closed', port: 0, plaintext: true, web: { protocols: ['grpc_web', 'connect'], cors: { allow_origins: ['https://other.example'] } } },
        { name: 'secure', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key }, web: { protocols: ['grpc_web', 'connect'], cors: { allow_origins: [pages.origin] } } },
      ],
      clusters: [staticCluster('echo', backends), { name: 'empty', endpoints: [] }],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-case', exact: 'empty' }] }, cluster: 'empty' },
        { match: { service: ECHO }, cluster: 'echo' },
      ],
      // connect-web's Connect transport sends JSON: the proxy transcodes it with the service's descriptors.
      web: { descriptor_sets: [await writeEchoDescriptorSet(dir)] },
    });
    open = `http://localhost:${proxy.proxy.listener('open').address.port}`;
    closed = `http://localhost:${proxy.proxy.listener('closed').address.port}`;
    secure = `https://localhost:${proxy.proxy.listener('secure').address.port}`;
    browser = await launchChromium();
    // The test CA is not in Chromium's trust store.
    page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    const devtools = await page.context().newCDPSession(page);
    devtools.on('Network.responseReceived', (event: { response: { url: string; protocol?: string } }) => responses.push({ url: event.response.url, protocol: event.response.protocol ?? '' }));
    await devtools.send('Network.enable');
    page.on('pageerror', (error) => failures.push(error.message));
    await page.goto(pages.origin);
    await page.waitForFunction(() => (globalThis as unknown as { echoPageReady?: boolean }).echoPageReady === true, undefined, { timeout: 10_000 });
  });

  after(async () => {
    await browser?.close();
    await proxy?.close();
    await Promise.all((backends ?? []).map((backend) => backend.close()));
    await new Promise((resolve) => pageServer?.close(resolve));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const unary = (baseUrl: string, protocol: PageProtocol, request: Record<string, unknown>): Promise<PageResult> =>
    page.evaluate(([base, kind, body]) => echoPage.unary(base, kind, body), [baseUrl, protocol, request] as const);
  const serverStream = (baseUrl: string, protocol: PageProtocol, request: Record<string, unknown>): Promise<PageResult> =>
    page.evaluate(([base, kind, body]) => echoPage.serverStream(base, kind, body), [baseUrl, protocol, request] as const);

  for (const protocol of ['grpc-web', 'connect'] as const) {
    it(`${protocol}: unary calls get answers, balanced over both backends`, async () => {
      const backendsSeen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const result = await unary(open, protocol, { payload: `call ${i}` });
        assert.ok(result.ok, JSON.stringify(result));
        assert.deepEqual(result.payloads, [`call ${i}`]);
        backendsSeen.add(result.backend);
      }
      assert.deepEqual([...backendsSeen].sort(), ['backend-0', 'backend-1']);
    });

    it(`${protocol}: a server stream arrives message by message`, async () => {
      const result = await serverStream(open, protocol, { count: 3, payload: 's' });
      assert.ok(result.ok, JSON.stringify(result));
      assert.deepEqual(result.sequences, [0, 1, 2]);
    });

    it(`${protocol}: an error reaches the page with its code and message`, async () => {
      const result = await unary(open, protocol, { failCode: 5, failMessage: 'nothing here' });
      assert.deepEqual(result, { ok: false, code: 'NotFound', message: 'nothing here' });
    });

    it(`${protocol}: an origin the listener's CORS policy does not name is refused at the preflight`, async () => {
      const before = backends.reduce((sum, backend) => sum + (backend.calls.get('Unary') ?? 0), 0);
      const result = await unary(closed, protocol, {});
      assert.equal(result.ok, false);
      assert.notEqual((result as { code: string }).code, 'NotFound');
      assert.equal(backends.reduce((sum, backend) => sum + (backend.calls.get('Unary') ?? 0), 0), before, 'the call never reached a backend');
    });
  }

  it('over TLS the browser speaks HTTP/2 to the proxy, and both protocols work there', async () => {
    for (const protocol of ['grpc-web', 'connect'] as const) {
      const answer = await unary(secure, protocol, { payload: `over h2 (${protocol})` });
      assert.ok(answer.ok, JSON.stringify(answer));
      assert.deepEqual(answer.payloads, [`over h2 (${protocol})`]);
      const stream = await serverStream(secure, protocol, { count: 3, payload: 's' });
      assert.ok(stream.ok && stream.sequences.join() === '0,1,2', JSON.stringify(stream));
      const error = await unary(secure, protocol, { failCode: 5, failMessage: 'not over h2' });
      assert.deepEqual(error, { ok: false, code: 'NotFound', message: 'not over h2' });
    }
    // Six calls, each at least one response; DevTools events travel apart from evaluate's answers, so they are waited for.
    const fromSecure = () => responses.filter((response) => response.url.startsWith(secure));
    await waitFor(() => fromSecure().length >= 6, 'DevTools events for the six calls over TLS');
    assert.deepEqual([...new Set(fromSecure().map((response) => response.protocol))], ['h2']);
  });

  it('the page reads grpc-status and grpc-message of a trailers-only error (exposed by CORS)', async () => {
    const result = await page.evaluate(([url]) => echoPage.rawGrpcWeb(url, { 'x-case': 'empty' }), [`${open}/${ECHO}/Unary`] as const);
    assert.ok('status' in result, JSON.stringify(result));
    assert.equal(result.status, 200);
    assert.equal(result.grpcStatus, '14');
    assert.equal(result.grpcMessage, 'cluster "empty" has no endpoints');
  });

  it('the page raised no script errors', () => {
    assert.deepEqual(failures, []);
  });
});
