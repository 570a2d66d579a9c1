/**
 * A backend that sends GOAWAY with a low last-stream-id while later streams
 * are queued on its connection has not processed those streams: the proxy
 * sends them again elsewhere (a transparent retry, whatever the route's retry
 * policy) and does not hold them against the backend (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, unary, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';

const CALLS = 20;
/** The backend sends its GOAWAY once this many streams are open on its first connection. */
const QUEUED = 5;

/**
 * Answers gRPC calls with an empty message. On its first connection it waits until QUEUED calls are
 * open, then sends GOAWAY naming only the first, answers that one and leaves the rest unanswered: the
 * GOAWAY tells the proxy they were never processed.
 */
async function startGoAwayBackend(): Promise<{ port: number; ignored: number; close(): Promise<void> }> {
  const server = http2.createServer();
  let sentGoAway = false;
  let ignored = 0;
  const pending: http2.ServerHttp2Stream[] = [];
  const answer = (stream: http2.ServerHttp2Stream) => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  };
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    stream.on('error', () => {});
    stream.resume();
    if (sentGoAway) {
      if (stream.session === pending[0]?.session) ignored++;
      else answer(stream);
      return;
    }
    pending.push(stream);
    if (pending.length < QUEUED) return;
    sentGoAway = true;
    stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, pending[0]!.id);
    answer(pending[0]!);
    ignored += pending.length - 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get ignored() { return ignored; },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('a backend that sends GOAWAY with streams queued', () => {
  let goaway: Awaited<ReturnType<typeof startGoAwayBackend>>;
  let setup: EchoSetup;
  let proxy: RunningProxy;

  before(async () => {
    goaway = await startGoAwayBackend();
    setup = await startEchoSetup(1, (echo) => ({
      clusters: [{
        name: 'mixed',
        endpoints: [{ address: '127.0.0.1', port: goaway.port }, { address: '127.0.0.1', port: echo[0]!.port }],
        outlier_detection: { consecutive_gateway_errors: 2, max_ejection_percent: 100 },
      }],
      // No retry policy: only transparent retries may happen.
      routes: [{ match: { prefix: '/' }, cluster: 'mixed' }],
    }));
    ({ proxy } = setup);
  });

  after(async () => {
    await setup.close();
    await goaway.close();
  });

  it('every call succeeds elsewhere, and the backend is not ejected', async () => {
    const results = await Promise.allSettled(Array.from({ length: CALLS }, () => unary(setup.client, {}, new grpc.Metadata(), { deadline: Date.now() + 5_000 })));
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failures, []);
    await waitFor(() => proxy.records.length === CALLS, 'every record');
    assert.ok(goaway.ignored >= QUEUED - 1, 'streams past the GOAWAY were left unprocessed');
    assert.ok(proxy.records.filter((r) => r.retries > 0).length >= goaway.ignored, 'and each of them was retried');
    assert.ok(proxy.records.every((r) => r.status === grpc.status.OK && r.reason === undefined));
    const ejected = proxy.proxy.clusters.get('mixed')!.healthSnapshot().filter((e) => e.ejected);
    assert.deepEqual(ejected, [], 'no endpoint was ejected');
  });
});
