import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterConfig } from '../../src/config/schema.ts';
import { createDiscoverySource } from '../../src/discovery/create.ts';
import { DnsDiscoverySource } from '../../src/discovery/dns.ts';
import type { DiscoveryUpdate } from '../../src/discovery/source.ts';
import { StaticDiscoverySource } from '../../src/discovery/static.ts';

function cluster(fields: Partial<ClusterConfig>): ClusterConfig {
  return {
    name: 'c',
    lb_policy: 'round_robin',
    ring_size: 1024,
    active_request_bias: 1,
    ewma_decay: 10_000,
    connect_timeout: 5_000,
    ...fields,
  } as ClusterConfig;
}

test('static source emits its list once, on start', () => {
  const source = new StaticDiscoverySource([
    { host: '127.0.0.1', port: 50051, weight: 1 },
    { host: '127.0.0.2', port: 50051, weight: 3 },
  ]);
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  source.refresh();
  source.close();
  assert.deepEqual(updates, [{
    type: 'reset',
    endpoints: [
      { host: '127.0.0.1', port: 50051, weight: 1 },
      { host: '127.0.0.2', port: 50051, weight: 3 },
    ],
  }]);
});

test('static source merges duplicate endpoints and unbrackets IPv6', () => {
  const source = new StaticDiscoverySource([
    { host: '[::1]', port: 1, weight: 2 },
    { host: '::1', port: 1, weight: 3 },
    { host: '::1', port: 2, weight: 1 },
  ]);
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  assert.deepEqual(updates, [{
    type: 'reset',
    endpoints: [{ host: '::1', port: 1, weight: 5 }, { host: '::1', port: 2, weight: 1 }],
  }]);
});

test('static source emits nothing once closed', () => {
  const source = new StaticDiscoverySource([{ host: '127.0.0.1', port: 1, weight: 1 }]);
  source.close();
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  assert.deepEqual(updates, []);
});

test('createDiscoverySource picks static for endpoints', () => {
  const source = createDiscoverySource(cluster({ endpoints: [{ address: '127.0.0.1', port: 9, weight: 4 }] }));
  assert.ok(source instanceof StaticDiscoverySource);
  const updates: DiscoveryUpdate[] = [];
  source.start((update) => updates.push(update));
  assert.deepEqual(updates, [{ type: 'reset', endpoints: [{ host: '127.0.0.1', port: 9, weight: 4 }] }]);
});

test('createDiscoverySource picks dns for dns', () => {
  const source = createDiscoverySource(cluster({
    dns: { name: '127.0.0.7', port: 9, families: ['ipv4'], refresh_interval: 5_000 },
  }));
  assert.ok(source instanceof DnsDiscoverySource);
  source.close();
});

test('createDiscoverySource rejects a cluster with no source', () => {
  assert.throws(() => createDiscoverySource(cluster({})), /has no endpoints, dns or kubernetes/);
});
