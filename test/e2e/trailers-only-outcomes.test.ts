/**
 * A backend that answers with a single HEADERS frame carrying grpc-status and
 * END_STREAM (trailers-only: grpc-js for an unknown method, grpc-go and
 * grpc-java for every error returned before a message) has answered: the
 * attempt's outcome is that status, never a reset, so ordinary application
 * errors do not eject healthy endpoints (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { expectStatus, startEchoSetup, staticCluster, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { adminUrl, parseSamples } from '../helpers/admin.ts';

const CALLS = 40;

/** An HTTP/2 server that reads each request to its end, then answers NOT_FOUND trailers-only. */
async function startTrailersOnlyBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' }, { endStream: true });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function attemptCodes(proxy: RunningProxy, cluster: string): Promise<Record<string, number>> {
  const samples = parseSamples(await (await fetch(adminUrl(proxy.proxy, '/metrics'))).text());
  const codes: Record<string, number> = {};
  for (const sample of samples) {
    if (sample.name === 'switchyard_upstream_rpcs_total' && sample.labels.cluster === cluster) {
      codes[sample.labels.grpc_code!] = (codes[sample.labels.grpc_code!] ?? 0) + sample.value;
    }
  }
  return codes;
}

describe('trailers-only answers from backends', () => {
  let raw: { port: number; close(): Promise<void> };
  let setup: EchoSetup;
  let proxy: RunningProxy;

  before(async () => {
    raw = await startTrailersOnlyBackend();
    // Strict outlier detection: a handful of gateway errors in a row would eject.
    const outlier = { consecutive_gateway_errors: 3, base_ejection_time: '30s', max_ejection_percent: 100 };
    setup = await startEchoSetup(2, (echo) => ({
      admin: { port: 0 },
      clusters: [
        { name: 'raw', endpoints: [{ address: '127.0.0.1', port: raw.port }], outlier_detection: outlier },
        staticCluster('echo', echo, { outlier_detection: outlier }),
      ],
      routes: [
        { match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'raw' },
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    }));
    ({ proxy } = setup);
  });

  after(async () => {
    await setup.close();
    await raw.close();
  });

  it('NOT_FOUND trailers-only from a raw HTTP/2 backend is recorded as NOT_FOUND, and ejects nothing', async () => {
    const { client } = setup;
    for (let i = 0; i < CALLS; i++) {
      const error = await expectStatus(new Promise((resolve, reject) => client.Unary({}, new grpc.Metadata(), {}, (e, r) => (e ? reject(e) : resolve(r)))));
      assert.equal(error.code, grpc.status.NOT_FOUND);
      assert.equal(error.details, 'no such thing');
    }
    assert.deepEqual(await attemptCodes(proxy, 'raw'), { NOT_FOUND: CALLS });
    assert.ok(proxy.proxy.clusters.get('raw')!.healthSnapshot().every((endpoint) => !endpoint.ejected), 'no endpoint ejected');
    assert.ok(proxy.records.filter((r) => r.cluster === 'raw').every((r) => r.status === grpc.status.NOT_FOUND));
  });

  it('an unknown method on a grpc-js backend is recorded as UNIMPLEMENTED, and ejects nothing', async () => {
    // Any method path: the client's untyped calls.
    const { client } = setup;
    for (let i = 0; i < CALLS; i++) {
      const error = await expectStatus(new Promise((resolve, reject) => {
        client.makeUnaryRequest('/no.such.Service/Nothing', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e, r) => (e ? reject(e) : resolve(r)));
      }));
      assert.equal(error.code, grpc.status.UNIMPLEMENTED);
    }
    assert.deepEqual(await attemptCodes(proxy, 'echo'), { UNIMPLEMENTED: CALLS });
    assert.ok(proxy.proxy.clusters.get('echo')!.healthSnapshot().every((endpoint) => !endpoint.ejected), 'no endpoint ejected');
  });
});
