import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, parseConfigObject, resolveConfig } from '../../src/config/load.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';

let pki: TestPki;
let dir: string;

before(async () => {
  pki = await makeTestPki();
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-config-'));
});

after(async () => {
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
/** Writes `yaml` to a new config file in `dir` and returns its path. */
async function configFile(yaml: string): Promise<string> {
  const file = path.join(dir, `config-${++counter}.yaml`);
  await writeFile(file, yaml);
  return file;
}

const tlsListener = (cert: string, key: string) => `
listeners:
  - name: public
    address: 0.0.0.0
    port: 8443
    tls: { cert_file: "${cert}", key_file: "${key}" }
`;

describe('loadConfig', () => {
  it('reads every TLS file, resolving relative paths against the config directory', async () => {
    // The config sits next to the PKI files so that relative names resolve to them.
    const file = path.join(pki.dir, 'switchyard.yaml');
    await writeFile(file, `
listeners:
  - name: public
    port: 8443
    tls: { cert_file: server.pem, key_file: ./server-key.pem }
clusters:
  - name: plain
    endpoints: [{ address: 10.0.0.1, port: 1 }]
    tls: { ca_file: ca.pem }
  - name: mtls
    endpoints: [{ address: 10.0.0.2, port: 1 }]
    tls: { ca_file: "${pki.caCert}", cert_file: client.pem, key_file: client-key.pem }
access_log: { output: logs/access.log }
`);
    const loaded = await loadConfig(path.relative(process.cwd(), file));
    assert.equal(loaded.file, file);
    assert.deepEqual(loaded.secrets.listeners.get('public'), { cert: pki.server.certPem, key: pki.server.keyPem });
    assert.deepEqual(loaded.secrets.clusters.get('plain'), { ca: pki.caCertPem });
    assert.deepEqual(loaded.secrets.clusters.get('mtls'), { ca: pki.caCertPem, cert: pki.client.certPem, key: pki.client.keyPem });
    assert.equal(loaded.config.listeners[0]?.tls?.cert_file, pki.server.cert);
    assert.equal(loaded.config.clusters[1]?.tls?.key_file, pki.client.key);
    assert.equal(loaded.config.access_log.output, path.join(pki.dir, 'logs/access.log'));
    // ca.pem is named twice but read once.
    assert.deepEqual(loaded.files, [file, pki.server.cert, pki.server.key, pki.caCert, pki.client.cert, pki.client.key]);
  });

  it('names the config file when it cannot be read', async () => {
    const missing = path.join(dir, 'nope.yaml');
    const error = await configError(missing, () => loadConfig(missing));
    assertProblem(error, '(file)', `cannot read "${missing}": ENOENT: no such file or directory`);
  });

  it('reports a missing certificate with its path and the OS error', async () => {
    const missing = path.join(dir, 'missing.pem');
    const file = await configFile(tlsListener(missing, pki.server.key));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.cert_file', `cannot read "${missing}": ENOENT: no such file or directory`);
    assert.equal(error.problems.length, 1);
  });

  it('reports a directory given as a file', async () => {
    const file = await configFile(tlsListener(dir, pki.server.key));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.cert_file', `cannot read "${dir}": is not a regular file (a directory)`);
  });

  it('rejects a file that is not a certificate', async () => {
    const file = await configFile(tlsListener(pki.server.key, pki.server.key));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.cert_file', `"${pki.server.key}" is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`);
  });

  it('rejects a certificate block that does not parse', async () => {
    const corrupt = path.join(dir, 'corrupt.pem');
    await writeFile(corrupt, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const file = await configFile(tlsListener(corrupt, pki.server.key));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.cert_file', new RegExp(`^"${corrupt}" is not a PEM certificate: certificate 1 of 1 does not parse`));
  });

  it('rejects a file that is not a key, and an encrypted key', async () => {
    const encrypted = path.join(dir, 'encrypted-key.pem');
    const { privateKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' },
    });
    await writeFile(encrypted, privateKey);
    const file = await configFile(`${tlsListener(pki.server.cert, pki.server.cert)}
  - name: second
    port: 8444
    tls: { cert_file: "${pki.server.cert}", key_file: "${encrypted}" }
`);
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.key_file', `"${pki.server.cert}" is not a PEM private key (no "-----BEGIN PRIVATE KEY-----" block)`);
    assertProblem(error, 'listeners[1].tls.key_file', `"${encrypted}" is an encrypted private key; Switchyard needs it unencrypted`);
  });

  it('rejects a key that does not match the certificate', async () => {
    const file = await configFile(tlsListener(pki.server.cert, pki.client.key));
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'listeners[0].tls.key_file', `"${pki.client.key}" is not the private key of the certificate in "${pki.server.cert}"`);
  });

  it('checks cluster CA bundles and client identities', async () => {
    const empty = path.join(dir, 'empty-ca.pem');
    await writeFile(empty, '# no certificates here\n');
    const file = await configFile(`
listeners: [{ name: local, port: 1, plaintext: true }]
clusters:
  - name: a
    endpoints: [{ address: a, port: 1 }]
    tls: { ca_file: "${empty}" }
  - name: b
    endpoints: [{ address: b, port: 1 }]
    tls: { ca_file: "${pki.caCert}", cert_file: "${pki.client.cert}", key_file: "${pki.server.key}" }
`);
    const error = await configError(file, () => loadConfig(file));
    assertProblem(error, 'clusters[0].tls.ca_file', `"${empty}" is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`);
    assertProblem(error, 'clusters[1].tls.key_file', `"${pki.server.key}" is not the private key of the certificate in "${pki.client.cert}"`);
  });

  it('reports every bad file at once', async () => {
    const sub = path.join(dir, 'sub');
    await mkdir(sub, { recursive: true });
    const file = path.join(sub, 'switchyard.yaml');
    await writeFile(file, `
listeners:
  - { name: a, port: 1, tls: { cert_file: a.pem, key_file: a-key.pem } }
clusters:
  - { name: c, endpoints: [{ address: a, port: 1 }], tls: { ca_file: ../nowhere/ca.pem } }
`);
    const error = await configError(file, () => loadConfig(file));
    assert.deepEqual(error.problems.map((p) => p.path), ['listeners[0].tls.cert_file', 'listeners[0].tls.key_file', 'clusters[0].tls.ca_file']);
    assertProblem(error, 'clusters[0].tls.ca_file', `cannot read "${path.join(dir, 'nowhere/ca.pem')}": ENOENT: no such file or directory`);
  });

  it('reports schema problems before touching any file', async () => {
    const file = await configFile(tlsListener('missing.pem', 'missing-key.pem') + 'log_level: loud\n');
    const error = await configError(file, () => loadConfig(file));
    assert.deepEqual(error.problems.map((p) => p.path), ['log_level']);
  });
});

describe('resolveConfig', () => {
  it('loads the files of a config built in code, against a given directory', async () => {
    const config = parseConfigObject({
      listeners: [{ name: 'tls', port: 0, tls: { cert_file: 'server.pem', key_file: 'server-key.pem' } }],
    }, '(test)');
    const loaded = await resolveConfig(config, { baseDir: pki.dir, label: '(test)' });
    assert.equal(loaded.file, '(test)');
    assert.deepEqual(loaded.files, [pki.server.cert, pki.server.key]);
    assert.deepEqual(loaded.secrets.listeners.get('tls'), { cert: pki.server.certPem, key: pki.server.keyPem });
    assert.equal(config.listeners[0]?.tls?.cert_file, 'server.pem', 'the input config is left as it was');
  });

  it('labels its errors', async () => {
    const config = parseConfigObject({
      listeners: [{ name: 'tls', port: 0, tls: { cert_file: 'nope.pem', key_file: 'server-key.pem' } }],
    }, '(test)');
    const error = await configError('(test)', () => resolveConfig(config, { baseDir: pki.dir, label: '(test)' }));
    assertProblem(error, 'listeners[0].tls.cert_file', `cannot read "${path.join(pki.dir, 'nope.pem')}": ENOENT: no such file or directory`);
  });
});
