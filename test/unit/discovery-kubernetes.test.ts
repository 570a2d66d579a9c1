import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { createDiscoverySource } from '../../src/discovery/create.ts';
import { describeError, endpointHealth, endpointsFromSlices, KubernetesEndpointSliceSource, slicePort } from '../../src/discovery/kubernetes.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';
import { endpointSlice } from '../helpers/fake-kube-api.ts';
import { waitFor } from '../helpers/harness.ts';

const FILE = '/etc/switchyard/test.yaml';
const withCluster = (cluster: string) => `
listeners: [{ name: l, port: 8080, plaintext: true }]
clusters:
  - ${cluster}
`;

describe('Kubernetes discovery: endpoint conditions', () => {
  it('maps ready/serving/terminating as the discovery.k8s.io/v1 API defines them', () => {
    const cases: [Parameters<typeof endpointHealth>[0], ReturnType<typeof endpointHealth>][] = [
      [undefined, 'healthy'],
      [{}, 'healthy'],
      [{ ready: true }, 'healthy'],
      [{ ready: true, serving: true, terminating: false }, 'healthy'],
      [{ ready: false, serving: true, terminating: true }, 'draining'],
      // publishNotReadyAddresses reports a terminating pod ready: still leaving.
      [{ ready: true, serving: true, terminating: true }, 'draining'],
      [{ ready: false, terminating: true }, undefined],
      [{ ready: false, serving: false, terminating: true }, undefined],
      [{ ready: false, serving: false, terminating: false }, undefined],
      [{ ready: false }, undefined],
    ];
    for (const [conditions, expected] of cases) assert.equal(endpointHealth(conditions), expected, JSON.stringify(conditions));
  });
});

describe('Kubernetes discovery: ports and slices', () => {
  it('finds a named TCP port, or a number the slice lists (or "all ports")', () => {
    const slice = endpointSlice('a', 'echo', [], { ports: [{ name: 'grpc', port: 9000, protocol: 'UDP' }, { name: 'grpc-tcp', port: 9001 }, { name: 'http', port: 80 }] });
    assert.equal(slicePort(slice, 'grpc'), undefined);
    assert.equal(slicePort(slice, 'grpc-tcp'), 9001);
    assert.equal(slicePort(slice, 80), 80);
    assert.equal(slicePort(slice, 81), undefined);
    assert.equal(slicePort(endpointSlice('b', 'echo', [], { ports: [{ name: '' }] }), 81), 81);
    assert.equal(slicePort(endpointSlice('b', 'echo', [], { ports: [{ name: 'grpc' }] }), 'grpc'), undefined);
    assert.equal(slicePort({ ...endpointSlice('c', 'echo', []), ports: undefined }, 80), undefined);
  });

  it('merges slices, skips addresses of the wrong family, and sorts IPv4 numerically before IPv6', () => {
    const endpoints = endpointsFromSlices([
      endpointSlice('a', 'echo', ['10.0.0.10', { ip: '10.0.0.9', zone: 'z' }, 'fd00::1']),
      endpointSlice('b', 'echo', ['fd00::2', '10.0.0.1'], { addressType: 'IPv6' }),
      endpointSlice('c', 'echo', ['10.0.0.10']),
    ], 'grpc');
    assert.deepEqual(endpoints, [
      { host: '10.0.0.9', port: 50051, weight: 1, health: 'healthy', zone: 'z' },
      { host: '10.0.0.10', port: 50051, weight: 1, health: 'healthy' },
      { host: 'fd00::2', port: 50051, weight: 1, health: 'healthy' },
    ]);
  });
});

describe('Kubernetes discovery: config', () => {
  it('parses a kubernetes section with defaults; a quoted number is a port number', () => {
    const config = parseConfig(withCluster('{ name: c, kubernetes: { service: echo, port: grpc } }'), FILE);
    assert.deepEqual(config.clusters[0]!.kubernetes, { namespace: 'default', service: 'echo', port: 'grpc' });
    const numbered = parseConfig(withCluster('{ name: c, kubernetes: { namespace: shop, service: echo, port: "50051" } }'), FILE);
    assert.deepEqual(numbered.clusters[0]!.kubernetes, { namespace: 'shop', service: 'echo', port: 50051 });
    assert.ok(createDiscoverySource(config.clusters[0]!) instanceof KubernetesEndpointSliceSource);
  });

  it('rejects bad names, ports, unknown fields and a second endpoint source', async () => {
    const error = await configError(FILE, () => parseConfig(`
listeners: [{ name: l, port: 8080, plaintext: true }]
clusters:
  - { name: a, kubernetes: { service: Echo_Svc, port: grpc } }
  - { name: b, kubernetes: { service: echo, port: 70000 } }
  - { name: c, kubernetes: { service: echo, port: grpc, selector: x } }
  - { name: d, dns: { name: echo, port: 1 }, kubernetes: { service: echo, port: grpc } }
  - { name: e, kubernetes: { service: echo } }
`, FILE));
    assertProblem(error, 'clusters[0].kubernetes.service', /^expected a Service name .*got "Echo_Svc"$/);
    assertProblem(error, 'clusters[1].kubernetes.port', /65535/);
    assertProblem(error, 'clusters[2].kubernetes', /selector/);
    assertProblem(error, 'clusters[3]', 'a cluster needs exactly one endpoint source: endpoints, dns or kubernetes');
    assertProblem(error, 'clusters[4].kubernetes.port', /.+/);
  });

  it('resolves kubeconfig against the config file\'s folder and reports one that cannot be read', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'switchyard-kube-'));
    await writeFile(path.join(dir, 'kubeconfig'), 'apiVersion: v1\nkind: Config\n');
    const file = path.join(dir, 'switchyard.yaml');
    await writeFile(file, withCluster('{ name: c, kubernetes: { service: echo, port: grpc, kubeconfig: kubeconfig } }'));
    const loaded = await loadConfig(file);
    assert.equal(loaded.config.clusters[0]!.kubernetes!.kubeconfig, path.join(dir, 'kubeconfig'));

    await writeFile(file, withCluster('{ name: c, kubernetes: { service: echo, port: grpc, kubeconfig: missing } }'));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'clusters[0].kubernetes.kubeconfig', `cannot read "${path.join(dir, 'missing')}": ENOENT: no such file or directory`);
  });
});

describe('Kubernetes discovery: a kubeconfig that cannot be loaded', () => {
  it('is reported as an error update, and retried', async () => {
    const source = new KubernetesEndpointSliceSource({ namespace: 'default', service: 'echo', port: 'grpc', kubeconfigPath: '/nonexistent/kubeconfig', backoff: { initialMs: 20, maxMs: 40 } });
    const errors: string[] = [];
    source.start((update) => {
      if (update.type === 'error') errors.push(update.error.message);
      else assert.fail('no reset without an API server');
    });
    try {
      await waitFor(() => errors.length >= 2, 'two attempts');
      assert.match(errors[0]!, /^Kubernetes EndpointSlices of default\/echo: cannot load the kubeconfig \(.*ENOENT.*\); keeping the last good endpoints$/);
    } finally {
      source.close();
    }
  });
});

describe('Kubernetes discovery: error messages', () => {
  it('says what the API server said, in one line', () => {
    const apiException = Object.assign(new Error('HTTP-Code: 403\nMessage: …'), { code: 403, body: JSON.stringify({ kind: 'Status', message: 'endpointslices.discovery.k8s.io is forbidden' }) });
    assert.equal(describeError(apiException), 'HTTP 403: endpointslices.discovery.k8s.io is forbidden');
    assert.equal(describeError(Object.assign(new Error('Gone'), { statusCode: 410 })), 'HTTP 410 Gone');
    assert.equal(describeError(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:6443') })), 'fetch failed: connect ECONNREFUSED 127.0.0.1:6443');
  });
});
