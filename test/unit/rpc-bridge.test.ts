/**
 * The bridge's contract, without sockets: retries and the replay buffer,
 * response holding, per-try timeouts, cancellation, flow control and the
 * failure catalogue, played with fake streams and pools (test/helpers/
 * fake-streams.ts). Any HTTP/2 implementation under the proxy is held to the
 * same behaviour by the end-to-end tests; these say what the bridge does.
 */
import { afterEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Status } from '../../src/grpc/status.ts';
import { dataPath, grpcMessage, type DataPath } from '../helpers/data-path.ts';
import { StreamRefusedError } from '../../src/http2/client-connection.ts';

const UNARY = '/shop.v1.Orders/Get';
const endpoints = (count: number) => Array.from({ length: count }, (_, i) => ({ address: '10.0.0.1', port: 9000 + i }));
const RETRY = { retry_on: ['unavailable', 'reset', 'connect_failure'], num_retries: 2, base_interval: '1ms', max_interval: '1ms' };

function setup(options: { endpoints?: number; retry?: Record<string, unknown>; route?: Record<string, unknown>; cluster?: Record<string, unknown> } = {}): DataPath {
  return dataPath({
    clusters: [{ name: 'orders', endpoints: endpoints(options.endpoints ?? 2), ...options.cluster }],
    routes: [{ match: { prefix: '/' }, cluster: 'orders', ...(options.retry && { retry_policy: options.retry }), ...options.route }],
  });
}

let path: DataPath | undefined;
afterEach(() => {
  path?.close();
  path = undefined;
  mock.timers.reset();
});

describe('the bridge: answers pass through', () => {
  it('forwards a unary call: request bytes and half-close up, headers, message and trailers down; the endpoint hears OK', async () => {
    path = setup();
    const { downstream, finished } = path.call(UNARY, { body: grpcMessage('ping') });
    const upstream = path.pools.opened[0]!;
    assert.deepEqual(upstream.requestBody, grpcMessage('ping'));
    assert.equal(upstream.ended, true);
    upstream.respond();
    upstream.data(grpcMessage('pong'));
    upstream.trailers(Status.OK);
    assert.equal(downstream.grpcStatus, Status.OK);
    assert.deepEqual(Buffer.concat(downstream.body), grpcMessage('pong'));
    const record = await finished;
    assert.equal(record.status, Status.OK);
    assert.equal(record.reason, undefined);
    assert.deepEqual(path.attempts.map((a) => a.outcome), [{ status: Status.OK, failure: undefined }]);
  });

  it('a request that ended before the bridge subscribed still half-closes the backend (a call with no message)', () => {
    path = setup();
    path.call(UNARY);
    assert.equal(path.pools.opened[0]!.ended, true);
  });

  it('a trailers-only error is the attempt\'s outcome, passed to the client as it is, never a reset', async () => {
    path = setup();
    const { downstream, finished } = path.call(UNARY);
    path.pools.opened[0]!.answer(Status.NOT_FOUND, 'no such order');
    assert.equal(downstream.trailersOnly, true);
    assert.equal(downstream.grpcStatus, Status.NOT_FOUND);
    assert.equal(downstream.grpcMessage, 'no such order');
    assert.equal((await finished).reason, undefined);
    assert.deepEqual(path.attempts.map((a) => a.outcome), [{ status: Status.NOT_FOUND, failure: undefined }]);
  });
});

describe('the bridge: retries', () => {
  it('UNAVAILABLE in trailers after headers is retried on the other endpoint with the same request bytes', async () => {
    path = setup({ retry: RETRY });
    const { downstream, finished } = path.call(UNARY, { body: grpcMessage('order-7') });
    const first = path.pools.opened[0]!;
    first.respond();
    first.trailers(Status.UNAVAILABLE);
    assert.equal(downstream.headersSent, false, 'the failed attempt\'s headers were held back');
    await waitFor(() => path!.pools.opened.length === 2);
    const second = path.pools.opened[1]!;
    assert.notEqual(second, first);
    assert.deepEqual(second.requestBody, grpcMessage('order-7'), 'the request was replayed');
    assert.equal(second.ended, true);
    second.answer(Status.OK);
    const record = await finished;
    assert.equal(record.status, Status.OK);
    assert.equal(record.retries, 1);
  });

  it('a request larger than max_buffered_bytes is not replayed, so not retried: the client gets the failure', async () => {
    path = setup({ retry: { ...RETRY, max_buffered_bytes: 16 } });
    const { downstream, finished } = path.call(UNARY, { body: grpcMessage('x'.repeat(64)) });
    path.pools.opened[0]!.answer(Status.UNAVAILABLE, 'try later');
    assert.equal(downstream.grpcStatus, Status.UNAVAILABLE);
    assert.equal(downstream.grpcMessage, 'try later');
    assert.equal((await finished).retries, 0);
    assert.equal(path.pools.opened.length, 1);
  });

  it('no retry once a message reached the client: the response is committed', async () => {
    path = setup({ retry: RETRY });
    const { downstream, finished } = path.call(UNARY);
    const first = path.pools.opened[0]!;
    first.respond();
    // More than the 64 KiB held back with the headers: it must go to the client now.
    first.data(grpcMessage(Buffer.alloc(70 << 10)));
    assert.equal(downstream.headersSent, true);
    first.break({ rstCode: 0x2 });
    const record = await finished;
    assert.equal(path.pools.opened.length, 1);
    assert.equal(record.reason, 'upstream_reset');
    assert.equal(downstream.grpcStatus, Status.INTERNAL);
  });

  it('a refused stream (GOAWAY, REFUSED_STREAM, or refused locally) is retried without a policy and without charging the endpoint', async () => {
    path = setup();
    const { finished } = path.call(UNARY);
    path.pools.opened[0]!.break({ rstCode: 0x7, refused: true });
    await waitFor(() => path!.pools.opened.length === 2);
    path.pools.opened[1]!.answer(Status.OK);
    assert.equal((await finished).status, Status.OK);
    assert.deepEqual(path.attempts[0]!.outcome, { status: Status.UNAVAILABLE, failure: 'upstream_refused' });
  });

  it('a stream the connection would not open after a GOAWAY (refused: true) is a transparent retry too', async () => {
    path = setup();
    const pool = () => path!.pools.get('10.0.0.1:9000');
    pool().autoAccept = false;
    path.pools.get('10.0.0.1:9001').autoAccept = true;
    const { finished } = path.call(UNARY);
    pool().refuse(new StreamRefusedError('the connection is going away'));
    await waitFor(() => path!.pools.opened.length === 1);
    path.pools.opened[0]!.answer(Status.OK);
    assert.equal((await finished).status, Status.OK);
    assert.equal(path.attempts[0]!.outcome.failure, 'upstream_refused');
  });

  it('the retry budget stops a retry: the backend\'s answer goes through, and the reason says why it was not retried', async () => {
    path = setup({ retry: RETRY, cluster: { retry_budget: { budget_percent: 0, min_retry_concurrency: 0 } } });
    const { downstream, finished } = path.call(UNARY);
    path.pools.opened[0]!.answer(Status.UNAVAILABLE, 'overloaded backend');
    assert.equal(downstream.grpcMessage, 'overloaded backend');
    const record = await finished;
    assert.equal(record.reason, 'retry_budget_exhausted');
    assert.equal(path.pools.opened.length, 1);
  });
});

describe('the bridge: time limits', () => {
  it('the per-try timeout cancels the attempt, counts against the endpoint, and retries', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    path = setup({ retry: { ...RETRY, per_try_timeout: '100ms' } });
    const { finished } = path.call(UNARY);
    const first = path.pools.opened[0]!;
    mock.timers.tick(100);
    assert.equal(first.cancelled, true);
    mock.timers.tick(1);
    assert.equal(path.pools.opened.length, 2);
    path.pools.opened[1]!.answer(Status.OK);
    assert.equal((await finished).status, Status.OK);
    assert.equal(path.attempts[0]!.outcome.failure, 'per_try_timeout');
  });

  it('the route timeout ends the RPC DEADLINE_EXCEEDED (reason route_timeout) and cancels the attempt', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    path = setup({ route: { timeout: '200ms' } });
    const { downstream, finished } = path.call(UNARY);
    mock.timers.tick(200);
    assert.equal(downstream.grpcStatus, Status.DEADLINE_EXCEEDED);
    assert.equal(path.pools.opened[0]!.cancelled, true);
    assert.equal((await finished).reason, 'route_timeout');
    assert.equal(path.attempts[0]!.outcome.failure, 'abandoned');
  });
});

describe('the bridge: the client', () => {
  it('a client that resets the stream cancels the attempt and releases the endpoint (reason client_cancelled)', async () => {
    path = setup();
    const { downstream, finished } = path.call(UNARY, { open: true });
    downstream.cancel();
    const record = await finished;
    assert.equal(record.reason, 'client_cancelled');
    assert.equal(path.pools.opened[0]!.cancelled, true);
    const cluster = path.clusters.get('orders')!;
    assert.ok([...cluster.endpoints.values()].every((e) => e.activeRequests === 0));
    assert.equal(cluster.limits.activeRequests, 0);
  });

  it('a client that does not read pauses the backend until it drains; past stalled_stream_timeout both sides are reset', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    path = setup();
    const limits = { maxRequestMessageBytes: 1 << 20, maxResponseMessageBytes: 1 << 20, exposeUpstream: false, stalledStreamTimeoutMs: 1_000 };
    const first = path.call(UNARY, { limits });
    const upstream = path.pools.opened[0]!;
    upstream.respond();
    first.downstream.blocked = true;
    upstream.data(grpcMessage('a'));
    mock.timers.tick(5);
    upstream.data(grpcMessage('b'));
    assert.equal(upstream.paused, true, 'the backend is paused while the client does not read');
    mock.timers.tick(900);
    first.downstream.drain();
    assert.equal(upstream.paused, false);
    upstream.trailers(Status.OK);
    assert.equal((await first.finished).status, Status.OK);

    // A second call whose client never reads again: reset both ways after the timeout.
    const second = path.call(UNARY, { limits });
    const stalled = path.pools.opened[1]!;
    stalled.respond();
    second.downstream.blocked = true;
    stalled.data(grpcMessage('a'));
    mock.timers.tick(5);
    stalled.data(grpcMessage('b'));
    // The stall began with the first write the client did not take.
    mock.timers.tick(994);
    assert.equal(second.downstream.closed, false);
    mock.timers.tick(1);
    assert.equal(second.downstream.resetCode, 0x8);
    assert.equal(stalled.cancelled, true);
    assert.equal((await second.finished).reason, 'stalled_stream');
  });

  it('a request message over max_request_message_bytes ends the RPC before anything of it is forwarded', async () => {
    path = setup();
    const { downstream, finished } = path.call(UNARY, { open: true });
    // 5 bytes of prefix claiming 8 MiB (over the 4 MiB default).
    downstream.send(Buffer.from([0, 0, 0x80, 0, 0]));
    assert.equal(downstream.grpcStatus, Status.RESOURCE_EXHAUSTED);
    assert.equal(path.pools.opened[0]!.written.length, 0);
    assert.equal((await finished).reason, 'request_too_large');
  });
});

describe('the bridge: failures of its own', () => {
  it('no endpoint: UNAVAILABLE, reason no_healthy_endpoint, without naming an address', async () => {
    path = dataPath({ clusters: [{ name: 'orders', endpoints: [] }], routes: [{ match: { prefix: '/' }, cluster: 'orders' }] });
    const { downstream, finished } = path.call(UNARY);
    assert.equal(downstream.grpcStatus, Status.UNAVAILABLE);
    assert.match(downstream.grpcMessage ?? '', /cluster "orders" has no endpoints/);
    assert.equal((await finished).reason, 'no_healthy_endpoint');
  });

  it('a backend connection lost before a status: UNAVAILABLE to the client, the address only in the record', async () => {
    path = setup({ endpoints: 1 });
    const { downstream, finished } = path.call(UNARY);
    path.pools.opened[0]!.break({ connectionError: 'read ECONNRESET' });
    assert.equal(downstream.grpcStatus, Status.UNAVAILABLE);
    assert.equal(downstream.grpcMessage, 'upstream lost its connection before a gRPC status');
    const record = await finished;
    assert.equal(record.reason, 'upstream_reset');
    assert.match(record.error ?? '', /^upstream 10\.0\.0\.1:9000: connection failed: read ECONNRESET$/);
  });

  it('a cut connection (drain timeout) ends a committed response with UNAVAILABLE trailers', async () => {
    path = setup();
    const { downstream, finished } = path.call(UNARY);
    const upstream = path.pools.opened[0]!;
    upstream.respond();
    upstream.data(grpcMessage(Buffer.alloc(70 << 10)));
    downstream.events!.onCut('drain timeout');
    assert.equal(downstream.grpcStatus, Status.UNAVAILABLE);
    assert.equal(upstream.cancelled, true);
    assert.equal((await finished).reason, 'draining');
  });
});

/** Polls until `check` holds (retries start on the next timer turn). */
async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setImmediate(resolve));
  }
}
