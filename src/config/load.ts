/**
 * Loading a config: YAML text → validated SwitchyardConfig → the PEM files it
 * names, read and checked. Every step reports all of its problems at once, each
 * with the path of the offending field, in one ConfigError.
 */
import path from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import { CONFIG_FILE_LIMITS, PEM_FILE_LIMITS, readRegularFile } from './bounded-read.ts';
import { PemError, keyMatchesCertificate, parseCertificates, parsePrivateKey } from './pem.ts';
import { formatPath, validate, type ConfigProblem, type RawProblem } from './problems.ts';
import type { z } from 'zod';
import { configSchema, type SwitchyardConfig } from './schema.ts';
import type { DescriptorSets } from './descriptor-types.ts';
import { readAffinityKey } from './websocket-schema.ts';

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
 * Parses and validates YAML config text. `file` only labels errors. Throws
 * ConfigError for YAML syntax errors (duplicate keys included), an empty
 * document, and every schema problem, each located by path and line.
 */
export function parseConfig(text: string, file: string): SwitchyardConfig {
  return parseYamlConfig(configSchema, text, file, 'a config needs at least one listener');
}

/**
 * parseConfig for any config schema (the control plane has its own): YAML
 * syntax, an empty document, and every schema problem, located by path and line.
 */
export function parseYamlConfig<S extends z.ZodType>(schema: S, text: string, file: string, emptyHint: string): z.output<S> {
  const lines = new LineCounter();
  // merge: true so `<<: *anchor` can share a block, e.g. one upstream tls section between clusters.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((error) => {
      const { line, col } = lines.linePos(error.pos[0]);
      const message = error.code === 'DUPLICATE_KEY' ? duplicateKeyMessage(text, error.pos[0]) : error.message.split('\n')[0]!;
      return { path: `line ${line}, column ${col}`, message, line, column: col };
    }));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    if (!(error instanceof ReferenceError) || !/alias/i.test(error.message)) throw error;
    throw new ConfigError(file, [aliasBombProblem(doc, lines)]);
  }
  if (value === null || value === undefined) {
    throw new ConfigError(file, [{ path: '(file)', message: `the file is empty (or only comments); ${emptyHint}` }]);
  }
  const result = validate(schema, value);
  if ('data' in result) return result.data;
  const located = result.problems.map((problem) => ({ ...problem, ...position(doc, lines, problem) }));
  // Stable: problems on one line keep zod's order.
  located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  throw new ConfigError(file, located.map(({ path: keys, message, line, column }) => ({ path: formatPath(keys), message, line, column })));
}

/**
 * Validates a config built in code (the demo, tests) exactly as parseConfig
 * validates a file. `file` only labels errors, e.g. "(embedded demo config)".
 */
export function parseConfigObject(value: unknown, file: string): SwitchyardConfig {
  const result = validate(configSchema, value);
  if ('data' in result) return result.data;
  throw new ConfigError(file, result.problems.map((p) => ({ path: formatPath(p.path), message: p.message })));
}

/**
 * Reads, parses and validates a config file, then reads and checks every file
 * it names (see resolveConfig). Throws ConfigError for all of it, the file's
 * own unreadability included.
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  const text = await readConfigText(file);
  const loaded = await readReferencedFiles(parseConfig(text, file), path.dirname(absolute), file);
  return { ...loaded, file: absolute, files: [absolute, ...loaded.files] };
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

async function readReferencedFiles(config: SwitchyardConfig, baseDir: string, file: string): Promise<LoadedConfig> {
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

/**
 * yaml's own default, stated here because the docs quote it: an anchor whose
 * node holds aliases may be used only while (uses × aliases inside) stays
 * under this. Leaf anchors (a shared tls block) may be used any number of
 * times; nested ones, which multiply (a "billion laughs" document), may not.
 */
const MAX_ALIAS_COUNT = 100;

/** yaml throws a bare ReferenceError for it; this says what happened and where the first alias is. */
function aliasBombProblem(doc: Document, lines: LineCounter): ConfigProblem {
  let offset: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0];
      return visit.BREAK;
    },
  });
  const where = offset === undefined ? {} : (({ line, col }) => ({ line, column: col }))(lines.linePos(offset));
  return {
    path: '(file)',
    message: `the anchors and aliases expand to too much data (an anchor that holds aliases is used so often that uses × aliases inside exceed ${MAX_ALIAS_COUNT}, as in a "billion laughs" document); write the repeated parts out or nest fewer aliases`,
    ...where,
  };
}

/** yaml's own message does not say which key; the error points at its first character. */
function duplicateKeyMessage(text: string, offset: number): string {
  const key = /^("[^"\n]*"|'[^'\n]*'|[^:#\n]+?)\s*:/.exec(text.slice(offset))?.[1];
  return key === undefined ? 'duplicate key' : `duplicate key ${key.startsWith('"') ? key : JSON.stringify(key.replace(/^'|'$/g, ''))}`;
}


/** Where a problem is in the YAML: the node at its path, or the deepest existing parent of a missing one. */
function position(doc: Document, lines: LineCounter, problem: RawProblem): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let offset: number | undefined = rangeStart(node);
  const keys = problem.key === undefined ? problem.path : [...problem.path, problem.key];
  for (const [depth, key] of keys.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => (isScalar(item.key) ? String(item.key.value) : item.key) === key);
      // Point at the key for an unknown key or an empty value, at the value otherwise.
      const unknownKey = problem.key !== undefined && depth === keys.length - 1;
      if (pair) next = unknownKey || rangeStart(pair.value) === undefined ? pair.key : pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      next = node.items[key];
    }
    const start = rangeStart(next);
    if (start === undefined) break;
    node = next;
    offset = start;
  }
  if (offset === undefined) return {};
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

function rangeStart(node: unknown): number | undefined {
  return (node as YamlNode | null | undefined)?.range?.[0];
}
