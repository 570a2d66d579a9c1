/**
 * Browser protocols for routes from the Gateway API: a GRPCRoute takes
 * gRPC-Web and Connect unless its `switchyard.io/web-protocols` annotation
 * says otherwise; an HTTPRoute leaves it to the proxy's listener. Carried to
 * the proxies in the xDS route's metadata, read back by their xDS client into
 * the route's `web` settings, which the config schema accepts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { translateGatewayApi } from '../../src/xds/gateway-api/translate.ts';
import { gatewayRouteConfigurationResource } from '../../src/xds/gateway-api/xds-resources.ts';
import type { GatewayApiObjects } from '../../src/xds/gateway-api/model.ts';
import { translateRouteConfiguration, XdsRejection } from '../../src/xds/client/translate.ts';
import { unpackAny } from '../../src/xds/protos.ts';

const CONTROLLER = 'switchyard.io/gateway-controller';
type Obj = Record<string, unknown>;
const meta = (name: string, extra: Obj = {}) => ({ name, namespace: 'infra', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...extra });
const rule = (service: string) => ({ matches: [{ method: { service } }], backendRefs: [{ name: 'a', port: 8080 }] });

function proxyRoutes(grpcRoutes: Obj[], httpRoutes: Obj[] = []) {
  const objects = {
    gatewayClasses: [{ metadata: { name: 'switchyard', generation: 1 }, spec: { controllerName: CONTROLLER } }],
    gateways: [{ metadata: meta('gw'), spec: { gatewayClassName: 'switchyard', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } }],
    grpcRoutes,
    httpRoutes,
    referenceGrants: [],
    services: [{ metadata: meta('a'), spec: { ports: [{ name: 'grpc', port: 8080, protocol: 'TCP' }] } }],
    namespaces: [{ metadata: { name: 'infra' } }],
  } as unknown as GatewayApiObjects;
  const result = translateGatewayApi(objects, { controllerName: CONTROLLER, addresses: [] });
  const resource = unpackAny(gatewayRouteConfigurationResource(result.routeConfigs[0]!));
  return { result, routes: translateRouteConfiguration(resource).routes };
}

test('a GRPCRoute takes gRPC-Web and Connect by default; the annotation narrows or turns them off', () => {
  const { routes } = proxyRoutes([
    { metadata: meta('plain'), spec: { parentRefs: [{ name: 'gw' }], rules: [rule('a.A')] } },
    { metadata: meta('web-only', { annotations: { 'switchyard.io/web-protocols': 'grpc-web' } }), spec: { parentRefs: [{ name: 'gw' }], rules: [rule('b.B')] } },
    { metadata: meta('off', { annotations: { 'switchyard.io/web-protocols': 'none' } }), spec: { parentRefs: [{ name: 'gw' }], rules: [rule('c.C')] } },
  ]);
  const routeOf = (service: string) => routes.find((route) => (route.config.match as Obj).prefix === `/${service}/`)!;
  const web = (service: string) => routeOf(service).config.web;
  assert.deepEqual(web('a.A'), { protocols: ['grpc_web', 'connect'] });
  assert.deepEqual(web('b.B'), { protocols: ['grpc_web'] });
  assert.deepEqual(web('c.C'), { protocols: [] });
  // What the proxy's xDS client makes of it is a route the config schema takes.
  const config = configSchema.parse({
    listeners: [{ name: 'l', port: 0, plaintext: true }],
    clusters: [{ name: routeOf('a.A').cluster, endpoints: [] }],
    routes: [routeOf('a.A').config],
  });
  assert.deepEqual(config.routes[0]!.web, { protocols: ['grpc_web', 'connect'] });
});

test('an HTTPRoute carries no browser protocols: the proxy listener\'s settings apply', () => {
  const { routes } = proxyRoutes([], [{ metadata: meta('h'), spec: { parentRefs: [{ name: 'gw' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/h.H/' } }], backendRefs: [{ name: 'a', port: 8080 }] }] } }]);
  assert.equal(routes.length, 1);
  assert.equal(routes[0]!.config.web, undefined);
});

test('an annotation naming no browser protocol is reported on the route', () => {
  const { result } = proxyRoutes([{ metadata: meta('typo', { annotations: { 'switchyard.io/web-protocols': 'grpcweb' } }), spec: { parentRefs: [{ name: 'gw' }], rules: [rule('a.A')] } }]);
  const messages = JSON.stringify(result.routes.find((route) => route.name === 'typo')?.parents);
  assert.match(messages, /switchyard\.io\/web-protocols: \\"grpcweb\\" is not a browser protocol/);
});

test('the xDS client refuses web_protocols that is not a string', () => {
  const message = {
    name: 'rc',
    virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', cluster_specifier: 'cluster' }, action: 'route', metadata: { filter_metadata: { 'io.switchyard': { fields: { web_protocols: { numberValue: 1 } } } } } }] }],
  };
  assert.throws(() => translateRouteConfiguration(message), (error: unknown) => error instanceof XdsRejection && /web_protocols: expected a string value/.test(error.message));
});
