import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { findPortFreeOnAll } from '../helpers/ports.ts';
import { echoClient, startProxy, waitFor, type RunningProxy } from '../helpers/harness.ts';
import { steadyLoad } from '../helpers/load.ts';

const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

describe('a DNS-discovered cluster (headless Service) under load', () => {
  let dns: TestDnsServer;
  let backends: EchoServerHandle[];
  let proxy: RunningProxy;

  before(async () => {
    dns = await startDnsServer();
    const port = await findPortFreeOnAll(HOSTS);
    backends = await Promise.all(HOSTS.map((host, i) => startEchoServer({ name: `pod-${i}`, host, port })));
    dns.setRecords('echo.demo.svc.cluster.local', { a: [HOSTS[0]!, HOSTS[1]!] });
    proxy = await startProxy({
      clusters: [{
        name: 'echo',
        dns: { name: 'echo.demo.svc.cluster.local', port, families: ['ipv4'], refresh_interval: '100ms', servers: [dns.address] },
      }],
      routes: [{ match: { prefix: '/' }, cluster: 'echo' }],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await dns.close();
  });

  it('picks up an added and a removed address with no failed RPC', async () => {
    const client = echoClient(`127.0.0.1:${proxy.port}`);
    const cluster = proxy.proxy.clusters.get('echo')!;
    await waitFor(() => cluster.endpoints.size === 2, 'the first resolution');

    const load = steadyLoad(client, { concurrency: 8, request: { delay_ms: 2 } });
    const count = load.count;
    try {
      await waitFor(() => count('pod-0') > 50 && count('pod-1') > 50, 'traffic on the first two pods');

      dns.setRecords('echo.demo.svc.cluster.local', { a: HOSTS });
      await waitFor(() => count('pod-2') > 50, 'the added pod to take traffic');

      dns.setRecords('echo.demo.svc.cluster.local', { a: [HOSTS[1]!, HOSTS[2]!] });
      await waitFor(() => cluster.endpoints.size === 2 && ![...cluster.endpoints.keys()].some((key) => key.startsWith('127.0.0.1:')), 'the removed pod to leave the cluster');
      const removedCount = count('pod-0');
      const othersBefore = count('pod-1') + count('pod-2');
      await waitFor(() => count('pod-1') + count('pod-2') > othersBefore + 200, 'more traffic after the removal');
      // Calls already in flight to the removed pod may finish; no new ones start.
      assert.ok(count('pod-0') <= removedCount + 8, 'the removed pod kept getting new RPCs');
    } finally {
      await load.stop();
      client.close();
    }
    assert.deepEqual(load.failures, []);
  });
});
