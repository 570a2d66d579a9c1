import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { echoClient, expectStatus, startProxy, unary, waitFor } from '../helpers/harness.ts';
import { spawnEchoProcess, type EchoProcess } from '../helpers/echo-process.ts';
import { steadyLoad } from '../helpers/load.ts';

it('kill -9 one of three backends under load: zero failed RPCs; it is ejected, then re-admitted when it returns', async () => {
  const backends: EchoProcess[] = await Promise.all(['pod-0', 'pod-1', 'pod-2'].map((name) => spawnEchoProcess(name)));
  const proxy = await startProxy({
    clusters: [{
      name: 'echo',
      endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port })),
      outlier_detection: { consecutive_gateway_errors: 3, base_ejection_time: '300ms' },
    }],
    routes: [{ match: { prefix: '/' }, cluster: 'echo', retry_policy: { retry_on: ['unavailable', 'reset', 'connect_failure', 'refused_stream'], num_retries: 2 } }],
  });
  const client = echoClient(`127.0.0.1:${proxy.port}`);
  const load = steadyLoad(client, { concurrency: 8, request: { delay_ms: 5 } });
  const others = () => load.count('pod-0') + load.count('pod-2');
  let victim = backends[1]!;
  try {
    await waitFor(() => load.count('pod-1') > 100, 'traffic on every pod');
    await victim.kill('SIGKILL');
    const atKill = load.count('pod-1');
    const othersAtKill = others();
    // Answers the pod wrote before it died may still be on their way: at most one per RPC in flight.
    await waitFor(() => others() > othersAtKill + 50, 'traffic on the other pods');
    const afterKill = load.count('pod-1');
    assert.ok(afterKill - atKill <= 8, `${afterKill - atKill} answers from the dead pod arrived after it died, with 8 RPCs in flight`);
    await waitFor(() => others() > othersAtKill + 550, 'traffic to go on without it');
    assert.equal(load.count('pod-1'), afterKill, 'the dead pod served nothing');

    // It comes back on the same port: traffic returns once its backoff or ejection ends.
    victim = await spawnEchoProcess('pod-1', victim.port);
    await waitFor(() => load.count('pod-1') > afterKill + 50, 'the pod to be re-admitted', 15_000);
  } finally {
    await load.stop();
    client.close();
    await proxy.close();
    await Promise.all([victim, backends[0]!, backends[2]!].map((b) => b.kill()));
  }
  assert.deepEqual(load.failures, []);
});

it('without retries, RPCs in flight on a backend that is killed end UNAVAILABLE (which clients retry), not INTERNAL', async () => {
  const backend = await spawnEchoProcess('pod-0');
  const proxy = await startProxy({
    clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: backend.port }] }],
    routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
  });
  const client = echoClient(`127.0.0.1:${proxy.port}`);
  try {
    await unary(client, {});
    const inFlight = expectStatus(unary(client, { delay_ms: 10_000 }));
    const stream = client.ServerStream({ count: 1_000, delay_ms: 20 });
    let messages = 0;
    stream.on('data', () => messages++);
    stream.on('error', () => {});
    const streamStatus = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    await waitFor(() => messages > 3, 'the stream to be under way');
    await backend.kill('SIGKILL');
    const unaryError = await inFlight;
    const { code, details } = await streamStatus;
    assert.deepEqual([unaryError.code, code], [grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
    assert.match(details, /lost its connection before a gRPC status/);
  } finally {
    client.close();
    await proxy.close();
  }
});
