/**
 * `switchyard control-plane`: its config file's clusters and routes served
 * over ADS with mTLS, endpoints following their source, policies translated
 * per client kind, and config mistakes reported with file and path.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { issueIdentity, makeTestPki, type TestIdentity, type TestPki } from '../helpers/certs.ts';
import { AdsTestClient } from '../helpers/ads-client.ts';
import { collectLogs, exitOf, logEntries, runCli } from '../helpers/cli.ts';
import { waitFor } from '../helpers/harness.ts';
import * as grpc from '@grpc/grpc-js';
import { FakeKubeApi, endpointSlice } from '../helpers/fake-kube-api.ts';
import { TYPE_URL } from '../../src/xds/protos.ts';
import { loadControlPlaneConfig } from '../../src/xds/control-plane/load.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';
import { parseYamlConfig } from '../../src/config/load.ts';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../src/xds/control-plane/control-plane.ts';
import pino from 'pino';

describe('control plane from a config file', () => {
  let pki: TestPki;
  let frontend: TestIdentity;
  let kube: FakeKubeApi;
  let dir: string;
  let controlPlane: ControlPlane;
  let ads: AdsTestClient;

  before(async () => {
    pki = await makeTestPki();
    frontend = await issueIdentity(pki, 'frontend', { subject: '/CN=frontend', san: 'URI:spiffe://test/frontend' });
    kube = await FakeKubeApi.start();
    kube.apply(slice([['10.0.0.1', 'zone-a', true], ['10.0.0.2', 'zone-b', true]]));
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-cp-'));
    const kubeconfig = await kube.writeKubeconfig();
    const file = path.join(dir, 'control-plane.yaml');
    await writeFile(file, `
server:
  address: 127.0.0.1
  port: 0
  tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} }
clusters:
  - name: echo
    lb_policy: least_request
    kubernetes: { namespace: shop, service: echo, port: grpc, kubeconfig: ${kubeconfig} }
  - name: pinned
    lb_policy: ring_hash
    hash_header: x-user
    endpoints: [{ address: 10.1.0.1, port: 7000 }]
route_configs:
  - name: main
    routes:
      - { match: { method: /echo.Echo/Pinned }, cluster: pinned, timeout: 2s }
      - { match: { service: echo.Echo }, cluster: echo }
listeners:
  - { name: echo, route_config: main }
authorization:
  identities:
    - { identity: spiffe://test/frontend, node_ids: [frontend-*], clusters: ['*'], listeners: ['*'] }
log_level: silent
`);
    controlPlane = await startControlPlane(await loadControlPlaneConfig(file), pino({ level: 'silent' }));
    ads = new AdsTestClient({ host: 'localhost', port: controlPlane.port, ca: pki.caCertPem, cert: frontend.certPem, key: frontend.keyPem });
  });

  after(async () => {
    ads.close();
    await controlPlane.close(0);
    await kube.close();
    await pki.cleanup();
  });

  test('serves listeners, routes, clusters and Kubernetes endpoints with localities', async () => {
    const stream = ads.sotw({ id: 'frontend-1', user_agent_name: 'gRPC Node' });
    stream.request({ typeUrl: TYPE_URL.listener });
    const lds = await stream.next(TYPE_URL.listener);
    assert.deepEqual(lds.names, ['echo']);
    stream.ack(lds);
    stream.request({ typeUrl: TYPE_URL.route, names: ['main'] });
    const rds = await stream.next(TYPE_URL.route);
    const routes = (rds.resources[0]!.message as any).virtual_hosts[0].routes;
    assert.deepEqual(routes.map((r: any) => [r.match.path ?? r.match.prefix, r.route.cluster]), [['/echo.Echo/Pinned', 'pinned'], ['/echo.Echo/', 'echo']]);
    assert.equal(routes[0].route.hash_policy[0].header.header_name, 'x-user');
    assert.deepEqual(routes[0].route.max_stream_duration.grpc_timeout_header_max, { seconds: '2', nanos: 0 });
    stream.request({ typeUrl: TYPE_URL.cluster });
    const cds = await stream.next(TYPE_URL.cluster);
    // A gRPC client cannot take LEAST_REQUEST: it gets ROUND_ROBIN.
    assert.deepEqual(Object.fromEntries(cds.resources.map((r) => [r.name, r.message.lb_policy])), { echo: 'ROUND_ROBIN', pinned: 'RING_HASH' });
    stream.request({ typeUrl: TYPE_URL.endpoint, names: ['echo'] });
    const eds = await stream.next(TYPE_URL.endpoint);
    const localities = (eds.resources[0]!.message as any).endpoints;
    assert.deepEqual(localities.map((l: any) => [l.locality.zone, l.load_balancing_weight.value, l.lb_endpoints[0].endpoint.address.socket_address.address]).sort(),
      [['zone-a', 1, '10.0.0.1'], ['zone-b', 1, '10.0.0.2']]);
    stream.ack(eds);

    // A pod starts terminating: the next push marks it DRAINING.
    kube.apply(slice([['10.0.0.1', 'zone-a', true], ['10.0.0.2', 'zone-b', false]]));
    const changed = await stream.next(TYPE_URL.endpoint);
    const statuses = (changed.resources[0]!.message as any).endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => [e.endpoint.address.socket_address.address, e.health_status])).sort();
    assert.deepEqual(statuses, [['10.0.0.1', 'HEALTHY'], ['10.0.0.2', 'DRAINING']]);
  });

  test('a Switchyard proxy gets the exact policy', async () => {
    const stream = ads.sotw({ id: 'frontend-2', user_agent_name: 'switchyard' });
    stream.request({ typeUrl: TYPE_URL.cluster });
    const cds = await stream.next(TYPE_URL.cluster);
    const echo = cds.resources.find((r) => r.name === 'echo')!.message as any;
    assert.equal(echo.lb_policy, 'LEAST_REQUEST');
    assert.equal(echo.metadata.filter_metadata['io.switchyard'].fields.lb_policy.stringValue, 'least_request');
  });

  test('the CLI reports a bad config with the file and the path, and exits 2', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, `
server: { port: 0, tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} } }
clusters: [{ name: echo, endpoints: [{ address: 10.0.0.1, port: 1 }] }]
route_configs: [{ name: main, routes: [{ match: { prefix: / }, cluster: missing }] }]
listeners: [{ name: echo, route_config: nope }]
authorization: { identities: [] }
`);
    const { code, stderr } = await exitOf(runCli(['control-plane', '--config', file]));
    assert.equal(code, 2);
    assert.match(stderr, /bad\.yaml: invalid config/);
    assert.match(stderr, /route_configs\[0\]\.routes\[0\]\.cluster: no cluster named "missing"/);
    assert.match(stderr, /listeners\[0\]\.route_config: no route config named "nope"/);
  });

  test('the CLI serves until SIGTERM, then exits 0', async () => {
    const file = path.join(dir, 'ok.yaml');
    await writeFile(file, `
server: { address: 127.0.0.1, port: 0, tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} } }
clusters: [{ name: echo, endpoints: [{ address: 10.0.0.1, port: 1 }] }]
authorization: { identities: [{ identity: spiffe://test/frontend, node_ids: ['*'], clusters: ['*'], listeners: ['*'] }] }
`);
    const child = runCli(['control-plane', '--config', file]);
    const exited = exitOf(child);
    const [listening] = await logEntries(child, (e) => e.msg === 'xDS control plane listening (mTLS)');
    const port = Number(listening!.address!.split(':').at(-1));
    const client = new AdsTestClient({ host: 'localhost', port, ca: pki.caCertPem, cert: frontend.certPem, key: frontend.keyPem });
    const stream = client.sotw({ id: 'cli-test' });
    stream.request({ typeUrl: TYPE_URL.cluster });
    assert.deepEqual((await stream.next(TYPE_URL.cluster)).names, ['echo']);
    child.kill('SIGTERM');
    assert.equal((await exited).code, 0);
    client.close();
  });

  test('a reload takes new TLS files: new connections get the new certificate, open streams stay', async () => {
    const rotated = await issueIdentity(pki, 'rotated-server', { subject: '/CN=rotated', san: 'DNS:rotated.test', usage: 'serverAuth' });
    const config = (cert: TestIdentity | TestPki['server']) => `
server: { address: 127.0.0.1, port: 0, tls: { cert_file: ${cert.cert}, key_file: ${cert.key}, client_ca_file: ${pki.caCert} } }
clusters: [{ name: echo, endpoints: [{ address: 10.0.0.1, port: 1 }] }]
authorization: { identities: [{ identity: spiffe://test/frontend, node_ids: ['*'], clusters: ['*'], listeners: [] }] }
log_level: silent
`;
    const file = path.join(dir, 'rotate.yaml');
    await writeFile(file, config(pki.server));
    const running = await startControlPlane(await loadControlPlaneConfig(file), pino({ level: 'silent' }));
    const connect = (serverName: string) => new AdsTestClient({ host: 'localhost', serverName, port: running.port, ca: pki.caCertPem, cert: frontend.certPem, key: frontend.keyPem });
    const before = connect('localhost');
    const after = connect('rotated.test');
    try {
      const open = before.sotw({ id: 'open-1' });
      open.request({ typeUrl: TYPE_URL.cluster });
      open.ack(await open.next(TYPE_URL.cluster));

      await writeFile(file, config(rotated));
      const summary = running.reload(await loadControlPlaneConfig(file));
      assert.equal(summary.tlsChanged, true);
      const fresh = after.sotw({ id: 'new-1' });
      fresh.request({ typeUrl: TYPE_URL.cluster });
      assert.deepEqual((await fresh.next(TYPE_URL.cluster)).names, ['echo'], 'a new connection verifies the rotated certificate');
      open.request({ typeUrl: TYPE_URL.endpoint, names: ['echo'] });
      assert.deepEqual((await open.next(TYPE_URL.endpoint)).names, ['echo'], 'the stream opened before the reload goes on');
    } finally {
      before.close();
      after.close();
      await running.close(0);
    }
  });

  test('SIGHUP reloads the config: new clusters and rules reach open streams, a bad file is refused, the process lives on', async () => {
    const file = path.join(dir, 'reload.yaml');
    const config = (clusters: string, nodeIds: string, allowed: string) => `
server: { address: 127.0.0.1, port: 0, tls: { cert_file: ${pki.server.cert}, key_file: ${pki.server.key}, client_ca_file: ${pki.caCert} } }
clusters: [${clusters}]
authorization: { identities: [{ identity: spiffe://test/frontend, node_ids: [${nodeIds}], clusters: [${allowed}], listeners: [] }] }
`;
    await writeFile(file, config(`{ name: echo, endpoints: [{ address: 10.0.0.1, port: 1 }] }`, `'*'`, `'*'`));
    const child = runCli(['control-plane', '--config', file]);
    const exited = exitOf(child);
    const logs = collectLogs(child);
    const [listening] = await logEntries(child, (e) => e.msg === 'xDS control plane listening (mTLS)');
    const port = Number(listening!.address!.split(':').at(-1));
    const client = new AdsTestClient({ host: 'localhost', port, ca: pki.caCertPem, cert: frontend.certPem, key: frontend.keyPem });
    try {
      const kept = client.sotw({ id: 'keep-1' });
      const dropped = client.sotw({ id: 'drop-1' });
      for (const stream of [kept, dropped]) {
        stream.request({ typeUrl: TYPE_URL.cluster });
        const cds = await stream.next(TYPE_URL.cluster);
        assert.deepEqual(cds.names, ['echo']);
        stream.ack(cds);
      }

      // A second cluster, and rules that now give this identity only it, and only as keep-*.
      await writeFile(file, config(`{ name: echo, endpoints: [{ address: 10.0.0.1, port: 1 }] }, { name: second, endpoints: [{ address: 10.0.0.2, port: 2 }] }`, `'keep-*'`, `second`));
      child.kill('SIGHUP');
      const pushed = await kept.next(TYPE_URL.cluster);
      assert.deepEqual(pushed.names, ['second'], 'the open stream gets the new cluster under the new rules');
      kept.ack(pushed);
      const status = await dropped.closed;
      assert.equal(status.code, grpc.status.PERMISSION_DENIED, 'a node the new rules do not allow is ended');
      await waitFor(() => logs.some((l) => l.msg === 'config reloaded'), 'the reload to be logged');

      // A bad file: logged, and the running config stays.
      await writeFile(file, config(`{ name: echo, lb_policy: sideways, endpoints: [] }`, `'*'`, `'*'`));
      child.kill('SIGHUP');
      await waitFor(() => logs.some((l) => l.msg === 'config reload rejected; the running config stays in force'), 'the bad reload to be logged');
      const rejected = logs.find((l) => l.msg === 'config reload rejected; the running config stays in force')!;
      assert.match(String(rejected.error), /reload\.yaml: invalid config\n\s+clusters\[0\]\.lb_policy/);
      const later = client.sotw({ id: 'keep-2' });
      later.request({ typeUrl: TYPE_URL.cluster });
      assert.deepEqual((await later.next(TYPE_URL.cluster)).names, ['second'], 'still serving the config of the last good reload');
      assert.equal(child.exitCode, null, 'SIGHUP never ends the process');

      child.kill('SIGTERM');
      assert.equal((await exited).code, 0);
    } finally {
      client.close();
      child.kill('SIGKILL');
    }
  });
});

describe('docs/control-plane.md', () => {
  const DOC = new URL('../../docs/control-plane.md', import.meta.url);
  /** The first fenced block of `language` after the line `heading`. */
  const blockAfter = (text: string, heading: string, language: string): string => {
    const start = text.indexOf(`\n${heading}\n`);
    assert.ok(start >= 0, `no "${heading}" in the doc`);
    const open = text.indexOf('```' + language + '\n', start);
    const close = text.indexOf('\n```', open + 4 + language.length);
    return text.slice(open + 4 + language.length, close + 1);
  };

  test('the "Running it" config validates', async () => {
    const text = await readFile(DOC, 'utf8');
    const config = parseYamlConfig(controlPlaneSchema, blockAfter(text, '## Running it', 'yaml'), 'docs/control-plane.md', '');
    assert.deepEqual(config.authorization.identities.map((rule) => rule.identity), ['spiffe://cluster.local/ns/edge/sa/switchyard', 'spiffe://cluster.local/ns/shop/sa/switchyard-agent']);
  });

  test('the openssl recipe makes certificates the control plane and its clients accept, for the names and identities it says', async () => {
    const text = await readFile(DOC, 'utf8');
    const recipe = blockAfter(text, '### Certificates', 'sh');
    const work = await mkdtemp(path.join(os.tmpdir(), 'switchyard-recipe-'));
    try {
      await promisify(execFile)('sh', ['-e', '-c', recipe], { cwd: work, timeout: 60_000 });
      const tls = path.join(work, 'tls');
      const running = parseYamlConfig(controlPlaneSchema, blockAfter(text, '## Running it', 'yaml'), 'docs/control-plane.md', '');
      const file = path.join(work, 'control-plane.yaml');
      await writeFile(file, JSON.stringify({
        server: { address: '127.0.0.1', port: 0, tls: { cert_file: 'tls/control-plane.pem', key_file: 'tls/control-plane-key.pem', client_ca_file: 'tls/ca.pem' } },
        clusters: [{ name: 'echo', endpoints: [{ address: '10.0.0.1', port: 50051 }] }],
        authorization: running.authorization,
        log_level: 'silent',
      }));
      const controlPlane = await startControlPlane(await loadControlPlaneConfig(file), pino({ level: 'silent' }));
      const read = (name: string) => readFile(path.join(tls, name));
      const [ca, proxyCert, proxyKey, agentCert, agentKey] = await Promise.all(['ca.pem', 'edge-proxy.pem', 'edge-proxy-key.pem', 'shop-agent.pem', 'shop-agent-key.pem'].map(read));
      const clients: AdsTestClient[] = [];
      try {
        for (const [cert, key, node, expected] of [[proxyCert, proxyKey, 'edge-1', ['echo']], [agentCert, agentKey, 'shop-1', ['echo']]] as const) {
          const client = new AdsTestClient({ host: 'localhost', serverName: 'control-plane.switchyard.svc', port: controlPlane.port, ca, cert, key });
          clients.push(client);
          const stream = client.sotw({ id: node });
          stream.request({ typeUrl: TYPE_URL.cluster });
          assert.deepEqual((await stream.next(TYPE_URL.cluster)).names, expected, `${node}'s clusters under the rules of "Running it"`);
        }
        // A node outside its identity's node_ids is refused: the certificate carries the identity the rules name.
        const wrong = clients[1]!.sotw({ id: 'edge-2' });
        wrong.request({ typeUrl: TYPE_URL.cluster });
        assert.equal((await wrong.closed).details, 'spiffe://cluster.local/ns/shop/sa/switchyard-agent may not claim node.id "edge-2"');
      } finally {
        for (const client of clients) client.close();
        await controlPlane.close(0);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  test('the cert-manager objects parse and validate against the cert-manager CRD schemas', async () => {
    const text = await readFile(DOC, 'utf8');
    const documents = parseAllDocuments(blockAfter(text, '### Certificates', 'yaml'));
    const kinds: string[] = [];
    for (const document of documents) {
      const object = document.toJS() as { apiVersion: string; kind: string };
      const [group, version] = object.apiVersion.split('/') as [string, string];
      const module = await import(`@kubernetes-models/cert-manager/${group}/${version}/${object.kind}`) as Record<string, new (data: unknown) => { validate(): void }>;
      new module[object.kind]!(object).validate();
      kinds.push(object.kind);
    }
    assert.deepEqual(kinds, ['ClusterIssuer', 'Certificate', 'ClusterIssuer', 'Certificate', 'Certificate']);
  });
});

/** The EndpointSlice of Service "echo" in namespace "shop": [address, zone, ready (else terminating)]. */
function slice(endpoints: [address: string, zone: string, ready: boolean][]) {
  return endpointSlice('echo-a', 'echo', endpoints.map(([ip, zone, ready]) => ({ ip, zone, ready, serving: true, terminating: !ready })), { namespace: 'shop' });
}
