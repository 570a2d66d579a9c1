/**
 * The environment the ported Gateway API conformance cases run in, all real
 * but the API server: a fake Kubernetes API (test/helpers/fake-kube-api.ts;
 * no cluster runs here) holding the suite's base objects, gRPC echo backends
 * on loopback addresses that the EndpointSlices point at, `switchyard
 * control-plane` watching the Gateway API, and, per Gateway, a Switchyard
 * proxy fed by that control plane over xDS (mTLS).
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import { controlPlaneSchema } from '../../../src/xds/control-plane/control-plane-schema.ts';
import { startControlPlane, type ControlPlane } from '../../../src/xds/control-plane/control-plane.ts';
import { readTlsFiles } from '../../../src/xds/control-plane/load.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../certs.ts';
import { FakeKubeApi, endpointSlice, type KubeObject } from '../fake-kube-api.ts';
import { findPortFreeOnAll } from '../ports.ts';
import { startSecureProxy, type SecureProxy } from '../secure-proxy.ts';
import { call, conformanceClient, startConformanceBackend, type CallResult, type ConformanceBackend, type ConformanceEchoClient, type EchoMethod } from './conformance-backend.ts';

export const INFRA = 'gateway-conformance-infra';
export const CONTROLLER = 'switchyard.io/gateway-controller';
export const CLASS = 'switchyard';
export const BACKENDS = ['grpc-infra-backend-v1', 'grpc-infra-backend-v2', 'grpc-infra-backend-v3'] as const;
/** Where each backend's one pod listens: a loopback address of its own, as pods have. */
const POD_IPS = ['127.0.1.1', '127.0.1.2', '127.0.1.3'];
export const SERVICE_PORT = 8080;

export interface ConformanceEnv {
  readonly kube: FakeKubeApi;
  readonly controlPlane: ControlPlane;
  /** The proxy serving `gateway` (started on first use, kept until close). */
  proxyFor(gateway: string, namespace?: string): Promise<SecureProxy>;
  /** A client through that proxy, with `authority` as :authority. */
  client(gateway: string, authority?: string, namespace?: string): Promise<ConformanceEchoClient>;
  apply(...objects: KubeObject[]): void;
  remove(...objects: KubeObject[]): void;
  close(): Promise<void>;
}

export function gatewayClass(): KubeObject {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: CLASS }, spec: { controllerName: CONTROLLER } };
}

/** The suite's `same-namespace` Gateway: one HTTP listener on port 80 taking routes from its own namespace. */
export function sameNamespaceGateway(): KubeObject {
  return gateway('same-namespace', [{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Same' } } }]);
}

export function gateway(name: string, listeners: Record<string, unknown>[], namespace = INFRA): KubeObject {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name, namespace }, spec: { gatewayClassName: CLASS, listeners } };
}

export function grpcRoute(name: string, spec: Record<string, unknown>, namespace = INFRA, extra: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name, namespace, ...extra }, spec };
}

export function httpRoute(name: string, spec: Record<string, unknown>, namespace = INFRA, extra: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace, ...extra }, spec };
}

/** A backendRef to one of the infra backends. */
export function backend(name: (typeof BACKENDS)[number], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, port: SERVICE_PORT, ...extra };
}

export async function startConformanceEnv(): Promise<ConformanceEnv> {
  const pki: TestPki = await makeTestPki();
  const proxyIdentity: TestIdentity = await issueIdentity(pki, 'proxy', { subject: '/CN=proxy', san: 'URI:spiffe://test/proxy' });
  const podPort = await findPortFreeOnAll(POD_IPS);
  const backends: ConformanceBackend[] = await Promise.all(BACKENDS.map((name, i) => startConformanceBackend(name, INFRA, POD_IPS[i]!, podPort)));
  const kube = await FakeKubeApi.start();
  kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: INFRA, labels: { 'kubernetes.io/metadata.name': INFRA } } });
  kube.apply(gatewayClass());
  kube.apply(sameNamespaceGateway());
  BACKENDS.forEach((name, i) => {
    kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: INFRA }, spec: { ports: [{ name: 'grpc', port: SERVICE_PORT, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' }] } });
    kube.apply(endpointSlice(`${name}-abcde`, name, [POD_IPS[i]!], { namespace: INFRA, ports: [{ name: 'grpc', port: podPort, protocol: 'TCP' }] }));
  });
  const kubeconfig = await kube.writeKubeconfig();
  const config = controlPlaneSchema.parse({
    server: { address: '127.0.0.1', port: 0, tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.caCert } },
    gateway_api: {
      controller_name: CONTROLLER,
      kubeconfig,
      addresses: [{ type: 'IPAddress', value: '127.0.0.1' }],
      lease: { namespace: 'switchyard', retry: '200ms' },
      status_rate: 200,
    },
    authorization: { identities: [{ identity: 'spiffe://test/proxy', node_ids: ['proxy-*'], clusters: ['*'], listeners: ['*'], route_configs: ['*'] }] },
    debounce: '20ms',
  });
  const controlPlane = await startControlPlane(await readTlsFiles(config, '/', '(conformance control plane)'), pino({ level: 'silent' }));

  const proxies = new Map<string, SecureProxy>();
  const clients = new Map<string, ConformanceEchoClient>();
  const env: ConformanceEnv = {
    kube,
    controlPlane,
    async proxyFor(name, namespace = INFRA) {
      const key = `${namespace}/${name}`;
      let proxy = proxies.get(key);
      if (!proxy) {
        proxy = await startSecureProxy({
          listeners: [{ name: 'gateway', port: 0, plaintext: true }],
          xds: {
            server: `localhost:${controlPlane.port}`,
            tls: { ca_file: pki.caCert, cert_file: proxyIdentity.cert, key_file: proxyIdentity.key },
            node_id: `proxy-${namespace}-${name}`,
            route_config: `gateway/${namespace}/${name}`,
          },
          drain: { delay: '1ms', timeout: '2s' },
        });
        proxies.set(key, proxy);
      }
      return proxy;
    },
    async client(name, authority, namespace = INFRA) {
      const proxy = await env.proxyFor(name, namespace);
      const key = `${namespace}/${name} ${authority ?? ''}`;
      let client = clients.get(key);
      if (!client) {
        client = conformanceClient(`127.0.0.1:${proxy.port}`, authority);
        clients.set(key, client);
      }
      return client;
    },
    apply(...objects) {
      for (const object of objects) kube.apply(object);
    },
    remove(...objects) {
      for (const object of objects) kube.delete(object.metadata!.name!, object.metadata!.namespace ?? INFRA, object.kind);
    },
    async close() {
      for (const client of clients.values()) client.close();
      await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
      await controlPlane.close(0);
      await kube.close();
      await Promise.all(backends.map((b) => b.close()));
      await pki.cleanup();
    },
  };
  return env;
}

/** What a case expects of one request: the backend that answers it, or a status code. */
export type Expected = { readonly backend: string } | { readonly code: number };

/**
 * As the suite's MakeRequestAndExpectEventuallyConsistentResponse: repeats the
 * request until it gets the expected answer, then requires the next three to
 * agree. Returns the last answer.
 */
export async function expectEventually(client: ConformanceEchoClient, method: EchoMethod, metadata: Record<string, string>, expected: Expected, what: string, timeoutMs = 10_000): Promise<CallResult> {
  const deadline = performance.now() + timeoutMs;
  let last: CallResult | undefined;
  for (;;) {
    last = await call(client, method, metadata);
    if (matches(last, expected)) break;
    if (performance.now() > deadline) assert.fail(`${what}: expected ${JSON.stringify(expected)}, last got ${describe(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (let i = 0; i < 3; i++) {
    last = await call(client, method, metadata);
    assert.ok(matches(last, expected), `${what}: answered ${describe(last)} after converging on ${JSON.stringify(expected)}`);
  }
  return last;
}

function matches(result: CallResult, expected: Expected): boolean {
  if ('backend' in expected) return result.code === 0 && result.response?.backend === expected.backend;
  return result.code === expected.code;
}

function describe(result: CallResult): string {
  return result.code === 0 ? `OK from ${result.response?.backend}` : `status ${result.code} (${result.details})`;
}

type RouteStatusView = { parents?: { controllerName: string; parentRef: Record<string, unknown>; conditions: { type: string; status: string; reason: string; observedGeneration?: number }[] }[] };

/** Waits until the route's status, for each parent of ours, says Accepted and ResolvedRefs at its current generation. */
export async function routeMustBeAccepted(kube: FakeKubeApi, kind: 'GRPCRoute' | 'HTTPRoute', name: string, namespace = INFRA, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const route = kube.get(kind, name, namespace);
    const generation = (route?.metadata as { generation?: number } | undefined)?.generation;
    const parents = ((route?.status as RouteStatusView | undefined)?.parents ?? []).filter((parent) => parent.controllerName === CONTROLLER);
    const ok = parents.length > 0 && parents.every((parent) => ['Accepted', 'ResolvedRefs'].every((type) => parent.conditions.some((c) => c.type === type && c.status === 'True' && c.observedGeneration === generation)));
    if (ok) return;
    if (performance.now() > deadline) assert.fail(`${kind} ${namespace}/${name} was not accepted: ${JSON.stringify(route?.status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the Gateway is Accepted and Programmed at its generation, with an address. */
export async function gatewayMustBeProgrammed(kube: FakeKubeApi, name: string, namespace = INFRA, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const gw = kube.get('Gateway', name, namespace);
    const generation = (gw?.metadata as { generation?: number } | undefined)?.generation;
    const status = gw?.status as { conditions?: { type: string; status: string; observedGeneration?: number }[]; addresses?: unknown[] } | undefined;
    const ok = ['Accepted', 'Programmed'].every((type) => status?.conditions?.some((c) => c.type === type && c.status === 'True' && c.observedGeneration === generation)) && (status?.addresses?.length ?? 0) > 0;
    if (ok) return status as Record<string, unknown>;
    if (performance.now() > deadline) assert.fail(`Gateway ${namespace}/${name} was not programmed: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
