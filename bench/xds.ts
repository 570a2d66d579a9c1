/**
 * The control plane under load (`npm run bench:xds`; a benchmark, not a test):
 *
 * - push latency: from an EndpointSlice change at the (fake) Kubernetes API
 *   to every one of 1,000 ADS streams having received the new endpoints and
 *   sent its ACK;
 * - the control plane's RSS with those 1,000 streams and 10,000 endpoints;
 * - the agent's RSS serving local clients.
 *
 * The control plane and the agent run as built `switchyard` child processes (dist/), so
 * their RSS is theirs alone. The Kubernetes API is the fake from the tests
 * (no cluster can run on these machines). Results: bench/results/xds.{md,json}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { adsService, TYPE_URL } from '../src/xds/protos.ts';
import { issueIdentity, makeTestPki } from '../test/helpers/certs.ts';
import { FakeKubeApi, endpointSlice } from '../test/helpers/fake-kube-api.ts';

// The built command, as deployed: run from the TypeScript source, every process carries ~30 MiB more.
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const quick = process.argv.includes('--quick');
const STREAMS = quick ? 100 : 1_000;
const CLUSTERS = 10;
const ENDPOINTS_PER_CLUSTER = quick ? 100 : 1_000;
const STREAMS_PER_CHANNEL = 50;
const CHANGES = quick ? 3 : 10;

interface BenchStream {
  /** Version of the echo-0 assignment last received, and when. */
  version: string;
  receivedAt: number;
}

const pki = await makeTestPki();
const identity = await issueIdentity(pki, 'bench', { subject: '/CN=bench', san: 'URI:spiffe://bench/clients' });
const kube = await FakeKubeApi.start();
const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-bench-xds-'));
const children: ChildProcess[] = [];
try {
  for (let c = 0; c < CLUSTERS; c++) kube.apply(sliceOf(c, 0));
  const kubeconfig = await kube.writeKubeconfig();
  const config = path.join(dir, 'control-plane.yaml');
  await writeFile(config, [
    `server: { address: 127.0.0.1, port: 0, tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} } }`,
    'clusters:',
    ...Array.from({ length: CLUSTERS }, (_, c) => `  - { name: echo-${c}, kubernetes: { namespace: bench, service: echo-${c}, port: grpc, kubeconfig: ${kubeconfig} } }`),
    `authorization: { identities: [{ identity: spiffe://bench/clients, node_ids: ['*'], clusters: ['*'], listeners: ['*'] }] }`,
    `limits: { max_streams_per_identity: ${STREAMS + 100} }`,
    'log_level: info', '',
  ].join('\n'));
  const controlPlane = spawnCli(['control-plane', '--config', config]);
  const port = await listeningPort(controlPlane, 'xDS control plane listening (mTLS)');

  // The clients: STREAMS SotW streams, each subscribed to every cluster's endpoints.
  const { Client } = adsService();
  const channels = Array.from({ length: Math.ceil(STREAMS / STREAMS_PER_CHANNEL) }, () => new Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createSsl(pki.caCertPem, identity.keyPem, identity.certPem),
    { 'grpc.ssl_target_name_override': 'localhost', 'grpc.use_local_subchannel_pool': 1 },
  ));
  const streams: BenchStream[] = [];
  const names = Array.from({ length: CLUSTERS }, (_, c) => `echo-${c}`);
  for (let i = 0; i < STREAMS; i++) {
    const call = (channels[Math.floor(i / STREAMS_PER_CHANNEL)] as unknown as Record<string, () => grpc.ClientDuplexStream<any, any>>).StreamAggregatedResources!();
    const state: BenchStream = { version: '', receivedAt: 0 };
    streams.push(state);
    call.on('data', (response: { version_info: string; nonce: string; type_url: string }) => {
      state.version = response.version_info;
      call.write({ type_url: response.type_url, version_info: response.version_info, response_nonce: response.nonce, resource_names: names });
      state.receivedAt = performance.now();
    });
    call.on('error', () => {});
    call.write({ node: { id: `bench-${i}`, user_agent_name: 'gRPC Node' }, type_url: TYPE_URL.endpoint, resource_names: names });
  }
  await until(() => streams.every((s) => s.version !== ''), 60_000, 'every stream to get the endpoints');
  const rssWithStreams = await rssMiB(controlPlane.pid!);

  // Push latency: change one endpoint of one cluster, time until every stream has the new version.
  const latencies: number[] = [];
  for (let change = 1; change <= CHANGES; change++) {
    const before = new Set(streams.map((s) => s.version));
    const startedAt = performance.now();
    kube.apply(sliceOf(change % CLUSTERS, change));
    await until(() => streams.every((s) => !before.has(s.version)), 30_000, `push ${change} to reach every stream`);
    latencies.push(Math.max(...streams.map((s) => s.receivedAt)) - startedAt);
  }
  const rssAfterPushes = await rssMiB(controlPlane.pid!);
  for (const channel of channels) channel.close();

  // The agent: one process, relaying 10 local clients' streams.
  const agentPort = 0;
  const agent = spawnCli(['agent', '--control-plane', `localhost:${port}`, '--ca', pki.caCert, '--cert', identity.cert, '--key', identity.key, '--server-name', 'localhost', '--listen', `127.0.0.1:${agentPort}`]);
  const agentListen = await listeningPort(agent, undefined);
  const local = new Client(`127.0.0.1:${agentListen}`, grpc.credentials.createInsecure());
  let localReady = 0;
  for (let i = 0; i < 10; i++) {
    const call = (local as unknown as Record<string, () => grpc.ClientDuplexStream<any, any>>).StreamAggregatedResources!();
    call.once('data', () => localReady++);
    call.on('error', () => {});
    call.write({ node: { id: `app-${i}`, user_agent_name: 'gRPC Node' }, type_url: TYPE_URL.endpoint, resource_names: ['echo-0'] });
  }
  await until(() => localReady === 10, 30_000, 'the agent to serve its local clients');
  const agentRss = await rssMiB(agent.pid!);
  local.close();

  latencies.sort((a, b) => a - b);
  const result = {
    date: new Date().toISOString(),
    streams: STREAMS,
    endpoints: CLUSTERS * ENDPOINTS_PER_CLUSTER,
    clusters: CLUSTERS,
    pushLatencyMs: { p50: round(latencies[Math.floor(latencies.length / 2)]!), max: round(latencies.at(-1)!), all: latencies.map(round) },
    controlPlaneRssMiB: { withStreams: rssWithStreams, afterPushes: rssAfterPushes },
    agentRssMiB: agentRss,
  };
  const markdown = [
    `# xDS control plane benchmark (${result.date}${quick ? ', quick' : ''})`,
    '',
    `${STREAMS} ADS streams (state of the world, mTLS, ${STREAMS_PER_CHANNEL} per connection), each watching ${CLUSTERS} clusters; ${result.endpoints} endpoints from a fake Kubernetes API.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| push latency, EndpointSlice change → last of ${STREAMS} streams has it and ACKs (median of ${CHANGES}) | ${result.pushLatencyMs.p50} ms |`,
    `| push latency, worst of ${CHANGES} | ${result.pushLatencyMs.max} ms |`,
    `| control plane RSS with ${STREAMS} streams and ${result.endpoints} endpoints | ${rssWithStreams} MiB (${rssAfterPushes} MiB after the pushes) |`,
    `| agent RSS, relaying 10 local streams | ${agentRss} MiB |`,
    '',
  ].join('\n');
  await mkdir(RESULTS, { recursive: true });
  await writeFile(path.join(RESULTS, `xds${quick ? '-quick' : ''}.json`), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(path.join(RESULTS, `xds${quick ? '-quick' : ''}.md`), markdown);
  process.stdout.write(markdown);
} finally {
  for (const child of children) child.kill('SIGKILL');
  await kube.close();
  await pki.cleanup();
}
process.exit(0);

function sliceOf(cluster: number, change: number) {
  const ips = Array.from({ length: ENDPOINTS_PER_CLUSTER }, (_, i) => `10.${cluster}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  // Each change moves one endpoint to a new address.
  if (change > 0) ips[0] = `10.${cluster}.200.${change}`;
  return endpointSlice(`echo-${cluster}`, `echo-${cluster}`, ips.map((ip, i) => ({ ip, zone: `zone-${i % 3}` })), { namespace: 'bench' });
}

function spawnCli(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

/** The port from the first log line with `msg` (any line with an address when undefined). */
async function listeningPort(child: ChildProcess, msg: string | undefined): Promise<number> {
  let pending = '';
  for await (const chunk of child.stdout!) {
    const lines = (pending + String(chunk)).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { msg?: string; address?: string };
      if (entry.address && (msg === undefined || entry.msg === msg)) {
        child.stdout!.resume();
        return Number(entry.address.split(':').at(-1));
      }
    }
  }
  await once(child, 'exit');
  throw new Error(`${child.spawnargs.join(' ')} exited before listening`);
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
  return Math.round((kib / 1024) * 10) / 10;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
