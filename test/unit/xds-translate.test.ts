/** Envoy resources → Switchyard routes, clusters and endpoints, and the NACK messages for what cannot be applied. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, TYPE_URL, unpackAny } from '../../src/xds/protos.ts';
import { capabilitiesOf, clusterLoadAssignmentResource, clusterResource, routeConfigurationResource } from '../../src/xds/resources.ts';
import {
  composeConfig, pendingConfig, translateCluster, translateLoadAssignment, translateRouteConfiguration, XdsRejection, type TranslatedCluster,
} from '../../src/xds/client/translate.ts';

const SWITCHYARD = capabilitiesOf('switchyard');
const GRPC = capabilitiesOf('grpc-node-js');

function cluster(fields: Record<string, unknown>): Record<string, unknown> {
  return unpackAny(packAny(TYPE_URL.cluster, { type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, ...fields }));
}

function route(routes: Record<string, unknown>[], name = 'rc'): Record<string, unknown> {
  return unpackAny(packAny(TYPE_URL.route, { name, virtual_hosts: [{ name: 'vh', domains: ['*'], routes }] }));
}

function clustersOf(...translated: TranslatedCluster[]): Map<string, TranslatedCluster> {
  return new Map(translated.map((c) => [c.name, c]));
}

function rejects(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof XdsRejection, String(error));
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

test('the resources the control plane builds become Switchyard routes and clusters', () => {
  const echo = translateCluster('echo', unpackAny(clusterResource({ name: 'echo', policy: 'peak_ewma', connectTimeoutMs: 1_500 }, SWITCHYARD)));
  assert.equal(echo.policy, 'peak_ewma', 'the exact policy from the io.switchyard metadata');
  assert.equal(echo.serviceName, 'echo');
  const viaEnum = translateCluster('lr', unpackAny(clusterResource({ name: 'lr', policy: 'least_request', connectTimeoutMs: 1_000 }, { leastRequest: true, switchyardPolicies: false })));
  assert.equal(viaEnum.policy, 'least_request', 'LEAST_REQUEST without metadata');
  assert.equal(translateCluster('g', unpackAny(clusterResource({ name: 'g', policy: 'peak_ewma', connectTimeoutMs: 1_000 }, GRPC))).policy, 'round_robin');

  const routes = translateRouteConfiguration(unpackAny(routeConfigurationResource({
    name: 'main',
    routes: [
      { path: '/pkg.Svc/Get', cluster: 'echo', timeoutMs: 2_500 },
      { prefix: '', cluster: 'echo' },
    ],
  })));
  const part = composeConfig(routes, clustersOf(echo));
  assert.equal(part.routes.length, 2);
  assert.deepEqual(part.routes[0]!.match, { method: '/pkg.Svc/Get', headers: [] });
  assert.equal(part.routes[0]!.timeout, 2_500);
  assert.equal(part.routes[0]!.cluster, 'echo');
  assert.deepEqual(part.routes[1]!.match, { prefix: '/', headers: [] }, 'prefix "" matches everything');
  assert.equal(part.clusters.length, 1);
  const [config] = part.clusters;
  assert.equal(config!.name, 'echo');
  assert.equal(config!.lb_policy, 'peak_ewma');
  assert.equal(config!.connect_timeout, 1_500);
  assert.deepEqual(config!.eds, { service_name: 'echo' });
  assert.equal(config!.circuit_breakers.max_requests, 10_000, 'the schema\'s defaults are applied');
});

test('clusters no route uses are left out', () => {
  const a = translateCluster('a', cluster({ name: 'a' }));
  const b = translateCluster('b', cluster({ name: 'b' }));
  const part = composeConfig(translateRouteConfiguration(route([{ match: { prefix: '/' }, route: { cluster: 'a' } }])), clustersOf(a, b));
  assert.deepEqual(part.clusters.map((c) => c.name), ['a']);
});

test('ring_hash takes its header from the routes\' hash_policy; one header per cluster', () => {
  const ring = translateCluster('ring', cluster({ name: 'ring', lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: 4096 } } }));
  const hashed = (header: string | undefined, prefix = '/') => ({ match: { prefix }, route: { cluster: 'ring', ...(header && { hash_policy: [{ header: { header_name: header } }] }) } });
  const part = composeConfig(translateRouteConfiguration(route([hashed('X-User')])), clustersOf(ring));
  assert.equal(part.clusters[0]!.lb_policy, 'ring_hash');
  assert.equal(part.clusters[0]!.hash_header, 'x-user');
  assert.equal(part.clusters[0]!.ring_size, 4096);
  rejects(() => composeConfig(translateRouteConfiguration(route([hashed(undefined)])), clustersOf(ring)),
    'Cluster "ring": lb_policy ring_hash needs a header hash_policy on every route that uses it (none on RouteConfiguration "rc": virtual_hosts[0].routes[0])');
  rejects(() => composeConfig(translateRouteConfiguration(route([hashed('a', '/x'), hashed('b')])), clustersOf(ring)),
    'Cluster "ring": its routes hash on different headers ("a", "b"); Switchyard hashes one header per cluster');
});

test('clusters that cannot be applied are refused, naming the field', () => {
  rejects(() => translateCluster('s', cluster({ type: 'STATIC' })), 'Cluster "s": type: STATIC is not supported: Switchyard takes EDS clusters, whose endpoints come from a ClusterLoadAssignment');
  rejects(() => translateCluster('m', cluster({ lb_policy: 'MAGLEV' })), 'Cluster "m": lb_policy: MAGLEV is not supported (expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH)');
  rejects(() => translateCluster('x', cluster({ metadata: { filter_metadata: { 'io.switchyard': { fields: { lb_policy: { stringValue: 'fastest' } } } } } })),
    'Cluster "x": metadata.filter_metadata["io.switchyard"].lb_policy: unknown policy "fastest" (expected one of round_robin, least_request, random, ring_hash, peak_ewma, least_connections)');
  rejects(() => translateCluster('t', cluster({ transport_socket: { name: 'tls' } })), /^Cluster "t": transport_socket: upstream TLS from xDS is not supported/);
  rejects(() => translateCluster('e', cluster({ eds_cluster_config: { eds_config: { path_config_source: { path: '/x' } } } })), /^Cluster "e": eds_cluster_config\.eds_config: path_config_source is not supported/);
  // A value the config schema refuses: a connect timeout of 0.
  const zero = translateCluster('z', cluster({ connect_timeout: { seconds: 0, nanos: 0 } }));
  rejects(() => composeConfig(translateRouteConfiguration(route([{ match: { prefix: '/' }, route: { cluster: 'z' } }])), clustersOf(zero)),
    'Cluster "z": connect_timeout: expected a duration from 1ms to 24.8 days (2^31-1 ms), got "0ms"');
});

test('circuit breakers (DEFAULT priority) and EDS service names are taken', () => {
  const c = translateCluster('c', cluster({
    eds_cluster_config: { eds_config: { ads: {} }, service_name: 'c-endpoints' },
    circuit_breakers: { thresholds: [{ priority: 'HIGH', max_requests: { value: 1 } }, { max_requests: { value: 50 }, max_retries: { value: 3 } }] },
  }));
  assert.equal(c.serviceName, 'c-endpoints');
  const part = composeConfig(translateRouteConfiguration(route([{ match: { prefix: '/' }, route: { cluster: 'c' } }])), clustersOf(c));
  assert.equal(part.clusters[0]!.circuit_breakers.max_requests, 50);
  assert.equal(part.clusters[0]!.circuit_breakers.max_retries, 3);
  assert.deepEqual(part.clusters[0]!.eds, { service_name: 'c-endpoints' });
});

test('route matches: headers, retries and max_stream_duration are translated', () => {
  const c = translateCluster('c', cluster({}));
  const part = composeConfig(translateRouteConfiguration(route([{
    name: 'beta',
    match: {
      prefix: '/pkg.',
      headers: [
        { name: 'x-env', string_match: { exact: 'beta' } },
        { name: 'x-a', prefix_match: 'p' },
        { name: 'x-b', suffix_match: '.1' },
        { name: 'x-c', safe_regex_match: { regex: '^v[0-9]+$' } },
        { name: 'x-d', present_match: false },
        { name: 'x-e', exact_match: 'no', invert_match: true },
      ],
    },
    route: {
      cluster: 'c',
      max_stream_duration: { max_stream_duration: { seconds: 60 }, grpc_timeout_header_max: { seconds: 0 } },
      retry_policy: { retry_on: 'unavailable,reset', num_retries: { value: 3 }, per_try_timeout: { nanos: 250_000_000 } },
    },
  }])), clustersOf(c));
  const [r] = part.routes;
  assert.equal(r!.name, 'beta');
  assert.deepEqual(r!.match.headers, [
    { name: 'x-env', exact: 'beta', invert: false },
    { name: 'x-a', prefix: 'p', invert: false },
    { name: 'x-b', regex: '\\.1$', invert: false },
    { name: 'x-c', regex: '^v[0-9]+$', invert: false },
    { name: 'x-d', present: false, invert: false },
    { name: 'x-e', exact: 'no', invert: true },
  ]);
  assert.equal(r!.timeout, undefined, 'grpc_timeout_header_max 0: no cap');
  assert.equal(r!.max_stream_duration, 60_000);
  assert.deepEqual(r!.retry_policy?.retry_on, ['unavailable', 'reset']);
  assert.equal(r!.retry_policy?.num_retries, 3);
  assert.equal(r!.retry_policy?.per_try_timeout, 250);
});

test('routes that cannot be applied are refused, naming the field', () => {
  const c = translateCluster('c', cluster({}));
  const compose = (r: Record<string, unknown>) => composeConfig(translateRouteConfiguration(route([{ match: { prefix: '/' }, route: { cluster: 'c' } }, r])), clustersOf(c));
  rejects(() => compose({ match: { prefix: '/' }, route: { cluster: 'ghost' } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].route.cluster: no Cluster named "ghost" (the control plane sent "c")');
  rejects(() => compose({ match: { path: '/not-a-method' }, route: { cluster: 'c' } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].match.path: expected "/package.Service/Method"');
  rejects(() => compose({ match: { safe_regex: { regex: '(' } }, route: { cluster: 'c' } }),
    /^RouteConfiguration "rc": virtual_hosts\[0\]\.routes\[1\]\.match\.safe_regex\.regex: invalid regular expression/);
  rejects(() => compose({ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'c', weight: { value: 1 } }, { name: 'ghost', weight: { value: 1 } }] } } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].route.weighted_clusters: no Cluster named "ghost" (the control plane sent "c")');
  rejects(() => compose({ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'c', weight: { value: 0 } }] } } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].route.weighted_clusters.clusters: at least one weight must be above 0');
  rejects(() => compose({ match: { prefix: '/' }, route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: ':path', value: '/x' } }] }),
    /^RouteConfiguration "rc": virtual_hosts\[0\]\.routes\[1\]\.request_headers_to_add: expected an HTTP header name/);
  rejects(() => compose({ match: { prefix: '/' }, direct_response: { status: 503 } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].direct_response: not supported: a route must forward to a cluster (route.cluster)');
  rejects(() => compose({ match: { prefix: '/' }, route: { cluster: 'c', prefix_rewrite: '/x' } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].route.prefix_rewrite: is not supported');
  rejects(() => compose({ match: { prefix: '/', headers: [{ name: 'x', range_match: { start: 1, end: 2 } }] }, route: { cluster: 'c' } }),
    'RouteConfiguration "rc": virtual_hosts[0].routes[1].match.headers[0]: range_match is not supported');
  rejects(() => compose({ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: '5xx' } } }),
    /^RouteConfiguration "rc": virtual_hosts\[0\]\.routes\[1\]\.route\.retry_policy\.retry_on: "5xx" is not supported/);
  rejects(() => compose({ match: { prefix: '/', headers: [{ name: 'x', safe_regex_match: { regex: '(' } }] }, route: { cluster: 'c' } }),
    /^RouteConfiguration "rc": virtual_hosts\[0\]\.routes\[1\]\.match\.headers\[0\]: invalid regular expression/);
});

test('every virtual host is kept: routes of a host with domains other than "*" carry them as match.hosts', () => {
  const message = unpackAny(packAny(TYPE_URL.route, {
    name: 'rc',
    virtual_hosts: [
      { name: 'one', domains: ['a.example', '*.b.example'], routes: [{ match: { prefix: '/a' }, route: { cluster: 'a' } }] },
      { name: 'any', domains: ['*'], routes: [{ match: { prefix: '/b' }, route: { cluster: 'b' } }] },
    ],
  }));
  const translated = translateRouteConfiguration(message);
  assert.deepEqual(translated.routes.map((r) => [r.where, r.cluster, (r.config.match as { hosts?: string[] }).hosts]), [
    ['RouteConfiguration "rc": virtual_hosts[0].routes[0]', 'a', ['a.example', '*.b.example']],
    ['RouteConfiguration "rc": virtual_hosts[1].routes[0]', 'b', undefined],
  ]);
});

test('weighted_clusters, safe_regex paths and header edits become Switchyard routes', () => {
  const a = translateCluster('a', cluster({}));
  const b = translateCluster('b', cluster({}));
  const part = composeConfig(translateRouteConfiguration(route([{
    match: { safe_regex: { regex: '/[^/]+/Get' } },
    route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 70 } }, { name: 'b', weight: { value: 30 } }] } },
    request_headers_to_add: [
      { header: { key: 'X-Set', value: 's' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-add', value: 'a' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' },
    ],
    request_headers_to_remove: ['x-gone'],
    response_headers_to_add: [{ header: { key: 'x-resp', value: 'r' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
  }])), clustersOf(a, b));
  const [r] = part.routes;
  assert.equal(r!.match.path_regex, '/[^/]+/Get');
  assert.deepEqual(r!.weighted_clusters, [{ cluster: 'a', weight: 70 }, { cluster: 'b', weight: 30 }]);
  assert.deepEqual(r!.request_headers, { remove: ['x-gone'], set: [{ name: 'x-set', value: 's' }], add: [{ name: 'x-add', value: 'a' }] });
  assert.deepEqual(r!.response_headers, { remove: [], set: [{ name: 'x-resp', value: 'r' }], add: [] });
  assert.deepEqual(part.clusters.map((c) => c.name), ['a', 'b']);
});

test('ClusterLoadAssignment: weights, zones, DRAINING kept as draining, UNHEALTHY and TIMEOUT left out', () => {
  const built = translateLoadAssignment('echo', unpackAny(clusterLoadAssignmentResource('echo', [
    { host: '10.0.0.1', port: 80, weight: 2, zone: 'a' },
    { host: '10.0.0.2', port: 80, weight: 1, zone: 'b', health: 'draining' },
    { host: '::1', port: 81, weight: 1 },
  ])));
  assert.deepEqual(built, [
    { host: '10.0.0.1', port: 80, weight: 2, zone: 'a', health: 'healthy' },
    { host: '10.0.0.2', port: 80, weight: 1, zone: 'b', health: 'draining' },
    { host: '::1', port: 81, weight: 1, zone: undefined, health: 'healthy' },
  ]);
  const statuses = unpackAny(packAny(TYPE_URL.endpoint, {
    cluster_name: 'e',
    endpoints: [{
      lb_endpoints: ['HEALTHY', 'UNHEALTHY', 'TIMEOUT', 'DEGRADED', 'UNKNOWN'].map((status, i) => ({
        endpoint: { address: { socket_address: { address: `10.0.0.${i}`, port_value: 80 } } }, health_status: status,
      })),
    }],
  }));
  assert.deepEqual(translateLoadAssignment('e', statuses).map((e) => e.host), ['10.0.0.0', '10.0.0.3', '10.0.0.4']);
});

test('ClusterLoadAssignment: malformed endpoints are refused, naming the field', () => {
  const assignment = (lbEndpoint: Record<string, unknown>) => unpackAny(packAny(TYPE_URL.endpoint, { cluster_name: 'e', endpoints: [{ lb_endpoints: [lbEndpoint] }] }));
  const at = 'ClusterLoadAssignment "e": endpoints[0].lb_endpoints[0]';
  rejects(() => translateLoadAssignment('e', assignment({ endpoint: { address: { socket_address: { address: 'backend.local', port_value: 80 } } } })),
    `${at}.endpoint.address.socket_address.address: "backend.local" is not an IP address`);
  rejects(() => translateLoadAssignment('e', assignment({ endpoint: { address: { socket_address: { address: '10.0.0.1' } } } })),
    `${at}.endpoint.address.socket_address.port_value: expected a port from 1 to 65535, got none`);
  rejects(() => translateLoadAssignment('e', assignment({ endpoint: { address: { pipe: { path: '/tmp/s' } } } })),
    `${at}.endpoint.address: pipe is not supported: expected socket_address`);
  rejects(() => translateLoadAssignment('e', assignment({ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } }, load_balancing_weight: { value: 0 } })),
    `${at}.load_balancing_weight: expected 1 to 1000000, got 0`);
});

test('the placeholder config answers UNAVAILABLE, naming the control plane', () => {
  const part = pendingConfig('cp:18000');
  assert.equal(part.clusters.length, 0);
  assert.deepEqual(part.routes[0]!.direct_response, { code: 14, message: 'the xDS config has not arrived from the control plane (cp:18000) yet' });
});
