/**
 * The file half of loading a config, apart from parsing and validating it
 * (load.ts): the error that lists a config's problems, the secrets a config
 * names, and reading them (PEM files, CA bundles, descriptor sets, the
 * affinity key), with every path made absolute. It imports neither zod nor
 * yaml, so a running proxy that validates its config in a child process
 * (isolated-load.ts) never loads them.
 */
import path from 'node:path';
import { CONFIG_FILE_LIMITS, PEM_FILE_LIMITS, readRegularFile } from './bounded-read.ts';
import { PemError, keyMatchesCertificate, parseCertificates, parsePrivateKey } from './pem.ts';
import type { ConfigProblem } from './problems.ts';
import type { SwitchyardConfig } from './schema.ts';
import type { DescriptorSets } from './descriptor-types.ts';

export type { ConfigProblem } from './problems.ts';

/** A config that cannot be used, with every problem found in it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'SWITCHYARD_BAD_CONFIG';
  /** The config file as the caller named it (or the label given to parseConfigObject). */
  readonly file: string;
  /** Never empty. Sorted by line when the problems come from a YAML file. */
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    // A YAML syntax error's path already is its position.
    const where = (p: ConfigProblem) => (p.line === undefined || p.path.startsWith('line ') ? '' : ` (line ${p.line})`);
    const lines = problems.map((p) => `  ${p.path}: ${p.message}${where(p)}`);
    super([`${file}: invalid config`, ...lines].join('\n'));
    this.file = file;
    this.problems = problems;
  }
}

/** The TLS files of one listener, as passed to tls.createSecureContext. */
export interface ListenerTlsFiles {
  /** PEM certificate chain, leaf first; checked to parse and to match `key`. */
  readonly cert: Buffer;
  /** PEM private key, unencrypted. */
  readonly key: Buffer;
  /** PEM CA bundle that client certificates must chain to (`tls.client_ca_file`); absent without one. */
  readonly clientCa?: Buffer | undefined;
}

/** The TLS files of one cluster: the CA to verify backends, and an optional client identity for mTLS. */
export type ClusterTlsFiles = { readonly ca: Buffer } & (
  | { readonly cert: Buffer; readonly key: Buffer }
  | { readonly cert?: undefined; readonly key?: undefined }
);

/** PEM contents, keyed by listener and cluster name, so the proxy never reads a file itself. */
export interface ConfigSecrets {
  /** One entry per listener that has `tls`. */
  readonly listeners: ReadonlyMap<string, ListenerTlsFiles>;
  /** One entry per cluster that has `tls`. */
  readonly clusters: ReadonlyMap<string, ClusterTlsFiles>;
  /** The xds section's mTLS files (src/xds/client/), when it has one. */
  readonly xds?: XdsTlsFiles | undefined;
  /** `web.descriptor_sets`, parsed, when the config names any (docs/grpc-web.md). */
  readonly descriptors?: DescriptorSets | undefined;
  /** The key that signs WebSocket affinity cookies (`websocket.affinity_key_file`), when there is one. */
  readonly affinityKey?: Buffer | undefined;
}

/** A descriptor set with every import of a large API (googleapis included) stays well under this. */
const DESCRIPTOR_SET_LIMITS = { maxBytes: 32 * 1024 * 1024, timeoutMs: 5_000 };

/** The CA the control plane's certificate must chain to, and the proxy's own certificate and key. */
export interface XdsTlsFiles {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface LoadedConfig {
  /** Absolute path of the config file; for resolveConfig, its label. */
  readonly file: string;
  /** The validated config, with defaults applied and every file path (TLS files, access log) made absolute. */
  readonly config: SwitchyardConfig;
  readonly secrets: ConfigSecrets;
  /** Absolute paths of every file read: the config (from loadConfig), then the PEM files. What a reload-on-change would watch. */
  readonly files: readonly string[];
}

/**
 * The text of a config file (Switchyard's or the control plane's): a regular
 * file of at most 4 MiB, read within 5 s. Throws ConfigError naming `file`.
 */
export async function readConfigText(file: string): Promise<string> {
  const absolute = path.resolve(file);
  try {
    return (await readRegularFile(absolute, CONFIG_FILE_LIMITS)).toString('utf8');
  } catch (error) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read "${absolute}": ${(error as Error).message}` }]);
  }
}

/**
 * The file half of loadConfig, for a config that did not come from a file
 * (built in code, then checked with parseConfigObject): resolves relative
 * paths against `baseDir`, reads every listener and cluster TLS file, and
 * checks that certificates and CA bundles parse, keys parse and are
 * unencrypted, and each key matches its certificate. `config` is not modified.
 * Throws ConfigError, labelled `label`, listing every bad file.
 */
export function resolveConfig(config: SwitchyardConfig, options: { readonly baseDir: string; readonly label?: string }): Promise<LoadedConfig> {
  return readReferencedFiles(config, path.resolve(options.baseDir), options.label ?? '(config)');
}

export async function readReferencedFiles(config: SwitchyardConfig, baseDir: string, file: string): Promise<LoadedConfig> {
  const out = structuredClone(config);
  const reader = new PemFiles(baseDir);
  const listeners = new Map<string, ListenerTlsFiles>();
  const clusters = new Map<string, ClusterTlsFiles>();

  for (const [i, listener] of out.listeners.entries()) {
    if (!listener.tls) continue;
    const at = `listeners[${i}].tls`;
    listener.tls.cert_file = reader.resolve(listener.tls.cert_file);
    listener.tls.key_file = reader.resolve(listener.tls.key_file);
    const pair = await reader.keyPair(at, listener.tls.cert_file, listener.tls.key_file);
    let clientCa: Buffer | undefined;
    if (listener.tls.client_ca_file !== undefined) {
      listener.tls.client_ca_file = reader.resolve(listener.tls.client_ca_file);
      clientCa = await reader.read(`${at}.client_ca_file`, listener.tls.client_ca_file, parseCertificates);
      if (!clientCa) continue;
    }
    if (pair) listeners.set(listener.name, clientCa ? { ...pair, clientCa } : pair);
  }

  for (const [i, cluster] of out.clusters.entries()) {
    if (!cluster.tls) continue;
    const at = `clusters[${i}].tls`;
    const tls = cluster.tls;
    tls.ca_file = reader.resolve(tls.ca_file);
    const ca = await reader.read(`${at}.ca_file`, tls.ca_file, parseCertificates);
    let pair: ListenerTlsFiles | undefined;
    if (tls.cert_file !== undefined && tls.key_file !== undefined) {
      tls.cert_file = reader.resolve(tls.cert_file);
      tls.key_file = reader.resolve(tls.key_file);
      pair = await reader.keyPair(at, tls.cert_file, tls.key_file);
      if (!pair) continue;
    }
    if (ca) clusters.set(cluster.name, pair ? { ca, cert: pair.cert, key: pair.key } : { ca });
  }

  for (const [i, cluster] of out.clusters.entries()) {
    if (cluster.kubernetes?.kubeconfig === undefined) continue;
    // Read by the Kubernetes source when it starts; checked here so a wrong path fails at load.
    const kubeconfig = (cluster.kubernetes.kubeconfig = reader.resolve(cluster.kubernetes.kubeconfig));
    await readRegularFile(kubeconfig, CONFIG_FILE_LIMITS).catch((error: unknown) => {
      reader.problems.push({ path: `clusters[${i}].kubernetes.kubeconfig`, message: `cannot read "${kubeconfig}": ${(error as Error).message}` });
    });
  }

  let xds: XdsTlsFiles | undefined;
  if (out.xds) {
    const tls = out.xds.tls;
    tls.ca_file = reader.resolve(tls.ca_file);
    tls.cert_file = reader.resolve(tls.cert_file);
    tls.key_file = reader.resolve(tls.key_file);
    const ca = await reader.read('xds.tls.ca_file', tls.ca_file, parseCertificates);
    const pair = await reader.keyPair('xds.tls', tls.cert_file, tls.key_file);
    if (ca && pair) xds = { ca, ...pair };
    if (out.xds.cache_file !== undefined) out.xds.cache_file = reader.resolve(out.xds.cache_file);
  }

  const descriptors = await readDescriptorSets(out, reader);
  let affinityKey: Buffer | undefined;
  if (out.websocket.affinity_key_file !== undefined) {
    out.websocket.affinity_key_file = reader.resolve(out.websocket.affinity_key_file);
    const contents = await reader.read('websocket.affinity_key_file', out.websocket.affinity_key_file, readAffinityKey);
    if (contents) affinityKey = readAffinityKey(contents);
  }

  const output = out.access_log.output;
  // The two values that are not paths.
  if (output !== 'off' && output !== 'stdout') out.access_log.output = reader.resolve(output);

  if (reader.problems.length > 0) throw new ConfigError(file, reader.problems);
  return { file, config: out, secrets: { listeners, clusters, ...(xds && { xds }), ...(descriptors && { descriptors }), ...(affinityKey && { affinityKey }) }, files: reader.files };
}

/** Reads and parses `web.descriptor_sets` (paths made absolute in `config`); problems go to `reader`. */
async function readDescriptorSets(config: SwitchyardConfig, reader: PemFiles): Promise<DescriptorSets | undefined> {
  const files = config.web.descriptor_sets.map((file) => reader.resolve(file));
  if (files.length === 0) return undefined;
  config.web.descriptor_sets = files;
  const contents: Buffer[] = [];
  for (const [i, file] of files.entries()) {
    reader.files.push(file);
    try {
      contents.push(await readRegularFile(file, DESCRIPTOR_SET_LIMITS));
    } catch (error) {
      reader.problems.push({ path: `web.descriptor_sets[${i}]`, message: `cannot read "${file}": ${(error as Error).message}` });
    }
  }
  if (contents.length < files.length) return undefined;
  // Loaded only here: a config without descriptor sets never pays for @bufbuild/protobuf.
  const { parseDescriptorSets, DescriptorSetError } = await import('./descriptor-sets.ts');
  try {
    return parseDescriptorSets(contents, files);
  } catch (error) {
    if (!(error instanceof DescriptorSetError)) throw error;
    reader.problems.push({ path: 'web.descriptor_sets', message: error.message });
    return undefined;
  }
}

/** Reads each file once (a CA bundle is often shared) and collects problems instead of throwing. */
export class PemFiles {
  readonly problems: ConfigProblem[] = [];
  readonly files: string[] = [];
  readonly #baseDir: string;
  readonly #cache = new Map<string, Promise<Buffer | Error>>();

  constructor(baseDir: string) {
    this.#baseDir = baseDir;
  }

  resolve(file: string): string {
    return path.resolve(this.#baseDir, file);
  }

  /** The file's bytes (a regular file of at most 1 MiB, read within 5 s) if it can be read and `check` does not throw a PemError; otherwise undefined, with a problem recorded at `at`. */
  async read(at: string, file: string, check: (pem: Buffer) => unknown): Promise<Buffer | undefined> {
    let pending = this.#cache.get(file);
    if (!pending) {
      pending = readRegularFile(file, PEM_FILE_LIMITS).catch((error: Error) => error);
      this.#cache.set(file, pending);
      this.files.push(file);
    }
    const contents = await pending;
    if (!Buffer.isBuffer(contents)) {
      this.problems.push({ path: at, message: `cannot read "${file}": ${contents.message}` });
      return undefined;
    }
    try {
      check(contents);
      return contents;
    } catch (error) {
      if (!(error instanceof PemError)) throw error;
      this.problems.push({ path: at, message: `"${file}" ${error.message}` });
      return undefined;
    }
  }

  /** A certificate chain and its key, both valid and matching; undefined (with problems recorded) otherwise. */
  async keyPair(at: string, certFile: string, keyFile: string): Promise<ListenerTlsFiles | undefined> {
    const cert = await this.read(`${at}.cert_file`, certFile, parseCertificates);
    const key = await this.read(`${at}.key_file`, keyFile, parsePrivateKey);
    if (!cert || !key) return undefined;
    if (!keyMatchesCertificate(parseCertificates(cert)[0]!, parsePrivateKey(key))) {
      this.problems.push({ path: `${at}.key_file`, message: `"${keyFile}" is not the private key of the certificate in "${certFile}"` });
      return undefined;
    }
    return { cert, key };
  }
}

/** Bytes of key an affinity cookie's HMAC-SHA256 needs at least: its own output size. */
const MIN_AFFINITY_KEY_BYTES = 32;

/** The affinity key in a key file's contents (surrounding whitespace is not part of it); throws PemError, read after the file's name, when it is too short. */
export function readAffinityKey(contents: Buffer): Buffer {
  const key = Buffer.from(contents.toString('latin1').trim(), 'latin1');
  if (key.length < MIN_AFFINITY_KEY_BYTES) throw new PemError(`holds ${key.length} bytes of key; an affinity key needs ${MIN_AFFINITY_KEY_BYTES} or more (e.g. openssl rand -base64 48)`);
  return key;
}
