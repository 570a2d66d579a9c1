/**
 * A Gateway's routes as a proxyless gRPC client sees them: @grpc/grpc-js-xds
 * (in a process of its own, through `switchyard agent`) dials
 * `xds:///echo`, the Listener the control plane makes of the Gateway
 * listener's hostname `echo`, and follows the GRPCRoute's weights. The
 * Kubernetes API is the fake one (no cluster runs here); the rest is real.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';
import { startControlPlane, type ControlPlane } from '../../src/xds/control-plane/control-plane.ts';
import { readTlsFiles } from '../../src/xds/control-plane/load.ts';
import { issueIdentity, makeTestPki, type TestPki } from '../helpers/certs.ts';
import { exitOf, logEntries, runCli } from '../helpers/cli.ts';
import { FakeKubeApi, endpointSlice } from '../helpers/fake-kube-api.ts';
import { CONTROLLER, gatewayClass, gateway, grpcRoute, routeMustBeAccepted } from '../helpers/gateway/conformance-env.ts';
import { waitFor } from '../helpers/harness.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { startXdsEchoClient, type XdsEchoClient } from '../helpers/xds-echo-client.ts';

const NS = 'shop';
const PODS = { 'echo-main': '127.0.3.1', 'echo-canary': '127.0.3.2' } as const;

describe('Gateway API for a proxyless gRPC client', () => {
  let pki: TestPki;
  let kube: FakeKubeApi;
  let backends: EchoServerHandle[];
  let controlPlane: ControlPlane;
  let agent: ChildProcess;
  let client: XdsEchoClient;

  before(async () => {
    pki = await makeTestPki();
    const port = await findPortFreeOnAll(Object.values(PODS));
    backends = await Promise.all(Object.entries(PODS).map(([name, host]) => startEchoServer({ name, host, port })));
    kube = await FakeKubeApi.start();
    kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    kube.apply(gatewayClass());
    for (const [name, ip] of Object.entries(PODS)) {
      kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports: [{ name: 'grpc', port: 50051 }] } });
      kube.apply(endpointSlice(`${name}-x`, name, [ip], { namespace: NS, ports: [{ name: 'grpc', port, protocol: 'TCP' }] }));
    }
    kube.apply(gateway('edge', [{ name: 'grpc', port: 8443, protocol: 'HTTP', hostname: 'echo' }], NS));
    kube.apply(grpcRoute('echo', {
      parentRefs: [{ name: 'edge' }],
      rules: [{ matches: [{ method: { service: 'switchyard.demo.v1.Echo' } }], backendRefs: [{ name: 'echo-main', port: 50051, weight: 3 }, { name: 'echo-canary', port: 50051, weight: 1 }] }],
    }, NS));
    const config = controlPlaneSchema.parse({
      server: { address: '127.0.0.1', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.caCert } },
      gateway_api: { controller_name: CONTROLLER, kubeconfig: await kube.writeKubeconfig(), addresses: [{ value: '127.0.0.1' }], lease: { retry: '200ms' } },
      authorization: { identities: [{ identity: 'spiffe://test/agent', node_ids: ['app-*'], clusters: ['*'], listeners: ['echo'] }] },
      debounce: '20ms',
    });
    controlPlane = await startControlPlane(await readTlsFiles(config, '/', '(test control plane)'), pino({ level: 'silent' }));
    const identity = await issueIdentity(pki, 'agent', { subject: '/CN=agent', san: 'URI:spiffe://test/agent' });
    const socket = path.join(pki.dir, 'agent.sock');
    agent = runCli(['agent', '--control-plane', `localhost:${controlPlane.port}`, '--ca', pki.caCert, '--cert', identity.cert, '--key', identity.key, '--socket', socket]);
    await logEntries(agent, (entry) => entry.msg === 'agent listening');
    const bootstrap = path.join(pki.dir, 'bootstrap.json');
    const { code, stderr } = await exitOf(runCli(['bootstrap', '--node-id', 'app-1', '--socket', socket, '--output', bootstrap]));
    assert.equal(code, 0, stderr);
    client = startXdsEchoClient(bootstrap);
  });

  after(async () => {
    await client?.close();
    if (agent) {
      const exited = exitOf(agent);
      agent.kill('SIGTERM');
      await exited;
    }
    await controlPlane?.close(0);
    await kube?.close();
    await Promise.all((backends ?? []).map((backend) => backend.close()));
    await pki?.cleanup();
  });

  test('xds:///echo follows the GRPCRoute: every RPC served, split 3:1 between the two backends', async (t) => {
    await routeMustBeAccepted(kube, 'GRPCRoute', 'echo', NS);
    await waitFor(async () => Object.keys((await client.run(20)).counts).length === 2, 'both backends to answer the proxyless client', 15_000);
    const window = await client.run(400);
    t.diagnostic(`400 RPCs: ${JSON.stringify(window.counts)}`);
    assert.equal(window.failures, 0, window.errors.join('; '));
    // gRPC's xDS client picks a weighted cluster at random per RPC: 3:1 is 300/100 on average, ±30 covers 3.4 standard deviations.
    assert.ok(Math.abs((window.counts['echo-main'] ?? 0) - 300) <= 30, JSON.stringify(window.counts));
  });
});
