import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoServer, type EchoResponse, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startProxy, unary, waitFor } from '../helpers/harness.ts';

const HEALTH = { interval: '100ms', interval_jitter: '20ms', timeout: '80ms', unhealthy_threshold: 1, healthy_threshold: 1 };

it('rolling restart of all three backends, each draining gracefully: zero failed RPCs', async () => {
  let backends: EchoServerHandle[] = await Promise.all([0, 1, 2].map((i) => startEchoServer({ name: `pod-${i}`, health: true })));
  const ports = backends.map((b) => b.port);
  const proxy = await startProxy({
    clusters: [{ name: 'echo', endpoints: ports.map((port) => ({ address: '127.0.0.1', port })), health_check: HEALTH }],
    routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
  });
  const client = echoClient(`127.0.0.1:${proxy.port}`);
  const served = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const unaryWorker = async () => {
    while (running) {
      try {
        const { response } = await unary(client, { delay_ms: 2 });
        served.set(response.backend, (served.get(response.backend) ?? 0) + 1);
      } catch (error) {
        failures.push(`unary ${(error as grpc.ServiceError).code}: ${(error as grpc.ServiceError).details}`);
      }
    }
  };
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
  const workers = [...Array.from({ length: 6 }, unaryWorker), unaryWorker, streamWorker, streamWorker];
  try {
    await waitFor(() => backends.every((b) => (served.get(b.name) ?? 0) > 50), 'traffic on all three pods');
    for (let i = 0; i < 3; i++) {
      const old = backends[i]!;
      // The pod's own graceful shutdown: NOT_SERVING, wait for balancers to notice, then stop.
      old.setServing(false);
      // Under this load a pod still in rotation serves an RPC every few ms: a quiet poll means it is out.
      let last = served.get(old.name) ?? 0;
      await waitFor(() => {
        const now = served.get(old.name) ?? 0;
        const quiet = now === last && old.active === 0;
        last = now;
        return quiet;
      }, `${old.name} to stop getting RPCs`, 5_000);
      await old.close();
      const fresh = await startEchoServer({ name: old.name, port: ports[i], health: true });
      backends = backends.map((b) => (b === old ? fresh : b));
      const before = served.get(old.name) ?? 0;
      await waitFor(() => (served.get(old.name) ?? 0) > before + 50, `the new ${old.name} to take traffic`, 10_000);
    }
  } finally {
    running = false;
    await Promise.all(workers);
    client.close();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  }
  assert.deepEqual(failures, []);
});
