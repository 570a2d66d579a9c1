import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoResponse, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startProxy, waitFor } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

const HEALTH = { interval: '100ms', interval_jitter: '20ms', timeout: '80ms', unhealthy_threshold: 1, healthy_threshold: 1 };

it('rolling restart of all three backends, each draining gracefully: zero failed RPCs', async () => {
  let backends: EchoServerHandle[] = await Promise.all([0, 1, 2].map((i) => startEchoServer({ name: `pod-${i}`, health: true })));
  const ports = backends.map((b) => b.port);
  const proxy = await startProxy({
    clusters: [{ name: 'echo', endpoints: ports.map((port) => ({ address: '127.0.0.1', port })), health_check: HEALTH }],
    routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
  });
  const client = echoClient(`127.0.0.1:${proxy.port}`);
  const load = steadyLoad(client, { concurrency: 7, request: { delay_ms: 2 } });
  const failures: string[] = [];
  let running = true;
  // Long server streams: each must finish on the backend it started on, even while that one drains.
  const streamWorker = async () => {
    while (running) {
      const call = client.ServerStream({ count: 10, delay_ms: 30 });
      let messages = 0;
      try {
        for await (const _ of call as AsyncIterable<EchoResponse>) messages++;
        if (messages !== 10) failures.push(`stream ended after ${messages} messages`);
      } catch (error) {
        failures.push(`stream ${(error as grpc.ServiceError).code}: ${(error as grpc.ServiceError).details}`);
      }
    }
  };
  const workers = [streamWorker(), streamWorker()];
  try {
    await waitFor(() => backends.every((b) => load.count(b.name) > 50), 'traffic on all three pods');
    for (let i = 0; i < 3; i++) {
      const old = backends[i]!;
      // The pod's own graceful shutdown: NOT_SERVING, wait for balancers to notice, then stop.
      old.setServing(false);
      // Under this load a pod still in rotation serves an RPC every few ms: a quiet poll means it is out.
      let last = load.count(old.name);
      await waitFor(() => {
        const now = load.count(old.name);
        const quiet = now === last && old.active === 0;
        last = now;
        return quiet;
      }, `${old.name} to stop getting RPCs`, 5_000);
      await old.close();
      const fresh = await startEchoServer({ name: old.name, port: ports[i], health: true });
      backends = backends.map((b) => (b === old ? fresh : b));
      const before = load.count(old.name);
      await waitFor(() => load.count(old.name) > before + 50, `the new ${old.name} to take traffic`, 10_000);
    }
  } finally {
    running = false;
    await Promise.all([load.stop(), ...workers]);
    client.close();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  }
  assert.deepEqual([...load.failures.map((failure) => `unary ${failure}`), ...failures], []);
});
