import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { echoClient, startBackends, startProxy, waitFor, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';

const RETRY = { retry_on: ['unavailable', 'reset', 'connect_failure', 'refused_stream'], num_retries: 2, per_try_timeout: '200ms' };

describe('network faults between the proxy and one backend', () => {
  let backends: EchoServerHandle[];
  let faults: FaultProxy[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(3);
    faults = await Promise.all(backends.map((b) => startFaultProxy(b.port)));
    proxy = await startProxy({
      clusters: [{
        name: 'echo',
        endpoints: faults.map((f) => ({ address: '127.0.0.1', port: f.port })),
        keepalive_interval: '300ms',
        keepalive_timeout: '300ms',
        outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: '2s' },
      }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: RETRY }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(faults.map((f) => f.close()));
    await Promise.all(backends.map((b) => b.close()));
  });

  /** Runs unary load until `until` resolves; returns the failures. */
  async function underLoad(until: () => Promise<void>): Promise<readonly string[]> {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    const load = steadyLoad(client, { concurrency: 6, deadlineMs: 3_000 });
    try {
      await until();
    } finally {
      await load.stop();
      client.close();
    }
    return load.failures;
  }

  it('a blackholed backend: per-try timeouts retry elsewhere, outlier detection ejects it, zero failures', async () => {
    const hole = faults[0]!;
    const failures = await underLoad(async () => {
      await waitFor(() => (backends[0]!.calls.get('Unary') ?? 0) > 50, 'traffic through the fault proxy');
      // Requests vanish first, and the answers already under way come back; then nothing passes. A response
      // cut off after its headers reached the client could not be retried by any proxy, and would only
      // make this test depend on where the cut fell.
      hole.blackholeRequests = true;
      // Sent by the backend is not yet relayed: wait until the fault proxy has passed every byte of them on
      // (with requests swallowed, nothing more comes from the backend, not even PING acks).
      await waitFor(() => backends[0]!.active === 0 && performance.now() - hole.lastAnswerAt > 100, 'the answers under way to be relayed');
      hole.blackhole = true;
      const started = Date.now();
      await waitFor(() => Date.now() - started > 1_500, 'a while with the backend unreachable', 5_000);
      hole.blackhole = false;
      hole.blackholeRequests = false;
    });
    assert.deepEqual(failures, []);
    assert.ok(proxy.records.some((r) => r.retries > 0), 'some RPCs were retried');
  });

  it('a backend behind 100 ms of latency keeps serving, without errors', async () => {
    faults[1]!.latencyMs = 100;
    try {
      const before = backends[1]!.calls.get('Unary') ?? 0;
      const failures = await underLoad(() => waitFor(() => (backends[1]!.calls.get('Unary') ?? 0) > before + 20, 'calls through the slow path'));
      assert.deepEqual(failures, []);
    } finally {
      faults[1]!.latencyMs = 0;
    }
  });

  it('every connection to one backend reset at once: zero failures', async () => {
    const failures = await underLoad(async () => {
      const before = backends[2]!.calls.get('Unary') ?? 0;
      await waitFor(() => (backends[2]!.calls.get('Unary') ?? 0) > before + 50, 'traffic to the backend');
      faults[2]!.resetAll();
      const after = backends[2]!.calls.get('Unary') ?? 0;
      await waitFor(() => (backends[2]!.calls.get('Unary') ?? 0) > after + 50, 'traffic to come back on a new connection', 10_000);
    });
    assert.deepEqual(failures, []);
  });
});
