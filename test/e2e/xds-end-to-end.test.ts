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
import { steadyLoad } from '../helpers/load.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { startSecureProxy, type SecureProxy } from '../helpers/secure-proxy.ts';
import { exitOf, logEntries, runCli } from '../helpers/cli.ts';
import { startXdsEchoClient, type Window, type XdsEchoClient } from '../helpers/xds-echo-client.ts';
import { startL4Balancer } from '../../src/demo/l4-balancer.ts';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';

const PODS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

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
  let agent: ChildProcess;
  let socket: string;
  let proxyless: XdsEchoClient;
  const extraClients: XdsEchoClient[] = [];

  /** A proxyless client: a bootstrap from `switchyard bootstrap` pointing at the agent's socket. */
  const startProxyless = async (nodeId: string) => {
    const file = path.join(pki.dir, `bootstrap-${nodeId}.json`);
    const { code, stderr } = await exitOf(runCli(['bootstrap', '--node-id', nodeId, '--socket', socket, '--output', file]));
    assert.equal(code, 0, stderr);
    return startXdsEchoClient(file);
  };
  /** Polls the proxyless client's load windows until `accept` takes one; returns the ms it took. */
  const untilWindow = async (accept: (window: Window) => boolean, what: string, timeoutMs = 1_000) => {
    const startedAt = performance.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const window = await proxyless.report();
      assert.equal(window.failures, 0, `proxyless failures: ${window.errors.join('; ')}`);
      if (accept(window)) return performance.now() - startedAt;
      if (performance.now() - startedAt > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
  };

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

    const agentIdentity = await issueIdentity(pki, 'agent', { subject: '/CN=agent', san: 'URI:spiffe://test/agent' });
    socket = path.join(pki.dir, 'agent.sock');
    agent = runCli(['agent', '--control-plane', `localhost:${controlPlanePort}`, '--ca', pki.caCert, '--cert', agentIdentity.cert, '--key', agentIdentity.key, '--socket', socket]);
    await logEntries(agent, (entry) => entry.msg === 'agent listening');
    proxyless = await startProxyless('app-1');
  });

  after(async () => {
    await Promise.all([proxyless, ...extraClients].map((c) => c.close()));
    const agentExit = exitOf(agent);
    agent.kill('SIGTERM');
    await agentExit;
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

  test('the proxyless client, through the agent, spreads RPCs over the three pods', async () => {
    // Round robin spreads evenly inside a locality, but grpc-js-xds picks the locality (zone-0 holds
    // pods 0 and 2, zone-1 pod 1) at random by weight: pod-1's share of 300 is binomial, mean 100,
    // standard deviation 8. The bound sits six deviations down; 80 failed about once in 150 runs.
    await waitFor(async () => Object.keys((await proxyless.run(30)).counts).length === 3, 'connections to every pod');
    const window = await proxyless.run(300);
    assert.equal(window.failures, 0, window.errors.join('; '));
    assert.deepEqual(Object.keys(window.counts).sort(), ['pod-0', 'pod-1', 'pod-2']);
    for (const count of Object.values(window.counts)) assert.ok(count >= 50, JSON.stringify(window.counts));
  });

  test('a pod removed and added at the source reaches the proxy within a second under load, zero failed RPCs', async (t) => {
    const load = steadyLoad(client);
    await proxyless.startLoad(4);
    try {
      await waitFor(() => load.perBackend.size === 3, 'load on every pod');
      await untilWindow((w) => Object.keys(w.counts).length === 3, 'proxyless load on every pod');
      // pod-2 starts terminating: it finishes what it has and gets no new RPCs.
      let changedAt = performance.now();
      kube.apply(slice(PODS.slice(0, 2), [PODS[2]!]));
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'the proxy to drain pod-2', 1_000);
      const removalMs = performance.now() - changedAt;
      const proxylessRemovalMs = await untilWindow((w) => (w.counts['pod-2'] ?? 0) === 0 && Object.keys(w.counts).length > 0, 'the proxyless client to stop calling pod-2') + removalMs;
      const toPod2 = load.since('pod-2');
      await waitFor(() => (load.perBackend.get('pod-0') ?? 0) > 50, 'more load');
      assert.equal(toPod2(), 0, 'no RPC reaches a draining pod');
      const later = await proxyless.report();
      assert.equal(later.counts['pod-2'] ?? 0, 0, 'nor from the proxyless client');

      changedAt = performance.now();
      kube.apply(slice(PODS));
      const backToPod2 = load.since('pod-2');
      await waitFor(() => backToPod2() > 0, 'pod-2 to take RPCs again', 1_000);
      const additionMs = performance.now() - changedAt;
      const proxylessAdditionMs = await untilWindow((w) => (w.counts['pod-2'] ?? 0) > 0, 'the proxyless client to call pod-2 again');
      await load.stop();
      const last = await proxyless.stopLoad();
      assert.deepEqual(load.failures, []);
      assert.equal(last.failures, 0);
      t.diagnostic(`source → proxy: removal ${removalMs.toFixed(0)} ms, addition ${additionMs.toFixed(0)} ms; source → proxyless (window-granular): removal ≤ ${proxylessRemovalMs.toFixed(0)} ms, addition ≤ ${(additionMs + proxylessAdditionMs).toFixed(0)} ms`);
      assert.ok(removalMs < 1_000 && additionMs < 1_000, `removal ${removalMs.toFixed(0)} ms, addition ${additionMs.toFixed(0)} ms`);
      assert.ok(proxylessRemovalMs < 1_000 && additionMs + proxylessAdditionMs < 1_000, 'proxyless within a second');
    } finally {
      await load.stop();
      await proxyless.stopLoad().catch(() => undefined);
    }
  });

  test('with the control plane down the proxy keeps serving; restarted, changes flow again', async () => {
    const load = steadyLoad(client);
    await proxyless.startLoad(4);
    try {
      await controlPlane.close(0);
      await waitFor(() => proxy.proxy.xds?.status().state !== 'connected', 'the proxy to notice');
      const during = load.since('pod-1');
      await waitFor(() => during() > 30, 'RPCs during the outage');
      // The app restarting during the outage (same node id) gets its last config from the agent's cache.
      const newcomer = await startProxyless('app-1');
      extraClients.push(newcomer);
      const served = await newcomer.run(30);
      assert.equal(served.failures, 0, served.errors.join('; '));
      assert.equal(Object.values(served.counts).reduce((a, b) => a + b, 0), 30);
      // A change made while the control plane is down waits for it.
      kube.apply(slice([PODS[0]!, PODS[2]!]));
      controlPlane = await startPlane(kubeconfig, controlPlanePort);
      await waitFor(() => proxy.proxy.clusters.get('echo')!.endpoints.size === 2, 'the change to arrive after the restart', 15_000);
      await untilWindow((w) => (w.counts['pod-1'] ?? 0) === 0 && Object.keys(w.counts).length > 0, 'the change to reach the proxyless client', 15_000);
      await load.stop();
      const last = await proxyless.stopLoad();
      assert.deepEqual(load.failures, []);
      assert.equal(last.failures, 0);
    } finally {
      await load.stop();
      await proxyless.stopLoad().catch(() => undefined);
    }
  });

  test('two replicas behind an L4 balancer: when the proxy\'s replica dies it moves to the other, and changes keep flowing', async () => {
    const replicas = [await startPlane(kubeconfig, 0), await startPlane(kubeconfig, 0)];
    const l4 = await startL4Balancer(replicas.map((replica) => replica.port));
    const haProxy = await startSecureProxy({
      listeners: [{ name: 'main', port: 0, plaintext: true }],
      xds: {
        server: `localhost:${l4.port}`,
        tls: { ca_file: pki.caCert, cert_file: proxyIdentity.cert, key_file: proxyIdentity.key },
        node_id: 'proxy-ha',
        route_config: 'main',
      },
      drain: { delay: '1ms', timeout: '2s' },
    });
    const haClient = echoClient(`127.0.0.1:${haProxy.port}`);
    const load = steadyLoad(haClient);
    try {
      const echo = () => haProxy.proxy.clusters.get('echo');
      await waitFor(() => echo()?.endpoints.size === 2, 'the HA proxy to get the endpoints');
      const serving = replicas.find((replica) => replica.server.streamCount > 0)!;
      const other = replicas.find((replica) => replica !== serving)!;
      await serving.close(0);
      await waitFor(() => other.server.streamCount > 0, 'the proxy to reconnect to the other replica', 10_000);
      kube.apply(slice(PODS));
      await waitFor(() => echo()!.endpoints.size === 3, 'a change through the surviving replica');
      await load.stop();
      assert.deepEqual(load.failures, []);
    } finally {
      await load.stop();
      haClient.close();
      await haProxy.close();
      await l4.close();
      await Promise.all(replicas.map((replica) => replica.close(0)));
    }
  });
});
