/**
 * Golden tests of the Gateway API translation: objects in → the status each
 * object gets and the RouteConfiguration (as the xDS resource, decoded) out,
 * compared with test/unit/golden/gateway-api/<case>.json. Each case also
 * asserts the rule it is about, so a golden file regenerated with
 * UPDATE_GOLDEN=1 cannot hide a wrong answer.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { translateGatewayApi, type GatewayTranslation } from '../../src/xds/gateway-api/translate.ts';
import { gatewayRouteConfigurationResource } from '../../src/xds/gateway-api/xds-resources.ts';
import type { GatewayApiObjects } from '../../src/xds/gateway-api/model.ts';
import { unpackAny } from '../../src/xds/protos.ts';

const CONTROLLER = 'switchyard.io/gateway-controller';
const G = 'gateway.networking.k8s.io';

type Obj = Record<string, any>;
const meta = (name: string, namespace: string | undefined, extra: Obj = {}) => ({ name, ...(namespace !== undefined && { namespace }), generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...extra });
const cls = () => ({ metadata: meta('switchyard', undefined), spec: { controllerName: CONTROLLER } });
const gw = (name: string, listeners: Obj[], namespace = 'infra') => ({ metadata: meta(name, namespace, { generation: 3 }), spec: { gatewayClassName: 'switchyard', listeners } });
const http = (name: string, extra: Obj = {}) => ({ name, port: 80, protocol: 'HTTP', ...extra });
const svc = (name: string, namespace = 'infra', appProtocol?: string) => ({ metadata: meta(name, namespace), spec: { ports: [{ name: 'grpc', port: 8080, protocol: 'TCP', ...(appProtocol && { appProtocol }) }] } });
const grpc = (name: string, spec: Obj, extra: Obj = {}, namespace = 'infra') => ({ metadata: meta(name, namespace, extra), spec });
const ref = (name: string, extra: Obj = {}) => ({ name, port: 8080, ...extra });

function objects(parts: Partial<Record<keyof GatewayApiObjects, unknown[]>>): GatewayApiObjects {
  return {
    gatewayClasses: [cls()], gateways: [], grpcRoutes: [], httpRoutes: [], referenceGrants: [],
    services: ['a', 'b', 'c'].map((name) => svc(name)), namespaces: [{ metadata: { name: 'infra' } }, { metadata: { name: 'apps', labels: { team: 'apps' } } }],
    ...parts,
  } as unknown as GatewayApiObjects;
}

function translate(parts: Partial<Record<keyof GatewayApiObjects, unknown[]>>): GatewayTranslation {
  return translateGatewayApi(objects(parts), { controllerName: CONTROLLER, addresses: [{ type: 'IPAddress', value: '10.0.0.7' }] });
}

/** The route names of a virtual host, in order. */
function order(result: GatewayTranslation, domain = '*'): string[] {
  return result.routeConfigs[0]!.virtualHosts.find((host) => host.domains.includes(domain))!.routes.map((route) => route.name);
}

function conditionsOf(result: GatewayTranslation, route: string): Record<string, string> {
  const entry = result.routes.find((r) => r.name === route);
  return Object.fromEntries((entry?.parents[0]?.conditions ?? []).map((c) => [c.type, `${c.status} ${c.reason}`]));
}

function golden(name: string, result: GatewayTranslation): void {
  const file = fileURLToPath(new URL(`./golden/gateway-api/${name}.json`, import.meta.url));
  const actual = `${JSON.stringify({
    gateways: result.gateways,
    routes: result.routes,
    routeConfigurations: result.routeConfigs.map((config) => unpackAny(gatewayRouteConfigurationResource(config))),
    listeners: result.listeners,
    clusters: result.backends.map((backend) => backend.cluster),
  }, null, 2)}\n`;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name}: differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`);
}

const ECHO = 'echo.Echo';

test('precedence: service and method characters, header count, then age, namespace/name and rule order', () => {
  const parent = [{ name: 'gw' }];
  const result = translate({
    gateways: [gw('gw', [http('http')])],
    grpcRoutes: [
      grpc('young', { parentRefs: parent, rules: [{ matches: [{ method: { service: ECHO, method: 'Get' } }], backendRefs: [ref('b')] }] }, { creationTimestamp: '2026-02-01T00:00:00Z' }),
      grpc('old', { parentRefs: parent, rules: [
        { matches: [{ method: { service: ECHO } }], backendRefs: [ref('a')] },
        { matches: [{ method: { service: ECHO, method: 'Get' } }], backendRefs: [ref('a')] },
        { matches: [{ method: { method: 'Get' } }], backendRefs: [ref('c')] },
        { matches: [{ method: { service: ECHO, method: 'Get' }, headers: [{ name: 'X-Env', value: 'beta' }] }], backendRefs: [ref('c')] },
        { backendRefs: [ref('b')] },
      ] }),
      grpc('also-old', { parentRefs: parent, rules: [{ matches: [{ method: { service: ECHO, method: 'Get' } }], backendRefs: [ref('b')] }] }),
    ],
  });
  assert.deepEqual(order(result), [
    'grpcroute/infra/old/rule-3', // service + method + a header
    'grpcroute/infra/also-old/rule-0', // service + method; equal age, "also-old" < "old"
    'grpcroute/infra/old/rule-1',
    'grpcroute/infra/young/rule-0', // younger
    'grpcroute/infra/old/rule-0', // service only
    'grpcroute/infra/old/rule-2', // method only
    'grpcroute/infra/old/rule-4', // everything
  ]);
  golden('precedence', result);
});

test('hostnames: listener and route hostnames intersect, wildcards included; a more specific listener isolates its hostnames', () => {
  const result = translate({
    gateways: [gw('gw', [http('wild', { hostname: '*.example.com' }), http('exact', { hostname: 'api.example.com' }), http('any', { port: 8080 })])],
    grpcRoutes: [
      grpc('on-wild', { parentRefs: [{ name: 'gw', sectionName: 'wild' }], hostnames: ['api.example.com', '*.example.com', 'other.net'], rules: [{ backendRefs: [ref('a')] }] }),
      grpc('on-exact', { parentRefs: [{ name: 'gw', sectionName: 'exact' }], rules: [{ backendRefs: [ref('b')] }] }),
      grpc('everywhere', { parentRefs: [{ name: 'gw', sectionName: 'any' }], rules: [{ backendRefs: [ref('c')] }] }),
      grpc('no-match', { parentRefs: [{ name: 'gw', sectionName: 'exact' }], hostnames: ['web.example.com'], rules: [{ backendRefs: [ref('c')] }] }),
    ],
  });
  const hosts = result.routeConfigs[0]!.virtualHosts.map((host) => host.domains[0]);
  assert.deepEqual(hosts, ['api.example.com', '*.example.com', '*']);
  // api.example.com belongs to the listener named for it: the wildcard listener's route does not reach it.
  assert.deepEqual(order(result, 'api.example.com'), ['grpcroute/infra/on-exact/rule-0@api.example.com']);
  assert.deepEqual(order(result, '*.example.com'), ['grpcroute/infra/on-wild/rule-0@*.example.com']);
  assert.deepEqual(order(result, '*'), ['grpcroute/infra/everywhere/rule-0']);
  assert.equal(conditionsOf(result, 'no-match').Accepted, 'False NoMatchingListenerHostname');
  assert.deepEqual(result.listeners, [{ name: 'api.example.com', routeConfig: 'gateway/infra/gw' }]);
  golden('hostnames', result);
});

test('conflicts: an HTTPRoute and a GRPCRoute on one hostname (the older wins), listeners sharing port and hostname, or port and not protocol', () => {
  const result = translate({
    gateways: [gw('gw', [
      http('main', { hostname: 'shop.example.com' }),
      http('twin-a', { port: 81, hostname: 'same.example.com' }), http('twin-b', { port: 81, hostname: 'same.example.com' }),
      http('plain', { port: 82 }), { name: 'tls', port: 82, protocol: 'HTTPS', tls: {} },
    ])],
    grpcRoutes: [grpc('grpc-newer', { parentRefs: [{ name: 'gw', sectionName: 'main' }], rules: [{ backendRefs: [ref('a')] }] }, { creationTimestamp: '2026-03-01T00:00:00Z' })],
    httpRoutes: [grpc('http-older', { parentRefs: [{ name: 'gw', sectionName: 'main' }], hostnames: ['*.example.com'], rules: [{ backendRefs: [ref('b')] }] }) as never],
  });
  assert.equal(conditionsOf(result, 'http-older').Accepted, 'True Accepted');
  assert.equal(conditionsOf(result, 'grpc-newer').Accepted, 'False NotAllowedByListeners');
  const listeners = Object.fromEntries(result.gateways[0]!.status.listeners!.map((l) => [l.name, Object.fromEntries(l.conditions.map((c) => [c.type, `${c.status} ${c.reason}`]))]));
  assert.equal(listeners['twin-a']!.Conflicted, 'True HostnameConflict');
  assert.equal(listeners['twin-b']!.Programmed, 'False Invalid');
  assert.equal(listeners.plain!.Conflicted, 'True ProtocolConflict');
  assert.equal(listeners.tls!.Accepted, 'False UnsupportedProtocol');
  assert.equal(result.gateways[0]!.status.listeners!.find((l) => l.name === 'main')!.attachedRoutes, 1);
  golden('conflicts', result);
});

test('route status: parent and backend problems, each reason as the spec names it, at the route generation', () => {
  const result = translate({
    gateways: [gw('gw', [http('http'), http('from-apps', { port: 81, allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'apps' } } } } })])],
    grpcRoutes: [
      grpc('wrong-section', { parentRefs: [{ name: 'gw', sectionName: 'nope' }], rules: [{ backendRefs: [ref('a')] }] }),
      grpc('other-namespace', { parentRefs: [{ name: 'gw', namespace: 'infra', sectionName: 'http' }], rules: [{ backendRefs: [ref('a')] }] }, {}, 'apps'),
      grpc('selected', { parentRefs: [{ name: 'gw', namespace: 'infra', sectionName: 'from-apps' }], rules: [{ backendRefs: [ref('a', { namespace: 'infra' })] }] }, { generation: 4 }, 'apps'),
      grpc('missing-backend', { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [{ backendRefs: [ref('ghost', { weight: 1 }), ref('a', { weight: 3 })] }] }),
      grpc('bad-kind', { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [{ backendRefs: [{ group: 'example.io', kind: 'Bucket', name: 'x' }] }] }),
      grpc('half-valid', { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [
        { matches: [{ method: { service: 'x.Y' } }], filters: [{ type: 'RequestMirror', requestMirror: {} }], backendRefs: [ref('a')] },
        { matches: [{ method: { service: 'x.Z' } }], backendRefs: [ref('a')] },
      ] }),
      grpc('all-invalid', { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [{ filters: [{ type: 'ExtensionRef' }], backendRefs: [ref('a')] }] }),
      grpc('other-controller', { parentRefs: [{ name: 'elsewhere' }], rules: [{ backendRefs: [ref('a')] }] }),
    ],
    services: [svc('a'), svc('ws', 'infra', 'kubernetes.io/ws')],
  });
  assert.equal(conditionsOf(result, 'wrong-section').Accepted, 'False NoMatchingParent');
  assert.equal(conditionsOf(result, 'other-namespace').Accepted, 'False NotAllowedByListeners');
  assert.equal(conditionsOf(result, 'selected').Accepted, 'True Accepted');
  assert.equal(conditionsOf(result, 'selected').ResolvedRefs, 'False RefNotPermitted', 'a backend in another namespace needs a ReferenceGrant');
  assert.equal(result.routes.find((r) => r.name === 'selected')!.parents[0]!.conditions[0]!.observedGeneration, 4);
  assert.equal(conditionsOf(result, 'missing-backend').ResolvedRefs, 'False BackendNotFound');
  assert.equal(conditionsOf(result, 'bad-kind').ResolvedRefs, 'False InvalidKind');
  assert.equal(conditionsOf(result, 'half-valid').PartiallyInvalid, 'True UnsupportedValue');
  assert.equal(conditionsOf(result, 'all-invalid').Accepted, 'False UnsupportedValue');
  assert.equal(result.routes.some((r) => r.name === 'other-controller'), false, 'a parent of another controller gets no status from us');
  // The missing backend keeps its share (1 of 4), answered UNAVAILABLE by the cluster without endpoints.
  const split = result.routeConfigs[0]!.virtualHosts[0]!.routes.find((r) => r.name.includes('missing-backend'))!.action.backends;
  assert.deepEqual(split, [{ cluster: 'gateway-api/unresolved-backend', weight: 1 }, { cluster: 'k8s/infra/a:8080', weight: 3 }]);
  golden('route-status', result);

  const granted = translate({
    gateways: [gw('gw', [http('from-apps', { port: 81, allowedRoutes: { namespaces: { from: 'All' } } }), http('ws', { port: 82 })])],
    grpcRoutes: [
      grpc('selected', { parentRefs: [{ name: 'gw', namespace: 'infra', sectionName: 'from-apps' }], rules: [{ backendRefs: [ref('a', { namespace: 'infra' })] }] }, {}, 'apps'),
      grpc('to-ws', { parentRefs: [{ name: 'gw', sectionName: 'ws' }], rules: [{ backendRefs: [ref('ws')] }] }),
    ],
    referenceGrants: [{ metadata: meta('apps-to-a', 'infra'), spec: { from: [{ group: G, kind: 'GRPCRoute', namespace: 'apps' }], to: [{ group: '', kind: 'Service', name: 'a' }] } }],
    services: [svc('a'), svc('ws', 'infra', 'kubernetes.io/ws')],
  });
  assert.equal(conditionsOf(granted, 'selected').ResolvedRefs, 'True ResolvedRefs');
  assert.equal(conditionsOf(granted, 'to-ws').ResolvedRefs, 'False UnsupportedProtocol');
});

test('gateway status: addresses from the config, Programmed only with one; spec.addresses is refused', () => {
  const result = translate({ gateways: [gw('gw', [http('http')]), { ...gw('pinned', [http('http')]), spec: { gatewayClassName: 'switchyard', listeners: [http('http')], addresses: [{ value: '1.2.3.4' }] } }] });
  const byName = Object.fromEntries(result.gateways.map((g) => [g.name, Object.fromEntries(g.status.conditions!.map((c) => [c.type, `${c.status} ${c.reason} ${c.observedGeneration}`]))]));
  assert.equal(byName.gw!.Programmed, 'True Programmed 3');
  assert.equal(byName.pinned!.Accepted, 'False UnsupportedAddress 3');
  const none = translateGatewayApi(objects({ gateways: [gw('gw', [http('http')])] }), { controllerName: CONTROLLER, addresses: [] });
  assert.equal(none.gateways[0]!.status.conditions!.find((c) => c.type === 'Programmed')!.reason, 'AddressNotAssigned');
  const foreign = translateGatewayApi(objects({ gateways: [gw('gw', [http('http')])] }), { controllerName: 'example.com/other', addresses: [] });
  assert.deepEqual([foreign.gateways.length, foreign.gatewayClasses.length], [0, 0], "another controller's class and Gateways are left alone");
});

test('HTTPRoute matches as a gRPC-over-HTTP/2 request meets them: exact beats prefix, prefixes by whole segments, method as :method', () => {
  const result = translate({
    gateways: [gw('gw', [http('http')])],
    httpRoutes: [grpc('paths', { parentRefs: [{ name: 'gw' }], rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo' } }], backendRefs: [ref('a')] },
      { matches: [{ path: { type: 'Exact', value: '/echo.Echo/Get' } }], backendRefs: [ref('b')] },
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo/' }, method: 'POST' }], backendRefs: [ref('c')] },
      { matches: [{ queryParams: [{ name: 'q', value: '1' }] }], backendRefs: [ref('c')] },
    ] }) as never],
  });
  assert.deepEqual(order(result), ['httproute/infra/paths/rule-1', 'httproute/infra/paths/rule-2', 'httproute/infra/paths/rule-0']);
  const routes = result.routeConfigs[0]!.virtualHosts[0]!.routes;
  assert.deepEqual(routes.map((r) => r.match.regex ?? r.match.path), ['/echo.Echo/Get', '/echo\\.Echo(?:/.*)?', '/echo\\.Echo(?:/.*)?']);
  assert.match(conditionsOf(result, 'paths').PartiallyInvalid!, /True UnsupportedValue/);
  golden('httproute-matches', result);
});
