import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapFor } from '../../src/cli/bootstrap.ts';
import { ResponseCache } from '../../src/xds/agent/cache.ts';
import { isLoopback } from '../../src/xds/agent/loopback.ts';
import {
  readDeltaRequest, readDeltaResponse, readSotwRequest, readSotwResponse, resourceNameOf,
  writeDeltaRequest, writeDeltaResponse, writeSotwRequest, writeSotwResponse,
} from '../../src/xds/agent/wire.ts';
import { resourceRoot, TYPE_URL } from '../../src/xds/protos.ts';
import { clusterLoadAssignmentResource, clusterResource, listenerResource, routeConfigurationResource } from '../../src/xds/resources.ts';

const type = (name: string) => resourceRoot().lookupType(`envoy.service.discovery.v3.${name}`);
const encode = (name: string, value: Record<string, unknown>) => Buffer.from(type(name).encode(type(name).fromObject(value)).finish());
const decode = (name: string, bytes: Buffer) => type(name).toObject(type(name).decode(bytes), { longs: String, enums: String, defaults: false }) as Record<string, any>;
const anyBytes = (any: { type_url: string; value: Buffer }) => Buffer.from(resourceRoot().lookupType('google.protobuf.Any').encode(any).finish());

const NODE = { id: 'app-1', cluster: 'apps', user_agent_name: 'gRPC Node Pure JS', locality: { zone: 'zone-a' }, client_features: ['x'] };
const cluster = clusterResource({ name: 'echo', policy: 'round_robin', connectTimeoutMs: 1000 }, { leastRequest: false, switchyardPolicies: false });
const assignment = clusterLoadAssignmentResource('echo', [{ host: '10.0.0.1', port: 80, weight: 1, zone: 'a' }]);

describe('agent wire format: the ADS messages as bytes', () => {
  it('reads DiscoveryRequest and DiscoveryResponse as protobufjs writes them', () => {
    const request = readSotwRequest(encode('DiscoveryRequest', {
      version_info: 'v1', node: NODE, resource_names: ['a', 'b'], type_url: TYPE_URL.cluster, response_nonce: '7', error_detail: { code: 3, message: 'no' },
    }));
    assert.deepEqual({ ...request, node: { ...request.node, raw: undefined } }, {
      versionInfo: 'v1', resourceNames: ['a', 'b'], typeUrl: TYPE_URL.cluster, responseNonce: '7', nack: true,
      node: { id: 'app-1', cluster: 'apps', userAgentName: 'gRPC Node Pure JS', raw: undefined },
    });
    // The node's bytes are kept whole (locality, features): replayed upstream they say the same.
    assert.deepEqual(decode('DiscoveryRequest', writeSotwRequest({ versionInfo: 'v1', node: request.node!.raw, resourceNames: ['a'], typeUrl: TYPE_URL.cluster, responseNonce: '' })), {
      version_info: 'v1', node: NODE, resource_names: ['a'], type_url: TYPE_URL.cluster,
    });

    const response = readSotwResponse(encode('DiscoveryResponse', { version_info: 'v2', resources: [cluster], type_url: TYPE_URL.cluster, nonce: 'n1', canary: true }));
    assert.equal(response.versionInfo, 'v2');
    assert.equal(response.nonce, 'n1');
    assert.equal(response.typeUrl, TYPE_URL.cluster);
    assert.deepEqual(response.resources, [anyBytes(cluster)]);
    assert.deepEqual(decode('DiscoveryResponse', writeSotwResponse({ versionInfo: 'v2', resources: response.resources, typeUrl: TYPE_URL.cluster, nonce: 'n2' })), {
      version_info: 'v2', resources: [{ type_url: cluster.type_url, value: cluster.value }], type_url: TYPE_URL.cluster, nonce: 'n2',
    });
  });

  it('reads and writes the delta messages', () => {
    const request = readDeltaRequest(encode('DeltaDiscoveryRequest', {
      node: NODE, type_url: TYPE_URL.endpoint, resource_names_subscribe: ['echo', '*'], resource_names_unsubscribe: ['old'],
      initial_resource_versions: { echo: 'v1', other: 'v9' }, response_nonce: '3',
    }));
    assert.equal(request.node?.id, 'app-1');
    assert.deepEqual([request.typeUrl, request.subscribe, request.unsubscribe, [...request.initialVersions], request.responseNonce, request.nack], [
      TYPE_URL.endpoint, ['echo', '*'], ['old'], [['echo', 'v1'], ['other', 'v9']], '3', false,
    ]);
    const written = decode('DeltaDiscoveryRequest', writeDeltaRequest({ node: request.node!.raw, typeUrl: TYPE_URL.endpoint, subscribe: ['echo'], initialVersions: request.initialVersions, responseNonce: '' }));
    assert.deepEqual(written, { node: NODE, type_url: TYPE_URL.endpoint, resource_names_subscribe: ['echo'], initial_resource_versions: { echo: 'v1', other: 'v9' } });

    const response = readDeltaResponse(encode('DeltaDiscoveryResponse', {
      system_version_info: 's1', type_url: TYPE_URL.endpoint, nonce: 'n', removed_resources: ['gone'], removed_resource_names: [{ name: 'gone-too' }],
      resources: [{ name: 'echo', version: 'v2', resource: assignment }, { name: 'heartbeat', version: 'v0' }],
    }));
    assert.deepEqual(response.removed, ['gone', 'gone-too']);
    assert.deepEqual(response.resources.map((r) => [r.name, r.version, r.any?.length ?? 0]), [['echo', 'v2', anyBytes(assignment).length], ['heartbeat', 'v0', 0]]);
    const rewritten = decode('DeltaDiscoveryResponse', writeDeltaResponse({ systemVersionInfo: 's1', typeUrl: TYPE_URL.endpoint, nonce: 'x', resources: [{ name: 'echo', version: 'v2', any: response.resources[0]!.any! }] }));
    assert.deepEqual(rewritten, { system_version_info: 's1', type_url: TYPE_URL.endpoint, nonce: 'x', resources: [{ name: 'echo', version: 'v2', resource: { type_url: assignment.type_url, value: assignment.value } }] });
  });

  it('finds the name of each resource type in its Any', () => {
    assert.equal(resourceNameOf(anyBytes(listenerResource({ name: 'l', routeConfig: 'r' }))), 'l');
    assert.equal(resourceNameOf(anyBytes(routeConfigurationResource({ name: 'r', routes: [{ prefix: '/', cluster: 'c' }] }))), 'r');
    assert.equal(resourceNameOf(anyBytes(cluster)), 'echo');
    assert.equal(resourceNameOf(anyBytes(assignment)), 'echo');
    const wrapped = { type_url: 'type.googleapis.com/envoy.service.discovery.v3.Resource', value: encode('Resource', { name: 'wrapped', version: '1', resource: cluster }) };
    assert.equal(resourceNameOf(anyBytes(wrapped)), 'wrapped');
  });

  it('rejects truncated messages', () => {
    const bytes = encode('DiscoveryRequest', { type_url: TYPE_URL.cluster, resource_names: ['abc'] });
    assert.throws(() => readSotwRequest(bytes.subarray(0, bytes.length - 1)), /truncated/);
  });
});

describe('agent cache', () => {
  const any = (text: string) => Buffer.from(text);
  const wildcard = { wildcard: true, names: new Set<string>() };

  it('a Listener or Cluster response is the whole subscribed set; RouteConfiguration and ClusterLoadAssignment responses merge', () => {
    const cache = new ResponseCache(10);
    cache.storeSotw('n', TYPE_URL.cluster, '1', new Map([['a', any('a1')], ['b', any('b1')]]), wildcard);
    cache.storeSotw('n', TYPE_URL.cluster, '2', new Map([['a', any('a2')]]), wildcard);
    assert.deepEqual([...cache.select('n', TYPE_URL.cluster, wildcard)!.resources.keys()], ['a']);
    // Named: only names the stream asked for can be gone.
    cache.storeSotw('n', TYPE_URL.cluster, '3', new Map([['c', any('c3')]]), { wildcard: false, names: new Set(['c', 'x']) });
    assert.deepEqual([...cache.select('n', TYPE_URL.cluster, wildcard)!.resources.keys()].sort(), ['a', 'c']);

    cache.storeSotw('n', TYPE_URL.endpoint, '1', new Map([['a', any('a1')]]), { wildcard: false, names: new Set(['a']) });
    cache.storeSotw('n', TYPE_URL.endpoint, '2', new Map([['b', any('b2')]]), { wildcard: false, names: new Set(['a', 'b']) });
    const selected = cache.select('n', TYPE_URL.endpoint, { wildcard: false, names: new Set(['a', 'b', 'z']) })!;
    assert.equal(selected.version, '2');
    assert.deepEqual([...selected.resources].map(([name, r]) => [name, r.version, r.any.toString()]), [['a', '1', 'a1'], ['b', '2', 'b2']]);
  });

  it('delta responses update and remove by name; nodes are kept per key, least recently used dropped first', () => {
    const cache = new ResponseCache(2);
    cache.storeDelta('n1', TYPE_URL.endpoint, 's1', [{ name: 'a', version: 'v1', any: any('a') }, { name: 'b', version: 'v1', any: any('b') }], []);
    cache.storeDelta('n1', TYPE_URL.endpoint, '', [{ name: 'a', version: 'v2', any: any('a2') }], ['b']);
    assert.deepEqual([...cache.select('n1', TYPE_URL.endpoint, wildcard)!.resources].map(([name, r]) => [name, r.version]), [['a', 'v2']]);
    cache.storeDelta('n2', TYPE_URL.endpoint, 's', [], []);
    cache.get('n1', TYPE_URL.endpoint); // n1 used: n2 is now the oldest
    cache.storeDelta('n3', TYPE_URL.endpoint, 's', [], []);
    assert.equal(cache.nodes, 2);
    assert.ok(cache.get('n1', TYPE_URL.endpoint));
    assert.equal(cache.get('n2', TYPE_URL.endpoint), undefined);
  });
});

describe('agent addresses and bootstrap', () => {
  it('knows loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) assert.ok(isLoopback(address), address);
    for (const address of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::2', 'example.com', '']) assert.ok(!isLoopback(address), address);
  });

  it('writes the bootstrap grpc-js-xds reads', () => {
    assert.deepEqual(bootstrapFor({ nodeId: 'n', agent: { address: '127.0.0.1:18000' } }), {
      xds_servers: [{ server_uri: '127.0.0.1:18000', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'n', locality: {} },
    });
    assert.deepEqual(bootstrapFor({ nodeId: 'n', nodeCluster: 'c', zone: 'z', agent: { socketPath: '/run/switchyard/agent.sock' } }).xds_servers[0]!.server_uri, 'unix:///run/switchyard/agent.sock');
  });
});
