/**
 * `switchyard agent` (startAgent, in this process) between raw ADS clients
 * (test/helpers/ads-client.ts, plaintext to the agent on loopback) and the
 * real ADS server over mTLS (test/helpers/xds-test-server.ts records what
 * it receives and sends).
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import type { EndpointAddress } from '../../src/discovery/source.ts';
import { AgentListenError, startAgent, type AgentOptions, type RunningAgent } from '../../src/xds/agent/agent.ts';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { AdsTestClient } from '../helpers/ads-client.ts';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { waitFor } from '../helpers/harness.ts';
import { serveEchoChain, XdsTestServer } from '../helpers/xds-test-server.ts';

const GRPC_NODE = { id: 'app-1', cluster: 'apps', user_agent_name: 'gRPC Node Pure JS' };
const ENDPOINTS: EndpointAddress[] = [
  { host: '10.0.0.1', port: 8080, weight: 1, zone: 'zone-a' },
  { host: '10.0.0.2', port: 8080, weight: 1, zone: 'zone-b' },
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hostsOf = (message: Record<string, unknown>) =>
  ((message.endpoints ?? []) as { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[])
    .flatMap((locality) => locality.lb_endpoints.map((e) => e.endpoint.address.socket_address.address))
    .sort();

describe('switchyard agent: the relay', () => {
  let pki: TestPki;
  let identity: TestIdentity;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    pki = await makeTestPki();
    identity = await issueIdentity(pki, 'agent', { subject: '/CN=agent', san: 'URI:spiffe://test/agent' });
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  after(() => pki.cleanup());

  async function setup(options: { policy?: 'round_robin' | 'least_request'; agent?: Partial<AgentOptions> } = {}): Promise<{ mini: XdsTestServer; agent: RunningAgent; ads: AdsTestClient }> {
    // Nodes the agent's identity may claim: app-* and proxy-* (so "intruder" is refused).
    const mini = await XdsTestServer.start({ pki, nodeIds: ['app-*', 'proxy-*'] });
    serveEchoChain(mini.provider, { policy: options.policy ?? 'round_robin', endpoints: ENDPOINTS });
    cleanups.push(() => mini.close());
    const agent = await startAgent({
      listen: { address: '127.0.0.1', port: 0 },
      controlPlane: { target: mini.address, ca: pki.caCertPem, cert: identity.certPem, key: identity.keyPem },
      logger: pino({ level: 'silent' }),
      backoff: { initialMs: 50, maxMs: 500 },
      ...options.agent,
    });
    cleanups.push(() => agent.close());
    const ads = new AdsTestClient({ port: agent.port!, insecure: true });
    cleanups.push(() => ads.close());
    return { mini, agent, ads };
  }

  it('relays state-of-the-world streams as they are: the client node, the control plane nonces and versions, ACKs and NACKs', async () => {
    const { mini, ads } = await setup({ policy: 'least_request' });
    // Policies are translated per client kind, by the node's user_agent_name the agent passes on.
    const grpcClient = ads.sotw(GRPC_NODE);
    grpcClient.request({ typeUrl: TYPE_URL.cluster });
    const forGrpc = await grpcClient.next(TYPE_URL.cluster);
    assert.equal(forGrpc.resources[0]!.message.lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
    const proxy = ads.sotw({ id: 'proxy-1', user_agent_name: 'switchyard' });
    proxy.request({ typeUrl: TYPE_URL.cluster });
    const forProxy = await proxy.next(TYPE_URL.cluster);
    assert.equal(forProxy.resources[0]!.message.lb_policy, 'LEAST_REQUEST');

    const sent = mini.responses.find((r) => r.nodeId === 'proxy-1' && r.nonce === forProxy.nonce)!;
    assert.equal(forProxy.versionInfo, sent.version);
    assert.deepEqual(mini.requests.filter((r) => r.typeUrl === TYPE_URL.cluster).map((r) => [r.nodeId, r.userAgent]).sort(), [['app-1', 'gRPC Node Pure JS'], ['proxy-1', 'switchyard']]);

    grpcClient.ack(forGrpc);
    proxy.nack(forProxy, 'LEAST_REQUEST is not for me');
    await waitFor(() => mini.acks('cluster', 'app-1').length === 1 && mini.nacks().length === 1, 'the ACK and the NACK to reach the control plane');
    assert.deepEqual(mini.nacks().map((r) => [r.nodeId, r.responseNonce, r.errorDetail?.message]), [['proxy-1', forProxy.nonce, 'LEAST_REQUEST is not for me']]);
  });

  it('delta: relayed; a new stream during an outage gets the cached resources; after a restart changes flow to both', async () => {
    const { mini, agent, ads } = await setup();
    const first = ads.delta(GRPC_NODE);
    first.request({ typeUrl: TYPE_URL.endpoint, subscribe: ['echo'] });
    const live = await first.next(TYPE_URL.endpoint);
    assert.deepEqual(live.names, ['echo']);
    assert.deepEqual(hostsOf(live.resources[0]!.message), ['10.0.0.1', '10.0.0.2']);
    first.ack(live);
    await waitFor(() => mini.acks('endpoint').length === 1, 'the ACK');

    await mini.stop();
    await waitFor(() => agent.stats().controlPlaneReachable === false, 'the agent to notice the outage');
    const second = ads.delta(GRPC_NODE);
    second.request({ typeUrl: TYPE_URL.endpoint, subscribe: ['echo'] });
    const cached = await second.next(TYPE_URL.endpoint);
    assert.match(cached.nonce, /^switchyard-agent:/);
    assert.deepEqual(cached.versions, live.versions);
    assert.deepEqual(hostsOf(cached.resources[0]!.message), ['10.0.0.1', '10.0.0.2']);
    second.ack(cached);
    // The cache is per node and client kind: a proxy claiming the same node id gets nothing from it.
    const other = ads.delta({ ...GRPC_NODE, user_agent_name: 'switchyard' });
    other.request({ typeUrl: TYPE_URL.endpoint, subscribe: ['echo'] });
    await assert.rejects(other.next(TYPE_URL.endpoint, 500), /no type.googleapis.com\/envoy.config.endpoint.v3.ClusterLoadAssignment within/);
    assert.equal(first.queued().length, 0, 'the first stream got nothing more: it holds that version already');

    mini.provider.setEndpoints('echo', [ENDPOINTS[1]!, { host: '10.0.0.3', port: 8080, weight: 1, zone: 'zone-a' }]);
    await mini.restart();
    for (const stream of [first, second]) {
      const update = await stream.next(TYPE_URL.endpoint, 10_000);
      assert.deepEqual(hostsOf(update.resources[0]!.message), ['10.0.0.2', '10.0.0.3']);
      assert.doesNotMatch(update.nonce, /^switchyard-agent:/);
      stream.ack(update);
    }
    // Replayed with the versions the clients held, so nothing that did not change was sent again.
    assert.equal(first.queued().length + second.queued().length, 0);
    assert.equal(agent.stats().controlPlaneReachable, true);
  });

  it('a client that connects while the control plane is down (nothing cached) waits, then gets its config when it comes up', async () => {
    const { mini, ads } = await setup();
    await mini.stop();
    const stream = ads.sotw(GRPC_NODE);
    stream.request({ typeUrl: TYPE_URL.listener, names: ['echo'] });
    await assert.rejects(stream.next(TYPE_URL.listener, 700), /within 700 ms/);
    await mini.restart();
    const listener = await stream.next(TYPE_URL.listener, 10_000);
    assert.deepEqual(listener.names, ['echo']);
    // The replayed request carried the node: the control plane knows who asks.
    assert.ok(mini.requests.every((r) => r.nodeId === 'app-1'));
  });

  it('a subscription changed while the control plane was down is sent when it is back', async () => {
    const { mini, ads } = await setup();
    const stream = ads.sotw(GRPC_NODE);
    stream.request({ typeUrl: TYPE_URL.listener, names: ['echo'] });
    stream.ack(await stream.next(TYPE_URL.listener));
    await mini.stop();
    await sleep(200);
    stream.request({ typeUrl: TYPE_URL.cluster, names: ['echo'] });
    await mini.restart();
    const cluster = await stream.next(TYPE_URL.cluster, 10_000);
    assert.deepEqual(cluster.names, ['echo']);
  });

  it('passes on the control plane refusing a node (PERMISSION_DENIED) rather than retrying', async () => {
    const { ads } = await setup();
    const stream = ads.sotw({ id: 'intruder' });
    stream.request({ typeUrl: TYPE_URL.listener });
    const status = await stream.closed;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, 'spiffe://test/agent may not claim node.id "intruder"');
  });

  it('limits local streams and request sizes (RESOURCE_EXHAUSTED)', async () => {
    const { agent, ads } = await setup({ agent: { maxLocalStreams: 1, maxRequestBytes: 1024 } });
    const first = ads.sotw(GRPC_NODE);
    first.request({ typeUrl: TYPE_URL.listener });
    await first.next(TYPE_URL.listener);
    const second = ads.sotw(GRPC_NODE);
    second.request({ typeUrl: TYPE_URL.listener });
    const refused = await second.closed;
    assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(refused.details, /already relays 1 xDS streams/);
    assert.equal(agent.stats().refusedStreams, 1);

    first.request({ typeUrl: TYPE_URL.endpoint, names: Array.from({ length: 100 }, (_, i) => `cluster-with-a-long-name-${i}`) });
    const tooBig = await first.closed;
    assert.equal(tooBig.code, grpc.status.RESOURCE_EXHAUSTED);
    await waitFor(() => agent.stats().localStreams === 0, 'the agent to forget the stream');
  });

  it('listens on loopback or a Unix socket only, and replaces a stale socket file', async () => {
    const base = { controlPlane: { target: '127.0.0.1:1', ca: pki.caCertPem, cert: identity.certPem, key: identity.keyPem }, logger: pino({ level: 'silent' }) };
    for (const address of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      await assert.rejects(startAgent({ ...base, listen: { address, port: 0 } }), (error: Error) => {
        assert.ok(error instanceof AgentListenError);
        assert.match(error.message, new RegExp(`refusing to listen on ${address.replace(/\./g, '\\.')}: .*loopback address .* or a Unix socket only`));
        return true;
      });
    }
    const local = await startAgent({ ...base, listen: { address: 'localhost', port: 0 } });
    assert.match(local.address, /^localhost:\d+$/);
    await local.close();

    // A socket file left behind by an agent that died is replaced.
    const socketPath = path.join(pki.dir, 'stale.sock');
    const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`]);
    await once(crashed.stdout, 'data');
    crashed.kill('SIGKILL'); // the file stays, as after a crash
    await once(crashed, 'exit');
    assert.ok(existsSync(socketPath));
    const agent = await startAgent({ ...base, listen: { socketPath } });
    assert.equal(agent.address, `unix://${socketPath}`);
    assert.equal(statSync(socketPath).mode & 0o777, 0o666, 'apps running as other users may connect');
    // One that still answers is another agent's.
    await assert.rejects(startAgent({ ...base, listen: { socketPath } }), /is in use/);
    await agent.close();
    const notSocket = path.join(pki.dir, 'not-a-socket');
    writeFileSync(notSocket, '');
    await assert.rejects(startAgent({ ...base, listen: { socketPath: notSocket } }), /exists and is not a socket/);
  });
});
