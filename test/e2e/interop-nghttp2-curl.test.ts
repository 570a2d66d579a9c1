/**
 * Interop with HTTP/2 tools nobody here wrote, built on nghttp2 (Debian's
 * nghttp2-client and curl): h2load loads the proxy over h2c and TLS and must
 * see no error and only 200s; nghttp -v must show the response headers and
 * the grpc-status trailers; curl, with prior knowledge (h2c) and over TLS
 * with ALPN h2, posts a gRPC request from a file and must show the trailers
 * and get the response message. A missing tool fails its test with the
 * package to install (.ci/run installs them).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { startBackends, staticCluster } from '../helpers/harness.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { requireTool, run } from '../helpers/interop.ts';
import { echoRequestMessage } from '../helpers/raw-h2-attack.ts';

const H2LOAD = '/usr/bin/h2load';
const NGHTTP = '/usr/bin/nghttp';
const CURL = '/usr/bin/curl';
const UNARY = '/switchyard.demo.v1.Echo/Unary';
const H2LOAD_REQUESTS = 2_000;
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];

/** The payload of the first gRPC message in a response body: the EchoResponse's field 1 (bytes). */
function echoedPayload(body: Buffer): string {
  assert.ok(body.length >= 5, `a gRPC message in the body (${body.length} bytes)`);
  const message = body.subarray(5, 5 + body.readUInt32BE(1));
  assert.equal(message[0], 0x0a, 'EchoResponse.payload first');
  return message.subarray(2, 2 + message[1]!).toString();
}

describe('interop: h2load, nghttp and curl (nghttp2) through Switchyard', () => {
  let pki: TestPki;
  let backends: EchoServerHandle[];
  let proxy: SecureProxy;
  let dir: string;
  let bodyFile: string;
  const h2cUrl = () => `http://127.0.0.1:${proxy.proxy.listener('h2c').address.port}${UNARY}`;
  const tlsUrl = () => `https://localhost:${proxy.proxy.listener('tls').address.port}${UNARY}`;

  before(async () => {
    [pki, backends] = await Promise.all([makeTestPki(), startBackends(2)]);
    proxy = await startSecureProxy({
      listeners: [
        { name: 'h2c', port: 0, plaintext: true },
        { name: 'tls', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key } },
      ],
      clusters: [staticCluster('echo', backends)],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-interop-'));
    bodyFile = path.join(dir, 'request.bin');
    await writeFile(bodyFile, echoRequestMessage({ payload: Buffer.from('hello from nghttp2') }));
  });

  after(async () => {
    await proxy?.close();
    await Promise.all((backends ?? []).map((b) => b.close()));
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** RPC records of the proxy from now on: each ended with the status the client got. */
  function recordsSince(): () => { status: number | undefined }[] {
    const from = proxy.records.length;
    return () => proxy.records.slice(from);
  }

  for (const transport of ['h2c', 'TLS'] as const) {
    it(`h2load over ${transport}: ${H2LOAD_REQUESTS} requests on 4 connections, no error, every response 200 and grpc-status 0`, async () => {
      requireTool(H2LOAD, 'nghttp2-client');
      const records = recordsSince();
      const result = await run(H2LOAD, ['-n', String(H2LOAD_REQUESTS), '-c', '4', '-m', '10', '-d', bodyFile, ...GRPC_HEADERS.flatMap((h) => ['-H', h]), transport === 'h2c' ? h2cUrl() : tlsUrl()]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, transport === 'TLS' ? /Application protocol: h2/ : /h2c/);
      assert.match(result.stdout, new RegExp(`requests: ${H2LOAD_REQUESTS} total, ${H2LOAD_REQUESTS} started, ${H2LOAD_REQUESTS} done, ${H2LOAD_REQUESTS} succeeded, 0 failed, 0 errored, 0 timeout`), result.stdout);
      assert.match(result.stdout, new RegExp(`status codes: ${H2LOAD_REQUESTS} 2xx, 0 3xx, 0 4xx, 0 5xx`), result.stdout);
      // h2load does not read trailers: the proxy's records say how each RPC ended.
      const ended = records();
      assert.equal(ended.length, H2LOAD_REQUESTS);
      assert.deepEqual(ended.filter((r) => r.status !== 0), []);
    });
  }

  it('nghttp -v: the frames show the response headers, the message and the grpc-status trailers', async () => {
    requireTool(NGHTTP, 'nghttp2-client');
    const result = await run(NGHTTP, ['-v', '-n', '-d', bodyFile, ...GRPC_HEADERS.flatMap((h) => ['-H', h]), h2cUrl()]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const log = result.stdout;
    assert.match(log, /recv \(stream_id=\d+\) :status: 200/);
    assert.match(log, /recv \(stream_id=\d+\) content-type: application\/grpc/);
    assert.match(log, /recv DATA frame <length=\d+, flags=0x00, stream_id=\d+>/);
    assert.match(log, /recv \(stream_id=\d+\) grpc-status: 0/);
    // The trailers are a HEADERS frame of their own that ends the stream (END_STREAM | END_HEADERS).
    assert.match(log, /recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>/);
  });

  for (const transport of ['h2c', 'TLS'] as const) {
    it(`curl over ${transport === 'h2c' ? 'h2c with prior knowledge' : 'TLS with ALPN h2'}: a gRPC request from a file, the trailers in the verbose output`, async () => {
      requireTool(CURL, 'curl');
      const out = path.join(dir, `response-${transport}.bin`);
      const mode = transport === 'h2c' ? ['--http2-prior-knowledge', h2cUrl()] : ['--http2', '--cacert', pki.caCert, tlsUrl()];
      const result = await run(CURL, ['-sS', '-v', '--data-binary', `@${bodyFile}`, ...GRPC_HEADERS.flatMap((h) => ['-H', h]), '-o', out, ...mode]);
      assert.equal(result.code, 0, result.stderr);
      if (transport === 'TLS') assert.match(result.stderr, /ALPN: server accepted h2/);
      assert.match(result.stderr, /< HTTP\/2 200/);
      assert.match(result.stderr, /< content-type: application\/grpc/);
      assert.match(result.stderr, /< grpc-status: 0/);
      assert.equal(echoedPayload(await readFile(out)), 'hello from nghttp2');
    });
  }
});
