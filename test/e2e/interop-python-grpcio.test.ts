/**
 * Interop with gRPC's C core, through Debian's python3-grpcio (1.51): a C-core
 * client calls through Switchyard (h2c and TLS listeners) to grpc-js
 * backends, and a C-core server sits behind Switchyard (h2c and TLS
 * upstreams), called by the C-core client and by grpc-js. Every RPC kind,
 * messages of megabytes, metadata both ways, a deadline and an error status.
 * The scripts are in test/interop/; the package must be installed (.ci/run
 * does): without it these tests fail, they do not skip.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { EchoServerHandle, EchoResponse } from '../../src/demo/echo-service.ts';
import { echoClient, startBackends, staticCluster, unary, type EchoClient } from '../helpers/harness.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { requirePythonGrpc, runPythonClient, startPythonServer, type PythonClientReport, type PythonServer } from '../helpers/interop.ts';

const MIB = 1 << 20;
const STATUS = { OK: 0, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5 } as const;

/** Asserts every check of test/interop/echo_client.py, answered by a backend whose name matches `backend`. */
function assertReport(report: PythonClientReport, backend: RegExp): void {
  for (const [name, result] of Object.entries(report)) {
    if (typeof result === 'object' && result !== null && 'error' in result) assert.fail(`${name}: ${String(result.error)}\n${String((result as { trace?: unknown }).trace)}`);
  }
  const { unary: one, client_stream: clientStream, server_stream: serverStream, bidi, deadline, error_status: failed } = report;
  assert.equal(one!.code, STATUS.OK);
  assert.match(String(one!.backend), backend);
  assert.equal(one!.payload_bytes, 3 * MIB, 'a 3 MiB response to a 3 MiB request');
  assert.deepEqual(one!.backend_saw, ['x-interop-bin=bin:AAEC/v8=', `x-interop-long=${'l'.repeat(4_000)}`, 'x-interop=python'], 'the backend saw the metadata, binary and 4 KB included');
  assert.match(String((one!.initial_metadata as Record<string, string>)['x-backend']), backend, 'response headers from the backend');
  assert.match(String((one!.trailing_metadata as Record<string, string>)['x-backend']), backend, 'trailers from the backend');
  assert.deepEqual(clientStream, { backend: clientStream!.backend, messages: 64, received_bytes: 4 * MIB });
  assert.deepEqual(serverStream, { backend: serverStream!.backend, in_order: true, messages: 64, bytes: 4 * MIB });
  assert.deepEqual(bidi, { responses: 201, in_order: true, last_bytes: MIB });
  assert.equal(deadline!.code, STATUS.DEADLINE_EXCEEDED);
  assert.ok(Number(deadline!.elapsed_ms) < 3_000, `the deadline ended the call in ${String(deadline!.elapsed_ms)} ms`);
  assert.equal(failed!.code, STATUS.NOT_FOUND);
  assert.equal(failed!.details, 'no such thing, said the backend');
  assert.equal((failed!.trailing_metadata as Record<string, string>)['x-failure-detail'], 'requested');
}

describe('interop: python3-grpcio (gRPC C core) through Switchyard', () => {
  let pki: TestPki;
  let nodeBackends: EchoServerHandle[];
  let pythonH2c: PythonServer;
  let pythonTls: PythonServer;
  let proxy: SecureProxy;
  const h2cTarget = () => `127.0.0.1:${proxy.proxy.listener('h2c').address.port}`;
  const tlsTarget = () => `127.0.0.1:${proxy.proxy.listener('tls').address.port}`;

  before(async () => {
    await requirePythonGrpc();
    pki = await makeTestPki();
    [nodeBackends, pythonH2c, pythonTls] = await Promise.all([
      startBackends(2),
      startPythonServer('python-h2c'),
      startPythonServer('python-tls', { cert: pki.server.cert, key: pki.server.key }),
    ]);
    proxy = await startSecureProxy({
      listeners: [
        { name: 'h2c', port: 0, plaintext: true },
        { name: 'tls', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key } },
      ],
      clusters: [
        staticCluster('node', nodeBackends),
        { name: 'python-h2c', endpoints: [{ address: '127.0.0.1', port: pythonH2c.port }] },
        { name: 'python-tls', endpoints: [{ address: '127.0.0.1', port: pythonTls.port }], tls: { ca_file: pki.caCert, server_name: 'localhost' } },
      ],
      routes: [
        { match: { prefix: '/', headers: [{ name: 'x-upstream', exact: 'python-h2c' }] }, cluster: 'python-h2c' },
        { match: { prefix: '/', headers: [{ name: 'x-upstream', exact: 'python-tls' }] }, cluster: 'python-tls' },
        { match: { prefix: '/' }, cluster: 'node' },
      ],
    });
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([...(nodeBackends ?? []).map((b) => b.close()), pythonH2c?.stop(), pythonTls?.stop()]);
    await pki?.cleanup();
  });

  it('C-core client, h2c listener, grpc-js backends: every RPC kind, 3 MiB messages, metadata both ways, a deadline, an error status', async () => {
    assertReport(await runPythonClient(h2cTarget()), /^backend-\d$/);
  });

  it('C-core client, TLS listener (ALPN h2, the certificate verified), grpc-js backends: the same', async () => {
    assertReport(await runPythonClient(tlsTarget(), { tls: { ca: pki.caCert, serverName: 'localhost' } }), /^backend-\d$/);
  });

  it('C-core client and C-core server on both sides: h2c upstream', async () => {
    assertReport(await runPythonClient(h2cTarget(), { metadata: { 'x-upstream': 'python-h2c' } }), /^python-h2c$/);
  });

  it('C-core client and C-core server on both sides: TLS upstream with the server name checked', async () => {
    assertReport(await runPythonClient(tlsTarget(), { tls: { ca: pki.caCert, serverName: 'localhost' }, metadata: { 'x-upstream': 'python-tls' } }), /^python-tls$/);
  });

  for (const upstream of ['python-h2c', 'python-tls'] as const) {
    it(`grpc-js client through the proxy's upstream side to a C-core server (${upstream}): every RPC kind`, async () => {
      const client: EchoClient = echoClient(h2cTarget());
      const metadata = () => {
        const m = new grpc.Metadata();
        m.set('x-upstream', upstream);
        m.set('x-interop-bin', Buffer.from([0, 1, 2]));
        return m;
      };
      try {
        const { response, headers, trailers } = await unary(client, { payload: Buffer.alloc(2 * MIB, 7), response_bytes: 2 * MIB }, metadata());
        assert.equal(response.backend, upstream);
        assert.equal(response.payload.length, 2 * MIB);
        assert.ok(response.metadata.includes('x-interop-bin=bin:AAEC'), 'binary metadata reached the C-core server');
        assert.deepEqual(headers.get('x-backend'), [upstream]);
        assert.deepEqual(trailers.get('x-backend'), [upstream]);

        const summed = await new Promise<EchoResponse>((resolve, reject) => {
          const call = client.ClientStream(metadata(), {}, (error, value) => (error ? reject(error) : resolve(value!)));
          for (let i = 0; i < 32; i++) call.write({ payload: Buffer.alloc(64 << 10, i) });
          call.end();
        });
        assert.equal(summed.sequence, 32);
        assert.equal(Number(summed.received_bytes), 2 * MIB);

        let sequence = 0;
        for await (const message of client.ServerStream({ count: 32, response_bytes: 64 << 10 }, metadata()) as AsyncIterable<EchoResponse>) {
          assert.equal(message.sequence, sequence++);
          assert.equal(message.payload.length, 64 << 10);
        }
        assert.equal(sequence, 32);

        const bidi = client.Bidi(metadata());
        const echoed: number[] = [];
        const ended = new Promise<void>((resolve, reject) => {
          bidi.on('data', (message: EchoResponse) => echoed.push(message.payload.readUInt16BE(0)));
          bidi.on('error', reject);
          bidi.on('end', resolve);
        });
        for (let i = 0; i < 100; i++) bidi.write({ payload: Buffer.from([i >> 8, i & 0xff]) });
        bidi.end();
        await ended;
        assert.deepEqual(echoed, Array.from({ length: 100 }, (_, i) => i));

        const failure = await unary(client, { fail_code: grpc.status.NOT_FOUND, fail_message: 'not here' }, metadata()).then(() => undefined, (e: grpc.ServiceError) => e);
        assert.equal(failure?.code, grpc.status.NOT_FOUND);
        assert.equal(failure?.details, 'not here');
        assert.deepEqual(failure?.metadata.get('x-failure-detail'), ['requested']);
      } finally {
        client.close();
      }
    });
  }
});
