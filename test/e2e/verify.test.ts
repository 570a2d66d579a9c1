/**
 * `switchyard verify` as a pipeline runs it: a real CLI process against real
 * backends, proxies and control planes on loopback. A healthy setup passes
 * every check and exits 0; each broken one fails its check with a reason that
 * says what is wrong, and exits 1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { startEchoServer, type EchoServerHandle } from '../../src/demo/echo-service.ts';
import { loadControlPlaneConfig } from '../../src/xds/control-plane/load.ts';
import { startControlPlane, type ControlPlane } from '../../src/xds/control-plane/control-plane.ts';
import { startAdsServer, type AdsServer } from '../../src/xds/server/ads-server.ts';
import { callUnary, targetClient } from '../../src/verify/target.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { exitOf, runCli } from '../helpers/cli.ts';
import { spawnEchoProcess, type EchoProcess } from '../helpers/echo-process.ts';
import { startBackends, startProxy, staticCluster, type RunningProxy } from '../helpers/harness.ts';

const ECHO_UNARY = '/switchyard.demo.v1.Echo/Unary';
/** EchoRequest { delay_ms: 200 }: keeps RPCs in flight long enough for a kill to catch some. */
const DELAY_200MS = '10c801';
const ROUTE_ALL = [{ match: { prefix: '/' }, cluster: 'echo' }];
const EXPOSING_LISTENER = [{ name: 'main', port: 0, plaintext: true, expose_upstream: true }];

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function verify(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runCli(['verify', ...args]);
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  const { code, stderr } = await exitOf(child);
  return { code, stdout, stderr };
}

/** The report's row for a check: [result, reason]. */
function row(stdout: string, check: string): [string, string] {
  const line = stdout.split('\n').find((l) => l.startsWith(`${check} `));
  assert.ok(line, `no row for ${check} in:\n${stdout}`);
  const [, result, , ...reason] = line.trim().split(/\s+/);
  return [result!, reason.join(' ')];
}

describe('switchyard verify', () => {
  let pki: TestPki;
  let dir: string;
  let backends: EchoServerHandle[];
  let healthy: RunningProxy;
  let controlPlane: ControlPlane;
  const closers: (() => Promise<unknown>)[] = [];

  before(async () => {
    [pki, backends, dir] = await Promise.all([makeTestPki(), startBackends(3), mkdtemp(path.join(os.tmpdir(), 'switchyard-verify-'))]);
    healthy = await startProxy({ listeners: EXPOSING_LISTENER, clusters: [staticCluster('echo', backends)], routes: ROUTE_ALL });
    const file = path.join(dir, 'control-plane.yaml');
    await writeFile(file, `
server:
  address: 127.0.0.1
  port: 0
  tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} }
clusters:
  - { name: echo, endpoints: [{ address: 127.0.0.1, port: ${backends[0]!.port} }] }
route_configs:
  - { name: main, routes: [{ match: { prefix: / }, cluster: echo }] }
listeners:
  - { name: echo, route_config: main }
authorization:
  identities:
    - { identity: spiffe://test/client, node_ids: ['*'], clusters: ['*'], listeners: ['*'] }
log_level: silent
`);
    controlPlane = await startControlPlane(await loadControlPlaneConfig(file), pino({ level: 'silent' }));
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    await healthy.close();
    await controlPlane.close(0);
    await Promise.all(backends.map((b) => b.close()));
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('a healthy setup passes every check, exits 0 and shows progress', async () => {
    const [health1, health2, health3, admin] = await Promise.all([closedPort(), closedPort(), closedPort(), closedPort()]);
    const { code, stdout, stderr } = await verify([
      '--target', `127.0.0.1:${healthy.port}`, '--plaintext', '--method', ECHO_UNARY, '--requests', '90', '--expect-backends', '3',
      '--backend-health', `127.0.0.1:${health1}`, '--backend-health', `127.0.0.1:${health2}`, '--backend-health', `127.0.0.1:${health3}`,
      '--admin', `127.0.0.1:${admin}`,
      '--xds', `127.0.0.1:${controlPlane.port}`,
      '--rollout-window', '1s', '--rate', '40',
    ]);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    for (const check of ['spread', 'health', 'xds', 'rollout']) assert.equal(row(stdout, check)[0], 'PASS', stdout);
    assert.match(row(stdout, 'spread')[1], /^90 RPCs over 3 backends, max\/min 1\.00/);
    for (const backend of backends) assert.match(stdout, new RegExp(`127\\.0\\.0\\.1:${backend.port}\\s+30\\s+33\\.3%`));
    assert.match(stdout, /TLS, no client certificate:\s+refused: after the TLS handshake: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/);
    assert.match(stdout, /verify: PASS \(4 checks\)/);
    // Not a terminal: a line per check as it starts.
    assert.match(stderr, /^verify spread: 90 RPCs to \/switchyard\.demo\.v1\.Echo\/Unary over one connection/m);
    assert.match(stderr, /^verify rollout: 40 RPC\/s .* run the rollout now$/m);
  });

  test('pinned to one backend: fewer backends than expected, or a split past the ratio, fails spread', async () => {
    const single = await startProxy({ listeners: EXPOSING_LISTENER, clusters: [staticCluster('echo', backends.slice(0, 1))], routes: ROUTE_ALL });
    closers.push(() => single.close());
    const weighted = await startProxy({
      listeners: EXPOSING_LISTENER,
      clusters: [{ name: 'echo', endpoints: backends.map((b, i) => ({ address: '127.0.0.1', port: b.port, weight: i === 0 ? 100 : 1 })) }],
      routes: ROUTE_ALL,
    });
    closers.push(() => weighted.close());
    const [pinned, uneven] = await Promise.all([
      verify(['--target', `127.0.0.1:${single.port}`, '--plaintext', '--method', ECHO_UNARY, '--requests', '60', '--expect-backends', '3']),
      verify(['--target', `127.0.0.1:${weighted.port}`, '--plaintext', '--method', ECHO_UNARY, '--requests', '102', '--json']),
    ]);
    assert.equal(pinned.code, 1, pinned.stdout);
    const [result, reason] = row(pinned.stdout, 'spread');
    assert.equal(result, 'FAIL');
    assert.equal(reason, `pinned: one backend served all 60 RPCs (expected at least 3): 127.0.0.1:${backends[0]!.port} 60`);

    assert.equal(uneven.code, 1, uneven.stdout);
    const report = JSON.parse(uneven.stdout);
    assert.equal(report.passed, false);
    assert.equal(report.checks[0].check, 'spread');
    assert.equal(report.checks[0].result, 'fail');
    assert.match(report.checks[0].reason, /^uneven: the busiest backend served \d+\.\d\d× the least busy \(limit 2\)/);
    assert.equal(report.checks[0].backends[`127.0.0.1:${backends[0]!.port}`], 100);
  });

  test('spread and rollout need --method: the health service is no default, because servers often serve it on another port', async () => {
    for (const checks of ['spread', 'rollout']) {
      const { code, stderr } = await verify(['--checks', checks, '--target', `127.0.0.1:${healthy.port}`, '--plaintext', '--rollout-window', '1s']);
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(`^switchyard verify: ${checks} needs --method /package\\.Service/Method: a unary method every backend implements`));
    }
  });

  test('a method the backends do not implement fails spread, however evenly the UNIMPLEMENTED answers spread', async () => {
    const { code, stdout } = await verify(['--target', `127.0.0.1:${healthy.port}`, '--plaintext', '--method', '/grpc.health.v1.Health/Check', '--requests', '30', '--expect-backends', '3']);
    assert.equal(code, 1, stdout);
    const [result, reason] = row(stdout, 'spread');
    assert.equal(result, 'FAIL');
    assert.equal(reason, 'the backends do not implement /grpc.health.v1.Health/Check: 30 of 30 RPCs were answered UNIMPLEMENTED; give --method a unary method they serve');
  });

  test('a listener without expose_upstream fails spread and says how to enable it', async () => {
    const hidden = await startProxy({ clusters: [staticCluster('echo', backends)], routes: ROUTE_ALL });
    closers.push(() => hidden.close());
    const { code, stdout } = await verify(['--target', `127.0.0.1:${hidden.port}`, '--plaintext', '--method', ECHO_UNARY, '--requests', '10']);
    assert.equal(code, 1);
    assert.match(row(stdout, 'spread')[1], /^the proxy does not expose the upstream endpoint: enable it for verification with `expose_upstream: true` on the listener/);
  });

  test('a reachable backend health port or admin port fails health', async () => {
    const healthServer = await startEchoServer({ name: 'health', health: true });
    closers.push(() => healthServer.close());
    const withAdmin = await startProxy({ clusters: [staticCluster('echo', backends)], routes: ROUTE_ALL, admin: { port: 0 } });
    closers.push(() => withAdmin.close());
    const closed = await closedPort();
    const adminPort = withAdmin.proxy.adminAddress!.port;
    const { code, stdout } = await verify(['--backend-health', `127.0.0.1:${healthServer.port}`, '--backend-health', `127.0.0.1:${closed}`, '--admin', `127.0.0.1:${adminPort}`]);
    assert.equal(code, 1, stdout);
    const [result, reason] = row(stdout, 'health');
    assert.equal(result, 'FAIL');
    assert.match(reason, new RegExp(`^reachable from here: 127\\.0\\.0\\.1:${healthServer.port} \\(backend health\\) answers HTTP/2 \\(gRPC\\), grpc\\.health\\.v1 Check: OK; 127\\.0\\.0\\.1:${adminPort} \\(admin\\) answers HTTP/1\\.1 \\d+`));
    assert.match(stdout, new RegExp(`closed\\s+127\\.0\\.0\\.1:${closed} \\(backend health\\): refused \\(ECONNREFUSED\\)`));
  });

  test('errors during a restart fail rollout, counted by status code', async () => {
    const processes: EchoProcess[] = await Promise.all([spawnEchoProcess('a'), spawnEchoProcess('b')]);
    closers.push(() => Promise.all(processes.map((p) => p.kill())));
    // No retry_policy: only transparent retries, so RPCs in flight on a killed backend fail.
    const proxy = await startProxy({ clusters: [{ name: 'echo', endpoints: processes.map((p) => ({ address: '127.0.0.1', port: p.port })) }], routes: ROUTE_ALL });
    closers.push(() => proxy.close());
    const child = runCli(['verify', '--checks', 'rollout', '--target', `127.0.0.1:${proxy.port}`, '--plaintext', '--method', ECHO_UNARY, '--request-hex', DELAY_200MS,
      '--rollout-window', '2s', '--rate', '50']);
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    const exited = exitOf(child);
    await once(child.stderr!, 'data');
    await sleep(700);
    await processes[1]!.kill('SIGKILL');
    const { code, stderr } = await exited;
    assert.equal(code, 1, `${stdout}\n${stderr}`);
    const [result, reason] = row(stdout, 'rollout');
    assert.equal(result, 'FAIL');
    // The RPCs in flight on the killed backend end UNAVAILABLE ("lost its connection before a gRPC status").
    assert.match(reason, /^\d+ of \d+ RPCs failed during the 2\.0s window: UNAVAILABLE ×\d+/);
    assert.match(stdout, /^ {2}UNAVAILABLE ×\d+, \d\.\ds–\d\.\ds into the window; first: upstream lost its connection before a gRPC status$/m);
  });

  test('a control plane that accepts plaintext fails xds', async () => {
    const plain: AdsServer = await startAdsServer({
      port: 0, insecure: true, insecureIdentity: 'local', provider: controlPlane.provider,
      authorization: { identities: [{ identity: 'local', node_ids: ['*'], clusters: ['*'], listeners: ['*'] }] },
    });
    closers.push(() => plain.close(0));
    const { code, stdout } = await verify(['--xds', `127.0.0.1:${plain.port}`]);
    assert.equal(code, 1, stdout);
    const [result, reason] = row(stdout, 'xds');
    assert.equal(result, 'FAIL');
    assert.match(reason, /^plaintext \(h2c\) was accepted: it served a DiscoveryResponse \(\d+ bytes\) without TLS; the ADS port must require mTLS$/);
  });

  test('expose_upstream names the endpoint in the headers, or in a trailers-only response with the status', async () => {
    const client = await targetClient({ address: `127.0.0.1:${healthy.port}`, plaintext: true });
    try {
      const ports = new Set(backends.map((b) => `127.0.0.1:${b.port}`));
      const answered = await callUnary(client, { method: ECHO_UNARY, request: Buffer.alloc(0), metadata: [], timeoutMs: 5_000 });
      assert.equal(answered.code, 0);
      assert.ok(ports.has(answered.upstream!), String(answered.upstream));
      // The backend has no such method: it answers UNIMPLEMENTED in one HEADERS frame.
      const trailersOnly = await callUnary(client, { method: '/switchyard.demo.v1.Echo/Missing', request: Buffer.alloc(0), metadata: [], timeoutMs: 5_000 });
      assert.equal(trailersOnly.code, 12);
      assert.ok(ports.has(trailersOnly.upstream!), String(trailersOnly.upstream));
    } finally {
      client.close();
    }
  });

  test('bad usage exits 2', async () => {
    const { code, stderr } = await verify(['--checks', 'spread,bogus']);
    assert.equal(code, 2);
    assert.match(stderr, /--checks: unknown check "bogus"/);
    assert.equal((await verify(['--checks', 'rollout', '--target', '127.0.0.1:1'])).code, 2);
  });
});
