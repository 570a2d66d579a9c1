/**
 * `switchyard verify --gateway NAMESPACE/NAME` against the fake Kubernetes API
 * (no cluster runs here), with status written by the control plane's Gateway
 * API provider: PASS when the Gateway and its routes are accepted and
 * resolved; FAIL, naming the route and the reason, when one is not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GatewayResourceProvider } from '../../src/xds/gateway-api/provider.ts';
import { FakeKubeApi } from '../helpers/fake-kube-api.ts';
import { exitOf, runCli } from '../helpers/cli.ts';
import { waitFor } from '../helpers/harness.ts';
import { CONTROLLER, INFRA, backend, gatewayClass, grpcRoute, routeMustBeAccepted, sameNamespaceGateway } from '../helpers/gateway/conformance-env.ts';

async function verify(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runCli(['verify', '--quiet', ...args]);
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  const { code, stderr } = await exitOf(child);
  return { code, stdout, stderr };
}

describe('switchyard verify --gateway', () => {
  let kube: FakeKubeApi;
  let kubeconfig: string;
  let provider: GatewayResourceProvider;
  before(async () => {
    kube = await FakeKubeApi.start();
    kubeconfig = await kube.writeKubeconfig();
    kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: INFRA } });
    kube.apply(gatewayClass());
    kube.apply(sameNamespaceGateway());
    kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'grpc-infra-backend-v1', namespace: INFRA }, spec: { ports: [{ name: 'grpc', port: 8080 }] } });
    provider = new GatewayResourceProvider({
      kubeConfig: kube.kubeConfig(), controllerName: CONTROLLER, addresses: [{ type: 'IPAddress', value: '10.0.0.9' }],
      lease: { namespace: 'switchyard', name: 'status', retryMs: 100 }, identity: 'test', statusRatePerSecond: 100,
    });
    await provider.start();
  });
  after(async () => {
    await provider.close();
    await kube.close();
  });

  test('PASS: the Gateway is programmed and its route accepted and resolved', async () => {
    kube.apply(grpcRoute('good', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] }));
    await routeMustBeAccepted(kube, 'GRPCRoute', 'good');
    const { code, stdout } = await verify(['--gateway', `${INFRA}/same-namespace`, '--kubeconfig', kubeconfig]);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /gateway\s+PASS/);
    assert.match(stdout, /ok {3}GRPCRoute gateway-conformance-infra\/good: Accepted=True \(Accepted\)/);
    assert.match(stdout, /addresses 10\.0\.0\.9/);
  });

  test('FAIL: a route whose backend does not exist, named with the reason; a missing Gateway; bad usage', async () => {
    kube.apply(grpcRoute('broken', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [{ name: 'missing', port: 8080 }] }] }));
    await waitFor(() => JSON.stringify(kube.get('GRPCRoute', 'broken', INFRA)?.status ?? {}).includes('BackendNotFound'), 'the broken route\'s status');
    const { code, stdout } = await verify(['--gateway', `${INFRA}/same-namespace`, '--kubeconfig', kubeconfig, '--json']);
    assert.equal(code, 1);
    const report = JSON.parse(stdout) as { passed: boolean; checks: { check: string; result: string; problems: string[] }[] };
    assert.equal(report.checks[0]!.result, 'fail');
    assert.deepEqual(report.checks[0]!.problems, [`GRPCRoute ${INFRA}/broken: ResolvedRefs=False (BackendNotFound): backendRef missing:8080: Service ${INFRA}/missing not found`]);

    const missing = await verify(['--gateway', `${INFRA}/nope`, '--kubeconfig', kubeconfig]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /Gateway gateway-conformance-infra\/nope not found/);
    const usage = await verify(['--gateway', 'no-slash']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--gateway NAMESPACE\/NAME, got "no-slash"/);
  });
});
