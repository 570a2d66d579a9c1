/**
 * Many clients' legitimate cancellations must not add up to one abusive-looking
 * upstream connection. Node ≥ 22 servers (nghttp2's rapid-reset mitigation:
 * 1,000 resets at once, then 33/s) close a connection that resets more, and every
 * RPC sharing it fails. The proxy counts the resets it sends on each upstream
 * connection and moves new streams to a fresh connection well before that
 * (issue 12). The backends here are Node 26 processes with Node's defaults.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { spawnEchoProcess, type EchoProcess } from '../helpers/echo-process.ts';
import { startProxy, waitFor, type RunningProxy } from '../helpers/harness.ts';
import { wellBehavedLoad } from '../helpers/abuse.ts';

const CANCELLING_CLIENTS = 20;
/** Each client's cancellations per second: under the proxy's own per-connection reset rate (100/s). */
const CANCELS_PER_SECOND = 60;
/** Cancellations sent in all: enough to trip a backend's limit (1,000 on one connection) on both backends, with room. */
const CANCELLATIONS = 3_000;

/** A gRPC request for Unary that makes the backend wait a second before answering (EchoRequest.delay_ms = 1000). */
const SLOW_UNARY = Buffer.from([0, 0, 0, 0, 3, 0x10, 0xe8, 0x07]);

/** Opens a stream, cancels it 2 ms later, CANCELS_PER_SECOND times a second, until `stop()`. */
function cancellingClient(port: number): { readonly cancelled: number; stop(): Promise<void> } {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  let running = true;
  let cancelled = 0;
  const done = (async () => {
    await new Promise((resolve) => session.once('connect', resolve));
    while (running && !session.destroyed) {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => {});
      stream.end(SLOW_UNARY);
      await new Promise((resolve) => setTimeout(resolve, 2));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      cancelled++;
      await new Promise((resolve) => setTimeout(resolve, 1000 / CANCELS_PER_SECOND));
    }
    session.close();
  })();
  return {
    get cancelled() {
      return cancelled;
    },
    stop: () => {
      running = false;
      return done;
    },
  };
}

describe('client cancellations and the backends\' rapid-reset limits', () => {
  let backends: EchoProcess[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await Promise.all([spawnEchoProcess('backend-0'), spawnEchoProcess('backend-1')]);
    proxy = await startProxy({
      clusters: [{ name: 'echo', endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port })), outlier_detection: { consecutive_gateway_errors: 3, max_ejection_percent: 100 } }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it(`${CANCELLING_CLIENTS} clients cancelling ${CANCELS_PER_SECOND}/s each: a bystander sees no error, no endpoint is ejected`, async () => {
    const target = `127.0.0.1:${proxy.port}`;
    const bystander = wellBehavedLoad(target, 4);
    await waitFor(() => bystander.calls > 10, 'the bystander to be calling');
    const clients = Array.from({ length: CANCELLING_CLIENTS }, () => cancellingClient(proxy.port));
    const cancelled = () => clients.reduce((sum, c) => sum + c.cancelled, 0);
    await waitFor(() => cancelled() >= CANCELLATIONS, `${CANCELLATIONS} cancellations`, 30_000);
    await Promise.all(clients.map((c) => c.stop()));
    const report = await bystander.stop();
    assert.deepEqual(report.errors, [], 'the bystander saw no error');
    const ejected = proxy.proxy.clusters.get('echo')!.healthSnapshot().filter((e) => e.ejected);
    assert.deepEqual(ejected, [], 'no endpoint was ejected');
  });

  it('a client\'s cancellations of routed streams count against its own reset budget (stream_reset_burst 200)', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    session.on('error', () => {});
    await new Promise((resolve) => session.once('connect', resolve));
    const routedBefore = proxy.records.length;
    let cancelled = 0;
    while (!session.closed && !session.destroyed && cancelled < 1_000) {
      const stream = session.request({ ':method': 'POST', ':path': '/switchyard.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => {});
      stream.end(SLOW_UNARY);
      // Long enough for the stream to be routed before its reset arrives.
      await new Promise((resolve) => setTimeout(resolve, 2));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      cancelled++;
    }
    // nghttp2's own mitigation says INTERNAL_ERROR; the guard's, ENHANCE_YOUR_CALM.
    assert.ok([http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, http2.constants.NGHTTP2_INTERNAL_ERROR].includes(await goaway));
    assert.ok(cancelled < 400, `disconnected after ${cancelled} cancellations`);
    await waitFor(() => proxy.records.length > routedBefore + 100, 'the routed streams\' records');
    session.destroy();
  });
});
