/**
 * The Kubernetes EndpointSlice source against a fake API server that speaks
 * the list/watch protocol (test/helpers/fake-kube-api.ts): no cluster can run
 * where these tests run.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { KubernetesEndpointSliceSource, type KubernetesSourceOptions } from '../../src/discovery/kubernetes.ts';
import { endpointKey, type DiscoveryUpdate, type EndpointAddress } from '../../src/discovery/source.ts';
import { FakeKubeApi, endpointSlice } from '../helpers/fake-kube-api.ts';
import { echoClient, startProxy, waitFor, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';

/** `10.0.0.1:50051`, with ` draining` and ` zone=…` when they apply. */
function describeSet(endpoints: readonly EndpointAddress[]): string[] {
  return endpoints.map((e) => `${endpointKey(e)}${e.health === 'draining' ? ' draining' : ''}${e.zone ? ` zone=${e.zone}` : ''}`);
}

class Recorder {
  readonly updates: DiscoveryUpdate[] = [];
  readonly listener = (update: DiscoveryUpdate) => this.updates.push(update);

  get resets(): string[][] {
    return this.updates.flatMap((u) => (u.type === 'reset' ? [describeSet(u.endpoints)] : []));
  }

  get errors(): string[] {
    return this.updates.flatMap((u) => (u.type === 'error' ? [u.error.message] : []));
  }

  get current(): string[] | undefined {
    return this.resets.at(-1);
  }

  async until(expected: readonly string[], what = `the set ${JSON.stringify(expected)}`): Promise<void> {
    await waitFor(() => JSON.stringify(this.current) === JSON.stringify(expected), `${what}; last: ${JSON.stringify(this.current)}`, 5_000);
  }
}

describe('Kubernetes EndpointSlice source (against a fake API server)', () => {
  let api: FakeKubeApi;
  const sources: KubernetesEndpointSliceSource[] = [];

  beforeEach(async () => {
    api = await FakeKubeApi.start();
  });

  afterEach(async () => {
    for (const source of sources.splice(0)) source.close();
    await api.close();
  });

  function start(options: Partial<KubernetesSourceOptions> = {}): { source: KubernetesEndpointSliceSource; seen: Recorder } {
    const source = new KubernetesEndpointSliceSource({
      namespace: 'default',
      service: 'echo',
      port: 'grpc',
      kubeConfig: api.kubeConfig(),
      backoff: { initialMs: 100, maxMs: 1_000 },
      ...options,
    });
    sources.push(source);
    const seen = new Recorder();
    source.start(seen.listener);
    return { source, seen };
  }

  it('lists the Service\'s slices, then follows slice add, update and delete through the watch', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1', '10.0.0.2']));
    api.apply(endpointSlice('other-a', 'other', ['10.0.9.1']));
    api.apply(endpointSlice('echo-x', 'echo', ['10.0.9.2'], { namespace: 'elsewhere' }));
    const { source, seen } = start();

    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051']);
    assert.equal(api.lists.length, 1);
    assert.equal(api.lists[0]!.labelSelector, 'kubernetes.io/service-name=echo');
    await waitFor(() => api.openWatches === 1, 'the watch');
    const watch = api.watches[0]!;
    assert.equal(watch.resourceVersion, api.lists[0]!.resourceVersion, 'the watch starts at the list\'s resourceVersion');
    assert.equal(watch.allowWatchBookmarks, true);
    assert.equal(watch.labelSelector, 'kubernetes.io/service-name=echo');

    // Added: a second slice of the same Service merges with the first.
    let changedAt = performance.now();
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.3']));
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051']);
    assert.ok(performance.now() - changedAt < 1_000, 'a change arrives well within a second');

    // Updated.
    changedAt = performance.now();
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1']));
    await seen.until(['10.0.0.1:50051', '10.0.0.3:50051']);
    // Deleted.
    api.delete('echo-b');
    await seen.until(['10.0.0.1:50051']);
    // The other Service and the other namespace never showed up; no second list was needed.
    api.apply(endpointSlice('other-a', 'other', ['10.0.9.3']));
    api.delete('echo-a');
    await seen.until([]);
    assert.equal(api.lists.length, 1);
    assert.equal(source.resourceVersion, api.resourceVersion);
    assert.deepEqual(seen.errors, []);
    assert.ok(seen.resets.every((set) => set.every((entry) => entry.startsWith('10.0.0.'))), JSON.stringify(seen.resets));
  });

  it('emits an empty set for a Service without slices, and nothing after close()', async () => {
    const { source, seen } = start();
    await seen.until([]);
    await waitFor(() => api.openWatches === 1, 'the watch');
    source.close();
    await waitFor(() => api.openWatches === 0, 'close() to end the watch');
    const count = seen.updates.length;
    // A second source is the witness that the change was delivered.
    const witness = start();
    await witness.seen.until([]);
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1']));
    await witness.seen.until(['10.0.0.1:50051']);
    assert.equal(seen.updates.length, count);
  });

  it('resolves a named port in each slice, or a number; skips slices without it, FQDN slices and other protocols', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1'], { ports: [{ name: 'http', port: 8080 }, { name: 'grpc', port: 9000 }] }));
    // A rollout that changes the target port: the new pods' slice carries the new number.
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.2'], { ports: [{ name: 'grpc', port: 9001 }] }));
    api.apply(endpointSlice('echo-c', 'echo', ['10.0.0.3'], { ports: [{ name: 'http', port: 8080 }] }));
    api.apply(endpointSlice('echo-d', 'echo', ['fd00::1', '10.0.0.9'], { addressType: 'IPv6', ports: [{ name: 'grpc', port: 9000 }] }));
    api.apply(endpointSlice('echo-e', 'echo', ['pod.example.com'], { addressType: 'FQDN', ports: [{ name: 'grpc', port: 9000 }] }));
    api.apply(endpointSlice('echo-f', 'echo', ['10.0.0.6'], { ports: [{ name: 'grpc', port: 9000, protocol: 'UDP' }] }));

    const byName = start({ port: 'grpc' });
    const byNumber = start({ port: 8080 });
    await byName.seen.until(['10.0.0.1:9000', '10.0.0.2:9001', '[fd00::1]:9000']);
    await byNumber.seen.until(['10.0.0.1:8080', '10.0.0.3:8080']);

    // The port leaves a slice: its endpoints leave the set.
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.2'], { ports: [{ name: 'metrics', port: 9090 }] }));
    await byName.seen.until(['10.0.0.1:9000', '[fd00::1]:9000']);
  });

  it('maps conditions and zones: ready → healthy, terminating and serving → draining, not serving → left out', async () => {
    api.apply(endpointSlice('echo-a', 'echo', [
      { ip: '10.0.0.1', zone: 'zone-a' },
      { ip: '10.0.0.2', ready: false, serving: false, zone: 'zone-a' },
      { ip: '10.0.0.3', ready: false, serving: true, terminating: true, zone: 'zone-b' },
      { ip: '10.0.0.4', ready: false, serving: false, terminating: true },
    ]));
    // Conditions left unset: the API says that means ready.
    api.apply({ ...endpointSlice('echo-b', 'echo', []), endpoints: [{ addresses: ['10.0.0.5'] }, { addresses: ['10.0.0.6'], conditions: {} }] });
    const { seen } = start();
    await seen.until(['10.0.0.1:50051 zone=zone-a', '10.0.0.3:50051 draining zone=zone-b', '10.0.0.5:50051', '10.0.0.6:50051']);

    // A pod is deleted: terminating (still serving) → draining, then no longer serving → gone, then removed.
    api.apply(endpointSlice('echo-a', 'echo', [
      { ip: '10.0.0.1', ready: false, serving: true, terminating: true, zone: 'zone-a' },
      { ip: '10.0.0.2', zone: 'zone-a' },
    ]));
    await seen.until(['10.0.0.1:50051 draining zone=zone-a', '10.0.0.2:50051 zone=zone-a', '10.0.0.5:50051', '10.0.0.6:50051']);
    api.apply(endpointSlice('echo-a', 'echo', [
      { ip: '10.0.0.1', ready: false, serving: false, terminating: true, zone: 'zone-a' },
      { ip: '10.0.0.2', zone: 'zone-a' },
    ]));
    await seen.until(['10.0.0.2:50051 zone=zone-a', '10.0.0.5:50051', '10.0.0.6:50051']);
    api.apply(endpointSlice('echo-a', 'echo', [{ ip: '10.0.0.2', zone: 'zone-a' }]));
    api.delete('echo-b');
    await seen.until(['10.0.0.2:50051 zone=zone-a']);
  });

  it('an endpoint in two slices (moving during a rollout) appears once, healthy over draining', async () => {
    api.apply(endpointSlice('echo-a', 'echo', [{ ip: '10.0.0.1', ready: false, serving: true, terminating: true }]));
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.1', '10.0.0.2']));
    const { seen } = start();
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051']);
  });

  it('turns a burst of slice events into one reset', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1']));
    const { seen } = start();
    await seen.until(['10.0.0.1:50051']);
    await waitFor(() => api.openWatches === 1, 'the watch');
    const before = seen.resets.length;
    const expected: string[] = [];
    for (let i = 2; i <= 21; i++) {
      api.apply(endpointSlice(`echo-${i}`, 'echo', [`10.0.1.${i}`]));
      expected.push(`10.0.1.${i}:50051`);
    }
    api.delete('echo-a');
    await seen.until(expected.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
    // 21 events, one reset (two if the events straddle the 20 ms window on a loaded machine).
    assert.ok(seen.resets.length - before <= 2, `${seen.resets.length - before} resets for one burst`);
  });

  it('bookmarks advance the resourceVersion: a reconnect resumes from it without a list, even after the history expired', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1']));
    const { source, seen } = start();
    await seen.until(['10.0.0.1:50051']);
    await waitFor(() => api.openWatches === 1, 'the watch');
    const listed = source.resourceVersion;

    // Changes elsewhere move the server's resourceVersion on; this watch sees none of them.
    for (let i = 0; i < 5; i++) api.apply(endpointSlice(`other-${i}`, 'other', [`10.0.9.${i}`]));
    assert.equal(source.resourceVersion, listed);
    api.bookmark();
    await waitFor(() => source.resourceVersion === api.resourceVersion, 'the bookmark to move the resourceVersion');
    assert.notEqual(source.resourceVersion, listed);

    // Compaction: resuming from the listed version would now be 410 Gone; from the bookmark it is not.
    api.expireHistory();
    api.dropWatches('end');
    await waitFor(() => api.watches.length === 2 && api.openWatches === 1, 'the watch to resume');
    assert.deepEqual({ resourceVersion: api.watches[1]!.resourceVersion, answer: api.watches[1]!.answer }, { resourceVersion: api.resourceVersion, answer: 'stream' });
    assert.equal(api.lists.length, 1, 'no new list');

    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.2']));
    await seen.until(['10.0.0.2:50051']);
    assert.deepEqual(seen.errors, []);
  });

  for (const goneAs of ['http', 'event'] as const) {
    it(`410 Gone for a watch from an expired resourceVersion (${goneAs === 'http' ? 'an HTTP 410' : 'an ERROR event'}): a fresh list, and the set is right`, async () => {
      api.goneAs = goneAs;
      api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1', '10.0.0.2']));
      api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.3']));
      const { seen } = start();
      await seen.until(['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051']);
      await waitFor(() => api.openWatches === 1, 'the watch');

      await api.stop();
      await waitFor(() => seen.errors.length > 0, 'an error update');
      // Changed while the source could not watch, and then compacted away.
      api.delete('echo-a');
      api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.3', '10.0.0.4']));
      api.apply(endpointSlice('echo-c', 'echo', ['10.0.0.5']));
      api.expireHistory();
      await api.restart();

      await seen.until(['10.0.0.3:50051', '10.0.0.4:50051', '10.0.0.5:50051']);
      assert.ok(api.watches.some((w) => w.answer === `gone-${goneAs}`), JSON.stringify(api.watches));
      assert.equal(api.lists.length, 2, 'one fresh list');
      await waitFor(() => api.openWatches === 1, 'the new watch');
      assert.equal(api.watches.at(-1)!.resourceVersion, api.lists[1]!.resourceVersion, 'the new watch starts from the new list');
      // Never a partial set: only the old set and the new one were emitted.
      assert.deepEqual(seen.resets, [
        ['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051'],
        ['10.0.0.3:50051', '10.0.0.4:50051', '10.0.0.5:50051'],
      ]);
    });
  }

  it('410 Gone mid-stream (an ERROR event on a watch that fell behind): a fresh list replaces the set in one reset', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1', '10.0.0.2']));
    const { source, seen } = start();
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051']);
    await waitFor(() => api.openWatches === 1, 'the watch');

    // The watch stalls while things change, the server compacts and tells the watcher it is too old.
    api.pauseDelivery(true);
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.2', '10.0.0.3']));
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.4']));
    api.expireHistory();
    api.pauseDelivery(false);
    api.sendGoneToOpenWatches();

    await seen.until(['10.0.0.2:50051', '10.0.0.3:50051', '10.0.0.4:50051']);
    assert.equal(api.lists.length, 2, 'one fresh list');
    await waitFor(() => api.openWatches === 1 && source.resourceVersion === api.resourceVersion, 'the new watch');
    assert.equal(seen.resets.length, 2, JSON.stringify(seen.resets));
    assert.deepEqual(seen.errors, [], 'a 410 is normal operation, not an error');
  });

  it('a dropped watch reconnects after a backoff and catches up on what changed meanwhile, without a list', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1', '10.0.0.2']));
    // random 0: each delay is exactly half its ceiling (100 ms, 200 ms, 400 ms, 500 ms…).
    const { source, seen } = start({ backoff: { initialMs: 200, maxMs: 1_000 }, random: () => 0 });
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051']);
    await waitFor(() => api.openWatches === 1, 'the watch');
    const resumeFrom = source.resourceVersion;

    const droppedAt = performance.now();
    assert.equal(api.dropWatches('destroy'), 1);
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.2']));
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.3']));
    await seen.until(['10.0.0.2:50051', '10.0.0.3:50051']);
    const resumed = api.watches[1]!;
    assert.equal(resumed.resourceVersion, resumeFrom, 'resumed from the last resourceVersion');
    assert.equal(resumed.answer, 'stream');
    assert.ok(resumed.at - droppedAt >= 90, `reconnected after ${Math.round(resumed.at - droppedAt)} ms, before the backoff`);
    assert.equal(api.lists.length, 1, 'caught up through the watch, no list');
    assert.equal(seen.errors.length, 1);
    assert.match(seen.errors[0]!, /^Kubernetes EndpointSlices of default\/echo: watch failed \(.+\); keeping the last good endpoints$/);

    // Failing again and again: the delays grow.
    api.failRequests(503);
    const attemptsBefore = api.watches.length;
    api.dropWatches('destroy');
    await waitFor(() => api.watches.length >= attemptsBefore + 4, 'four failed attempts');
    const times = api.watches.slice(attemptsBefore).map((w) => w.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gaps[0]! >= 180 && gaps[1]! >= 360 && gaps[2]! >= 450, `gaps ${gaps.map(Math.round).join(', ')} ms`);
    assert.ok(seen.errors.some((message) => message.includes('HTTP 503')), JSON.stringify(seen.errors));
    api.failRequests(undefined);
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.4']));
    await seen.until(['10.0.0.2:50051', '10.0.0.4:50051']);
    assert.equal(api.lists.length, 1);
  });

  it('while the API server is down: error updates and no reset (the last set stays); back up, changes flow again', async () => {
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1', '10.0.0.2']));
    const { seen } = start();
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051']);
    await waitFor(() => api.openWatches === 1, 'the watch');
    const resets = seen.resets.length;

    await api.stop();
    await waitFor(() => seen.errors.some((message) => message.includes('ECONNREFUSED')), 'a refused reconnect to be reported');
    assert.equal(seen.resets.length, resets, 'no reset while the API is down');
    api.apply(endpointSlice('echo-b', 'echo', ['10.0.0.3']));
    await api.restart();
    await seen.until(['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051']);
    assert.equal(api.lists.length, 1, 'resumed the watch; its history still had the change');
  });

  it('an unreachable API server from the start: error updates, and the first set once it answers', async () => {
    const port = api.port;
    await api.stop();
    const { seen } = start();
    await waitFor(() => seen.errors.length >= 2, 'errors while the API is down');
    assert.deepEqual(seen.resets, []);
    api.apply(endpointSlice('echo-a', 'echo', ['10.0.0.1']));
    await api.restart();
    assert.equal(api.port, port);
    await seen.until(['10.0.0.1:50051']);
  });
});

describe('a Switchyard proxy with a kubernetes cluster (fake API server, real backends)', () => {
  const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  let api: FakeKubeApi;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;
  let port: number;

  const pods = (states: Record<string, 'ready' | 'terminating'>) =>
    endpointSlice('echo-abc12', 'echo', Object.entries(states).map(([ip, state]) =>
      state === 'ready' ? { ip, zone: 'zone-a' } : { ip, ready: false, serving: true, terminating: true, zone: 'zone-a' }), {
      namespace: 'demo',
      ports: [{ name: 'grpc', port, protocol: 'TCP' }],
    });

  before(async () => {
    api = await FakeKubeApi.start();
    port = await findPortFreeOnAll(HOSTS);
    backends = await Promise.all(HOSTS.map((host, i) => startEchoServer({ name: `pod-${i}`, host, port })));
    api.apply(pods({ '127.0.0.1': 'ready', '127.0.0.2': 'ready' }));
    // Through the config file path, as a deployment would: a kubeconfig file naming the fake server.
    const kubeconfig = await api.writeKubeconfig();
    proxy = await startProxy({
      clusters: [{ name: 'echo', kubernetes: { namespace: 'demo', service: 'echo', port: 'grpc', kubeconfig } }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await api.close();
  });

  it('sends RPCs to the pods in the slice; an added pod takes traffic; a terminating one gets no new RPCs; no RPC fails', async () => {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    const cluster = proxy.proxy.clusters.get('echo')!;
    await waitFor(() => cluster.endpoints.size === 2, 'the endpoints from the slice');

    const load = steadyLoad(client, { concurrency: 8, request: { delay_ms: 2 } });
    const count = load.count;
    try {
      await waitFor(() => count('pod-0') > 50 && count('pod-1') > 50, 'traffic on both pods');

      api.apply(pods({ '127.0.0.1': 'ready', '127.0.0.2': 'ready', '127.0.0.3': 'ready' }));
      await waitFor(() => count('pod-2') > 50, 'the added pod to take traffic');

      // pod-0 is being deleted: terminating, still serving what it has.
      api.apply(pods({ '127.0.0.1': 'terminating', '127.0.0.2': 'ready', '127.0.0.3': 'ready' }));
      await waitFor(() => cluster.endpoints.size === 2 && ![...cluster.endpoints.keys()].some((key) => key.startsWith('127.0.0.1:')), 'the terminating pod to leave the balancing set');
      const drained = count('pod-0');
      const others = count('pod-1') + count('pod-2');
      await waitFor(() => count('pod-1') + count('pod-2') > others + 200, 'more traffic after the change');
      // RPCs already in flight to pod-0 may finish; no new ones start.
      assert.ok(count('pod-0') <= drained + 8, `the terminating pod got ${count('pod-0') - drained} new RPCs`);

      // Its container stops: gone from the slice. Nothing changes for the proxy.
      api.apply(pods({ '127.0.0.2': 'ready', '127.0.0.3': 'ready' }));
      await backends[0]!.close();
      const after = count('pod-1') + count('pod-2');
      await waitFor(() => count('pod-1') + count('pod-2') > after + 100, 'traffic after the pod is gone');
    } finally {
      await load.stop();
      client.close();
    }
    assert.deepEqual(load.failures, []);
  });
});
