/**
 * Real @grpc/grpc-js-xds clients (each in a process of its own, see
 * test/helpers/xds-echo-client.ts) reading a bootstrap written by
 * `switchyard bootstrap`, talking over a Unix socket to a `switchyard agent`
 * process, which relays over mTLS to the real ADS server (src/xds/server,
 * through test/helpers/xds-test-server.ts) serving three Echo backends in
 * two zones.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { EchoServerHandle } from '../../src/demo/echo-service.ts';
import type { EndpointAddress } from '../../src/discovery/source.ts';
import { TYPE_URL, type ResourceType } from '../../src/xds/protos.ts';
import type { XdsLbPolicy } from '../../src/xds/resources.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { collectLogs, exitOf, logEntries, runCli, type LogEntry } from '../helpers/cli.ts';
import { startBackends, waitFor } from '../helpers/harness.ts';
import { serveEchoChain, XdsTestServer } from '../helpers/xds-test-server.ts';
import { startXdsEchoClient, type Window, type XdsEchoClient } from '../helpers/xds-echo-client.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const GRPC_JS_USER_AGENT = 'gRPC Node Pure JS';

interface Setup {
  readonly mini: XdsTestServer;
  readonly agent: ChildProcess;
  readonly socket: string;
  readonly agentLogs: LogEntry[];
  bootstrap(nodeId: string): Promise<string>;
  /** What the control plane and the agent saw, for failure messages. */
  dump(): string;
  client(nodeId: string): Promise<XdsEchoClient>;
  close(): Promise<void>;
}

describe('proxyless gRPC clients through switchyard agent', () => {
  let pki: TestPki;
  let agentIdentity: TestIdentity;
  let backends: EchoServerHandle[];
  let endpoints: EndpointAddress[];
  let setups = 0;

  before(async () => {
    pki = await makeTestPki();
    agentIdentity = await issueIdentity(pki, 'agent', { subject: '/CN=agent.node-1', san: 'URI:spiffe://test/agent/node-1, DNS:agent.node-1' });
    backends = await startBackends(3);
    // Two zones: backend-0 and backend-1 in zone-a, backend-2 in zone-b.
    endpoints = backends.map((backend, i) => ({ host: '127.0.0.1', port: backend.port, weight: 1, zone: i < 2 ? 'zone-a' : 'zone-b' }));
  });

  after(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await pki.cleanup();
  });

  async function setup(policy: XdsLbPolicy): Promise<Setup> {
    const mini = await XdsTestServer.start({ pki, identities: ['spiffe://test/agent/node-1'] });
    serveEchoChain(mini.provider, { policy, endpoints });
    const socket = path.join(pki.dir, `agent-${++setups}.sock`);
    const agent = runCli([
      'agent', '--control-plane', mini.address, '--ca', pki.caCert, '--cert', agentIdentity.cert, '--key', agentIdentity.key,
      '--server-name', 'localhost', '--socket', socket,
    ]);
    const [listening] = await logEntries(agent, (entry) => entry.msg === 'agent listening');
    assert.equal(listening!.address, `unix://${socket}`);
    const agentLogs = collectLogs(agent);
    const clients: XdsEchoClient[] = [];
    const bootstrap = async (nodeId: string) => {
      const file = path.join(pki.dir, `bootstrap-${setups}-${nodeId}.json`);
      const { code, stderr } = await exitOf(runCli(['bootstrap', '--node-id', nodeId, '--node-cluster', 'echo-clients', '--zone', 'zone-a', '--socket', socket, '--output', file]));
      assert.equal(code, 0, stderr);
      return file;
    };
    return {
      mini,
      agent,
      socket,
      agentLogs,
      bootstrap,
      dump: () => JSON.stringify({
        requests: mini.requests.map((r) => `${r.stream}/${r.nodeId} ${r.typeUrl.split('.').pop()} v=${r.versionInfo} n=${r.responseNonce} [${r.resourceNames}]${r.errorDetail === undefined ? '' : ` NACK ${r.errorDetail.message}`}`),
        responses: mini.responses.map((r) => `${r.stream} ${r.typeUrl.split('.').pop()} v=${r.version} n=${r.nonce} [${r.names}]`),
        agent: agentLogs.map((entry) => JSON.stringify(entry)),
      }, null, 1),
      client: async (nodeId) => {
        const client = startXdsEchoClient(await bootstrap(nodeId));
        clients.push(client);
        return client;
      },
      close: async () => {
        await Promise.all(clients.map((client) => client.close()));
        const exited = exitOf(agent);
        agent.kill('SIGTERM');
        assert.equal((await exited).code, 0);
        await mini.close();
      },
    };
  }

  const total = (window: Window) => Object.values(window.counts).reduce((sum, n) => sum + n, 0);

  it('writes a bootstrap grpc-js accepts: the agent socket as unix:///path, insecure, xds_v3, the node with its locality', async () => {
    const s = await setup('round_robin');
    try {
      const bootstrap = JSON.parse(readFileSync(await s.bootstrap('node-a'), 'utf8'));
      assert.deepEqual(bootstrap, {
        xds_servers: [{ server_uri: `unix://${s.socket}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
        node: { id: 'node-a', cluster: 'echo-clients', locality: { zone: 'zone-a' } },
      });
    } finally {
      await s.close();
    }
  });

  it('spreads RPCs over the three backends in two zones (round robin), and the client ACKs every type', async () => {
    const s = await setup('round_robin');
    try {
      const client = await s.client('node-a');
      const window = await client.run(300);
      assert.equal(window.failures, 0, `${window.errors.join('; ')}\n${s.dump()}`);
      assert.deepEqual(Object.keys(window.counts).sort(), ['backend-0', 'backend-1', 'backend-2']);
      // Each zone's locality weighs its endpoints: every backend gets about a third.
      for (const [backend, count] of Object.entries(window.counts)) assert.ok(count >= 60, `${backend} got ${count} of 300`);
      for (const type of Object.keys(TYPE_URL) as ResourceType[]) assert.ok(s.mini.acks(type, 'node-a').length > 0, `no ACK of ${type}`);
      assert.deepEqual(s.mini.nacks(), []);
      // The control plane saw the client's own node (id and user agent) through the agent.
      assert.ok(s.mini.requests.every((r) => r.nodeId === 'node-a' && r.userAgent === GRPC_JS_USER_AGENT));
    } finally {
      await s.close();
    }
  });

  it('a least_request cluster reaches the grpc-js client as ROUND_ROBIN, which it ACKs instead of NACKing', async () => {
    const s = await setup('least_request');
    try {
      const client = await s.client('node-lr');
      const window = await client.run(300);
      assert.equal(window.failures, 0, `${window.errors.join('; ')}\n${s.dump()}`);
      assert.equal(Object.keys(window.counts).length, 3);
      const clusters = s.mini.responses.filter((r) => r.typeUrl === TYPE_URL.cluster);
      assert.ok(clusters.length > 0);
      assert.ok(clusters.every((r) => r.lbPolicy === 'ROUND_ROBIN'), JSON.stringify(clusters));
      await s.mini.waitForAck('cluster', 'node-lr');
      assert.deepEqual(s.mini.nacks(), []);
    } finally {
      await s.close();
    }
  });

  it('ring_hash: one hash key stays on one backend, many keys spread', async () => {
    const s = await setup('ring_hash');
    try {
      const client = await s.client('node-rh');
      const fixed = await client.run(60, { hashKey: 'fixed:user-42' });
      assert.equal(fixed.failures, 0, `${fixed.errors.join('; ')}\n${s.dump()}`);
      assert.equal(Object.keys(fixed.counts).length, 1, JSON.stringify(fixed.counts));
      const spread = await client.run(300, { hashKey: 'random' });
      assert.equal(spread.failures, 0, spread.errors.join('; '));
      assert.ok(Object.keys(spread.counts).length >= 2, JSON.stringify(spread.counts));
      assert.ok(s.mini.responses.some((r) => r.typeUrl === TYPE_URL.cluster && r.lbPolicy === 'RING_HASH'));
      assert.deepEqual(s.mini.nacks(), []);
    } finally {
      await s.close();
    }
  });

  it('an endpoint removed at the control plane gets no RPC a second later, and no RPC fails', async () => {
    const s = await setup('round_robin');
    try {
      const client = await s.client('node-rm');
      assert.equal(total(await client.run(90)), 90);
      await client.startLoad(4);
      await sleep(500);
      const removed = backends[2]!;
      s.mini.provider.setEndpoints('echo', endpoints.slice(0, 2));
      await sleep(1_000);
      const callsAfterOneSecond = removed.calls.get('Unary') ?? 0;
      await sleep(1_000);
      assert.equal(removed.calls.get('Unary') ?? 0, callsAfterOneSecond, 'the removed backend still got RPCs more than a second after its removal');
      const late = await client.report();
      const final = await client.stopLoad();
      assert.equal(late.failures + final.failures, 0, [...late.errors, ...final.errors].join('; '));
      assert.ok((late.counts['backend-0'] ?? 0) > 0 && (late.counts['backend-1'] ?? 0) > 0, JSON.stringify(late.counts));
      assert.equal(final.counts['backend-2'] ?? 0, 0);
    } finally {
      await s.close();
    }
  });

  it('control plane down: clients keep working, a new client gets the cached config; back up: changes flow again', async (t: TestContext) => {
    const s = await setup('round_robin');
    const logs = s.agentLogs;
    try {
      const first = await s.client('node-app');
      const warm = await first.run(60);
      assert.equal(warm.failures, 0, `${warm.errors.join('; ')}\n${s.dump()}`);
      await first.startLoad(4);
      await sleep(500);

      await s.mini.stop();
      await waitFor(() => logs.some((entry) => entry.msg?.startsWith('stream to the control plane failed')), 'the agent to notice the outage');
      await sleep(1_500);
      const during = await first.report();
      assert.equal(during.failures, 0, during.errors.join('; '));
      assert.equal(Object.keys(during.counts).length, 3, JSON.stringify(during.counts));

      // A restarted app (same node id, a new process) starts while the control plane is still down.
      const restarted = await s.client('node-app');
      const cached = await restarted.run(150);
      assert.equal(cached.failures, 0, `${cached.errors.join('; ')}\n${s.dump()}`);
      assert.deepEqual(Object.keys(cached.counts).sort(), ['backend-0', 'backend-1', 'backend-2']);

      t.diagnostic(`agent memory with 2 local clients, control plane down: ${memoryOf(s.agent.pid!)}`);

      // backend-0 leaves while the control plane is down; the change arrives once it is back.
      s.mini.provider.setEndpoints('echo', endpoints.slice(1));
      await s.mini.restart();
      const restartedAt = Date.now();
      await waitFor(async () => {
        const window = await first.report();
        assert.equal(window.failures, 0, window.errors.join('; '));
        return total(window) > 0 && (window.counts['backend-0'] ?? 0) === 0;
      }, 'the running client to stop calling backend-0 after the control plane came back', 20_000);
      await waitFor(async () => {
        const window = await restarted.run(30);
        assert.equal(window.failures, 0, window.errors.join('; '));
        return (window.counts['backend-0'] ?? 0) === 0;
      }, 'the restarted client to stop calling backend-0 after the control plane came back', 20_000);
      t.diagnostic(`the change made during the outage reached both clients ${Date.now() - restartedAt} ms after the control plane restarted`);
      const final = await first.stopLoad();
      assert.equal(final.failures, 0, final.errors.join('; '));
      assert.ok(logs.some((entry) => entry.msg === 'control plane reachable again'));
      assert.deepEqual(s.mini.nacks(), []);
      t.diagnostic(`agent memory after the outage: ${memoryOf(s.agent.pid!)}`);
    } finally {
      await s.close();
    }
  });

  it('refuses to listen on a non-loopback address (exit 2)', async () => {
    for (const listen of ['0.0.0.0:18000', '[::]:18000', '10.1.2.3:18000']) {
      const { code, stderr } = await exitOf(runCli([
        'agent', '--control-plane', '127.0.0.1:1', '--ca', pki.caCert, '--cert', agentIdentity.cert, '--key', agentIdentity.key, '--listen', listen,
      ]));
      assert.equal(code, 2, listen);
      assert.match(stderr, /refusing .*loopback address .* or a Unix socket/, listen);
    }
  });
});

/** RSS of a process (what process.memoryUsage().rss reports in it), with its anonymous and file-backed parts. */
function memoryOf(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Math.round(Number(/(\d+) kB/.exec(status.split('\n').find((line) => line.startsWith(`${name}:`)) ?? '')?.[1] ?? 0) / 102.4) / 10;
  return `RSS ${field('VmRSS')} MiB (anonymous ${field('RssAnon')} MiB, file-backed ${field('RssFile')} MiB)`;
}
