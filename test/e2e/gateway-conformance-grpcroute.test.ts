/**
 * The Gateway API conformance suite's GRPCRoute cases (kubernetes-sigs/gateway-api
 * conformance/tests/grpcroute-*.yaml and their .go expectations), ported: the
 * same resources, written here in our own form, go into a fake Kubernetes API
 * (no cluster runs here) with EndpointSlices for real gRPC echo backends; the
 * control plane translates them and writes their status; every request goes
 * through a Switchyard proxy fed by that control plane over xDS, and the
 * backend that answers names itself. The header-modifier case also checks
 * the headers the backend received, which the upstream suite does not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { call } from '../helpers/gateway/conformance-backend.ts';
import { waitFor } from '../helpers/harness.ts';
import {
  INFRA, backend, expectEventually, gateway, gatewayMustBeProgrammed, grpcRoute, routeMustBeAccepted, startConformanceEnv, type ConformanceEnv,
} from '../helpers/gateway/conformance-env.ts';

const ECHO = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

describe('Gateway API conformance: GRPCRoute', () => {
  let env: ConformanceEnv;
  before(async () => {
    env = await startConformanceEnv();
  });
  after(async () => {
    await env.close();
  });

  test('GRPCExactMethodMatching: exact service and method pick the backend; another method is UNIMPLEMENTED', async () => {
    const route = grpcRoute('exact-matching', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [{ method: { service: ECHO, method: 'Echo' } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ method: { service: ECHO, method: 'EchoTwo' } }], backendRefs: [backend('grpc-infra-backend-v2')] },
      ],
    });
    env.apply(route);
    try {
      await gatewayMustBeProgrammed(env.kube, 'same-namespace');
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'exact-matching');
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'Echo');
      await expectEventually(client, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v2' }, 'EchoTwo');
      await expectEventually(client, 'EchoThree', {}, { code: status.UNIMPLEMENTED }, 'EchoThree');
    } finally {
      env.remove(route);
    }
  });

  test('GRPCRouteHeaderMatching: headers ANDed within a match, matches ORed, precedence by number of header matches', async () => {
    const header = (name: string, value: string) => ({ name, value });
    const route = grpcRoute('grpc-header-matching', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [{ headers: [header('version', 'one')] }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ headers: [header('version', 'two')] }], backendRefs: [backend('grpc-infra-backend-v2')] },
        { matches: [{ headers: [header('version', 'two'), header('color', 'orange')] }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ headers: [header('color', 'blue')] }, { headers: [header('color', 'green')] }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ headers: [header('color', 'red')] }, { headers: [header('color', 'yellow')] }], backendRefs: [backend('grpc-infra-backend-v2')] },
      ],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'grpc-header-matching');
      const client = await env.client('same-namespace');
      const cases: [Record<string, string>, string | number][] = [
        [{ Version: 'one' }, 'grpc-infra-backend-v1'],
        [{ Version: 'two' }, 'grpc-infra-backend-v2'],
        [{ Version: 'two', Color: 'orange' }, 'grpc-infra-backend-v1'],
        [{ Version: 'two', Color: 'blue' }, 'grpc-infra-backend-v2'],
        [{ Color: 'orange' }, status.UNIMPLEMENTED],
        [{ 'Some-Other-Header': 'one' }, status.UNIMPLEMENTED],
        [{ Color: 'blue' }, 'grpc-infra-backend-v1'],
        [{ Color: 'green' }, 'grpc-infra-backend-v1'],
        [{ Color: 'red' }, 'grpc-infra-backend-v2'],
        [{ Color: 'yellow' }, 'grpc-infra-backend-v2'],
        [{ Color: 'purple' }, status.UNIMPLEMENTED],
      ];
      for (const [metadata, expected] of cases) {
        await expectEventually(client, 'Echo', metadata, typeof expected === 'string' ? { backend: expected } : { code: expected }, JSON.stringify(metadata));
      }
    } finally {
      env.remove(route);
    }
  });

  test('GRPCRouteListenerHostnameMatching: listeners on one port told apart by hostname, wildcards included', async () => {
    const listener = (name: string, hostname: string) => ({ name, port: 80, protocol: 'HTTP', hostname, allowedRoutes: { namespaces: { from: 'Same' } } });
    const gw = gateway('grpcroute-listener-hostname-matching', [
      listener('listener-1', 'bar.com'), listener('listener-2', 'foo.bar.com'), listener('listener-3', '*.bar.com'), listener('listener-4', '*.foo.com'),
    ]);
    const parent = (sectionName: string) => ({ name: 'grpcroute-listener-hostname-matching', namespace: INFRA, sectionName });
    const routes = [
      grpcRoute('backend-v1', { parentRefs: [parent('listener-1')], rules: [{ backendRefs: [backend('grpc-infra-backend-v1')] }] }),
      grpcRoute('backend-v2', { parentRefs: [parent('listener-2')], rules: [{ backendRefs: [backend('grpc-infra-backend-v2')] }] }),
      grpcRoute('backend-v3', { parentRefs: [parent('listener-3'), parent('listener-4')], rules: [{ backendRefs: [backend('grpc-infra-backend-v3')] }] }),
    ];
    env.apply(gw, ...routes);
    try {
      const gwStatus = await gatewayMustBeProgrammed(env.kube, 'grpcroute-listener-hostname-matching');
      for (const route of routes) await routeMustBeAccepted(env.kube, 'GRPCRoute', route.metadata!.name!);
      const listeners = gwStatus.listeners as { name: string; attachedRoutes: number }[];
      assert.deepEqual(listeners.map((l) => [l.name, l.attachedRoutes]), [['listener-1', 1], ['listener-2', 1], ['listener-3', 1], ['listener-4', 1]]);
      const cases: [string, string | number][] = [
        ['bar.com', 'grpc-infra-backend-v1'],
        ['foo.bar.com', 'grpc-infra-backend-v2'],
        ['baz.bar.com', 'grpc-infra-backend-v3'],
        ['boo.bar.com', 'grpc-infra-backend-v3'],
        ['multiple.prefixes.bar.com', 'grpc-infra-backend-v3'],
        ['multiple.prefixes.foo.com', 'grpc-infra-backend-v3'],
        ['foo.com', status.UNIMPLEMENTED],
        ['no.matching.host', status.UNIMPLEMENTED],
      ];
      for (const [authority, expected] of cases) {
        const client = await env.client('grpcroute-listener-hostname-matching', authority);
        await expectEventually(client, 'Echo', {}, typeof expected === 'string' ? { backend: expected } : { code: expected }, authority);
      }
    } finally {
      env.remove(...routes, gw);
    }
  });

  test('GRPCRouteWeight: 70/30/0 over 500 RPCs on one connection, each share within 5 points', async (t) => {
    const route = grpcRoute('weighted-backends', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [{
        backendRefs: [
          backend('grpc-infra-backend-v1', { weight: 70 }),
          backend('grpc-infra-backend-v2', { weight: 30 }),
          backend('grpc-infra-backend-v3', { weight: 0 }),
        ],
      }],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'weighted-backends');
      const client = await env.client('same-namespace');
      // Converged: both weighted backends answer (the route's clusters and their endpoints have arrived).
      const seen = new Set<string>();
      await waitFor(async () => {
        const result = await call(client, 'Echo');
        if (result.code === status.OK) seen.add(result.response!.backend);
        return seen.has('grpc-infra-backend-v1') && seen.has('grpc-infra-backend-v2');
      }, 'both weighted backends to answer');
      const counts: Record<string, number> = {};
      for (let i = 0; i < 500; i++) {
        const result = await call(client, 'Echo');
        assert.equal(result.code, status.OK, result.details);
        counts[result.response!.backend] = (counts[result.response!.backend] ?? 0) + 1;
      }
      t.diagnostic(`500 RPCs: ${JSON.stringify(counts)}`);
      const share = (name: string) => (counts[name] ?? 0) / 500;
      assert.ok(Math.abs(share('grpc-infra-backend-v1') - 0.7) <= 0.05, JSON.stringify(counts));
      assert.ok(Math.abs(share('grpc-infra-backend-v2') - 0.3) <= 0.05, JSON.stringify(counts));
      assert.equal(counts['grpc-infra-backend-v3'] ?? 0, 0);
    } finally {
      env.remove(route);
    }
  });

  test('GRPCRouteNamedRule: a named rule routes like any other, and its name labels the route', async () => {
    const route = grpcRoute('grpc-named-rules', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { name: 'named-rule', matches: [{ method: { service: ECHO, method: 'Echo' } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [{ method: { service: ECHO, method: 'EchoTwo' } }], backendRefs: [backend('grpc-infra-backend-v2')] },
      ],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'grpc-named-rules');
      const client = await env.client('same-namespace');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'Echo');
      await expectEventually(client, 'EchoTwo', {}, { backend: 'grpc-infra-backend-v2' }, 'EchoTwo');
      const proxy = await env.proxyFor('same-namespace');
      const names = new Set(proxy.records.slice(-10).map((record) => record.route));
      assert.ok(names.has(`grpcroute/${INFRA}/grpc-named-rules/named-rule`), [...names].join(', '));
    } finally {
      env.remove(route);
    }
  });

  test('GRPCRouteRequestHeaderModifier: set, add and remove reach the backend as the filter says', async () => {
    const echo = { method: { service: ECHO, method: 'Echo' } };
    const route = grpcRoute('grpc-request-header-modifier', {
      parentRefs: [{ name: 'same-namespace' }],
      rules: [
        { matches: [echo], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'set-overwrites-values' }] } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [echo], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'X-Header-Add', value: 'add-appends-values' }] } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        { matches: [echo], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['X-Header-Remove'] } }], backendRefs: [backend('grpc-infra-backend-v1')] },
        {
          matches: [{ method: { service: ECHO, method: 'EchoTwo' } }],
          filters: [{
            type: 'RequestHeaderModifier',
            requestHeaderModifier: {
              set: [{ name: 'X-Header-Set-1', value: 'header-set-1' }, { name: 'X-Header-Set-2', value: 'header-set-2' }],
              add: [{ name: 'X-Header-Add-1', value: 'header-add-1' }, { name: 'X-Header-Add-2', value: 'header-add-2' }],
              remove: ['X-Header-Remove-1', 'X-Header-Remove-2'],
            },
          }],
          backendRefs: [backend('grpc-infra-backend-v2')],
        },
      ],
    });
    env.apply(route);
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'grpc-request-header-modifier');
      const client = await env.client('same-namespace');
      /** The values the backend saw for `name` (a repeated header may arrive joined by ", "). */
      const seen = async (method: 'Echo' | 'EchoTwo', sent: Record<string, string>, backendName: string) => {
        const result = await expectEventually(client, method, sent, { backend: backendName }, JSON.stringify(sent));
        return (name: string) => result.response!.headers.filter((h) => h.name === name).flatMap((h) => h.value.split(', '));
      };
      // Of the three Echo rules with equal matches, the first wins (rule order breaks the tie): only set applies.
      let got = await seen('Echo', { 'Some-Other-Header': 'this-header-should-be-set' }, 'grpc-infra-backend-v1');
      assert.deepEqual(got('x-header-set'), ['set-overwrites-values']);
      assert.deepEqual(got('some-other-header'), ['this-header-should-be-set']);
      got = await seen('Echo', { 'Some-Other-Header': 'this-header-should-be-set', 'X-Header-Set': 'this-value-should-be-overwritten' }, 'grpc-infra-backend-v1');
      assert.deepEqual(got('x-header-set'), ['set-overwrites-values']);
      assert.deepEqual(got('x-header-add'), [], 'the add rule is shadowed by the first');
      got = await seen('Echo', { 'X-Header-Remove': 'kept-because-the-remove-rule-is-shadowed' }, 'grpc-infra-backend-v1');
      assert.deepEqual(got('x-header-remove'), ['kept-because-the-remove-rule-is-shadowed']);

      got = await seen('EchoTwo', { 'X-Header-Set-2': 'set-header-2', 'X-Header-Add-2': 'add-header-2', 'X-Header-Remove-2': 'should-be-removed-2', 'Some-Other-Header': 'another-header-val' }, 'grpc-infra-backend-v2');
      assert.deepEqual(got('x-header-set-1'), ['header-set-1']);
      assert.deepEqual(got('x-header-set-2'), ['header-set-2']);
      assert.deepEqual(got('x-header-add-1'), ['header-add-1']);
      assert.deepEqual(got('x-header-add-2'), ['add-header-2', 'header-add-2']);
      assert.deepEqual(got('x-header-remove-2'), []);
      assert.deepEqual(got('some-other-header'), ['another-header-val']);
      got = await seen('EchoTwo', { 'x-header-set-1': 'original-set-1', 'x-header-add-1': 'existing-add-1', 'x-header-remove-1': 'should-be-removed-1' }, 'grpc-infra-backend-v2');
      assert.deepEqual(got('x-header-set-1'), ['header-set-1'], 'names compare case-insensitively');
      assert.deepEqual(got('x-header-add-1'), ['existing-add-1', 'header-add-1']);
      assert.deepEqual(got('x-header-remove-1'), []);
    } finally {
      env.remove(route);
    }
  });

  test('changing a GRPCRoute under load reaches the proxy with zero failed RPCs', async (t) => {
    const spec = (refs: Record<string, unknown>[]) => ({ parentRefs: [{ name: 'same-namespace' }], rules: [{ matches: [{ method: { service: ECHO } }], backendRefs: refs }] });
    const route = grpcRoute('changing', spec([backend('grpc-infra-backend-v1')]));
    env.apply(route);
    const client = await env.client('same-namespace');
    const counts = new Map<string, number>();
    const failures: string[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        const result = await call(client, 'Echo');
        if (result.code !== status.OK) failures.push(`${result.code} ${result.details}`);
        else counts.set(result.response!.backend, (counts.get(result.response!.backend) ?? 0) + 1);
      }
    };
    try {
      await routeMustBeAccepted(env.kube, 'GRPCRoute', 'changing');
      await expectEventually(client, 'Echo', {}, { backend: 'grpc-infra-backend-v1' }, 'before the change');
      const workers = Array.from({ length: 4 }, worker);
      const servedBy = (name: string) => counts.get(name) ?? 0;
      await waitFor(() => servedBy('grpc-infra-backend-v1') > 50, 'load on v1');
      // To a backend no route used so far (a new cluster and its endpoints), then a split, then back.
      const steps: [Record<string, unknown>[], string][] = [
        [[backend('grpc-infra-backend-v3')], 'grpc-infra-backend-v3'],
        [[backend('grpc-infra-backend-v1', { weight: 1 }), backend('grpc-infra-backend-v2', { weight: 1 })], 'grpc-infra-backend-v2'],
        [[backend('grpc-infra-backend-v1')], 'grpc-infra-backend-v1'],
      ];
      for (const [refs, expected] of steps) {
        const before = servedBy(expected);
        const changedAt = performance.now();
        env.apply(grpcRoute('changing', spec(refs)));
        await waitFor(() => servedBy(expected) > before + 50, `load on ${expected}`);
        t.diagnostic(`→ ${expected}: ${(performance.now() - changedAt).toFixed(0)} ms until 50 more RPCs reached it`);
      }
      running = false;
      await Promise.all(workers);
      t.diagnostic(`RPCs: ${JSON.stringify(Object.fromEntries(counts))}, failed: ${failures.length}`);
      assert.deepEqual(failures, []);
    } finally {
      running = false;
      env.remove(route);
    }
  });
});
