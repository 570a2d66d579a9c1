/**
 * Reloads without sockets: the runtime (src/lifecycle/proxy-runtime.ts) with
 * fake parts. Listeners, the health endpoint and the admin interface are
 * fakes that record what was done to them; clusters are real, over fake
 * discovery and pools.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { configSchema, type ListenerConfig } from '../../src/config/schema.ts';
import { Cluster } from '../../src/cluster/cluster.ts';
import { ProxyRuntime, type RuntimeParts } from '../../src/lifecycle/proxy-runtime.ts';
import type { Listener } from '../../src/listener/listener.ts';
import { createDiscoverySource } from '../../src/discovery/create.ts';
import { FakePools, type FakePool } from '../helpers/fake-streams.ts';

/** A listener that binds nothing: it records updates, drains and closes; ports below 1024 are "in use". */
class FakeListener {
  readonly name: string;
  config: ListenerConfig;
  readonly address: { address: string; family: string; port: number };
  connectionCount = 0;
  connectionsAccepted = 0;
  updates = 0;
  closed = false;
  constructor(config: ListenerConfig) {
    this.name = config.name;
    this.config = config;
    this.address = { address: config.address, family: 'IPv4', port: config.port };
  }
  update(next: ListenerConfig): boolean {
    this.updates++;
    this.config = next;
    return true;
  }
  async drain(): Promise<void> {}
  async destroy(): Promise<number> {
    return 0;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function fakeRuntime(config: Record<string, unknown>) {
  const listeners: FakeListener[] = [];
  const clusters: Cluster[] = [];
  const reloads: string[] = [];
  const pools = new FakePools();
  /** Ports some other process holds. */
  const taken = new Set<number>();
  const parts: RuntimeParts = {
    logger: pino({ level: 'silent' }),
    followLogLevel: false,
    createCluster: (clusterConfig) => {
      const cluster = new Cluster({ config: clusterConfig, source: createDiscoverySource(clusterConfig), createPool: pools.create });
      clusters.push(cluster);
      return cluster;
    },
    startListener: async (listenerConfig) => {
      if (taken.has(listenerConfig.port) || listeners.some((l) => !l.closed && l.config.port === listenerConfig.port && l.config.port !== 0)) {
        throw Object.assign(new Error(`listen EADDRINUSE: ${listenerConfig.port}`), { code: 'EADDRINUSE' });
      }
      const listener = new FakeListener(listenerConfig);
      listeners.push(listener);
      return listener as unknown as Listener;
    },
    startHealth: async (healthConfig) => ({ address: { address: healthConfig.address, family: 'IPv4', port: healthConfig.port }, close: async () => {} }),
    startAdmin: async () => ({ address: { address: '127.0.0.1', family: 'IPv4', port: 1 }, close: async () => {} }),
    createAccessLog: () => ({ write: () => {}, close: async () => {} }),
    startOverloadMonitor: () => ({ overloaded: false, limitBytes: undefined, close: () => {} }),
    connectXds: () => Promise.reject(new Error('no xDS here')),
    reloaded: (kind, error) => reloads.push(error === undefined ? kind : `${kind} failed: ${error}`),
    applied: () => {},
  };
  const runtime = new ProxyRuntime(parts, parse(config));
  return { runtime, listeners, clusters, reloads, taken, pools };
}

function parse(config: Record<string, unknown>) {
  return configSchema.parse({ listeners: [{ name: 'main', port: 8080, plaintext: true }], ...config });
}

const two = {
  clusters: [
    { name: 'orders', endpoints: [{ address: '10.0.0.1', port: 1 }] },
    { name: 'users', endpoints: [{ address: '10.0.0.2', port: 1 }] },
  ],
  routes: [{ match: { service: 'shop.Orders' }, cluster: 'orders' }, { match: { prefix: '/' }, cluster: 'users' }],
};

describe('reload without sockets', () => {
  it('start binds every listener and serves from one snapshot of routes and clusters', async () => {
    const { runtime, listeners } = fakeRuntime(two);
    await runtime.start();
    assert.equal(runtime.state, 'ready');
    assert.deepEqual(listeners.map((l) => l.name), ['main']);
    assert.deepEqual([...runtime.serving.clusters.keys()], ['orders', 'users']);
    assert.equal(runtime.serving.routes.match('/shop.Orders/Get', {})?.name, 'routes[0]');
  });

  it('a changed cluster is replaced; the old one closes only when its last RPC ends; an unchanged one is kept as it is', async () => {
    const { runtime } = fakeRuntime(two);
    await runtime.start();
    const before = runtime.serving;
    const [orders, users] = [before.clusters.get('orders')!, before.clusters.get('users')!];
    orders.limits.startRequest();
    const summary = await runtime.reload({ config: parse({ ...two, clusters: [{ ...two.clusters[0], connect_timeout: '1s' }, two.clusters[1]] }) });
    assert.deepEqual(summary.clusters.changed, ['orders']);
    assert.notEqual(runtime.serving.clusters.get('orders'), orders);
    assert.equal(runtime.serving.clusters.get('users'), users, 'kept with its connections and state');
    assert.equal(before.clusters.get('orders'), orders, 'a snapshot never changes: in-flight RPCs finish on the old cluster');
    const pool = orders.endpoints.values().next().value!.pool as FakePool;
    assert.equal(pool.closed, false, 'not closed while an RPC uses it');
    orders.limits.endRequest();
    await orders.limits.whenIdle();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(pool.closed, true, 'closed once idle');
  });

  it('a listener that keeps its address is updated in place; one that moves is bound anew and the old one drained', async () => {
    const { runtime, listeners } = fakeRuntime(two);
    await runtime.start();
    await runtime.reload({ config: parse({ ...two, listeners: [{ name: 'main', port: 8080, plaintext: true, max_connections: 5 }] }) });
    assert.equal(listeners.length, 1);
    assert.equal(listeners[0]!.updates, 1);
    await runtime.reload({ config: parse({ ...two, listeners: [{ name: 'main', port: 8081, plaintext: true }] }) });
    assert.equal(listeners.length, 2);
    assert.equal(listeners[0]!.closed, true);
    assert.deepEqual(runtime.listeners.map((l) => l.address.port), [8081]);
  });

  it('a listener that cannot bind rejects the reload and leaves everything as it was', async () => {
    const { runtime, clusters, taken, reloads } = fakeRuntime(two);
    await runtime.start();
    const before = runtime.serving;
    taken.add(9999);
    const next = parse({ ...two, clusters: [...two.clusters, { name: 'extra', endpoints: [{ address: '10.0.0.3', port: 1 }] }], listeners: [{ name: 'main', port: 8080, plaintext: true }, { name: 'second', port: 9999, plaintext: true }] });
    await assert.rejects(runtime.reload({ config: next }), /listener "second": listen EADDRINUSE/);
    assert.equal(runtime.serving, before);
    const extra = clusters.find((cluster) => cluster.name === 'extra')!;
    assert.equal(extra.endpoints.size, 0, 'the cluster made for it was closed');
    assert.match(reloads.at(-1)!, /^config failed: listener "second"/);
  });

  it('a port held by the listener being replaced is bound once that listener lets it go', async () => {
    const { runtime, listeners } = fakeRuntime(two);
    await runtime.start();
    // Same port, now TLS-less but on another address: the old listener must go before the new binds.
    await runtime.reload({ config: parse({ ...two, listeners: [{ name: 'main', address: '127.0.0.2', port: 8080, plaintext: true }] }) });
    assert.equal(listeners[0]!.closed, true);
    assert.deepEqual(runtime.listeners.map((l) => l.config.address), ['127.0.0.2']);
  });

  it('no reload while draining', async () => {
    const { runtime } = fakeRuntime(two);
    await runtime.start();
    const drained = runtime.drain({ delayMs: 0, timeoutMs: 100 });
    await assert.rejects(runtime.reload({ config: parse(two) }), /cannot reload while draining/);
    await drained;
    assert.equal(runtime.state, 'stopped');
  });
});
