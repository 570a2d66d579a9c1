/**
 * The whole xDS path on loopback: Kubernetes EndpointSlices (a fake API
 * server: no cluster runs here) → `switchyard control-plane` → a Switchyard
 * proxy fed only by xDS, and a proxyless @grpc/grpc-js-xds client through
 * `switchyard agent`. Endpoint changes reach both under load with zero failed
 * RPCs, and both keep serving while the control plane is down.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';
import { startControlPlane, type ControlPlane } from '../../src/xds/control-plane/control-plane.ts';
import { readTlsFiles } from '../../src/xds/control-plane/load.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { FakeKubeApi, endpointSlice } from '../helpers/fake-kube-api.ts';
import { echoClient, unary, waitFor, type EchoClient } from '../helpers/harness.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';

const PODS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

/** Unary RPCs in a loop until stopped; counts answers per backend and every failure. */
function steadyLoad(client: EchoClient, concurrency = 4) {
  const perBackend = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const workers = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const { response } = await unary(client, {}, undefined, { deadline: Date.now() + 5_000 });
        perBackend.set(response.backend, (perBackend.get(response.backend) ?? 0) + 1);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  });
  return {
    perBackend,
    failures,
    /** Calls answered by `backend` from now on. */
    since(backend: string): () => number {
      const start = perBackend.get(backend) ?? 0;
      return () => (perBackend.get(backend) ?? 0) - start;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('xDS end to end', () => {
  let pki: TestPki;
  let proxyIdentity: TestIdentity;
  let kube: FakeKubeApi;
  let backends: EchoServerHandle[];
  let port: number;
  let controlPlane: ControlPlane;
  let controlPlanePort: number;
  let proxy: SecureProxy;
  let client: EchoClient;

  const slice = (pods: readonly string[], terminating: readonly string[] = []) =>
    endpointSlice('echo-abc', 'echo', [
      ...pods.map((ip, i) => ({ ip, zone: `zone-${i % 2}` })),
      ...terminating.map((ip) => ({ ip, ready: false, serving: true, terminating: true })),
    ], { namespace: 'shop', ports: [{ name: 'grpc', port, protocol: 'TCP' }] });

  const startPlane = async (kubeconfig: string, atPort: number) => {
    const config = controlPlaneSchema.parse({
      server: { address: '127.0.0.1', port: atPort, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.caCert } },
      clusters: [{ name: 'echo', kubernetes: { namespace: 'shop', service: 'echo', port: 'grpc', kubeconfig } }],
      route_configs: [{ name: 'main', routes: [{ match: { prefix: '/' }, cluster: 'echo' }] }],
      listeners: [{ name: 'echo', route_config: 'main' }],
      authorization: {
        identities: [
          { identity: 'spiffe://test/proxy', node_ids: ['proxy-*'], clusters: ['*'], listeners: ['*'] },
          { identity: 'spiffe://test/agent', node_ids: ['app-*'], clusters: ['echo'], listeners: ['echo'] },
        ],
      },
      debounce: '50ms',
    });
    return startControlPlane(await readTlsFiles(config, '/', '(test control plane)'), pino({ level: 'silent' }));
  };
  let kubeconfig: string;

  before(async () => {
    pki = await makeTestPki();
    proxyIdentity = await issueIdentity(pki, 'proxy', { subject: '/CN=proxy', san: 'URI:spiffe://test/proxy' });
    port = await findPortFreeOnAll(PODS);
    backends = await Promise.all(PODS.map((host, i) => startEchoServer({ name: `pod-${i}`, host, port })));
    kube = await FakeKubeApi.start();
    kube.apply(slice(PODS));
    kubeconfig = await kube.writeKubeconfig();
    controlPlane = await startPlane(kubeconfig, 0);
    controlPlanePort = controlPlane.port;
    proxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true }],
      xds: {
        server: `localhost:${controlPlanePort}`,
        tls: { ca_file: pki.caCert, cert_file: proxyIdentity.cert, key_file: proxyIdentity.key },
        node_id: 'proxy-1',
        route_config: 'main',
      },
      drain: { delay: '1ms', timeout: '2s' },
    });
    client = echoClient(`127.0.0.1:${proxy.port}`);
  });

  after(async () => {
    client.close();
    await proxy.close();
    await controlPlane.close(0);
    await kube.close();
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
  });

  test('the proxy, fed only by xDS, spreads RPCs over the three pods', async () => {
    await waitFor(() => proxy.proxy.clusters.get('echo')?.endpoints.size === 3, 'the proxy to learn the three pods');
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const { response } = await unary(client, {});
      counts.set(response.backend, (counts.get(response.backend) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [10, 10, 10]);
  });

  test('a pod removed and added at the source reaches the proxy within a second under load, zero failed RPCs', async (t) => {
    const load = steadyLoad(client);
    try {
      await waitFor(() => load.perBackend.size === 3, 'load on every pod');
      // pod-2 starts terminating: it finishes what it has and gets no new RPCs.
      let changedAt = performance.now();
      kube.apply(slice(PODS.slice(0, 2), [PODS[2]!]));
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'the proxy to drain pod-2', 1_000);
      const removalMs = performance.now() - changedAt;
      const toPod2 = load.since('pod-2');
      await waitFor(() => (load.perBackend.get('pod-0') ?? 0) > 50, 'more load');
      assert.equal(toPod2(), 0, 'no RPC reaches a draining pod');

      changedAt = performance.now();
      kube.apply(slice(PODS));
      const backToPod2 = load.since('pod-2');
      await waitFor(() => backToPod2() > 0, 'pod-2 to take RPCs again', 1_000);
      const additionMs = performance.now() - changedAt;
      await load.stop();
      assert.deepEqual(load.failures, []);
      t.diagnostic(`source → proxy: removal ${removalMs.toFixed(0)} ms, addition ${additionMs.toFixed(0)} ms`);
      assert.ok(removalMs < 1_000 && additionMs < 1_000, `removal ${removalMs.toFixed(0)} ms, addition ${additionMs.toFixed(0)} ms`);
    } finally {
      await load.stop();
    }
  });

  test('with the control plane down the proxy keeps serving; restarted, changes flow again', async () => {
    const load = steadyLoad(client);
    try {
      await controlPlane.close(0);
      await waitFor(() => proxy.proxy.xds?.status().state !== 'connected', 'the proxy to notice');
      const during = load.since('pod-1');
      await waitFor(() => during() > 30, 'RPCs during the outage');
      // A change made while the control plane is down waits for it.
      kube.apply(slice([PODS[0]!, PODS[2]!]));
      controlPlane = await startPlane(kubeconfig, controlPlanePort);
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'the change to arrive after the restart', 15_000);
      await load.stop();
      assert.deepEqual(load.failures, []);
    } finally {
      await load.stop();
    }
  });
});
