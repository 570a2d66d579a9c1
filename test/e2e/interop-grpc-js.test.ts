/**
 * Interop with @grpc/grpc-js on both sides of a Switchyard process (run by its
 * CLI, as deployed): every RPC kind, messages of megabytes and metadata both
 * ways, through each client transport (h2c, TLS with ALPN h2) to each backend
 * transport (h2c, TLS with the server name checked). The same engine carries
 * all four combinations; each one is a different pair of sockets under it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoResponse, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, unary, waitFor, type EchoClient } from '../helpers/harness.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startChildProxy, type ChildProxy } from '../helpers/abuse.ts';

const MIB = 1 << 20;

function metadata(upstream: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('x-upstream', upstream);
  m.set('x-interop', 'grpc-js');
  m.set('x-interop-bin', Buffer.from([0, 1, 2, 0xfe, 0xff]));
  m.set('x-interop-long', 'l'.repeat(4_000));
  return m;
}

describe('interop: grpc-js clients and servers through a Switchyard process', () => {
  let pki: TestPki;
  let h2cBackend: EchoServerHandle;
  let tlsBackend: EchoServerHandle;
  let proxy: ChildProxy;
  let tlsPort: number;

  before(async () => {
    pki = await makeTestPki();
    [h2cBackend, tlsBackend] = await Promise.all([
      startEchoServer({ name: 'h2c-backend' }),
      startEchoServer({ name: 'tls-backend', credentials: grpc.ServerCredentials.createSsl(pki.caCertPem, [{ cert_chain: pki.server.certPem, private_key: pki.server.keyPem }]) }),
    ]);
    proxy = await startChildProxy(() => `
listeners:
  - name: main
    port: 0
    plaintext: true
  - name: tls
    port: 0
    tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key} }
clusters:
  - name: h2c
    endpoints: [{ address: 127.0.0.1, port: ${h2cBackend.port} }]
  - name: tls
    endpoints: [{ address: 127.0.0.1, port: ${tlsBackend.port} }]
    tls: { ca_file: ${pki.caCert}, server_name: localhost }
routes:
  - match: { prefix: /, headers: [{ name: x-upstream, exact: tls }] }
    cluster: tls
  - match: { prefix: / }
    cluster: h2c
`);
    // The proxy logs each listener as it binds; the bench waited for `main` only.
    await waitFor(() => proxy.logs.some((e) => e.msg === 'listening' && e.listener === 'tls'), 'the TLS listener');
    tlsPort = Number(proxy.logs.find((e) => e.msg === 'listening' && e.listener === 'tls')!.address!.split(':').at(-1));
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([h2cBackend?.close(), tlsBackend?.close()]);
    await pki?.cleanup();
  });

  const transports = [
    { listener: 'h2c', client: () => echoClient(`127.0.0.1:${proxy.port}`) },
    { listener: 'TLS', client: () => echoClient(`localhost:${tlsPort}`, grpc.credentials.createSsl(pki.caCertPem)) },
  ];

  for (const { listener, client: makeClient } of transports) {
    for (const upstream of ['h2c', 'tls'] as const) {
      describe(`${listener} listener to ${upstream} backend`, () => {
        let client: EchoClient;
        const backend = `${upstream}-backend`;

        before(() => {
          client = makeClient();
        });

        after(() => client.close());

        it('unary: 3 MiB each way, metadata both ways (binary, 4 KB values), headers and trailers from the backend', async () => {
          const { response, headers, trailers } = await unary(client, { payload: Buffer.alloc(3 * MIB, 1), response_bytes: 3 * MIB }, metadata(upstream));
          assert.equal(response.backend, backend);
          assert.equal(response.payload.length, 3 * MIB);
          for (const line of ['x-interop=grpc-js', 'x-interop-bin=bin:AAEC/v8=', `x-interop-long=${'l'.repeat(4_000)}`]) assert.ok(response.metadata.includes(line), `the backend saw ${line.slice(0, 40)}`);
          assert.deepEqual(headers.get('x-backend'), [backend]);
          assert.deepEqual(trailers.get('x-backend'), [backend]);
        });

        it('client streaming: 64 messages of 64 KiB', async () => {
          const response = await new Promise<EchoResponse>((resolve, reject) => {
            const call = client.ClientStream(metadata(upstream), {}, (error, value) => (error ? reject(error) : resolve(value!)));
            for (let i = 0; i < 64; i++) call.write({ payload: Buffer.alloc(64 << 10, i) });
            call.end();
          });
          assert.equal(response.backend, backend);
          assert.equal(response.sequence, 64);
          assert.equal(Number(response.received_bytes), 4 * MIB);
        });

        it('server streaming: 64 messages of 64 KiB, in order, then the trailers', async () => {
          const call = client.ServerStream({ count: 64, response_bytes: 64 << 10 }, metadata(upstream));
          let trailers: grpc.Metadata | undefined;
          call.on('status', (status: grpc.StatusObject) => { trailers = status.metadata; });
          let sequence = 0;
          for await (const message of call as AsyncIterable<EchoResponse>) {
            assert.equal(message.sequence, sequence++);
            assert.equal(message.payload.length, 64 << 10);
          }
          assert.equal(sequence, 64);
          await new Promise((resolve) => setImmediate(resolve));
          assert.deepEqual(trailers?.get('x-backend'), [backend]);
        });

        it('bidi streaming: 500 messages ping-pong, and one of 2 MiB', async () => {
          const call = client.Bidi(metadata(upstream));
          const sizes: number[] = [];
          const ended = new Promise<void>((resolve, reject) => {
            call.on('data', (message: EchoResponse) => sizes.push(message.payload.length));
            call.on('error', reject);
            call.on('end', resolve);
          });
          for (let i = 0; i < 500; i++) call.write({ payload: Buffer.alloc(100, i) });
          call.write({ payload: Buffer.alloc(2 * MIB, 9) });
          call.end();
          await ended;
          assert.equal(sizes.length, 501);
          assert.equal(sizes.at(-1), 2 * MIB);
        });

        it('an error status with its message and trailer metadata, and a deadline', async () => {
          const failed = await unary(client, { fail_code: grpc.status.FAILED_PRECONDITION, fail_message: 'precondition, said the backend' }, metadata(upstream)).then(() => undefined, (e: grpc.ServiceError) => e);
          assert.equal(failed?.code, grpc.status.FAILED_PRECONDITION);
          assert.equal(failed?.details, 'precondition, said the backend');
          assert.deepEqual(failed?.metadata.get('x-failure-detail'), ['requested']);
          const late = await unary(client, { delay_ms: 5_000 }, metadata(upstream), { deadline: Date.now() + 300 }).then(() => undefined, (e: grpc.ServiceError) => e);
          assert.equal(late?.code, grpc.status.DEADLINE_EXCEEDED);
        });
      });
    }
  }
});
