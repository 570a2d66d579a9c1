/** The `xds` config section: its fields, what it rules out, and its TLS files. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createDiscoverySource } from '../../src/discovery/create.ts';
import { XdsEndpoints } from '../../src/discovery/xds.ts';
import type { DiscoveryUpdate } from '../../src/discovery/source.ts';
import { tlsFilesOf } from '../../src/lifecycle/cert-rotation.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';

let pki: TestPki;
let dir: string;

before(async () => {
  pki = await makeTestPki();
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-xds-config-'));
});

after(async () => {
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function configFile(yaml: string): Promise<string> {
  const file = path.join(dir, `config-${++counter}.yaml`);
  await writeFile(file, yaml);
  return file;
}

const listeners = `
listeners:
  - { name: main, port: 0, plaintext: true }
`;

describe('the xds section', () => {
  it('loads: TLS files read and checked, relative paths resolved against the config file, defaults applied', async () => {
    const file = path.join(pki.dir, 'xds.yaml');
    await writeFile(file, `${listeners}
xds:
  server: cp.example:18000
  tls: { ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem, server_name: cp.internal }
  node_id: proxy-1
  route_config: main
  cache_file: cache/xds.json
`);
    const loaded = await loadConfig(file);
    const xds = loaded.config.xds!;
    assert.equal(xds.server, 'cp.example:18000');
    assert.equal(xds.initial_fetch_timeout, 10_000);
    assert.equal(xds.tls.ca_file, pki.caCert);
    assert.equal(xds.cache_file, path.join(pki.dir, 'cache', 'xds.json'));
    assert.deepEqual(loaded.secrets.xds, { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem });
    assert.ok(loaded.files.includes(pki.client.cert));
    assert.deepEqual(tlsFilesOf(loaded.config), [pki.caCert, pki.client.cert, pki.client.key], 'rotated like the other TLS files');
  });

  it('rules out local routes and clusters, saying why', async () => {
    const file = await configFile(`${listeners}
routes: [{ match: { prefix: / }, cluster: echo }]
clusters: [{ name: echo, endpoints: [{ address: 127.0.0.1, port: 1 }] }]
xds:
  server: 127.0.0.1:18000
  tls: { ca_file: "${pki.caCert}", cert_file: "${pki.client.cert}", key_file: "${pki.client.key}" }
  node_id: proxy-1
  route_config: main
`);
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'routes', 'with xds set, routes come from the control plane: remove the routes here (or the xds section)');
    assertProblem(error, 'clusters', 'with xds set, clusters come from the control plane: remove the clusters here (or the xds section)');
  });

  it('reports bad fields and unreadable TLS files by path', async () => {
    const file = await configFile(`${listeners}
xds:
  server: no-port
  tls: { ca_file: "${pki.caCert}", cert_file: missing.pem, key_file: "${pki.client.key}" }
  node_id: ""
  route_config: main
  initial_fetch_timeout: 10
`);
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'xds.server', 'expected "host:port" ("[ipv6]:port" for IPv6), got "no-port"');
    assertProblem(error, 'xds.node_id', 'must not be empty');
    assertProblem(error, 'xds.initial_fetch_timeout', /expected a duration/);

    const unreadable = await configFile(`${listeners}
xds:
  server: "[::1]:18000"
  tls: { ca_file: "${pki.caCert}", cert_file: missing.pem, key_file: "${pki.server.key}" }
  node_id: proxy-1
  route_config: main
`);
    const fileError = await configError(unreadable, () => loadConfig(unreadable));
    assertProblem(fileError, 'xds.tls.cert_file', `cannot read "${path.join(dir, 'missing.pem')}": ENOENT: no such file or directory`);

    const mismatched = await configFile(`${listeners}
xds:
  server: 127.0.0.1:18000
  tls: { ca_file: "${pki.caCert}", cert_file: "${pki.client.cert}", key_file: "${pki.server.key}" }
  node_id: proxy-1
  route_config: main
`);
    const pairError = await configError(mismatched, () => loadConfig(mismatched));
    assertProblem(pairError, 'xds.tls.key_file', `"${pki.server.key}" is not the private key of the certificate in "${pki.client.cert}"`);
  });
});

describe('the xds discovery source', () => {
  it('starts from the current set, follows pushes, and stops after close', () => {
    const table = new XdsEndpoints();
    const updates: DiscoveryUpdate[] = [];
    const early = table.source('echo');
    early.start((update) => updates.push(update));
    assert.deepEqual(updates, [], 'nothing before the first assignment');
    table.set('echo', [{ host: '10.0.0.1', port: 80, weight: 1 }]);
    const late: DiscoveryUpdate[] = [];
    const second = table.source('echo');
    second.start((update) => late.push(update));
    assert.deepEqual(late, [{ type: 'reset', endpoints: [{ host: '10.0.0.1', port: 80, weight: 1 }] }], 'a new source starts from the current set');
    early.close();
    table.set('echo', []);
    assert.equal(updates.length, 1, 'a closed source hears nothing');
    assert.deepEqual(late.at(-1), { type: 'reset', endpoints: [] });
    second.close();
  });

  it('a hand-written eds cluster is refused by createDiscoverySource', () => {
    assert.throws(() => createDiscoverySource({ name: 'x', eds: { service_name: 'x' } } as never), /cluster "x": eds endpoints come from an xDS control plane/);
  });
});
