/**
 * The Gateway API conformance suite's HTTPRoute cases that a gRPC client
 * over HTTP/2 can exercise, ported as the GRPCRoute cases are (see
 * gateway-conformance-grpcroute.test.ts): path, header and method matching,
 * precedence across routes, backends that cannot be resolved, cross-namespace
 * references and ReferenceGrants, response header edits, HTTPRoute/GRPCRoute
 * conflicts and observedGeneration. Requests are gRPC calls, so paths are
 * gRPC method paths; where the suite expects HTTP 500 for a backend that
 * cannot be resolved, a gRPC client gets UNAVAILABLE. The cases that need an
 * HTTP/1.1 listener (redirects, rewrites, query parameters, plain GETs, HTTP
 * status codes) are listed in docs/gateway-api.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { endpointSlice } from '../helpers/fake-kube-api.ts';
import {
  CONTROLLER, INFRA, SERVICE_PORT, backend, expectEventually, grpcRoute, httpRoute, routeMustBeAccepted, startConformanceEnv, type ConformanceEnv,
} from '../helpers/gateway/conformance-env.ts';
import { waitFor } from '../helpers/harness.ts';

const ECHO = '/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';
const APP_NS = 'gateway-conformance-app-backend';

type Conditions = Record<string, { status: string; reason: string; observedGeneration?: number }>;

function parentConditions(env: ConformanceEnv, kind: 'GRPCRoute' | 'HTTPRoute', name: string, namespace = INFRA): Conditions {
  const route = env.kube.get(kind, name, namespace);
  const parent = ((route?.status as { parents?: { controllerName: string; conditions: ({ type: string } & Conditions[string])[] }[] } | undefined)?.parents ?? []).find((p) => p.controllerName === CONTROLLER);
  return Object.fromEntries((parent?.conditions ?? []).map((c) => [c.type, c]));
}

async function conditionsBecome(env: ConformanceEnv, kind: 'GRPCRoute' | 'HTTPRoute', name: string, wanted: Record<string, string>, namespace = INFRA): Promise<Conditions> {
  let conditions: Conditions = {};
  await waitFor(() => {
    conditions = parentConditions(env, kind, name, namespace);
    return Object.entries(wanted).every(([type, value]) => `${conditions[type]?.status} ${conditions[type]?.reason}` === value);
  }, `${kind} ${name}: ${JSON.stringify(wanted)} (has ${JSON.stringify(conditions)})`);
  return conditions;
}

describe('Gateway API conformance: HTTPRoute over HTTP/2', () => {
  let env: ConformanceEnv;
  before(async () => {
    env = await startConformanceEnv();
  });
  after(async () => {
    await env.close();
  });

  test('HTTPRouteExactPathMatching: exact paths pick the backend; other paths are UNIMPLEMENTED', async () => {
    const route = httpRoute('exact-matching', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [{ path: { type: 'Exact', value: `${ECHO}/Echo` } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ path: { type: 'Exact', value: `${ECHO}/EchoTwo` } }], backendRefs: [backend('grpc-infra-backend-v2')] },
      ],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'HTTPRoute', 'exact-matching');
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'Echo');
      await expectEventually(client, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v2' }, 'EchoTwo');
      await expectEventually(client, 'EchoThree', {}, { code: status.UNIMPLEMENTED }, 'EchoThree');
    } finally {
      env.remove(route);
    }
  });

  test('HTTPRouteMatching and HTTPRouteMethodMatching: prefixes by whole segments, headers, :method, precedence across rules', async () => {
    const route = httpRoute('matching', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: ECHO } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ path: { type: 'PathPrefix', value: `${ECHO}/` }, headers: [{ name: 'version', value: 'two' }] }], backendRefs: [backend('grpc-infra-backend-v2')] },
        { matches: [{ path: { type: 'PathPrefix', value: `${ECHO}/EchoThree` }, method: 'POST' }], backendRefs: [backend('grpc-infra-backend-v3')] },
        { matches: [{ path: { type: 'PathPrefix', value: `${ECHO}/EchoTwo` }, method: 'GET' }], backendRefs: [backend('grpc-infra-backend-v3')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/gateway_api_conformance' } }], backendRefs: [backend('grpc-infra-backend-v3')] },
      ],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'HTTPRoute', 'matching');
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'the service prefix');
      await expectEventually(client, 'Echo', { version: 'two' }, { backend: 'grpc-infra-backend-v2' }, 'a header match outranks none');
      await expectEventually(client, 'EchoThree', {}, { backend: 'grpc-infra-backend-v3' }, 'the longer prefix with POST');
      await expectEventually(client, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v1' }, 'GET never matches a gRPC call');
    } finally {
      env.remove(route);
    }
  });

  test('HTTPRouteMatchingAcrossRoutes: precedence spans routes and hostnames', async () => {
    const routes = [
      httpRoute('matching-part1', { parentRefs: [{ name: 'same-namespace' }], hostnames: ['example.com', 'example.net'], rules: [{ matches: [{ path: { type: 'PathPrefix', value: ECHO } }], backendRefs: [backend('grpc-infra-backend-v1')] }] }),
      httpRoute('matching-part2', { parentRefs: [{ name: 'same-namespace' }], hostnames: ['example.com'], rules: [{ matches: [{ path: { type: 'Exact', value: `${ECHO}/EchoTwo` } }], backendRefs: [backend('grpc-infra-backend-v2')] }] }),
    ];
    env.apply(...routes);
    try {
      for (const route of routes) await routeMustBeAccepted(env.kube, 'HTTPRoute', route.metadata!.name!);
      const com = await env.client('same-namespace', 'example.com');
      const net = await env.client('same-namespace', 'example.net');
      await expectEventually(com, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'example.com Echo');
      await expectEventually(com, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v2' }, 'example.com EchoTwo: exact beats prefix across routes');
      await expectEventually(net, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v1' }, 'example.net EchoTwo');
      await expectEventually(await env.client('same-namespace', 'example.org'), 'Echo', {}, { code: status.UNIMPLEMENTED }, 'example.org');
    } finally {
      env.remove(...routes);
    }
  });

  test('HTTPRouteInvalidNonExistentBackendRef: ResolvedRefs False BackendNotFound, and its share answered UNAVAILABLE', async () => {
    const route = httpRoute('invalid-nonexistent-backend-ref', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [{ name: 'nonexistent', port: SERVICE_PORT }] }] });
    env.apply(route);
    try {
      const conditions = await conditionsBecome(env, 'HTTPRoute', 'invalid-nonexistent-backend-ref', { Accepted: 'True Accepted', ResolvedRefs: 'False BackendNotFound' });
      assert.equal(conditions.ResolvedRefs!.observedGeneration, 1);
      await expectEventually(await env.client('same-namespace'), 'Echo', {}, { code: status.UNAVAILABLE }, 'no backend');
    } finally {
      env.remove(route);
    }
  });

  test('HTTPRouteInvalidCrossNamespaceBackendRef and HTTPRouteReferenceGrant: RefNotPermitted until a ReferenceGrant allows it', async () => {
    env.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: APP_NS } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'app-backend-v1', namespace: APP_NS }, spec: { ports: [{ name: 'grpc', port: SERVICE_PORT, protocol: 'TCP' }] } },
    );
    const v1Slice = env.kube.get('EndpointSlice', 'grpc-infra-backend-v1-abcde', INFRA)!;
    env.kube.apply(endpointSlice('app-backend-v1-abcde', 'app-backend-v1', ['127.0.1.1'], { namespace: APP_NS, ports: v1Slice.ports as never }));
    const route = httpRoute('reference-grant', { parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [{ name: 'app-backend-v1', namespace: APP_NS, port: SERVICE_PORT }] }] });
    const grant = { apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'reference-grant', namespace: APP_NS }, spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: INFRA }], to: [{ group: '', kind: 'Service', name: 'app-backend-v1' }] } };
    env.apply(route);
    try {
      await conditionsBecome(env, 'HTTPRoute', 'reference-grant', { Accepted: 'True Accepted', ResolvedRefs: 'False RefNotPermitted' });
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { code: status.UNAVAILABLE }, 'not permitted');
      env.apply(grant);
      await conditionsBecome(env, 'HTTPRoute', 'reference-grant', { ResolvedRefs: 'True ResolvedRefs' });
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'granted');
    } finally {
      env.remove(route, grant);
    }
  });

  test('HTTPRouteResponseHeaderModifier: the client receives the edited response headers', async () => {
    const route = httpRoute('response-header-modifier', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [{ filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'set-value' }], add: [{ name: 'X-Header-Add', value: 'add-value' }] } }], backendRefs: [backend('grpc-infra-backend-v1')] }],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'HTTPRoute', 'response-header-modifier');
      const result = await expectEventually(await env.client('same-namespace'), 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'Echo');
      assert.deepEqual(result.headers['x-header-set'], ['set-value']);
      assert.deepEqual(result.headers['x-header-add'], ['add-value']);
    } finally {
      env.remove(route);
    }
  });

  test('an HTTPRoute and a GRPCRoute claiming one hostname on a listener: the older is accepted, the newer refused', async () => {
    const older = grpcRoute('claims-first', { parentRefs: [{ name: 'same-namespace' }], hostnames: ['shared.example.com'], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] }, INFRA, { creationTimestamp: '2026-01-01T00:00:00Z' });
    const newer = httpRoute('claims-second', { parentRefs: [{ name: 'same-namespace' }], hostnames: ['*.example.com'], rules: [{ backendRefs: [backend('grpc-infra-backend-v2')] }] }, INFRA, { creationTimestamp: '2026-02-01T00:00:00Z' });
    env.apply(newer, older);
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'claims-first');
      await conditionsBecome(env, 'HTTPRoute', 'claims-second', { Accepted: 'False NotAllowedByListeners' });
      await expectEventually(await env.client('same-namespace', 'shared.example.com'), 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'the older route serves');
      await expectEventually(await env.client('same-namespace', 'other.example.com'), 'Echo', {}, { code: status.UNIMPLEMENTED }, 'the refused route serves nothing');
    } finally {
      env.remove(older, newer);
    }
  });

  test('HTTPRouteObservedGenerationBump: a spec change moves every condition to the new generation', async () => {
    const spec = (to: 'grpc-infra-backend-v1' | 'grpc-infra-backend-v2') => ({ parentRefs: [{ name: 'same-namespace' }], rules: [{ backendRefs: [backend(to)] }] });
    env.apply(httpRoute('observed-generation-bump', spec('grpc-infra-backend-v1')));
    try {
      await routeMustBeAccepted(env.kube, 'HTTPRoute', 'observed-generation-bump');
      const updated = env.kube.apply(httpRoute('observed-generation-bump', spec('grpc-infra-backend-v2')));
      assert.equal((updated.metadata as { generation: number }).generation, 2);
      await routeMustBeAccepted(env.kube, 'HTTPRoute', 'observed-generation-bump');
      const conditions = parentConditions(env, 'HTTPRoute', 'observed-generation-bump');
      assert.deepEqual(Object.values(conditions).map((c) => c.observedGeneration), [2, 2]);
      await expectEventually(await env.client('same-namespace'), 'Echo', {}, { backend: 'grpc-infra-backend-v2' }, 'after the change');
      // A status write does not move the generation, and an unchanged status is not written again.
      const gatewayApi = env.controlPlane.gatewayApi!;
      await waitFor(() => gatewayApi.pendingStatus === 0, 'status writes to finish');
      const writes = env.kube.patches.length;
      const translations = gatewayApi.translations;
      const same = env.kube.apply(httpRoute('observed-generation-bump', spec('grpc-infra-backend-v2')));
      assert.equal((same.metadata as { generation: number }).generation, 2);
      await waitFor(() => gatewayApi.translations > translations, 'the control plane to see the re-applied route');
      assert.equal(gatewayApi.pendingStatus, 0);
      assert.deepEqual(env.kube.patches.slice(writes).map((p) => p.name), []);
    } finally {
      env.remove(httpRoute('observed-generation-bump', {}));
    }
  });
});
