/**
 * A throwaway PKI for tests, made with the openssl CLI: one CA, a server
 * certificate and a client certificate it signed. EC P-256 keys keep a call
 * to about a tenth of a second. Nothing is cached: every call makes new keys.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate and its key: paths, and the same PEM contents already read. */
export interface TestIdentity {
  /** Path of the PEM certificate (just the leaf; the CA is in TestPki.caCert). */
  readonly cert: string;
  /** Path of the PEM private key (PKCS#8, unencrypted). */
  readonly key: string;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
}

export interface TestPki {
  /** Directory holding every file below; remove it with cleanup(). */
  readonly dir: string;
  /** CA certificate path: CN=Switchyard Test CA <random>, basicConstraints CA:TRUE, keyUsage keyCertSign, cRLSign. */
  readonly caCert: string;
  readonly caKey: string;
  readonly caCertPem: Buffer;
  readonly caKeyPem: Buffer;
  /** CN=localhost; SAN DNS:localhost, IP:127.0.0.1, IP:::1; extendedKeyUsage serverAuth. */
  readonly server: TestIdentity;
  /** CN=client.test; SAN URI:spiffe://test/client, DNS:client.test; extendedKeyUsage clientAuth. */
  readonly client: TestIdentity;
  /** Deletes `dir`. */
  cleanup(): Promise<void>;
}

const LEAF_EXTENSIONS = (usage: string, san: string) => `
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = ${usage}
subjectAltName = ${san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

/** Our own openssl config, so the system one (and its default extensions) plays no part. */
const REQ_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

/**
 * Makes a CA, and a server and a client certificate signed by it, valid for a
 * day. Files go in `dir` (created if missing), else in a new directory under
 * os.tmpdir(). Two calls give two unrelated CAs: use that to test rejection of
 * a peer signed by the wrong CA. Throws if the openssl CLI is missing or fails.
 */
export async function makeTestPki(dir?: string): Promise<TestPki> {
  const root = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'switchyard-pki-')));
  await mkdir(root, { recursive: true });
  const file = (name: string) => path.join(root, name);
  await writeFile(file('req.cnf'), REQ_CONFIG);

  await openssl([
    'req', '-x509', '-config', file('req.cnf'), ...ecKey(file('ca-key.pem')),
    // A unique name, so that two test CAs are never mistaken for one another while building a chain.
    '-subj', `/CN=Switchyard Test CA ${randomBytes(4).toString('hex')}`, '-days', '1', '-sha256',
    '-extensions', 'ca_ext', '-out', file('ca.pem'),
  ]);

  const [server, client] = await Promise.all([
    issue(root, 'server', '/CN=localhost', LEAF_EXTENSIONS('serverAuth', 'DNS:localhost, IP:127.0.0.1, IP:::1')),
    issue(root, 'client', '/CN=client.test', LEAF_EXTENSIONS('clientAuth', 'URI:spiffe://test/client, DNS:client.test')),
  ]);

  return {
    dir: root,
    caCert: file('ca.pem'),
    caKey: file('ca-key.pem'),
    caCertPem: await readFile(file('ca.pem')),
    caKeyPem: await readFile(file('ca-key.pem')),
    server,
    client,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export interface IdentityOptions {
  /** e.g. `/CN=other.test`. */
  readonly subject: string;
  /** openssl subjectAltName syntax, e.g. `URI:spiffe://test/other, DNS:other.test`. */
  readonly san: string;
  /** Default clientAuth. */
  readonly usage?: 'serverAuth' | 'clientAuth';
  /** Valid for one day in 2020 only: expired. */
  readonly expired?: boolean;
}

/**
 * One more certificate signed by `pki`'s CA, as `<name>.pem` and `<name>-key.pem`
 * in pki.dir: an extra client identity, a server certificate with other SANs,
 * or (expired: true) one that expired long ago.
 */
export async function issueIdentity(pki: TestPki, name: string, options: IdentityOptions): Promise<TestIdentity> {
  const extensions = LEAF_EXTENSIONS(options.usage ?? 'clientAuth', options.san);
  if (!options.expired) return issue(pki.dir, name, options.subject, extensions);
  // `x509 -days` cannot go back in time with OpenSSL 3.0; `ca` takes explicit dates.
  const file = (suffix: string) => path.join(pki.dir, `${name}${suffix}`);
  await writeFile(file('.ext'), extensions);
  await writeFile(file('.index'), '');
  await writeFile(file('.serial'), `${serial().slice(2)}\n`);
  await writeFile(file('.ca.cnf'), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${file('.index')}\nnew_certs_dir = ${pki.dir}\nserial = ${file('.serial')}\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n`);
  await openssl(['req', '-new', '-config', path.join(pki.dir, 'req.cnf'), ...ecKey(file('-key.pem')), '-subj', options.subject, '-out', file('.csr')]);
  await openssl([
    'ca', '-batch', '-notext', '-config', file('.ca.cnf'), '-cert', pki.caCert, '-keyfile', pki.caKey, '-in', file('.csr'),
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', file('.ext'), '-out', file('.pem'),
  ]);
  return { cert: file('.pem'), key: file('-key.pem'), certPem: await readFile(file('.pem')), keyPem: await readFile(file('-key.pem')) };
}

/** A key and a CA-signed certificate named `<name>.pem`, `<name>-key.pem`. */
async function issue(root: string, name: string, subject: string, extensions: string): Promise<TestIdentity> {
  const file = (suffix: string) => path.join(root, `${name}${suffix}`);
  await writeFile(file('.ext'), extensions);
  await openssl(['req', '-new', '-config', path.join(root, 'req.cnf'), ...ecKey(file('-key.pem')), '-subj', subject, '-out', file('.csr')]);
  await openssl([
    'x509', '-req', '-in', file('.csr'), '-CA', path.join(root, 'ca.pem'), '-CAkey', path.join(root, 'ca-key.pem'),
    '-set_serial', serial(), '-days', '1', '-sha256', '-extfile', file('.ext'), '-out', file('.pem'),
  ]);
  return { cert: file('.pem'), key: file('-key.pem'), certPem: await readFile(file('.pem')), keyPem: await readFile(file('-key.pem')) };
}

/** Arguments that make a new unencrypted P-256 key at `keyOut`. */
function ecKey(keyOut: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyOut];
}

/** A random positive 127-bit serial, so two certificates never share issuer and serial. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return `0x${bytes.toString('hex')}`;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (error) {
    const { code, stderr } = error as NodeJS.ErrnoException & { stderr?: string };
    if (code === 'ENOENT') throw new Error('makeTestPki needs the openssl CLI on PATH');
    throw new Error(`openssl ${args[0]} failed: ${stderr?.trim() || (error as Error).message}`);
  }
}
