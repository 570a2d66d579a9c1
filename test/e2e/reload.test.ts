// Switchyard.reload() under load, in-process: what changes takes effect for new
// RPCs at once, what does not change is kept, and no RPC fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { configSchema } from '../../src/config/schema.ts';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import { echoClient, startEchoSetup, startProxy, staticCluster, unary, waitFor, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

const LISTENERS = [{ name: 'main', port: 0, plaintext: true }];

function config(value: Record<string, unknown>) {
  return { config: configSchema.parse({ listeners: LISTENERS, ...value }) };
}

const canary = () => {
  const metadata = new grpc.Metadata();
  metadata.set('x-canary', 'true');
  return metadata;
};

describe('reloading the config', () => {
  let setup: EchoSetup;
  let backends: EchoServerHandle[];
  let running: RunningProxy;
  let client: EchoClient;

  before(async () => {
    // Three backends, only the first in the cluster at first.
    setup = await startEchoSetup(3, (all) => ({ clusters: [staticCluster('echo', all.slice(0, 1))] }));
    ({ backends, proxy: running, client } = setup);
  });

  after(() => setup.close());

  it('adds a backend, a cluster and a route under load: no RPC fails, and new RPCs see the change at once', async () => {
    const { proxy } = running;
    const oldEcho = proxy.clusters.get('echo')!;
    // In flight on the cluster about to be replaced: it must finish there.
    const slow = unary(client, { delay_ms: 600 });
    await waitFor(() => backends[0]!.active > 0, 'the slow RPC to be in flight');
    const load = steadyLoad(client, { concurrency: 4 });
    await waitFor(() => load.answered() > 50, 'traffic');

    const summary = await proxy.reload(config({
      clusters: [staticCluster('echo', backends.slice(0, 2)), staticCluster('canary', backends.slice(2))],
      routes: [
        { name: 'canary', match: { prefix: '/', headers: [{ name: 'x-canary', exact: 'true' }] }, cluster: 'canary' },
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    }));
    assert.deepEqual(summary.clusters, { added: ['canary'], changed: ['echo'], removed: [], unchanged: [] });
    assert.deepEqual(summary.listeners, { added: [], changed: [], removed: [], unchanged: ['main'], failed: [] });
    assert.equal(summary.routes, 2);

    assert.equal((await unary(client, {}, canary())).response.backend, 'backend-2');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await unary(client, {})).response.backend);
    assert.deepEqual([...seen].sort(), ['backend-0', 'backend-1']);

    assert.equal((await slow).response.backend, 'backend-0');
    const okBefore = load.answered();
    await waitFor(() => load.answered() > okBefore + 50, 'traffic after the reload');
    await load.stop();
    assert.deepEqual(load.failures, [], `no RPC failed (${load.answered()} succeeded)`);
    // The replaced cluster is closed once its last RPC is done.
    assert.notEqual(proxy.clusters.get('echo'), oldEcho);
    await waitFor(() => oldEcho.endpoints.size === 0, 'the replaced cluster to close', 2_000);
  });

  it('keeps an unchanged cluster as it is: the same object, connections and state', async () => {
    const { proxy } = running;
    const echo = proxy.clusters.get('echo')!;
    const summary = await proxy.reload(config({
      clusters: [staticCluster('echo', backends.slice(0, 2))],
      routes: [
        { name: 'deny-canary', match: { prefix: '/', headers: [{ name: 'x-canary', exact: 'true' }] }, direct_response: { code: 'PERMISSION_DENIED', message: 'no canary today' } },
        { match: { prefix: '/' }, cluster: 'echo' },
      ],
    }));
    assert.deepEqual(summary.clusters, { added: [], changed: [], removed: ['canary'], unchanged: ['echo'] });
    assert.equal(proxy.clusters.get('echo'), echo);
    assert.equal(proxy.clusters.has('canary'), false);
    const denied = await unary(client, {}, canary()).then(() => undefined, (error: grpc.ServiceError) => error);
    assert.equal(denied?.code, grpc.status.PERMISSION_DENIED);
  });

  it('rejects a config it cannot apply, and the running one stays in force', async () => {
    const { proxy } = running;
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    const before = proxy.config;
    try {
      await assert.rejects(
        proxy.reload(config({
          listeners: [...LISTENERS, { name: 'extra', port: taken, plaintext: true }],
          clusters: [staticCluster('other', backends.slice(2))],
          routes: [{ match: { prefix: '/' }, cluster: 'other' }],
        })),
        /listener "extra": .*EADDRINUSE/,
      );
    } finally {
      blocker.close();
    }
    assert.equal(proxy.config, before);
    assert.deepEqual(proxy.listeners.map((l) => l.name), ['main']);
    assert.deepEqual([...proxy.clusters.keys()], ['echo']);
    assert.match((await unary(client, {})).response.backend, /^backend-[01]$/);
  });

  it('adds and removes listeners; a removed one drains, and its RPC in flight completes', async () => {
    const { proxy } = running;
    const base = proxy.config;
    const withSecond = { ...base, listeners: [...base.listeners, { ...base.listeners[0]!, name: 'second' }] };
    const added = await proxy.reload({ config: withSecond });
    assert.deepEqual(added.listeners.added, ['second']);
    const second = proxy.listener('second');
    const secondClient = echoClient(`127.0.0.1:${second.address.port}`);
    try {
      const slow = unary(secondClient, { delay_ms: 300 });
      await waitFor(() => second.connectionCount > 0, 'a connection to the second listener');
      const removed = await proxy.reload({ config: base });
      assert.deepEqual(removed.listeners.removed, ['second']);
      assert.deepEqual(proxy.listeners.map((l) => l.name), ['main']);
      assert.equal((await slow).response.payload.length, 0);
      await waitFor(() => second.connectionCount === 0, 'the removed listener to drain', 2_000);
      // It no longer accepts connections.
      const refused = await new Promise<boolean>((resolve) => {
        const session = http2.connect(`http://127.0.0.1:${second.address.port}`);
        session.on('error', () => resolve(true));
        session.on('connect', () => { session.destroy(); resolve(false); });
      });
      assert.equal(refused, true);
    } finally {
      secondClient.close();
    }
  });

  it('refuses to reload once draining', async () => {
    const other = await startProxy({ clusters: [staticCluster('echo', backends.slice(0, 1))], routes: [{ match: { prefix: '/' }, cluster: 'echo' }] });
    const drained = other.proxy.drain({ delayMs: 200, timeoutMs: 500 });
    await assert.rejects(other.proxy.reload({ config: other.proxy.config }), /cannot reload while draining/);
    await drained;
  });
});
