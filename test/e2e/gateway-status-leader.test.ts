/**
 * Gateway API status writing with several control-plane replicas, against
 * the fake Kubernetes API (no cluster runs here): one replica holds the Lease
 * and alone writes status; when it stops, another takes the Lease over and
 * writes what changed meanwhile; patches keep to the configured rate.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GatewayResourceProvider } from '../../src/xds/gateway-api/provider.ts';
import { FakeKubeApi } from '../helpers/fake-kube-api.ts';
import { waitFor } from '../helpers/harness.ts';
import { CONTROLLER, INFRA, backend, gatewayClass, grpcRoute, routeMustBeAccepted, sameNamespaceGateway } from '../helpers/gateway/conformance-env.ts';

describe('Gateway API status: one writer, elected by a Lease, rate-limited', () => {
  let kube: FakeKubeApi;
  const replicas: GatewayResourceProvider[] = [];
  const start = async (identity: string, ratePerSecond = 100) => {
    const replica = new GatewayResourceProvider({
      kubeConfig: kube.kubeConfig(),
      controllerName: CONTROLLER,
      addresses: [{ type: 'IPAddress', value: '127.0.0.1' }],
      lease: { namespace: 'switchyard', name: 'status', durationMs: 1_000, retryMs: 100 },
      identity,
      statusRatePerSecond: ratePerSecond,
    });
    replicas.push(replica);
    await replica.start();
    return replica;
  };

  before(async () => {
    kube = await FakeKubeApi.start();
    kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: INFRA } });
    kube.apply(gatewayClass());
    kube.apply(sameNamespaceGateway());
    kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'grpc-infra-backend-v1', namespace: INFRA }, spec: { ports: [{ name: 'grpc', port: 8080 }] } });
  });
  after(async () => {
    await Promise.all(replicas.map((replica) => replica.close()));
    await kube.close();
  });

  test('one replica leads and writes; when it stops, another takes the Lease over and writes the changes made meanwhile', async () => {
    const a = await start('replica-a');
    const b = await start('replica-b');
    await waitFor(() => a.isLeader || b.isLeader, 'a leader');
    assert.equal(a.isLeader && b.isLeader, false, 'never two leaders');
    const [leader, follower] = a.isLeader ? [a, b] : [b, a];
    kube.apply(grpcRoute('first', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] }));
    await routeMustBeAccepted(kube, 'GRPCRoute', 'first');
    const lease = kube.get('Lease', 'status', 'switchyard')!;
    assert.equal((lease.spec as { holderIdentity: string }).holderIdentity, leader === a ? 'replica-a' : 'replica-b');

    await leader.close();
    const second = grpcRoute('second', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] });
    kube.apply(second);
    await waitFor(() => follower.isLeader, 'the other replica to take the Lease', 5_000);
    await routeMustBeAccepted(kube, 'GRPCRoute', 'second');
    const taken = kube.get('Lease', 'status', 'switchyard')!.spec as { holderIdentity: string; leaseTransitions: number };
    assert.equal(taken.holderIdentity, follower === a ? 'replica-a' : 'replica-b');
    assert.ok(taken.leaseTransitions >= 1);
    await follower.close();
  });

  test('status patches keep to status_rate: 60 routes at 20 a second take more than 1.5 s', async (t) => {
    const replica = await start('replica-c', 20);
    await waitFor(() => replica.isLeader, 'the Lease', 5_000);
    await waitFor(() => replica.pendingStatus === 0, 'earlier status to be written');
    const from = kube.patches.length;
    for (let i = 0; i < 60; i++) kube.apply(grpcRoute(`bulk-${i}`, { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] }));
    await waitFor(() => kube.patches.slice(from).filter((p) => p.name.startsWith('bulk-') && p.status === 200).length >= 60, 'status on every route', 10_000);
    const times = kube.patches.slice(from).filter((p) => p.name.startsWith('bulk-')).map((p) => p.at);
    const span = Math.max(...times) - Math.min(...times);
    const busiestSecond = Math.max(...times.map((start) => times.filter((at) => at >= start && at < start + 1_000).length));
    t.diagnostic(`60 route status patches over ${span.toFixed(0)} ms, at most ${busiestSecond} in any second`);
    assert.ok(span > 1_500, `${span} ms`);
    assert.ok(busiestSecond <= 41, `${busiestSecond} in one second (burst 20 + 20 a second)`);
  });
});
